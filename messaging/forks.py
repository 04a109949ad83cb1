"""Telling a forked child from the process that opened a connection.

A child made by ``fork`` (multiprocessing's default on Linux, gunicorn's and Celery's
workers) inherits the parent's sockets but not its threads. Using an inherited connection
there fails in ways that are hard to read: confluent-kafka's client waits forever, since
its threads did not come along; pika writes on the socket the parent still uses, so the
broker closes the parent's connection too (``CHANNEL_ERROR - second 'channel.open'
seen``); SQLite forbids carrying a connection across a fork. So each process uses its
own: a client opens a fresh connection the first time it is used in a child, and never
touches the inherited one (see :mod:`messaging.client`).

:data:`generation` counts the forks between the interpreter's start and this process; an
object that recorded it when it was made was made in another process if it differs now.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterable
from typing import Protocol

generation = 0

reopening = threading.Lock()
"""Held while a client reopens in a child; made anew in each child, since a thread of the
parent may have held it at the fork."""


class Holder(Protocol):
    def _inherited(self) -> Iterable[object]:
        """What this object holds of a connection, which a forked child must never
        finalize (see :func:`keep_forever`)."""
        ...


_holders: weakref.WeakSet[Holder] = weakref.WeakSet()


def track(holder: Holder) -> None:
    """Have ``holder``'s connection objects kept alive in every child forked from here."""
    _holders.add(holder)


def keep_forever(thing: object) -> None:
    """Make ``thing`` outlive the interpreter: never deallocated, so its finalizers never
    run. For client-library objects a child inherited: their cleanup acts on sockets
    and threads that are the parent's (confluent-kafka's crashes the child at exit, with
    SIGSEGV, even when the child never used them). A reference the interpreter does not
    know of is the only kind its shutdown does not clear."""
    import ctypes  # only ever needed in a forked child: not at import time

    ctypes.pythonapi.Py_IncRef(ctypes.py_object(thing))


def _after_fork_in_child() -> None:
    global generation, reopening  # noqa: PLW0603 (process-wide by design)
    generation += 1
    reopening = threading.Lock()
    for holder in list(_holders):
        for thing in holder._inherited():
            keep_forever(thing)


os.register_at_fork(after_in_child=_after_fork_in_child)
