"""How one message looks on the wire: ``OutgoingMessage`` -> AMQP and AMQP -> ``Delivery``.

No envelope: the body is published as given, and everything else goes where an AMQP
client expects it, so a plain pika program reads our messages and we read its.

============== =========================================================================
``key``         the routing key (the destination's exchange is a fanout, so the key
                routes nothing and travels with the message); no key = empty routing
                key, and an empty routing key reads back as ``None``
``headers``     the ``headers`` table, values as AMQP long strings; ``content-type``
                goes to the ``content_type`` property, where AMQP clients look for it
``priority``    the ``priority`` property (classic queues with ``x-max-priority``)
``id``          the ``message_id`` property (set on every send; a message published
                without one gets an id derived from its content, stable across
                redeliveries)
``timestamp``   the ``timestamp`` property (whole seconds, as AMQP defines it)
``attempt``     1 + the broker's ``x-delivery-count`` (quorum queues; on classic queues
                the ``redelivered`` flag counts as one) + ``x-prior-deliveries`` (the
                deliveries before the adapter re-published the message: on a nack, or
                when a closing consumer gives back what it never handed out)
durability      ``delivery_mode`` 2 (persistent)
============== =========================================================================

On receipt, header values that are not strings (a plain client may send numbers,
booleans, timestamps, tables) are turned into text: numbers as Python prints them,
booleans as ``true``/``false``, timestamps in ISO 8601, tables and arrays as JSON. The
broker's and the adapter's own bookkeeping (``x-delivery-count``,
``x-prior-deliveries``, ``x-death``, ``x-first-death-*``, ``x-last-death-*``) is read
for ``attempt`` and not shown in ``headers``: a dead letter built from those headers
must not carry another queue's delivery count. A send that sets one of them is refused
(``ConfigurationError``).
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import hashlib
import itertools
import json
import secrets
from typing import Any

from pika.spec import BasicProperties

from messaging.driver import AckId, Delivery, OutgoingMessage
from messaging_rabbitmq._errors import HeadersTooLarge, KeyTooLong, ReservedHeader

CONTENT_TYPE = "content-type"
DELIVERY_COUNT = "x-delivery-count"
PRIOR_DELIVERIES = "x-prior-deliveries"
PERSISTENT = 2
_SHORTSTR = 255
_BOOKKEEPING = frozenset({
    DELIVERY_COUNT, PRIOR_DELIVERIES, "x-death",
    "x-first-death-reason", "x-first-death-queue", "x-first-death-exchange",
    "x-last-death-reason", "x-last-death-queue", "x-last-death-exchange",
})
# Bytes of one header table entry besides its name and value: name length (1), value
# type (1), value length (4).
_ENTRY_OVERHEAD = 6


def _too_long(text: str) -> bool:
    # A character is at most 4 UTF-8 bytes: only long texts need encoding to tell.
    return len(text) > _SHORTSTR // 4 and len(text.encode()) > _SHORTSTR


class MessageIds:
    """Ids for sent messages: unique across processes (a random prefix per connection)
    and cheap (a counter), so a large batch does not pay for a UUID per message."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}-{next(self._counter)}"


def routing_key(key: str | None) -> str:
    if key is None:
        return ""
    if _too_long(key):
        raise KeyTooLong(f"a key is an AMQP routing key: at most 255 UTF-8 bytes, "
                         f"got {len(key.encode())}")
    return key


def properties(message: OutgoingMessage, message_id: str, timestamp: int,
               header_room: int) -> Any:
    """The ``BasicProperties`` of a send; ``header_room`` is what one frame can hold."""
    headers = message.headers
    content_type = None
    table: dict[str, object] | None = None
    if headers:
        content_type = headers.get(CONTENT_TYPE)
        if content_type is not None and _too_long(content_type):
            content_type = None  # too long for the property: it stays a header
        if content_type is None:
            table = dict(headers)
        elif len(headers) > 1:
            table = {name: value for name, value in headers.items() if name != CONTENT_TYPE}
        if table:
            _check_table(table, header_room)
    return BasicProperties(content_type=content_type, headers=table,
                           delivery_mode=PERSISTENT, message_id=message_id,
                           timestamp=timestamp, priority=message.priority)


