"""The reference engine: a real driver for ``memory://`` and ``sqlite:///path.db``.

It implements every semantic of the contract natively, like Go CDK's ``mempubsub``,
with one body of SQL (:mod:`messaging.engine.operations`) over Python's ``sqlite3``:

* ``memory://`` or ``memory://name``: an in-memory database shared by every ``connect``
  of that URL in this process (it is the broker; it outlives the clients). Not durable.
* ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` (SQLAlchemy's
  rule: the path is what follows the third slash): a database file that several
  processes share safely. Durable.

Options (URL query, config file or keyword): ``clock`` (an object with
``time() -> float``; see :mod:`messaging.engine.clock`), ``max_message_bytes`` (default
1 MiB), ``retention`` (seconds acked history is kept for replay; default 24 h),
``dedup_window`` (seconds; default 300), ``visibility_timeout`` (default for consumers
that set none; 30 s), ``connect_timeout`` (opening a file must succeed within it;
afterwards a write waits at least 10 s for another process's write lock).

Delivery semantics
------------------
* At-least-once with leases: a receive leases each delivery for the consumer's
  ``visibility_timeout``; unacked when the lease runs out (or when the consumer closes
  or its process dies), it is delivered again with ``attempt`` + 1. ``extend`` moves the
  deadline. Every ack id carries its lease token: a settlement for a lease that expired
  and went to another member is ignored, never an error.
* Groups: competing consumers inside a group, fan-out across groups. A group exists
  from its first ``subscribe`` or from ``create(dest, groups=[...])`` and gets every
  message sent after that (fan-out at write time, SNS->SQS style).
* Ordering ``per_key``: a keyed message is deliverable only when every earlier unacked
  message of its key in the group is in flight with the same consumer, so one consumer
  may hold a run of one key, in order, and nobody else gets that key meanwhile. A key
  whose earlier message waits (nacked with a delay, delayed, or held elsewhere) is
  blocked. Keyless messages are unconstrained. A redelivered message may come after
  later messages of its key that its consumer already held.
* Partitions: stored (``create(partitions=n)``) but they shape nothing, because
  consumers compete per message and ordering is per key; they are metadata only.
* Priority: 10 levels (0..9); among ready messages higher priority first, then send
  order (a nacked message keeps its place). Default priority 0.
* Delay: ``send(delay=)`` and ``nack(delay=)`` up to 14 days.
* Dedup: a ``dedup_id`` seen on the destination within ``dedup_window`` seconds makes the
  send a no-op that returns the original message's id.
* Replay: the log keeps acked messages for ``retention`` seconds (unacked ones until
  acked), trimmed opportunistically on send. ``seek`` resets the whole group to a
  point: ``"beginning"`` (every retained message), ``"end"`` (nothing pending), a
  ``datetime`` (messages sent at or after it) or a position (inclusive). In-flight
  deliveries of the group are dropped by a seek; their acks are then ignored.
  ``Delivery.position`` and ``Delivery.id`` are the message's sequence number, as text.
* Dead letters are native: ``send_dead_letters`` removes the delivery and appends the
  letter to the dead-letter destination in one transaction.
* ``depth`` counts the group's unacked deliveries: ready, in flight and delayed.

Errors
------
Sending to or subscribing to a missing destination raises an ``EngineError`` that
``error_code`` maps to ``NOT_FOUND`` (the portable layer then creates the destination
when ``auto_create`` holds); so do ``depth`` and ``groups`` of an unknown destination or
group. Bad options, URLs, positions or create options map to ``CONFIGURATION``; another
process holding the file's write lock too long maps to ``TIMEOUT``; an
unopenable file or a closed connection to ``CONNECTION``. See
:mod:`messaging.engine.errors`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import MappingProxyType
from typing import TYPE_CHECKING, ClassVar

from messaging.capabilities import Capabilities
from messaging.driver import (
    AckId,
    DeadLetter,
    Delivery,
    Driver,
    OutgoingMessage,
    SeekTarget,
    SendResult,
    Subscription,
    SubscriptionOptions,
)
from messaging.engine import operations as ops
from messaging.engine import registry
from messaging.engine.clock import Clock, SystemClock
from messaging.engine.errors import EngineError, bad_configuration, classify, not_found
from messaging.engine.operations import Lease
from messaging.engine.store import FileStore, Store
from messaging.errors import ErrorCode

if TYPE_CHECKING:
    import sqlite3

    from messaging.urls import BrokerURL

MAX_DELAY = 14 * 24 * 3600.0
PRIORITY_LEVELS = 10
_LONGEST_TRIM_INTERVAL = 60.0


@dataclasses.dataclass(frozen=True)
class EngineOptions:
    """The engine's options, checked."""

    clock: Clock = dataclasses.field(default_factory=SystemClock)
    max_message_bytes: int = 1024 * 1024
    retention: float = 24 * 3600.0
    dedup_window: float = 300.0
    visibility_timeout: float = 30.0
    connect_timeout: float = 10.0

    @classmethod
    def parse(cls, options: Mapping[str, object]) -> EngineOptions:
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise bad_configuration(f"unknown engine options {unknown}; known: {sorted(known)}")
        given = {name: value for name, value in options.items() if value is not None}
        clock = given.get("clock")
        if clock is not None and not callable(getattr(clock, "time", None)):
            raise bad_configuration(f"option 'clock' needs an object with time(), got {clock!r}")
        for name in ("retention", "dedup_window", "visibility_timeout", "connect_timeout"):
            if name in given:
                given[name] = _positive(name, given[name], float)
        if "max_message_bytes" in given:
            given["max_message_bytes"] = _positive("max_message_bytes",
                                                   given["max_message_bytes"], int)
        return cls(**given)  # type: ignore[arg-type]


