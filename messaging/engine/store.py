"""Where the engine's database lives, and how callers take turns on it.

One body of SQL (:mod:`messaging.engine.operations`) runs on either store:

* :class:`MemoryStore` (``memory://name``): a private in-memory SQLite database shared by
  every ``connect`` of that name in this process (see :mod:`messaging.engine.registry`).
  One re-entrant lock serialises all work; a :class:`threading.Condition` on that lock
  wakes blocked receivers as soon as a write commits, so ``receive_batch`` never polls.
* :class:`FileStore` (``sqlite:///path.db``): a database file that several processes
  share. WAL lets readers run beside the one writer; every write is a
  ``BEGIN IMMEDIATE`` transaction (the write lock is taken up front, so two writers
  never deadlock upgrading a read lock); ``busy_timeout`` makes a writer wait its turn.
  Another process's commit cannot be signalled to us, so a blocked receive polls with a
  short backoff (2 ms growing to 25 ms). A process that dies holding leases leaves
  nothing to clean up: its deliveries become visible again when their leases expire.

Each driver has its own :class:`FileStore` (its own connection, guarded by a lock for
the driver's threads), while memory drivers of one name share one :class:`MemoryStore`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from messaging.engine import schema

T = TypeVar("T")

Attempt = Callable[[], tuple[list[T], float | None]]
"""One try at receiving: what came, and seconds until something may become visible."""

_FIRST_POLL = 0.002
_LONGEST_POLL = 0.025
_POLL_GROWTH = 1.5
_LEAST_BUSY_WAIT = 10.0  # seconds a write waits for another process's write lock


class Store:
    """A database and the discipline for using it from many threads."""

    durable: bool = False

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed when the block ends, rolled back on error."""
        with self._lock:
            db = self.connection
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            self._committed()

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A read-only snapshot (it never takes the write lock)."""
        with self._lock:
            db = self.connection
            db.execute("BEGIN")
            try:
                yield db
            finally:
                if db.in_transaction:
                    db.execute("COMMIT")

    def wait_for(self, attempt: Attempt[T], timeout: float) -> list[T]:
        """Call ``attempt`` until it returns something or ``timeout`` seconds passed."""
        raise NotImplementedError

    def _committed(self) -> None:
        """Hook run after each committed write, with the lock held."""

    def close(self) -> None:
        raise NotImplementedError


class MemoryStore(Store):
    """A private in-memory database: the broker of ``memory://name`` in this process."""

    durable = False

    def __init__(self, name: str) -> None:
        super().__init__(_connect(":memory:", timeout=0.0))
        self.name = name
        self._changed = threading.Condition(self._lock)
        with self.transaction() as db:
            schema.initialise(db)

    def wait_for(self, attempt: Attempt[T], timeout: float) -> list[T]:
        deadline = time.monotonic() + timeout
        # The lock is held from the attempt to the wait, so a send committing in between
        # cannot slip its notification past us.
        with self._changed:
            while True:
                got, next_visible = attempt()
                remaining = deadline - time.monotonic()
                if got or remaining <= 0:
                    return got
                wait = remaining if next_visible is None else min(remaining, next_visible)
                self._changed.wait(max(wait, 0.0005))

    def _committed(self) -> None:
        self._changed.notify_all()

    def close(self) -> None:
        """A memory store lives as long as the process (it is the broker); drivers
        closing do not end it."""


class FileStore(Store):
    """A database file shared by every process that opens it."""

    durable = True

    def __init__(self, path: str, open_timeout: float) -> None:
        super().__init__(_connect(path, timeout=open_timeout))
        try:
            _switch_to_wal(self.connection, time.monotonic() + open_timeout)
            # NORMAL in WAL mode: a commit survives the crash of any process; only a
            # power loss can take back the last commits. FULL would fsync every batch.
            self.connection.execute("PRAGMA synchronous = NORMAL")
            with self.transaction() as db:
                schema.initialise(db)
            # Opening must fail within connect_timeout; afterwards a writer waits longer
            # for a busy peer rather than fail a send that would succeed a moment later.
            busy_ms = int(max(open_timeout, _LEAST_BUSY_WAIT) * 1000)
            self.connection.execute(f"PRAGMA busy_timeout = {busy_ms}")
        except BaseException:
            self.connection.close()
            raise

    def wait_for(self, attempt: Attempt[T], timeout: float) -> list[T]:
        deadline = time.monotonic() + timeout
        pause = _FIRST_POLL
        while True:
            got, next_visible = attempt()
            remaining = deadline - time.monotonic()
            if got or remaining <= 0:
                return got
            wait = min(pause, remaining)
            if next_visible is not None:
                wait = min(wait, max(next_visible, 0.0005))
            time.sleep(wait)  # outside the lock: other threads ack meanwhile
            pause = min(pause * _POLL_GROWTH, _LONGEST_POLL)

    def close(self) -> None:
        with self._lock:
            self.connection.close()


def _switch_to_wal(connection: sqlite3.Connection, deadline: float) -> None:
    """Put the file in WAL mode. That needs a moment of exclusive access, and while
    another process is opening the same new file SQLite may refuse it at once ("database
    is locked") without waiting on busy_timeout: it is tried again until ``deadline``."""
    pause = _FIRST_POLL
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * _POLL_GROWTH, _LONGEST_POLL)


def _connect(path: str, timeout: float) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, so one batch is one
    # transaction and the module never opens one behind our back.
    # check_same_thread=False: the store's lock, not the thread, guards the connection.
    return sqlite3.connect(path, timeout=timeout, isolation_level=None,
                           check_same_thread=False, cached_statements=256)
