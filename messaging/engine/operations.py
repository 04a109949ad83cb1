"""The engine's operations: plain functions over a sqlite3 connection, each run inside
the caller's transaction (see :mod:`messaging.engine.store`), so every driver call is
one transaction however many messages it carries.

Delivery semantics
------------------
* Fan-out at write time: a sent message gets one delivery row per group that exists
  then (SNS->SQS). A group created later sees older messages only by ``seek``.
* Competing consumers: a receive leases READY rows to one subscription (``owner``) with
  a fresh random ``lease`` token and a deadline; nobody else sees them until the
  deadline passes, then the next receive makes them READY again (attempt + 1 on the
  next delivery).
* Per-key order: a keyed row is picked only if every earlier unacked row of its key in
  the group is in flight with the same subscription (a consumer may hold a run of one
  key, in order, like a partition). An earlier one that is ready, delayed, nacked or
  held by another member blocks the key for everyone else.
* Priority: among READY rows, higher priority first, then send order.
* Settlement by lease: ack, nack, extend and dead-letter match ``(group, seq, lease)``;
  a lease that expired and was handed out again matches nothing and is ignored.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from messaging.driver import Delivery, OutgoingMessage
from messaging.engine.errors import not_found
from messaging.engine.schema import READY, WAITING

_UTC = dt.UTC
_IN_CHUNK = 500  # ids per "IN (...)" list: far below SQLite's parameter limit


class Lease(NamedTuple):
    """The ack id of one delivery: which row, and which lease of it."""

    group_id: int
    seq: int
    token: int


def new_token() -> int:
    """A random 62-bit lease token or subscription id, unique across processes (a
    per-process counter would collide between two processes on one file)."""
    return int.from_bytes(os.urandom(8), "big") >> 2


# -- destinations and groups ---------------------------------------------------------
def destination_id(db: sqlite3.Connection, name: str) -> int | None:
    row = db.execute("SELECT id FROM destinations WHERE name = ?", (name,)).fetchone()
    return None if row is None else int(row[0])


def require_destination(db: sqlite3.Connection, name: str) -> int:
    found = destination_id(db, name)
    if found is None:
        raise not_found(f"destination {name!r} does not exist")
    return found


def create_destination(db: sqlite3.Connection, name: str, partitions: int, now: float) -> int:
    """Create ``name`` if missing (keeping the original partition count if not)."""
    db.execute(
        "INSERT OR IGNORE INTO destinations (name, partitions, created_at) VALUES (?, ?, ?)",
        (name, partitions, now),
    )
    return require_destination(db, name)


def declare_group(db: sqlite3.Connection, dest_id: int, name: str, now: float) -> int:
    db.execute(
        "INSERT OR IGNORE INTO groups (dest_id, name, created_at) VALUES (?, ?, ?)",
        (dest_id, name, now),
    )
    row = db.execute(
        "SELECT id FROM groups WHERE dest_id = ? AND name = ?", (dest_id, name)
    ).fetchone()
    return int(row[0])


def require_group(db: sqlite3.Connection, destination: str, group: str) -> int:
    row = db.execute(
        "SELECT g.id FROM groups AS g JOIN destinations AS d ON d.id = g.dest_id "
        "WHERE d.name = ? AND g.name = ?", (destination, group),
    ).fetchone()
    if row is None:
        require_destination(db, destination)
        raise not_found(f"group {group!r} of destination {destination!r} does not exist")
    return int(row[0])


def delete_destination(db: sqlite3.Connection, name: str) -> None:
    dest_id = destination_id(db, name)
    if dest_id is None:
        return
    db.execute(
        "DELETE FROM deliveries WHERE group_id IN (SELECT id FROM groups WHERE dest_id = ?)",
        (dest_id,),
    )
    for table in ("groups", "messages", "dedup"):
        db.execute(f"DELETE FROM {table} WHERE dest_id = ?", (dest_id,))
    db.execute("DELETE FROM destinations WHERE id = ?", (dest_id,))


def destinations(db: sqlite3.Connection) -> list[str]:
    return [name for (name,) in db.execute("SELECT name FROM destinations ORDER BY name")]


def groups(db: sqlite3.Connection, destination: str) -> list[str]:
    dest_id = require_destination(db, destination)
    return [name for (name,) in db.execute(
        "SELECT name FROM groups WHERE dest_id = ? ORDER BY name", (dest_id,))]


def depth(db: sqlite3.Connection, group_id: int) -> int:
    row = db.execute("SELECT count(*) FROM deliveries WHERE group_id = ?", (group_id,))
    return int(row.fetchone()[0])


def group_exists(db: sqlite3.Connection, group_id: int) -> bool:
    return db.execute("SELECT 1 FROM groups WHERE id = ?", (group_id,)).fetchone() is not None


# -- sending -------------------------------------------------------------------------
_INSERT_MESSAGE = (
    "INSERT INTO messages (seq, dest_id, body, key, headers, priority, sent_at, not_before) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_FAN_OUT = (
    "INSERT INTO deliveries (group_id, seq, key, priority, state, visible_at, attempt) "
    "SELECT g.id, m.seq, m.key, m.priority, m.not_before > ?, m.not_before, 0 "
    "FROM groups AS g JOIN messages AS m ON m.seq BETWEEN ? AND ? WHERE g.dest_id = ?"
)


def send(db: sqlite3.Connection, dest_id: int, messages: Sequence[OutgoingMessage],
         now: float, dedup_window: float) -> list[str]:
    """Append ``messages`` to the log and fan them out; return their ids (for a repeated
    ``dedup_id`` inside the window: the original's id, and nothing is stored)."""
    ids: list[str | None] = [None] * len(messages)
    fresh: list[int] = []  # indexes of messages to store
    first_of_id: dict[str, int] = {}  # dedup_id -> index of its first fresh message
    repeats: list[tuple[int, int]] = []  # (index, index of the fresh one it repeats)
    for index, message in enumerate(messages):
        dedup_id = message.dedup_id
        if dedup_id is not None:
            if dedup_id in first_of_id:
                repeats.append((index, first_of_id[dedup_id]))
                continue
            row = db.execute(
                "SELECT seq FROM dedup WHERE dest_id = ? AND dedup_id = ? AND expires > ?",
                (dest_id, dedup_id, now),
            ).fetchone()
            if row is not None:
                ids[index] = str(row[0])
                continue
            first_of_id[dedup_id] = index
        fresh.append(index)
    if fresh:
        last = int(db.execute(
            "UPDATE counters SET value = value + ? WHERE name = 'seq' RETURNING value",
            (len(fresh),),
        ).fetchone()[0])
        first = last - len(fresh) + 1
        rows = []
        seq_of: dict[int, int] = {}
        for seq, index in enumerate(fresh, start=first):
            message = messages[index]
            seq_of[index] = seq
            ids[index] = str(seq)
            rows.append((
                seq, dest_id, message.body, message.key, encode_headers(message.headers),
                message.priority or 0, now, now + message.delay if message.delay else now,
            ))
        db.executemany(_INSERT_MESSAGE, rows)
        db.execute(_FAN_OUT, (now, first, last, dest_id))
        if first_of_id:
            db.executemany(
                "INSERT OR REPLACE INTO dedup (dest_id, dedup_id, seq, expires) "
                "VALUES (?, ?, ?, ?)",
                [(dest_id, dedup_id, seq_of[index], now + dedup_window)
                 for dedup_id, index in first_of_id.items()],
            )
    for index, original in repeats:
        ids[index] = ids[original]
    return [str(value) for value in ids]


def encode_headers(headers: Mapping[str, str]) -> str | None:
    """Headers as compact JSON text; None when there are none."""
    if not headers:
        return None
    return _encode_items(tuple(headers.items()))


def decode_headers(text: str | None) -> dict[str, str]:
    """A fresh dict per delivery (the caller may change it)."""
    return {} if text is None else dict(_decode_text(text))


# Most messages of a stream carry the same few headers (a content type), and JSON costs
# more than the SQL of a batch; memoising both directions keeps it off the hot path.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


@functools.lru_cache(maxsize=1024)
def _encode_items(items: tuple[tuple[str, str], ...]) -> str:
    return _ENCODER.encode(dict(items))


@functools.lru_cache(maxsize=1024)
def _decode_text(text: str) -> tuple[tuple[str, str], ...]:
    return tuple(json.loads(text).items())


# -- receiving -----------------------------------------------------------------------
_PROMOTE = (
    f"UPDATE deliveries SET state = {READY} "
    f"WHERE group_id = ? AND state = {WAITING} AND visible_at <= ?"
)
# The literal state values let SQLite use the partial indexes; INDEXED BY where its
# planner, having no statistics, would rather scan the whole group by primary key.
_WALK = (
    "SELECT d.seq, d.key, d.attempt, m.body, m.headers, m.sent_at "
    "FROM deliveries AS d JOIN messages AS m ON m.seq = d.seq "
    f"WHERE d.group_id = ? AND d.state = {READY} ORDER BY d.priority DESC, d.seq"
)
# The earlier unacked rows of the key, between ``after`` and the candidate, that are not
# in flight with this subscription: NULL when there are none (the candidate may go),
# WAITING when one waits or is held elsewhere (the key is blocked), READY when all are
# ready (they come first; the walk may still reach them in this call).
_BLOCKER = (
    "SELECT max(state) FROM deliveries INDEXED BY deliveries_by_key "
    "WHERE group_id = ? AND key = ? AND seq > ? "
    f"AND seq < ? AND NOT (state = {WAITING} AND owner IS ?)"
)
_HAS_WORK = (
    "SELECT 1 FROM deliveries INDEXED BY deliveries_ready "
    f"WHERE group_id = ? AND state = {READY} "
    f"UNION ALL SELECT 1 FROM deliveries WHERE group_id = ? AND state = {WAITING} "
    "AND visible_at <= ? LIMIT 1"
)


def has_work(db: sqlite3.Connection, group_id: int, now: float) -> bool:
    """Whether a receive could find something: a cheap read, so idle pollers of a
    shared file never take the write lock."""
    return db.execute(_HAS_WORK, (group_id, group_id, now)).fetchone() is not None


def receive(db: sqlite3.Connection, group_id: int, *, destination: str, owner: int,
            max_messages: int, now: float, visibility: float) -> list[Delivery]:
    """Lease up to ``max_messages`` deliverable rows of the group to ``owner``."""
    db.execute(_PROMOTE, (group_id, now))
    token = new_token()
    picked: list[Delivery] = []
    seqs: list[int] = []
    run_end: dict[str, int] = {}  # key -> last seq of it picked in this call
    blocked: set[str] = set()
    walk = db.execute(_WALK, (group_id,))
    for seq, key, attempt, body, headers, sent_at in walk:
        if key is not None:
            if key in blocked:
                continue
            after = run_end.get(key, -1)
            blocker = db.execute(_BLOCKER, (group_id, key, after, seq, owner)).fetchone()[0]
            if blocker is not None:
                if blocker == WAITING:
                    blocked.add(key)
                continue
            run_end[key] = seq
        seqs.append(seq)
        position = str(seq)
        picked.append(Delivery(
            ack_id=Lease(group_id, seq, token), body=body, id=position,
            attempt=attempt + 1, destination=destination, key=key,
            headers=decode_headers(headers),
            timestamp=dt.datetime.fromtimestamp(sent_at, _UTC), position=position,
        ))
        if len(picked) >= max_messages:
            break
    walk.close()
    for start in range(0, len(seqs), _IN_CHUNK):
        chunk = seqs[start:start + _IN_CHUNK]
        db.execute(
            f"UPDATE deliveries SET state = {WAITING}, visible_at = ?, attempt = attempt + 1, "
            f"lease = ?, owner = ? WHERE group_id = ? AND seq IN ({','.join('?' * len(chunk))})",
            (now + visibility, token, owner, group_id, *chunk),
        )
    return picked


def next_visible(db: sqlite3.Connection, group_id: int) -> float | None:
    """When the group's earliest WAITING row becomes visible (None: there is none)."""
    row = db.execute(
        f"SELECT min(visible_at) FROM deliveries WHERE group_id = ? AND state = {WAITING}",
        (group_id,),
    ).fetchone()
    return None if row[0] is None else float(row[0])


# -- settling ------------------------------------------------------------------------
def ack(db: sqlite3.Connection, leases: Iterable[Lease]) -> None:
    db.executemany("DELETE FROM deliveries WHERE group_id = ? AND seq = ? AND lease = ?",
                   leases)


def nack(db: sqlite3.Connection, leases: Iterable[Lease], now: float, delay: float | None
         ) -> None:
    """Give the rows back, visible again at once or after ``delay``; the lease ends."""
    state, visible_at = (WAITING, now + delay) if delay else (READY, now)
    db.executemany(
        "UPDATE deliveries SET state = ?, visible_at = ?, owner = NULL, lease = NULL "
        "WHERE group_id = ? AND seq = ? AND lease = ?",
        [(state, visible_at, *lease) for lease in leases],
    )


def extend(db: sqlite3.Connection, leases: Iterable[Lease], deadline: float) -> None:
    """Move the lease deadline. A lease that expired but was not handed out again is
    still this holder's, so it is taken back (WAITING again)."""
    db.executemany(
        f"UPDATE deliveries SET state = {WAITING}, visible_at = ? "
        "WHERE group_id = ? AND seq = ? AND lease = ?",
        [(deadline, *lease) for lease in leases],
    )


def release(db: sqlite3.Connection, group_id: int, owner: int, now: float) -> None:
    """Give back every row a closing subscription still holds."""
    db.execute(
        f"UPDATE deliveries SET state = {READY}, visible_at = ?, owner = NULL, lease = NULL "
        f"WHERE group_id = ? AND state = {WAITING} AND owner = ?",
        (now, group_id, owner),
    )


def take(db: sqlite3.Connection, lease: Lease) -> bool:
    """Remove one delivery if the lease is still current (for dead-lettering)."""
    return db.execute("DELETE FROM deliveries WHERE group_id = ? AND seq = ? AND lease = ?",
                      lease).rowcount == 1


# -- replay --------------------------------------------------------------------------
def seek(db: sqlite3.Connection, group_id: int, dest_id: int, *, from_seq: int | None,
         since: float, now: float) -> None:
    """Reset the group: drop every delivery, then deliver afresh each retained message
    with ``seq >= from_seq`` sent at or after ``since`` (``from_seq`` None: nothing, the
    group is at the end). Delays that have not run out still hold."""
    db.execute("DELETE FROM deliveries WHERE group_id = ?", (group_id,))
    if from_seq is None:
        return
    db.execute(
        "INSERT INTO deliveries (group_id, seq, key, priority, state, visible_at, attempt) "
        "SELECT ?, seq, key, priority, not_before > ?, not_before, 0 FROM messages "
        "WHERE dest_id = ? AND seq >= ? AND sent_at >= ?",
        (group_id, now, dest_id, from_seq, since),
    )


# -- housekeeping --------------------------------------------------------------------
_TRIM_PAGE = 1000


def trim(db: sqlite3.Connection, now: float, retention: float) -> int:
    """Drop log entries older than ``retention`` that no group still has to deliver,
    and expired dedup ids. Returns the number of messages dropped.

    Sequence order is send order, so each destination is walked from its oldest entry
    and the walk stops at the first one young enough to keep.
    """
    cutoff = now - retention
    dropped = 0
    for (dest_id,) in db.execute("SELECT id FROM destinations").fetchall():
        after = -1
        while True:
            page = db.execute(
                "SELECT seq, sent_at FROM messages WHERE dest_id = ? AND seq > ? "
                "ORDER BY seq LIMIT ?", (dest_id, after, _TRIM_PAGE),
            ).fetchall()
            old = [seq for seq, sent_at in page if sent_at < cutoff]
            if old:
                dropped += db.executemany(
                    "DELETE FROM messages WHERE seq = ? AND NOT EXISTS ("
                    "SELECT 1 FROM groups AS g JOIN deliveries AS d "
                    "ON d.group_id = g.id AND d.seq = messages.seq "
                    "WHERE g.dest_id = messages.dest_id)",
                    [(seq,) for seq in old],
                ).rowcount
            if len(old) < len(page) or len(page) < _TRIM_PAGE:
                break
            after = page[-1][0]
    db.execute("DELETE FROM dedup WHERE expires <= ?", (now,))
    return dropped
