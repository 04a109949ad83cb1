"""The pytest plugin of the contract suite (entry point ``pytest11: messaging_contracts``).

Run the suite against any backend::

    pytest --pyargs messaging_contracts --messaging-url redis://127.0.0.1:6379/0

or from an adapter's own test module (SQLAlchemy ``testing.suite`` style)::

    import pytest
    from messaging_contracts.suite import *  # noqa: F403

    @pytest.fixture
    def messaging_url() -> str:
        return "redis://127.0.0.1:6379/0"

Options
-------
``--messaging-url URL``
    The broker (default: ``$MESSAGING_URL``, else ``memory://``).
``--messaging-strict``
    An unreachable broker FAILS the tests instead of skipping them (CI uses it).

Fixtures (all prefixed ``messaging_``, so they never clash with a user's own)
---------------------------------------------------------------------------
``messaging_url``
    The URL under test; override it in a conftest or test module (any scope).
``messaging_connect_options``
    Extra keyword arguments for ``messaging.connect`` (default: none).
``messaging_timing``
    :class:`~messaging_contracts.helpers.Timing`, the waits; override for a slow broker.
``messaging_client``
    A connected client, closed after the test. When the broker cannot be reached the test
    is skipped with a reason naming the broker by its redacted URL (failed with
    ``--messaging-strict``); later tests against the same URL skip at once.
``messaging_capabilities``
    ``messaging_client.capabilities``.
``messaging_make_destination`` / ``messaging_destination``
    A factory of unique destinations (``admin.create``; deleted after the test) / one.
``messaging_group``
    A factory of unique group names.
``messaging_consumer``
    A factory of consumers that are closed after the test, before their destinations go.
``messaging_producer``
    ``messaging_client.producer()``.
``messaging_expect_unsupported``
    ``with messaging_expect_unsupported("delay"): ...`` asserts ``UnsupportedFeature`` is
    raised in the block and records the outcome ``unsupported`` for the test.
``messaging_record_unsupported``
    Records ``unsupported`` for a feature that has no call to refuse (``ordering``).
``messaging_report``
    Adds a line to the "messaging contracts" section of the terminal summary (and the
    junit property ``messaging_report`` of the test).

Outcomes
--------
Every contract test carries the junit property ``contract_outcome``: ``passed``,
``unsupported`` (the backend does not claim the feature and ``UnsupportedFeature`` was
asserted at the call), ``failed`` or ``skipped`` (broker unreachable). Features asserted
unsupported are listed in ``unsupported_feature`` properties, the URL in ``messaging_url``.
The summary is gathered from the test reports, so it is whole under pytest-xdist (``-n``)
too.
Only an unreachable broker skips; a missing feature never does.

The crash test
--------------
``test_crash`` runs its member in a child process killed with SIGKILL, except for a URL
whose broker only lives inside one process (``memory://``), where the member is a thread
that vanishes without closing or acking; the test id says which form ran. The form is
chosen at collection from ``--messaging-url``/``$MESSAGING_URL``; a test module that
overrides ``messaging_url`` with such an in-process URL declares it with a module-level
``messaging_in_process = True``.
"""

from __future__ import annotations

import collections
import contextlib
import os
import sys
import warnings
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any, NoReturn

import pytest

import messaging
from messaging_contracts.helpers import (
    ExpectUnsupported,
    MakeConsumer,
    MakeDestination,
    MakeGroup,
    Timing,
    in_process_url,
    redact,
    unique_name,
)

OUTCOME = "contract_outcome"
UNSUPPORTED = "unsupported"
FEATURE = "unsupported_feature"
URL_PROPERTY = "messaging_url"
LABEL = "contract_label"
"""The summary line a contract test counts towards (its URL, or runner module)."""
REPORT_LINE = "messaging_report"
"""A line for the summary, from ``messaging_report``."""

CRASH_IN_PROCESS = "vanished-member-thread-in-process"
CRASH_PROCESS = "sigkill-member-process"

_UNREACHABLE = pytest.StashKey[dict[tuple[str, str], str]]()
_OUTCOMES = pytest.StashKey[dict[str, tuple[str, str, tuple[str, ...]]]]()
_REPORT = pytest.StashKey[dict[str, None]]()  # lines in order (a dict: each once)


