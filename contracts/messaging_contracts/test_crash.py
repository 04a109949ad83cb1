"""Contract 1 under a crash: a member of a group dies holding messages mid-batch, without
closing, acking or nacking them. Its unacked messages must reach another member of the
same group with ``attempt`` >= 2, acked ones must not come back, and nothing is lost.

Two forms, named in the test id (neither is ever a skip):

* ``sigkill-member-process``: for every URL another process can reach (``sqlite://`` and
  all brokers) the member is a child process (``python -m messaging_contracts.member``)
  that reports the ids it holds on stdout and is then killed with SIGKILL.
* ``vanished-member-thread-in-process``: a ``memory://`` broker lives only inside the test
  process, so no second process can share it. There the member runs in a thread of the
  test process and "crash" means the thread ends leaving its consumer unclosed and its
  messages unsettled: from the broker's side exactly what a killed process looks like.

Where ``capabilities.visibility_timeout`` holds the member uses a short one
(``messaging_timing.visibility``) and redelivery must follow it; otherwise the broker's own
failure detection must redeliver, within ``messaging_timing.failure_detection`` seconds.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest

import messaging
import messaging_contracts
from messaging_contracts.helpers import (
    MakeConsumer,
    MakeDestination,
    MakeGroup,
    Timing,
    assert_quiet,
    in_process_url,
)
from messaging_contracts.member import HOLDING, hold_messages
from messaging_contracts.plugin import CRASH_IN_PROCESS, CRASH_PROCESS

pytestmark = [pytest.mark.messaging_contract("at-least-once-crash"), pytest.mark.slow]

SENT = 10
HOLD = 6  # the member receives this many ...
ACK = 2  # ... acks the first ones received, and dies holding the rest
STARTUP = 30.0  # seconds a child process may take to start and join


def _thread_member(consumer: messaging.Consumer, timing: Timing) -> dict[str, object]:
    """Run the member in a thread; its consumer is closed only at the test's teardown,
    after the verdict (so the broker's destination can be deleted cleanly)."""
    reports: queue.Queue[dict[str, object] | BaseException] = queue.Queue()

    def member() -> None:
        try:
            reports.put(hold_messages(consumer, HOLD, ACK, timing.deliver))
        except BaseException as error:  # handed to the test thread
            reports.put(error)
        # Then the thread just ends: the consumer is never closed, acked or nacked.

    thread = threading.Thread(target=member, name="contract-crash-member", daemon=True)
    thread.start()
    thread.join(timing.deliver + STARTUP)
    report = reports.get(timeout=1.0)
    if isinstance(report, BaseException):
        raise report
    return report


def _child_env(url: str) -> dict[str, str]:
    """The child must import this suite and ``messaging`` the way this process does, and
    gets the URL through the environment (never on a command line other users can read)."""
    env = dict(os.environ)
    roots = [str(Path(module.__file__ or ".").resolve().parent.parent)
             for module in (messaging_contracts, messaging)]
    env["PYTHONPATH"] = os.pathsep.join(
        dict.fromkeys([*roots, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]))
    env["MESSAGING_URL"] = url
    return env


def _read_lines(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def _pairs(report: dict[str, object], name: str) -> dict[str, str]:
    """``report[name]`` ([[id, body], ...]) as body -> id."""
    items = report[name]
    assert isinstance(items, list), report
    return {str(body): str(id_) for id_, body in items}


def _process_member(url: str, options: dict[str, object], *, destination: str, group: str,
                    visibility: float | None, timing: Timing) -> dict[str, object]:
    command = [sys.executable, "-m", "messaging_contracts.member",
               "--destination", destination, "--group", group, "--hold", str(HOLD),
               "--ack", str(ACK), "--connect-options", json.dumps(options),
               "--timeout", str(timing.deliver)]
    if visibility is not None:
        command += ["--visibility-timeout", str(visibility)]
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors,
                                   env=_child_env(url), text=True)
        assert process.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
        try:
            line = lines.get(timeout=timing.deliver + STARTUP)
        except queue.Empty:
            line = ""
        finally:
            process.send_signal(signal.SIGKILL)  # mid-batch: it holds unacked messages
            process.wait(timeout=30)
        errors.seek(0)
        stderr = errors.read()
    assert process.returncode == -signal.SIGKILL, (
        f"the member ended on its own (exit {process.returncode}) before the kill:\n{stderr}"
    )
    assert line, f"the member reported nothing within the deadline:\n{stderr}"
    report: dict[str, object] = json.loads(line)
    return report


def test_killed_member_gives_its_messages_to_the_group(
    *, messaging_crash_member: str, messaging_client: messaging.Client, messaging_url: str,
    messaging_connect_options: dict[str, Any], messaging_make_destination: MakeDestination,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
    request: pytest.FixtureRequest,
) -> None:
    request.node.user_properties.append(("crash_member", messaging_crash_member))
    group = messaging_group()
    destination = messaging_make_destination(groups=[group])
    caps = messaging_client.capabilities_for(destination)
    visibility = messaging_timing.visibility if caps.visibility_timeout else None
    sent = [f"crash-{i}" for i in range(SENT)]
    messaging_client.producer().send_many(destination, [body.encode() for body in sent])

    if messaging_crash_member == CRASH_IN_PROCESS:
        report = _thread_member(
            messaging_consumer(destination, group, visibility_timeout=visibility,
                               prefetch=HOLD),
            messaging_timing,
        )
    else:
        assert messaging_crash_member == CRASH_PROCESS
        assert not in_process_url(messaging_url), (
            "this URL lives in one process: the module that overrides messaging_url must "
            "declare `messaging_in_process = True` (see messaging_contracts.plugin)"
        )
        report = _process_member(messaging_url, messaging_connect_options,
                                 destination=destination, group=group, visibility=visibility,
                                 timing=messaging_timing)
    died_at = time.monotonic()

    assert report["event"] == HOLDING
    acked, held = _pairs(report, "acked"), _pairs(report, "held")
    assert (len(acked), len(held)) == (ACK, HOLD - ACK), f"the member did not hold: {report}"
    assert report["attempts"] == [1] * HOLD

    survivor = messaging_consumer(destination, group)
    expected = set(sent) - set(acked)
    patience = (visibility + messaging_timing.deliver if visibility is not None
                else messaging_timing.failure_detection)
    seen: dict[str, list[messaging.Message]] = {}
    while not expected <= seen.keys() and time.monotonic() - died_at < patience:
        for message in survivor.receive(max_messages=10, timeout=0.5):
            message.ack()
            seen.setdefault(message.body.decode(), []).append(message)

    assert set(seen) == expected, (
        f"lost: {sorted(expected - set(seen))}; acked yet redelivered: "
        f"{sorted(set(seen) & set(acked))}; waited {time.monotonic() - died_at:.1f} s"
    )
    assert {body: len(ms) for body, ms in seen.items() if len(ms) > 1} == {}
    for body, message_id in held.items():
        (message,) = seen[body]
        assert message.id == message_id
        assert message.attempt >= 2, f"{body} came back with attempt {message.attempt}"
    assert_quiet(survivor, messaging_timing.quiet, "after every message was acked")
    assert messaging_client.admin.depth(destination, group) == 0
