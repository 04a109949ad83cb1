"""The engine's tables: one SQL schema serving ``memory://`` and ``sqlite://``.

The model is SNS->SQS: ``messages`` is the destination's log (kept after acks, until
``retention``); sending fans every message out at write time into ``deliveries``, one row
per (group, message) for each group that exists at that moment. A delivery row is the
group's unacked copy: acking deletes it, so a group's depth is a row count.

A delivery is in one of two states, and each state has a partial index so the hot
queries never scan rows of the other:

* ``READY`` (0): deliverable now; picked in ``priority DESC, seq`` order.
* ``WAITING`` (1): invisible until ``visible_at``: in flight (``owner`` set, the lease
  deadline) or delayed / nacked with a delay (``owner`` NULL). A receive first turns
  due WAITING rows back into READY ones.

``lease`` is a random token given at each delivery; acks, nacks, extends and dead letters
name it, so a settlement for a lease that expired and was handed to someone else matches
no row and is ignored.
"""

from __future__ import annotations

import sqlite3

from messaging.engine.errors import bad_configuration

VERSION = 1
READY = 0
WAITING = 1

_TABLES = ("counters", "destinations", "groups", "messages", "deliveries", "dedup")

_DDL = f"""
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO counters (name, value) VALUES ('seq', 0);

-- AUTOINCREMENT: ids are never reused, so a subscription of a deleted destination
-- cannot alias a group created later under the same name.
CREATE TABLE IF NOT EXISTS destinations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    partitions INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dest_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    created_at REAL NOT NULL,
    UNIQUE (dest_id, name)
);

-- seq comes from counters (not from the rowid) so it never goes back, even when the
-- newest messages were deleted: a position stays meaningful.
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    dest_id INTEGER NOT NULL,
    body BLOB NOT NULL,
    key TEXT,
    headers TEXT,
    priority INTEGER NOT NULL,
    sent_at REAL NOT NULL,
    not_before REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_destination ON messages (dest_id, seq);

CREATE TABLE IF NOT EXISTS deliveries (
    group_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    key TEXT,
    priority INTEGER NOT NULL,
    state INTEGER NOT NULL,
    visible_at REAL NOT NULL,
    attempt INTEGER NOT NULL,
    lease INTEGER,
    owner INTEGER,
    PRIMARY KEY (group_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_ready
    ON deliveries (group_id, priority DESC, seq) WHERE state = {READY};
CREATE INDEX IF NOT EXISTS deliveries_waiting
    ON deliveries (group_id, visible_at) WHERE state = {WAITING};
CREATE INDEX IF NOT EXISTS deliveries_by_key
    ON deliveries (group_id, key, seq) WHERE key IS NOT NULL;

CREATE TABLE IF NOT EXISTS dedup (
    dest_id INTEGER NOT NULL,
    dedup_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (dest_id, dedup_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_expiry ON dedup (expires);
"""


def initialise(db: sqlite3.Connection) -> None:
    """Create the tables if missing, inside the caller's write transaction.

    Refuses a database that holds other tables or a newer schema: pointing
    ``sqlite:///`` at some application's database must not write into it.
    """
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version == VERSION:
        return
    if version != 0:
        raise bad_configuration(
            f"the database has engine schema version {version}; this engine reads {VERSION}"
        )
    foreign = [
        name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if name not in _TABLES and not name.startswith("sqlite_")
    ]
    if foreign:
        raise bad_configuration(
            f"the database is not a messaging engine database (it has tables {foreign})"
        )
    for statement in _DDL.split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute(f"PRAGMA user_version = {VERSION}")
