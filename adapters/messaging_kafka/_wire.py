"""What a message looks like on Kafka: no envelope, just a Kafka record.

* body -> the record value, byte for byte;
* key -> the record key, UTF-8 (keys a plain producer wrote as non-UTF-8 bytes are read
  with ``surrogateescape`` and written back as the same bytes);
* headers -> Kafka headers, values UTF-8 (same ``surrogateescape`` rule; a header with a
  null value reads as ""; of repeated header names the last wins);
* ``delay`` -> one extra header, ``x-deliver-at``: the wall-clock time in epoch
  milliseconds before which consumers of this adapter hold the record back (plain
  Kafka consumers see it at once, with the header). It is the adapter's own: not in
  ``Message.headers``, and refused as a user's header;
* id -> ``topic:partition:offset``; position -> ``partition:offset``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from messaging_kafka._errors import InvalidRequest

DELIVER_AT = "x-deliver-at"

_NO_TIMESTAMP = 0  # confluent_kafka.TIMESTAMP_NOT_AVAILABLE


def encode_key(key: str | None) -> bytes | None:
    return None if key is None else key.encode("utf-8", "surrogateescape")


def decode_key(key: bytes | None) -> str | None:
    return None if key is None else key.decode("utf-8", "surrogateescape")


def encode_headers(headers: Mapping[str, str], deliver_at: float | None = None
                   ) -> list[tuple[str, bytes]]:
    encoded = [(name, value.encode("utf-8", "surrogateescape"))
               for name, value in headers.items()]
    if deliver_at is not None:
        encoded.append((DELIVER_AT, str(round(deliver_at * 1000)).encode()))
    return encoded


def decode_headers(headers: list[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """The record's headers as ``Message.headers`` has them: without ``x-deliver-at``,
    which is the adapter's own (as a broker's bookkeeping is elsewhere), so that a
    message forwarded with its headers is not delayed by its original's delay."""
    if not headers:
        return {}
    return {name: "" if value is None else value.decode("utf-8", "surrogateescape")
            for name, value in headers if name != DELIVER_AT}


def check_headers(headers: Mapping[str, str]) -> InvalidRequest | None:
    """The refusal of a user's header that is the adapter's own, or None."""
    if DELIVER_AT in headers:
        return InvalidRequest(f"header {DELIVER_AT!r} is the Kafka adapter's own (it "
                              "carries a send's delay): pass delay= instead, or rename it")
    return None


def deliver_at(headers: list[tuple[str, bytes | None]] | None) -> float:
    """The ``x-deliver-at`` time in seconds (0.0 when absent or unreadable: at once)."""
    if not headers:
        return 0.0
    for name, value in headers:
        if name == DELIVER_AT and value:
            try:
                return int(value) / 1000.0
            except ValueError:
                return 0.0
    return 0.0


def timestamp(kind_and_ms: tuple[int, int]) -> dt.datetime | None:
    kind, milliseconds = kind_and_ms
    if kind == _NO_TIMESTAMP or milliseconds < 0:
        return None
    try:
        return dt.datetime.fromtimestamp(milliseconds / 1000.0, dt.UTC)
    except (OverflowError, ValueError, OSError):  # past year 9999: no datetime holds it
        return None


def message_id(topic: str, partition: int, offset: int) -> str:
    return f"{topic}:{partition}:{offset}"


def position(partition: int, offset: int) -> str:
    return f"{partition}:{offset}"


def parse_position(text: str, topic: str) -> tuple[int, int]:
    """``partition:offset`` (a ``Delivery.position``) or ``topic:partition:offset`` (an
    id) of ``topic`` as (partition, offset)."""
    parts = text.rsplit(":", 2)
    if len(parts) == 3:
        if parts[0] != topic:
            raise InvalidRequest(f"position {text!r} belongs to topic {parts[0]!r}, "
                                 f"not {topic!r}")
        parts = parts[1:]
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        raise InvalidRequest(f"{text!r} is not a Kafka position (partition:offset, as "
                             "Message.position gives)")
    return int(parts[0]), int(parts[1])
