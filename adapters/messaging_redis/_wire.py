"""Messages as stream entries: the fields on the wire, ids, positions and times.

An entry carries the body in the field ``body``, the key (when there is one) in ``key``,
and every header as a field of its own name with its value, UTF-8 encoded. A message sent
with a delay carries ``message-id`` as well (its id is chosen when it is sent, before it
has a stream entry). Nothing else is added, so a plain client reads and writes the same
entries (``XADD orders * body ... content-type text/plain``).

Reading, a field that is not one of the three names above is a header. An entry without
a ``body`` field (written by some other program) has an empty body and all its fields
as headers. Bytes that are not UTF-8 in a field name or header value are kept through
``surrogateescape``, so they go back to the broker unchanged (a dead letter, say).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Mapping, Sequence

from messaging.driver import Delivery, OutgoingMessage, SeekTarget
from messaging.errors import ErrorCode
from messaging_redis._errors import RedisRefused

BODY = b"body"
KEY = b"key"
MESSAGE_ID = b"message-id"
RESERVED = frozenset({"body", "key", "message-id"})
"""Field names the adapter uses itself; no header may have one of them."""

_ERRORS = "surrogateescape"
_MAX_SEQUENCE = 18446744073709551615  # the largest sequence part of a stream entry id
_UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ENTRY_ID = re.compile(r"(\d{1,20})-(\d{1,20})")

Parts = list[bytes]
"""An entry's fields as the server sends and takes them: name, value, name, value..."""
AckId = tuple[bytes, int]
"""A delivery: its entry id and the delivery count it was received with (a settlement
of an older delivery of the same entry is recognised by the count)."""


def check_fields(messages: Sequence[OutgoingMessage]) -> None:
    """Refuse, before anything is sent, a header that would overwrite a field of ours."""
    for message in messages:
        if message.headers and not RESERVED.isdisjoint(message.headers):
            clash = sorted(RESERVED.intersection(message.headers))
            raise RedisRefused(
                ErrorCode.CONFIGURATION,
                f"header name(s) {', '.join(map(repr, clash))} are stream fields of the "
                f"Redis adapter itself ({', '.join(sorted(RESERVED))}); rename the header",
            )


def parts_of(message: OutgoingMessage, message_id: str | None = None,
             headers: Parts | None = None) -> Parts:
    """The entry's fields, body first; ``headers``: ``header_parts(message.headers)``
    when the caller has it already (messages of one batch often share their headers)."""
    parts = [BODY, message.body]
    if message.key is not None:
        parts += (KEY, _encode(message.key))
    if message_id is not None:
        parts += (MESSAGE_ID, message_id.encode())
    parts += header_parts(message.headers) if headers is None else headers
    return parts


def header_parts(headers: Mapping[str, str]) -> Parts:
    """The fields of ``headers``: name, value, name, value..."""
    parts: Parts = []
    for name, value in headers.items():
        parts += (_encode(name), _encode(value))
    return parts


def deliveries_of(destination: str, entries: Sequence[tuple[bytes, Sequence[bytes]]],
                  count: int) -> list[Delivery]:
    """The deliveries of ``entries`` (entry id, fields), each received for the
    ``count``-th time (a read of new entries: the first)."""
    # The hot path: every message a read returns. Entries the adapter wrote start with
    # their body, and those sent together mostly carry the same other fields (the
    # content-type, shared headers) and the same millisecond: those are decoded once for
    # a run of equal ones, and each Delivery gets its own copy of the headers dict, which
    # its receiver may change. Anything else goes through delivery_of.
    out: list[Delivery] = []
    append = out.append
    last_rest: object = None
    key: str | None = None
    message_id: str | None = None
    headers: dict[str, str] = {}
    last_millis = b""
    stamp: dt.datetime | None = None
    for entry_id, parts in entries:
        if not parts or parts[0] != BODY:
            append(delivery_of(destination, entry_id, parts, count))
            continue
        rest = parts[2:]
        if rest != last_rest:
            after_body = _after_body(rest)
            if after_body is None:
                last_rest = None
                append(delivery_of(destination, entry_id, parts, count))
                continue
            key, message_id, headers = after_body
            last_rest = rest
        millis = entry_id.partition(b"-")[0]
        if millis != last_millis:
            last_millis, stamp = millis, _time_of(millis)
        position = entry_id.decode()
        # Positional: keywords cost more on a path taken for every message.
        append(Delivery((entry_id, count), parts[1], message_id or position, count,
                        destination, key, headers.copy(), stamp, position))
    return out