def _check_table(table: dict[str, object], room: int) -> None:
    if not _BOOKKEEPING.isdisjoint(table):
        # Read back for attempt and left out of Message.headers: sent by a user, it
        # would set the first delivery's attempt (x-prior-deliveries 5 made it 6, so a
        # worker dead-lettered the message unhandled) and then vanish.
        names = ", ".join(sorted(_BOOKKEEPING.intersection(table)))
        raise ReservedHeader(f"header(s) {names} are delivery bookkeeping of the broker "
                             "or the adapter, read for attempt; rename them")
    size = 0
    for name, value in table.items():
        if _too_long(name):
            raise KeyTooLong(f"header name {name[:40]!r}... is over 255 UTF-8 bytes")
        size += len(name) + len(str(value)) * 4 + _ENTRY_OVERHEAD  # an upper bound
    if size > room:
        size = sum(len(name.encode()) + len(str(value).encode()) + _ENTRY_OVERHEAD
                   for name, value in table.items())
        if size > room:
            raise HeadersTooLarge(
                f"the header table is {size} bytes; AMQP carries a message's properties "
                f"in one frame, which holds {room} (the connection's frame_max)")


def redelivery_properties(original: Any, message_id: str, attempt: int) -> Any:
    """The properties of the copy published for a redelivery: the original's, plus the
    deliveries so far in ``x-prior-deliveries``.

    Dropped: the broker's delivery count (the copy is a new message to the queue), a
    per-message ``expiration`` (it would cut the delay short), and ``user_id`` (the broker
    checks it against the connection's user, who may not be the original publisher).
    """
    headers = dict(original.headers or {})
    headers.pop(DELIVERY_COUNT, None)
    headers[PRIOR_DELIVERIES] = attempt
    return BasicProperties(
        content_type=original.content_type, content_encoding=original.content_encoding,
        headers=headers, delivery_mode=original.delivery_mode, priority=original.priority,
        correlation_id=original.correlation_id, reply_to=original.reply_to,
        message_id=message_id, timestamp=original.timestamp, type=original.type,
        app_id=original.app_id, cluster_id=original.cluster_id)


def delivery(ack_id: AckId, routing: str, redelivered: bool, props: Any, body: bytes, *,
             destination: str) -> Delivery:
    native = props.headers
    headers: dict[str, str] = {}
    prior = 0
    count = None
    if native:
        for name, value in native.items():
            if name in _BOOKKEEPING:
                if name == DELIVERY_COUNT:
                    count = _number(value)
                elif name == PRIOR_DELIVERIES:
                    prior = _number(value)
                continue
            headers[name] = value if type(value) is str else text(value)
    if count is None:
        count = 1 if redelivered else 0
    content_type = props.content_type
    if content_type is not None:
        headers[CONTENT_TYPE] = content_type
    stamp = props.timestamp
    # Positional, in the field order: keywords cost twice as much on this per-message
    # path (the unit tests read every field back).
    return Delivery(ack_id, body, props.message_id or content_id(routing, headers, stamp, body),
                    1 + prior + count, destination, routing or None, headers,
                    _time_of(stamp) if stamp else None)


@functools.lru_cache(maxsize=64)
def _time_of(seconds: int) -> dt.datetime | None:
    # AMQP timestamps count whole seconds: a batch mostly shares one, and one datetime
    # (immutable) serves them all.
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC)
    except (OverflowError, ValueError, OSError):
        # A plain publisher's timestamp past year 9999: delivered without one, rather
        # than failing the receive of the whole batch.
        return None


def attempt_of(redelivered: bool, props: Any) -> int:
    """``Delivery.attempt`` of a raw delivery (for the copy a redelivery publishes)."""
    native = props.headers or {}
    count = native.get(DELIVERY_COUNT)
    return (1 + _number(native.get(PRIOR_DELIVERIES, 0))
            + (_number(count) if count is not None else int(redelivered)))


def content_id(routing: str, headers: dict[str, str], stamp: int | None, body: bytes) -> str:
    """The id of a message published without ``message_id``: a digest of what it carries,
    the same on each redelivery (two identical messages share it)."""
    digest = hashlib.blake2b(body, digest_size=16)
    digest.update(json.dumps([routing, sorted(headers.items()), stamp]).encode())
    return digest.hexdigest()


def _number(value: object) -> int:
    if isinstance(value, int | float | str | bytes):
        try:
            return max(0, int(value))
        except ValueError:
            return 0
    return 0


def text(value: object) -> str:
    """A native header value as the text ``Message.headers`` carries."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if value is None:
        return ""
    return json.dumps(value, default=text, ensure_ascii=False, separators=(",", ":"))
