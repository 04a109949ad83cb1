"""Helpers shared by the contract tests and the crash member: waiting with deadlines,
unique names, URL redaction and the timing knobs an adapter may tune.

Nothing here imports pytest, so :mod:`messaging_contracts.member` stays a light child
process. Waits poll with deadlines and return as soon as the condition holds; a test never
sleeps for a fixed long time.
"""

from __future__ import annotations

import collections
import dataclasses
import re
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

import messaging

__all__ = [
    "ExpectUnsupported",
    "MakeConsumer",
    "MakeDestination",
    "MakeGroup",
    "Timing",
    "assert_quiet",
    "bodies",
    "describe",
    "duplicates",
    "in_process_url",
    "receive_any",
    "receive_one",
    "receive_until",
    "redact",
    "unique_name",
    "wait_for",
]


@dataclasses.dataclass(frozen=True)
class Timing:
    """How long the suite waits. Override the ``messaging_timing`` fixture to tune it for a
    slow broker; the defaults keep the suite on ``memory://`` well under a minute."""

    deliver: float = 10.0
    """Longest wait for a message that must arrive (returns as soon as it does)."""
    quiet: float = 0.5
    """How long the suite watches for a message that must NOT arrive."""
    visibility: float = 1.0
    """The short ``visibility_timeout`` used where ``capabilities.visibility_timeout``."""
    delay: float = 1.5
    """The delay used by the delay tests (capped at ``max_delay``)."""
    failure_detection: float = 60.0
    """Longest wait for the broker's own failure detection (no visibility timeout)."""
    tolerance: float = 0.05
    """Clock granularity allowed when checking that something did not happen early."""
    largest_roundtrip: int = 4 * 1024 * 1024
    """Biggest body the limits test sends through the broker for real."""
    soak_deadline: float = 240.0
    """The soak test fails when it has not finished within this many seconds (under a
    300 s pytest-timeout, so the failure says what was missing)."""


class MakeDestination(Protocol):
    """``messaging_make_destination``: create a unique destination, deleted after the test."""

    def __call__(self, *, partitions: int = 1, groups: Sequence[str] = (),
                 suffix: str = "") -> str: ...


class MakeConsumer(Protocol):
    """``messaging_consumer``: a consumer closed after the test (before its destination
    is deleted)."""

    def __call__(self, destination: str, group: str, *,
                 visibility_timeout: float | None = None, prefetch: int = 100,
                 dead_letter: str | None = None) -> messaging.Consumer: ...


MakeGroup = Callable[[], str]
ExpectUnsupported = Callable[[str], AbstractContextManager[None]]


def unique_name(prefix: str = "mc") -> str:
    """A fresh name every broker accepts: lower-case letters, digits and '-', short enough
    for SQS (80 characters) and Kafka (249)."""
    slug = re.sub(r"[^a-z0-9]+", "-", prefix.lower()).strip("-")[:40] or "mc"
    return f"{slug}-{uuid.uuid4().hex[:10]}"


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe for skip reasons and reports)."""
    return re.sub(r"(://[^/@:?#]*:)[^@/?#]*@", r"\1***@", url)


def in_process_url(url: str) -> bool:
    """True for a URL whose broker lives only inside the process that opened it."""
    return url.strip().lower().startswith("memory:")


def receive_until(consumer: messaging.Consumer, count: int, timeout: float, *,
                  ack: bool = False, batch: int = 100) -> list[messaging.Message]:
    """Receive until ``count`` messages came or ``timeout`` seconds passed; return what
    came (possibly fewer: the caller asserts). With ``ack`` each batch is acked at once."""
    deadline = time.monotonic() + timeout
    received: list[messaging.Message] = []
    while len(received) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        got = consumer.receive(max_messages=max(1, min(batch, count - len(received))),
                               timeout=min(remaining, 1.0))
        if ack:
            for message in got:
                message.ack()
        received.extend(got)
    return received


def receive_one(consumer: messaging.Consumer, timeout: float, what: str = "a message"
                ) -> messaging.Message:
    """The next message, or an AssertionError naming ``what`` did not come in time."""
    got = receive_until(consumer, 1, timeout)
    if not got:
        raise AssertionError(f"expected {what} within {timeout:.1f} s, got nothing")
    return got[0]


def receive_any(consumers: Sequence[messaging.Consumer], count: int, timeout: float, *,
                ack: bool = True, batch: int = 5) -> list[tuple[int, messaging.Message]]:
    """Poll ``consumers`` in turn until ``count`` messages came in all or ``timeout``
    passed; return (index of the consumer, message) pairs in arrival order."""
    deadline = time.monotonic() + timeout
    received: list[tuple[int, messaging.Message]] = []
    while len(received) < count and time.monotonic() < deadline:
        for index, consumer in enumerate(consumers):
            for message in consumer.receive(max_messages=batch, timeout=0.05):
                if ack:
                    message.ack()
                received.append((index, message))
    return received


def assert_quiet(consumer: messaging.Consumer, seconds: float, what: str = "") -> None:
    """Fail if ``consumer`` receives anything within ``seconds``. What did arrive is acked
    (so it cannot disturb later checks) and named in the failure."""
    deadline = time.monotonic() + seconds
    extra: list[messaging.Message] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        extra.extend(consumer.receive(max_messages=100, timeout=remaining))
    for message in extra:
        message.ack()
    if extra:
        raise AssertionError(
            f"expected no message{' ' + what if what else ''} within {seconds:.1f} s, "
            f"got {len(extra)}: {describe(extra)}"
        )


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def bodies(messages: Iterable[messaging.Message]) -> list[bytes]:
    return [message.body for message in messages]


def describe(messages: Iterable[messaging.Message], limit: int = 12) -> str:
    """A short, readable list of messages for failure texts."""
    items = list(messages)
    shown = ", ".join(
        f"{message.body[:40]!r}@{message.attempt}" for message in items[:limit]
    )
    return f"[{shown}{', ...' if len(items) > limit else ''}]"


def duplicates(values: Iterable[object]) -> dict[object, int]:
    """Values seen more than once, with their counts."""
    return {value: n for value, n in collections.Counter(values).items() if n > 1}