def _positive(name: str, value: object, kind: type[float] | type[int]) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
            value) or value <= 0 or (kind is int and not isinstance(value, int)):
        raise bad_configuration(f"option {name!r} must be a {kind.__name__} > 0, got {value!r}")
    return kind(value)


def open_store(url: BrokerURL, open_timeout: float) -> Store:
    """The store a URL names: a process-wide memory store or a database file."""
    if url.scheme == "memory":
        hosts = ",".join(host if port is None else f"{host}:{port}" for host, port in url.hosts)
        return registry.memory_store(hosts + url.path)
    if url.scheme == "sqlite":
        path = url.path[1:]
        if url.hosts or not path or path == ":memory:":
            raise bad_configuration(
                f"{url.redacted}: a sqlite URL names a file, as sqlite:///relative.db or "
                "sqlite:////absolute/path.db (use memory:// for an in-memory engine)"
            )
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            # SQLite would say only "unable to open database file"; the usual cause is a
            # path read as relative (three slashes) that was meant as absolute (four).
            relative = "" if os.path.isabs(path) else (
                f", relative to the working directory (sqlite:////{path} would be "
                f"/{path})")
            raise bad_configuration(
                f"{url.redacted}: no directory {directory!r} for the database file "
                f"{path!r}{relative}")
        return FileStore(path, open_timeout)
    raise bad_configuration(f"the engine serves memory:// and sqlite://, not {url.scheme}://")


