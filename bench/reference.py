"""``python -m bench reference``: the reference engine against bare baselines.

For ``memory://`` and ``sqlite://`` (a temporary file), at batch sizes 1 and 100, the
send, receive+ack and end-to-end rates (see :mod:`bench.harness`), each next to a
baseline measured in the same run with the same batching:

* ``memory://`` against a bare ``collections.deque`` guarded by a ``threading.Lock``:
  append under the lock to send; popleft into an in-flight dict to receive; pop from
  that dict to ack, one lock acquisition per batch.
* ``sqlite://`` against bare ``sqlite3`` on a file with the journal mode and
  ``synchronous`` setting read from the engine's own connection (WAL and NORMAL at the
  time of writing, see ``messaging/engine/store.py``), autocommit off and one
  ``BEGIN IMMEDIATE`` transaction per batch: INSERT to send, SELECT to receive, DELETE
  to ack.

The engine does much more per message than either baseline (leases, attempts, per-key
ordering, fan-out to groups, retention for replay, dedup), so the ratio is the price of
those guarantees; the targets are absolute.
"""

from __future__ import annotations

import collections
import itertools
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import messaging
from bench import harness
from bench.harness import PAYLOAD, Ops, Rates, Row, Target, chunks

DEFAULT_MESSAGES = 50_000

TARGETS = (
    Target("memory://", 100, "end-to-end", 100_000),
    Target("sqlite://", 100, "end-to-end", 10_000),
)

_FALLBACK_PRAGMAS = ("wal", "1")  # journal_mode, synchronous (1 = NORMAL)


def main(argv: list[str]) -> int:
    args = harness.parser("reference", __doc__.splitlines()[0] if __doc__ else "",
                          DEFAULT_MESSAGES).parse_args(argv)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="messaging-bench-") as directory:
        engine_file = Path(directory) / "engine.db"
        pragmas = _engine_pragmas(f"sqlite:///{engine_file}")
        backends: list[tuple[str, Callable[[], str], Callable[[int, int], Rates]]] = [
            ("memory://", lambda: f"memory://bench-{uuid.uuid4().hex[:12]}", deque_baseline),
            ("sqlite://", lambda: f"sqlite:///{engine_file}",
             lambda messages, batch: sqlite_baseline(Path(directory), pragmas, messages,
                                                     batch)),
        ]
        for label, url, baseline in backends:
            for batch in args.batches:
                count = harness.messages_for(batch, args.messages)
                print(f"measuring {label} batch {batch} ({count:,} messages)...",
                      file=sys.stderr, flush=True)
                adapter = harness.measure_adapter(url(), count, batch)
                base = baseline(count, batch)
                rows.extend(harness.rows_of(label, batch, count, adapter, base))

    print(f"reference engine: {len(PAYLOAD)}-byte bodies; baselines: memory:// = "
          f"collections.deque + threading.Lock, sqlite:// = bare sqlite3 "
          f"(journal_mode={pragmas[0]}, synchronous={_SYNCHRONOUS.get(pragmas[1], pragmas[1])})")
    print(harness.format_table(rows))
    print()
    report, all_met = harness.format_targets(TARGETS, rows)
    print(report)
    return 1 if args.strict and not all_met else 0


# -- memory baseline -------------------------------------------------------------------------
def deque_baseline(messages: int, batch: int) -> Rates:
    queue: collections.deque[tuple[int, bytes]] = collections.deque()
    in_flight: dict[int, bytes] = {}
    lock = threading.Lock()
    ids = itertools.count()

    def send(count: int, batch: int) -> None:
        for size in chunks(count, batch):
            with lock:
                for _ in range(size):
                    queue.append((next(ids), PAYLOAD))

    def drain(count: int, batch: int) -> None:
        got = 0
        while got < count:
            with lock:
                taken = [queue.popleft() for _ in range(min(batch, count - got, len(queue)))]
                for seq, body in taken:
                    in_flight[seq] = body
            if not taken:
                raise RuntimeError("baseline: the deque ran dry")
            with lock:
                for seq, _ in taken:
                    del in_flight[seq]
            got += len(taken)

    return harness.time_ops(Ops(send, drain), messages, batch)


# -- sqlite baseline -------------------------------------------------------------------------
def sqlite_baseline(directory: Path, pragmas: tuple[str, str], messages: int, batch: int
                    ) -> Rates:
    path = directory / f"baseline-{uuid.uuid4().hex[:8]}.db"
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute(f"PRAGMA journal_mode = {pragmas[0]}")
        db.execute(f"PRAGMA synchronous = {pragmas[1]}")
        db.execute("CREATE TABLE queue (seq INTEGER PRIMARY KEY, body BLOB NOT NULL)")

        def send(count: int, batch: int) -> None:
            for size in chunks(count, batch):
                db.execute("BEGIN IMMEDIATE")
                if size == 1:
                    db.execute("INSERT INTO queue (body) VALUES (?)", (PAYLOAD,))
                else:
                    db.executemany("INSERT INTO queue (body) VALUES (?)",
                                   [(PAYLOAD,)] * size)
                db.execute("COMMIT")

        def drain(count: int, batch: int) -> None:
            got = 0
            while got < count:
                db.execute("BEGIN")
                taken = db.execute("SELECT seq, body FROM queue ORDER BY seq LIMIT ?",
                                   (min(batch, count - got),)).fetchall()
                db.execute("COMMIT")
                if not taken:
                    raise RuntimeError("baseline: the table ran dry")
                db.execute("BEGIN IMMEDIATE")
                if len(taken) == 1:
                    db.execute("DELETE FROM queue WHERE seq = ?", (taken[0][0],))
                else:
                    db.executemany("DELETE FROM queue WHERE seq = ?",
                                   [(seq,) for seq, _ in taken])
                db.execute("COMMIT")
                got += len(taken)

        return harness.time_ops(Ops(send, drain), messages, batch)
    finally:
        db.close()


def _engine_pragmas(url: str) -> tuple[str, str]:
    """The journal mode and synchronous setting of the engine's own connection to a
    database file (``client.as_native()`` is the engine's store)."""
    with messaging.connect(url) as client:
        store = client.as_native()
        transaction = getattr(store, "transaction", None)
        if transaction is None:
            return _FALLBACK_PRAGMAS
        with transaction() as db:
            journal = db.execute("PRAGMA journal_mode").fetchone()[0]
            synchronous = db.execute("PRAGMA synchronous").fetchone()[0]
    return str(journal), str(synchronous)


_SYNCHRONOUS = {"0": "OFF", "1": "NORMAL", "2": "FULL", "3": "EXTRA"}


if __name__ == "__main__":
    started = time.perf_counter()
    status = main(sys.argv[1:])
    print(f"({time.perf_counter() - started:.1f} s)", file=sys.stderr)
    raise SystemExit(status)