def delivery_of(destination: str, entry_id: bytes, parts: Sequence[bytes],
                count: int) -> Delivery:
    """The delivery of one entry, received for the ``count``-th time."""
    try:
        body, key, message_id, headers = _fields(parts)
    except UnicodeDecodeError:  # rare: decode everything again, keeping the odd bytes
        body, key, message_id, headers = _fields(parts, _ERRORS)
    position = entry_id.decode()
    return Delivery((entry_id, count), body, message_id or position, count, destination, key,
                    headers, _time_of(entry_id.partition(b"-")[0]), position)


def _after_body(rest: Sequence[bytes]) -> tuple[str | None, str | None, dict[str, str]] | None:
    """Key, message id and headers of the fields after an entry's leading body; None when
    the entry needs delivery_of: another body field (the last one wins) or bytes that are
    not UTF-8."""
    if BODY in rest[::2]:
        return None
    try:
        _, key, message_id, headers = _fields(rest)
    except UnicodeDecodeError:
        return None
    return key, message_id, headers


def _fields(parts: Sequence[bytes], errors: str = "strict"
            ) -> tuple[bytes, str | None, str | None, dict[str, str]]:
    """Body, key, message id and headers of an entry's fields."""
    headers: dict[str, str] = {}
    body = b""
    key: str | None = None
    message_id: str | None = None
    pairs = iter(parts)
    for name, value in zip(pairs, pairs, strict=False):  # the server sends pairs
        if name == BODY:
            body = value
        elif name == KEY:
            key = value.decode("utf-8", errors)
        elif name == MESSAGE_ID:
            message_id = value.decode("utf-8", errors)
        else:
            headers[name.decode("utf-8", errors)] = value.decode("utf-8", errors)
    return body, key, message_id, headers


def _encode(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:  # lone surrogates: bytes that came in as non-UTF-8
        return text.encode("utf-8", _ERRORS)


@functools.lru_cache(maxsize=256)
def _time_of(millis: bytes) -> dt.datetime | None:
    # Entries added in one burst share their millisecond: a received batch makes one
    # datetime for many of them instead of one each (datetimes are immutable).
    try:
        return dt.datetime.fromtimestamp(int(millis) / 1000, _UTC)
    except (OverflowError, ValueError, OSError):
        # An id a plain client chose (XADD s 999999999999999-1 ...) past year 9999.
        return None


def last_delivered_for(target: SeekTarget) -> str:
    """The group's last-delivered id that makes the next read start at ``target``
    (XGROUP SETID): ``0`` for the beginning, ``$`` for the end, the id just before a
    position (a position seek is inclusive), or just before the first millisecond at or
    after a time."""
    if target == "beginning":
        return "0"
    if target == "end":
        return "$"
    if isinstance(target, dt.datetime):  # timezone-aware: the portable layer checked
        micros = (target - _EPOCH) // dt.timedelta(microseconds=1)
        millis = -(-micros // 1000)  # a time inside a millisecond starts at the next one
        return "0" if millis <= 0 else f"{millis - 1}-{_MAX_SEQUENCE}"
    match = _ENTRY_ID.fullmatch(str(target))
    if match is None:
        raise RedisRefused(ErrorCode.CONFIGURATION,
                           f"{target!r} is not a position of a Redis stream (MS-SEQ)")
    millis, sequence = int(match[1]), int(match[2])
    if sequence > 0:
        return f"{millis}-{sequence - 1}"
    return "0" if millis == 0 else f"{millis - 1}-{_MAX_SEQUENCE}"