class EngineDriver(Driver):
    """The reference engine (see the module documentation)."""

    schemes: ClassVar[tuple[str, ...]] = ("memory", "sqlite")
    option_types: ClassVar[Mapping[str, type]] = MappingProxyType({
        "clock": object,
        "max_message_bytes": int,
        "retention": float,
        "dedup_window": float,
        "visibility_timeout": float,
        "connect_timeout": float,
    })

    def __init__(self, store: Store, options: EngineOptions) -> None:
        self._store = store
        self.options = options
        self._clock = options.clock
        self._closed = False
        self._next_trim = -math.inf  # the first send trims what earlier runs left
        self._trim_interval = min(min(options.retention, options.dedup_window) / 10,
                                  _LONGEST_TRIM_INTERVAL)
        self._capabilities = Capabilities(
            ordering="per_key",
            fan_out=True,
            replay=True,
            max_delay=MAX_DELAY,
            priority=PRIORITY_LEVELS,
            dead_letter="native",
            dedup=True,
            max_message_bytes=options.max_message_bytes,
            visibility_timeout=True,
            extend=True,
            durable=store.durable,
            dedup_window=options.dedup_window,
        )

    @classmethod
    def open(cls, url: BrokerURL, options: Mapping[str, object]) -> EngineDriver:
        parsed = EngineOptions.parse(options)
        return cls(open_store(url, parsed.connect_timeout), parsed)

    def capabilities(self, destination: str | None = None) -> Capabilities:
        return self._capabilities

    # -- sending ------------------------------------------------------------------------
    def send_batch(self, destination: str, messages: Sequence[OutgoingMessage]
                   ) -> list[SendResult]:
        now = self._clock.time()
        with self._write() as db:
            dest_id = ops.require_destination(db, destination)
            ids: list[SendResult] = list(
                ops.send(db, dest_id, messages, now, self.options.dedup_window))
        if now >= self._next_trim:
            self._next_trim = now + self._trim_interval
            with self._write() as db:
                ops.trim(db, now, self.options.retention)
        return ids

    # -- consuming ----------------------------------------------------------------------
    def subscribe(self, destination: str, group: str, options: SubscriptionOptions
                  ) -> EngineSubscription:
        with self._write() as db:
            dest_id = ops.require_destination(db, destination)
            group_id = ops.declare_group(db, dest_id, group, self._clock.time())
        visibility = options.visibility_timeout or self.options.visibility_timeout
        return EngineSubscription(self, destination, group, group_id, visibility)

    # -- administration -----------------------------------------------------------------
    def create(self, destination: str, partitions: int, groups: Sequence[str],
               options: Mapping[str, object]) -> None:
        if options:
            raise bad_configuration(
                f"the engine takes no create options, got {sorted(options)}")
        now = self._clock.time()
        with self._write() as db:
            dest_id = ops.create_destination(db, destination, partitions, now)
            for group in groups:
                ops.declare_group(db, dest_id, group, now)

    def delete(self, destination: str) -> None:
        with self._write() as db:
            ops.delete_destination(db, destination)

    def depth(self, destination: str, group: str) -> int:
        with self._read() as db:
            return ops.depth(db, ops.require_group(db, destination, group))

    def destinations(self) -> list[str]:
        with self._read() as db:
            return ops.destinations(db)

    def groups(self, destination: str) -> list[str]:
        with self._read() as db:
            return ops.groups(db, destination)

    def error_code(self, error: BaseException) -> ErrorCode:
        return classify(error)

    def as_native(self) -> Store:
        """The engine's store; ``.connection`` is its ``sqlite3.Connection`` (use it
        inside ``with store.transaction():``, which holds the store's lock)."""
        return self._store

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._store.close()

    # -- internals ----------------------------------------------------------------------
    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def closed(self) -> bool:
        return self._closed

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._check_open()
        with self._store.transaction() as db:
            yield db

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        self._check_open()
        with self._store.reading() as db:
            yield db

    def _check_open(self) -> None:
        if self._closed:
            raise EngineError(ErrorCode.CONNECTION, "this engine connection is closed")


