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

import ctypes
import os

generation = 0


def keep_forever(thing: object) -> None:
    """Make ``thing`` outlive the interpreter: never deallocated, so its finalizers never
    run. For client-library objects a child inherited: their cleanup acts on sockets
    and threads that are the parent's (confluent-kafka's crashes the child at exit, with
    SIGSEGV, even when the child never used them). A reference the interpreter does not
    know of is the only kind its shutdown does not clear."""
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(thing))


def _after_fork_in_child() -> None:
    global generation  # noqa: PLW0603 (the one process-wide count, by design)
    generation += 1


os.register_at_fork(after_in_child=_after_fork_in_child)
