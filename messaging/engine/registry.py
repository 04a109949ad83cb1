"""The in-process brokers behind ``memory://name``: one :class:`MemoryStore` per name.

Every ``connect("memory://name")`` in a process reaches the same store, the way every
client of a broker reaches the same broker; a store outlives the drivers that use it
(closing a client does not delete the broker's data). This module-level table is the
broker's address book, deliberately process-wide; ``forget`` drops a store (for tests
that want a clean broker under a reused name).
"""

from __future__ import annotations

import threading

from messaging.engine.store import MemoryStore

_stores: dict[str, MemoryStore] = {}
_lock = threading.Lock()


def memory_store(name: str) -> MemoryStore:
    """The store called ``name``, created on first use."""
    with _lock:
        store = _stores.get(name)
        if store is None:
            store = _stores[name] = MemoryStore(name)
        return store


def forget(name: str) -> None:
    """Drop the store called ``name``; drivers still using it keep their reference."""
    with _lock:
        _stores.pop(name, None)