class EngineSubscription(Subscription):
    """One consumer of (destination, group); its leases carry its ``owner`` id."""

    def __init__(self, driver: EngineDriver, destination: str, group: str, group_id: int,
                 visibility: float) -> None:
        self._driver = driver
        self.destination = destination
        self.group = group
        self._group_id = group_id
        self._visibility = visibility
        self._owner = ops.new_token()
        self._polls = isinstance(driver.as_native(), FileStore)
        self._closed = False

    def receive_batch(self, max_messages: int, timeout: float) -> list[Delivery]:
        driver, clock, group_id = self._driver, self._driver.clock, self._group_id

        def attempt() -> tuple[list[Delivery], float | None]:
            now = clock.time()
            if self._polls:
                # Look before taking the file's write lock: idle pollers stay readers.
                with driver._read() as db:
                    if not ops.has_work(db, group_id, now):
                        return [], self._wait_hint(db, now)
            with driver._write() as db:
                got = ops.receive(db, group_id, destination=self.destination,
                                  owner=self._owner, max_messages=max_messages, now=now,
                                  visibility=self._visibility)
                if got:
                    return got, None
                return [], self._wait_hint(db, now)

        return driver.as_native().wait_for(attempt, max(timeout, 0.0))

    def _wait_hint(self, db: sqlite3.Connection, now: float) -> float | None:
        if not ops.group_exists(db, self._group_id):
            raise not_found(f"group {self.group!r} of {self.destination!r} was deleted")
        visible_at = ops.next_visible(db, self._group_id)
        return None if visible_at is None else visible_at - now

    def send_acks(self, ack_ids: Sequence[AckId]) -> None:
        with self._driver._write() as db:
            ops.ack(db, _leases(ack_ids))

    def send_nacks(self, ack_ids: Sequence[AckId], delay: float | None) -> None:
        with self._driver._write() as db:
            ops.nack(db, _leases(ack_ids), self._driver.clock.time(), delay)

    def extend(self, ack_ids: Sequence[AckId], seconds: float) -> None:
        with self._driver._write() as db:
            ops.extend(db, _leases(ack_ids), self._driver.clock.time() + seconds)

    def lease(self) -> float:
        return self._visibility

    def seek(self, target: SeekTarget) -> None:
        now = self._driver.clock.time()
        since = now - self._driver.options.retention
        from_seq: int | None = 0
        if target == "end":
            from_seq = None
        elif isinstance(target, dt.datetime):
            since = max(since, target.timestamp())
        elif target != "beginning":
            from_seq = _position(target)
        with self._driver._write() as db:
            row = db.execute("SELECT dest_id FROM groups WHERE id = ?",
                             (self._group_id,)).fetchone()
            if row is None:
                raise not_found(f"group {self.group!r} of {self.destination!r} was deleted")
            ops.seek(db, self._group_id, int(row[0]), from_seq=from_seq, since=since, now=now)

    def send_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        driver = self._driver
        now = driver.clock.time()
        with driver._write() as db:
            # A missing one is NOT_FOUND, as for any send: creating it is the portable
            # layer's choice (``auto_create``), made before anything is taken.
            targets = {letter.destination: ops.require_destination(db, letter.destination)
                       for letter in letters}
            taken = [letter for letter in letters if ops.take(db, _lease(letter.ack_id))]
            for destination in dict.fromkeys(letter.destination for letter in taken):
                dest_id = targets[destination]
                ops.send(db, dest_id, [
                    OutgoingMessage(body=letter.body, key=letter.key, headers=letter.headers)
                    for letter in taken if letter.destination == destination
                ], now, driver.options.dedup_window)

    def close(self) -> None:
        """Give back what this consumer still holds (the portable layer nacks its
        unsettled messages first; this also covers direct driver users). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._driver.closed:
            return  # the leases simply run out
        with self._driver._write() as db:
            ops.release(db, self._group_id, self._owner, self._driver.clock.time())

    def as_native(self) -> Store:
        return self._driver.as_native()


def _lease(ack_id: AckId) -> Lease:
    if not isinstance(ack_id, Lease):
        raise bad_configuration(f"{ack_id!r} is not an ack id of this engine")
    return ack_id


def _leases(ack_ids: Sequence[AckId]) -> list[Lease]:
    return [_lease(ack_id) for ack_id in ack_ids]


def _position(target: object) -> int:
    text = str(target)
    if not text.isdigit():
        raise bad_configuration(f"{target!r} is not a position of this engine (a sequence "
                                "number, as Delivery.position gives)")
    return int(text)
