"""Names of the broker objects behind a destination and its groups.

Destination and group names are checked by the portable layer to ``[A-Za-z0-9._-]``, so
``:`` and ``~`` can never occur in them; using those as separators makes every derived
name unambiguous (``a.b`` + ``c`` and ``a`` + ``b.c`` stay apart), and a person reading
the broker's queue list can still tell what each object is:

=============================  ==========================================================
``orders``                     exchange (fanout): the destination
``orders:billing``             quorum (or classic) queue of group ``billing``, bound to
                               ``orders``; also a fanout exchange of the same name,
                               bound to that queue only, through which delayed
                               redeliveries re-enter the group
``orders~delay-1500``          quorum queue holding sends delayed by 1.5 s; they dead-letter
                               into ``orders`` when their TTL ends; an auto-delete
                               fanout exchange of the same name is its entrance
``orders:billing~delay-1500``  the same for redeliveries of group ``billing``; they
                               dead-letter into the exchange ``orders:billing``
=============================  ==========================================================

AMQP names are at most 255 bytes; a longer one keeps its first 200 characters and gets
a hash of the whole name, so it stays unique and stable across processes.
"""

from __future__ import annotations

import hashlib
import math

_MAX_NAME = 255
_KEEP = 200

DELAY_MARK = "~delay-"


def fit(name: str) -> str:
    """``name``, shortened with a hash if it is over AMQP's 255 bytes."""
    if len(name) <= _MAX_NAME:  # names are ASCII: characters are bytes
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{name[:_KEEP]}~{digest}"


def group_queue(destination: str, group: str) -> str:
    """The queue of ``group``, and the name of its re-entry exchange."""
    return fit(f"{destination}:{group}")


def send_delay_queue(destination: str, milliseconds: int) -> str:
    return fit(f"{destination}{DELAY_MARK}{milliseconds}")


def group_delay_queue(destination: str, group: str, milliseconds: int) -> str:
    return fit(f"{destination}:{group}{DELAY_MARK}{milliseconds}")


def delay_milliseconds(seconds: float) -> int:
    """The delay queue's TTL for ``seconds``: never shorter, at most 10 % longer.

    Every distinct TTL needs its own queue, so delays are rounded UP to two significant
    digits of milliseconds (1523 ms -> 1600 ms; exact below 100 ms): a message is never
    delivered early, and jittered retry backoffs share a bounded set of queues.
    """
    milliseconds = max(1, math.ceil(seconds * 1000 - 1e-6))
    if milliseconds < 100:
        return milliseconds
    unit = int(10 ** (len(str(milliseconds)) - 2))
    return -(-milliseconds // unit) * unit


def delay_queue_expiry(milliseconds: int) -> int:
    """``x-expires`` of a delay queue: idle delay queues delete themselves, but never
    while a message can still be in one (each publish re-declares the queue well within
    this period, see ``redeclare_after``)."""
    return 2 * milliseconds + 60_000


def redeclare_after(milliseconds: int) -> float:
    """Seconds after which a delay queue must be declared again before publishing to it:
    a message published then still leaves the queue before the queue can expire."""
    return (delay_queue_expiry(milliseconds) - milliseconds) / 2 / 1000
