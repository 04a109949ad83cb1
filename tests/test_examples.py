"""The examples run to completion on ``memory://``, ``sqlite://`` and every real broker
(backend from ``$MESSAGING_URL``, as a user runs them), and take their fallback paths
where a backend lacks a feature."""

from __future__ import annotations

import os
import re
import runpy
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

import messaging
from messaging.client import Client

try:
    from broker_fixtures import kafka_url, rabbitmq_url, redis_url, sqs_url
except ImportError:  # tests/ is not on sys.path when this file is collected on its own
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from broker_fixtures import kafka_url, rabbitmq_url, redis_url, sqs_url

__all__ = ["kafka_url", "rabbitmq_url", "redis_url", "sqs_url"]

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"

# example -> text its output must contain when it succeeded
EXPECTED = {
    "order_workers.py": "dead-lettered [7, 14] (expected [7, 14]), 0 left in the queue",
    "account_balances.py": "balances rebuilt from the beginning match the live ones",
    "activity_stream.py": "analytics (replayed from the beginning)",
    "delayed_retry_sms.py": "delivered 10 of 10",
    "priority_alerts.py": "ok: every alert came before the notifications",
}


def _env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESSAGING_")}
    return {**env, "MESSAGING_URL": url, "PYTHONUNBUFFERED": "1"}


def _url(backend: str, tmp_path: Path) -> str:
    return "memory://" if backend == "memory" else f"sqlite:///{tmp_path / 'example.db'}"


def test_every_example_is_covered() -> None:
    assert {path.name for path in EXAMPLES.glob("*.py")} == set(EXPECTED)