# -- options and configuration --------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("messaging", "messaging contract suite")
    group.addoption(
        "--messaging-url", dest="messaging_url", default=None, metavar="URL",
        help="broker URL for the messaging contract suite "
             "(default: $MESSAGING_URL, else memory://)",
    )
    group.addoption(
        "--messaging-strict", dest="messaging_strict", action="store_true", default=False,
        help="an unreachable broker fails the contract tests instead of skipping them",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long-running tests (soak, crash)")
    config.addinivalue_line(
        "markers", "messaging_contract(semantic): the DESIGN.md semantic a contract test checks"
    )
    config.stash[_UNREACHABLE] = {}
    config.stash[_OUTCOMES] = {}
    config.stash[_REPORT] = {}
    config.pluginmanager.register(_Summary(config), "messaging_contracts_summary")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A contract test imported into an adapter's module (``from suite import *``) loses
    its home module's ``pytestmark`` (``slow``, ``messaging_contract``): add it back, before
    ``-m`` selects."""
    for item in items:
        if not _is_contract(item) or not isinstance(item, pytest.Function):
            continue
        home = sys.modules.get(item.function.__module__)
        if home is None or item.module is home:
            continue
        marks = getattr(home, "pytestmark", [])
        for mark in marks if isinstance(marks, list) else [marks]:
            item.add_marker(mark)


def default_url(config: pytest.Config) -> str:
    """``--messaging-url``, else ``$MESSAGING_URL``, else ``memory://``."""
    option = config.getoption("messaging_url", default=None)
    return str(option or os.environ.get("MESSAGING_URL") or "memory://")


def pytest_report_header(config: pytest.Config) -> list[str]:
    if config.getoption("messaging_url", default=None) or config.getoption(
            "messaging_strict", default=False):
        strict = " (strict)" if config.getoption("messaging_strict") else ""
        return [f"messaging contracts: {redact(default_url(config))}{strict}"]
    return []


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Choose the crash test's form (see the module doc) and put it in the test id."""
    if "messaging_crash_member" not in metafunc.fixturenames:
        return
    declared = getattr(metafunc.module, "messaging_in_process", None)
    if declared is None:
        overridden = callable(getattr(metafunc.module, "messaging_url", None))
        declared = not overridden and in_process_url(default_url(metafunc.config))
    form = CRASH_IN_PROCESS if declared else CRASH_PROCESS
    metafunc.parametrize("messaging_crash_member", [form], ids=[form])


# -- fixtures -----------------------------------------------------------------------
@pytest.fixture
def messaging_url(request: pytest.FixtureRequest) -> str:
    """The URL under test. Override it (any scope) to run the suite on your broker."""
    return default_url(request.config)


@pytest.fixture
def messaging_connect_options() -> dict[str, Any]:
    """Extra keyword arguments for ``messaging.connect``."""
    return {}


@pytest.fixture
def messaging_timing() -> Timing:
    return Timing()


@pytest.fixture
def messaging_strict(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("messaging_strict", default=False))


@pytest.fixture
def messaging_client(
    request: pytest.FixtureRequest,
    messaging_url: str,
    messaging_connect_options: dict[str, Any],
    messaging_strict: bool,
) -> Iterator[messaging.Client]:
    """A client of the broker under test; skips (or fails, strict) when unreachable."""
    shown = redact(messaging_url)
    request.node.user_properties.append((URL_PROPERTY, shown))
    unreachable = request.config.stash[_UNREACHABLE]
    key = (messaging_url, repr(sorted(messaging_connect_options.items())))
    if key in unreachable:
        _unreachable(shown, unreachable[key], messaging_strict)
    try:
        client = messaging.connect(messaging_url, **messaging_connect_options)
    except messaging.ConnectionFailed as error:
        unreachable[key] = str(error)
        _unreachable(shown, str(error), messaging_strict)
    try:
        yield client
    finally:
        client.close()


def _unreachable(shown: str, error: str, strict: bool) -> NoReturn:
    reason = f"broker {shown} could not be reached: {error}"
    if strict:
        pytest.fail(f"{reason} (--messaging-strict)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def messaging_capabilities(messaging_client: messaging.Client) -> messaging.Capabilities:
    return messaging_client.capabilities


@pytest.fixture
def messaging_make_destination(
    request: pytest.FixtureRequest, messaging_client: messaging.Client
) -> Iterator[MakeDestination]:
    """A factory: ``make(partitions=1, groups=(), suffix="")`` creates a unique
    destination (declaring ``groups``) and returns its name; all are deleted afterwards."""
    created: list[str] = []
    test_name = getattr(request.node, "originalname", request.node.name).removeprefix("test_")

    def make(*, partitions: int = 1, groups: Sequence[str] = (), suffix: str = "") -> str:
        name = unique_name(f"mc-{test_name[:24]}{'-' + suffix if suffix else ''}")
        messaging_client.admin.create(name, partitions=partitions, groups=list(groups))
        created.append(name)
        return name

    yield make
    for name in reversed(created):
        try:
            messaging_client.admin.delete(name)
        except messaging.MessagingError as error:  # cleanup must not hide the verdict
            warnings.warn(f"could not delete test destination {name!r}: {error}",
                          stacklevel=1)


@pytest.fixture
def messaging_destination(messaging_make_destination: MakeDestination) -> str:
    """A unique destination created for this test and deleted after it."""
    return messaging_make_destination()


@pytest.fixture
def messaging_group() -> MakeGroup:
    """A factory of unique group names."""
    return lambda: unique_name("g")


@pytest.fixture
def messaging_consumer(
    messaging_client: messaging.Client, messaging_make_destination: MakeDestination
) -> Iterator[MakeConsumer]:
    """A factory of consumers, all closed after the test (before destinations go)."""
    consumers: list[messaging.Consumer] = []

    def make(destination: str, group: str, *, visibility_timeout: float | None = None,
             prefetch: int = 100, dead_letter: str | None = None) -> messaging.Consumer:
        consumer = messaging_client.consumer(
            destination, group, visibility_timeout=visibility_timeout, prefetch=prefetch,
            dead_letter=dead_letter,
        )
        consumers.append(consumer)
        return consumer

    yield make
    for consumer in reversed(consumers):
        consumer.close()


@pytest.fixture
def messaging_producer(messaging_client: messaging.Client) -> messaging.Producer:
    return messaging_client.producer()


def record_unsupported(node: pytest.Item, feature: str) -> None:
    """Mark ``node``'s outcome as ``unsupported`` for ``feature``."""
    node.user_properties.append((OUTCOME, UNSUPPORTED))
    node.user_properties.append((FEATURE, feature))


@pytest.fixture
def messaging_expect_unsupported(request: pytest.FixtureRequest) -> ExpectUnsupported:
    """``with messaging_expect_unsupported(feature): call()`` asserts that the call raises
    ``messaging.UnsupportedFeature`` and records the outcome ``unsupported``."""
    node = request.node

    @contextlib.contextmanager
    def expect(feature: str) -> Iterator[None]:
        with pytest.raises(messaging.UnsupportedFeature):
            yield
        record_unsupported(node, feature)

    return expect


@pytest.fixture
def messaging_record_unsupported(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Record ``unsupported`` for a feature the backend does not claim and no call can
    refuse (``ordering == "none"``); the test still asserts what does hold."""
    node = request.node
    return lambda feature: record_unsupported(node, feature)


@pytest.fixture
def messaging_report(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Add a line to the terminal summary (and to the test's captured output)."""
    node = request.node

    def report(line: str) -> None:
        print(line)
        node.user_properties.append((REPORT_LINE, line))  # travels in the test's report

    return report


# -- outcomes -------------------------------------------------------------------------
def _is_contract(item: pytest.Item) -> bool:
    function = getattr(item, "function", None)
    return str(getattr(function, "__module__", "")).startswith("messaging_contracts.")


def _label(item: pytest.Item, url: str) -> str:
    """How the summary groups a test: by URL when the suite ran as is (``--pyargs``), by
    the runner module and URL scheme when an adapter's module imported it (its URL may
    differ per test, e.g. a fresh database file each)."""
    function = getattr(item, "function", None)
    home = sys.modules.get(str(getattr(function, "__module__", "")))
    if home is None or getattr(item, "module", None) is home or "://" not in url:
        return url
    return f"{item.nodeid.split('::', 1)[0]} ({url.split('://', 1)[0]}://)"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if not _is_contract(item):
        return report
    if report.when == "call" or (report.when == "setup" and not report.passed):
        properties = list(item.user_properties)
        claimed = {value for name, value in properties if name == OUTCOME}
        if report.failed:
            outcome = "failed"
        elif report.skipped:
            outcome = "skipped"
        else:
            outcome = UNSUPPORTED if UNSUPPORTED in claimed else "passed"
        properties = [(name, value) for name, value in properties if name != OUTCOME]
        properties.append((OUTCOME, outcome))
        item.user_properties[:] = properties
        url = next((str(v) for n, v in properties if n == URL_PROPERTY), None)
        if url is None:
            funcargs = getattr(item, "funcargs", {})
            url = redact(str(funcargs["messaging_url"])) if "messaging_url" in funcargs \
                else "(no broker needed)"
        # The label only on this report: the summary counts the test once, from it.
        report.user_properties = [*properties, (LABEL, _label(item, url))]
    return report


class _Summary:
    """Gathers what the summary shows from the test reports, not from the items: under
    pytest-xdist the tests run in worker processes, and only their reports reach the
    process that prints the summary."""

    def __init__(self, config: pytest.Config) -> None:
        self._config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        properties = dict(report.user_properties)
        lines = self._config.stash[_REPORT]
        for name, value in report.user_properties:
            if name == REPORT_LINE:
                lines[str(value)] = None
        if LABEL in properties and OUTCOME in properties:
            features = tuple(str(v) for n, v in report.user_properties if n == FEATURE)
            self._config.stash[_OUTCOMES][report.nodeid] = (
                str(properties[LABEL]), str(properties[OUTCOME]), features)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            exitstatus: int, config: pytest.Config) -> None:
    outcomes = config.stash.get(_OUTCOMES, {})
    gathered: dict[str, None] = config.stash.get(_REPORT, {})
    lines = list(gathered)
    if not outcomes and not lines:
        return
    terminalreporter.section("messaging contracts")
    per_label: dict[str, collections.Counter[str]] = collections.defaultdict(
        collections.Counter)
    unsupported: dict[str, set[str]] = collections.defaultdict(set)
    for label, outcome, features in outcomes.values():
        per_label[label][outcome] += 1
        unsupported[label].update(features)
    for label, counts in sorted(per_label.items()):
        parts = [f"{counts[name]} {name}" for name in ("passed", UNSUPPORTED, "failed",
                                                        "skipped") if counts[name]]
        missing = f" (unsupported: {', '.join(sorted(unsupported[label]))})" \
            if unsupported[label] else ""
        terminalreporter.write_line(f"{label}: {', '.join(parts)}{missing}")
    for line in lines:
        terminalreporter.write_line(line)