def _runs_to_completion(example: str, url: str, tmp_path: Path, expected: str) -> None:
    """Run ``example`` as a user does, against ``url``: it succeeds, names its backend
    as the client shows it (normalised, password hidden) and prints ``expected``."""
    with messaging.connect(url) as client:
        shown = str(client.url)
    result = subprocess.run([sys.executable, str(EXAMPLES / example)], cwd=tmp_path,
                            env=_env(url), capture_output=True, text=True, timeout=180,
                            check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"backend: {shown}" in result.stdout
    assert expected in result.stdout, output
    assert "Traceback" not in _without_dead_letter_logs(result.stderr), output


def _without_dead_letter_logs(stderr: str) -> str:
    """``stderr`` without the worker's error logs of dead letters, which carry the
    traceback of the handler's last failure: only a traceback of its own is a crash."""
    kept: list[str] = []
    skipping = False
    for line in stderr.splitlines():
        if re.match(r"(DEBUG|INFO|WARNING|ERROR|CRITICAL) ", line):
            skipping = "dead-lettered to" in line
        if not skipping:
            kept.append(line)
    return "\n".join(kept)


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
@pytest.mark.parametrize("example", sorted(EXPECTED))
def test_example_runs_to_completion(example: str, backend: str, tmp_path: Path) -> None:
    _runs_to_completion(example, _url(backend, tmp_path), tmp_path, EXPECTED[example])


REPLAYING = {"activity_stream.py", "account_balances.py"}
"""Examples that take a fallback path, and say so, where the backend has no replay."""


@pytest.mark.parametrize("broker", ["kafka", "rabbitmq", "redis", "sqs"])
@pytest.mark.parametrize("example", sorted(EXPECTED))
def test_example_runs_to_completion_on_a_broker(example: str, broker: str, tmp_path: Path,
                                                request: pytest.FixtureRequest) -> None:
    """As a user runs them against a real broker (which keeps what earlier runs left:
    each run tells its own messages apart)."""
    url: str = request.getfixturevalue(f"{broker}_url")
    with messaging.connect(url) as client:
        replay = client.capabilities.replay
    _runs_to_completion(example, url, tmp_path,
                        EXPECTED[example] if replay or example not in REPLAYING
                        else "capabilities.replay is False")


def test_examples_have_a_docstring_saying_how_to_run_them() -> None:
    for path in EXAMPLES.glob("*.py"):
        text = path.read_text()
        assert text.startswith('"""'), path.name
        assert f"python examples/{path.name}" in text, path.name
        assert "MESSAGING_URL" in text, path.name


def test_order_workers_run_as_separate_processes(tmp_path: Path) -> None:
    """The worker role runs until SIGTERM; the producer is another process."""
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    script = str(EXAMPLES / "order_workers.py")
    worker = subprocess.Popen([sys.executable, script, "worker"], cwd=tmp_path, env=_env(url),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        produced = subprocess.run([sys.executable, script, "produce", "--orders", "8"],
                                  cwd=tmp_path, env=_env(url), capture_output=True, text=True,
                                  timeout=60, check=False)
        assert produced.returncode == 0, produced.stderr
        with messaging.connect(url) as client:
            deadline = time.monotonic() + 60
            while client.admin.depth("orders", "order-workers") and time.monotonic() < deadline:
                time.sleep(0.1)
            assert client.admin.depth("orders", "order-workers") == 0
    finally:
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert out.count("charged") == 7, out  # order 7 is the poison one
    letters = subprocess.run([sys.executable, script, "dead-letters"], cwd=tmp_path,
                             env=_env(url), capture_output=True, text=True, timeout=60,
                             check=False)
    assert "dead letter: order 7 after 3 attempts, reason max_attempts" in letters.stdout


# -- fallback paths, in process, with a capability switched off ----------------------------
def _without(monkeypatch: pytest.MonkeyPatch, **changes: object) -> None:
    """Make the engine claim less than it has, as a backend without the feature would."""
    original_for = Client.capabilities_for
    original: property = Client.__dict__["capabilities"]

    def capabilities_for(self: Client, destination: str) -> messaging.Capabilities:
        return original_for(self, destination).replace(**changes)

    def capabilities(self: Client) -> messaging.Capabilities:
        caps: messaging.Capabilities = original.__get__(self, Client)
        return caps.replace(**changes)

    monkeypatch.setattr(Client, "capabilities_for", capabilities_for)
    monkeypatch.setattr(Client, "capabilities", property(capabilities))


def _run_example(name: str, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("MESSAGING_URL", f"memory://example-{uuid.uuid4().hex}")
    monkeypatch.setattr(sys, "argv", [name])
    main: Callable[[], int] = runpy.run_path(str(EXAMPLES / name), run_name="example")["main"]
    return main()


@pytest.mark.parametrize(("example", "replayed"), [
    ("activity_stream.py", "replayed"),
    ("account_balances.py", "rebuilt from the beginning"),
])
def test_replaying_examples_say_so_without_replay(
        example: str, replayed: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    _without(monkeypatch, replay=False)
    assert _run_example(example, monkeypatch) == 0
    out = capsys.readouterr().out
    assert "capabilities.replay is False" in out
    assert replayed not in out


def test_account_balances_fold_events_that_arrive_out_of_order() -> None:
    """On a backend without per-key order an account's events can come in any order:
    the projection retries one that is early and skips one seen twice, so the balances
    are those of the events in their order."""
    import random

    example = runpy.run_path(str(EXAMPLES / "account_balances.py"), run_name="example")
    run = uuid.uuid4().hex
    events = example["history"](run, accounts=3, per_account=9)
    in_order = example["Projection"](run)
    for event in events:
        in_order.apply(type("Message", (), {"value": event})())
    shuffled = random.Random(7).sample(events, len(events)) + events[:5]  # 5 repeats
    with messaging.connect(f"memory://{uuid.uuid4().hex}") as client:
        client.admin.create(example["EVENTS"], groups=[example["BALANCES"]])
        client.producer().send_many(example["EVENTS"], shuffled)  # no keys: no order
        live = example["Projection"](run)
        example["fold_live"](client, live, len(events), timeout=30.0)
    assert live.applied == len(events)
    assert live.table() == in_order.table()
    assert any(refused for _, refused in live.table().values())  # order mattered


def test_priority_alerts_use_a_separate_destination_without_priorities(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _without(monkeypatch, priority=0)
    assert _run_example("priority_alerts.py", monkeypatch) == 0
    out = capsys.readouterr().out
    assert "no priorities here" in out
    assert "ok: every alert came before the notifications" in out


def test_sms_retries_through_the_worker_backoff_without_delay(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _without(monkeypatch, max_delay=None)
    assert _run_example("delayed_retry_sms.py", monkeypatch) == 0
    out = capsys.readouterr().out
    assert "scheduled a reminder" not in out
    assert "delivered 9 of 9" in out
