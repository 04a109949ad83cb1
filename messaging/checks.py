"""Checks made before anything reaches a driver: names, sizes, features.

These are the capability checks DESIGN.md puts in the portable layer: a feature a
backend lacks raises ``UnsupportedFeature`` at the call, a body over the limit raises
``MessageTooLarge`` before anything is sent, and nothing is silently ignored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

from messaging.capabilities import Capabilities
from messaging.errors import ConfigurationError, MessageTooLarge, UnsupportedFeature

# Kafka's legal topic characters: the narrowest of the backends, so a name that passes
# here works unchanged on every broker (DESIGN: the same service code on every backend).
_NAME = re.compile(r"[A-Za-z0-9._-]{1,200}")


def check_seconds(what: str, value: object, *, zero: bool = False) -> float:
    """``value`` as a float of seconds: a finite number > 0 (>= 0 with ``zero``). Every
    duration the portable layer takes comes through here, so NaN and infinity are refused
    once, at the call: NaN compares false with every bound, and would otherwise reach a
    driver as a timeout it cannot use (or wait forever)."""
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        bound = ">= 0" if zero else "> 0"
        raise ConfigurationError(
            f"{what} must be a finite number of seconds {bound}, got {value!r}")
    return float(value)


def check_name(kind: str, name: object) -> str:
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"{kind} name must be a non-empty string, got {name!r}")
    if not _NAME.fullmatch(name):
        raise ConfigurationError(
            f"{kind} name {name!r} must be 1-200 characters of A-Z a-z 0-9 . _ -"
        )
    return name


def check_headers(headers: Mapping[str, str] | None, caps: Capabilities) -> dict[str, str]:
    if not headers:
        return {}
    if not isinstance(headers, Mapping):
        raise ConfigurationError("headers must be a mapping of str to str")
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str) or not name:
            raise ConfigurationError(f"header {name!r}: names and values must be str")
    check_header_count(headers, caps)
    return dict(headers)


def check_header_count(headers: Mapping[str, str], caps: Capabilities) -> None:
    if caps.max_headers is not None and len(headers) > caps.max_headers:
        raise UnsupportedFeature(
            f"{len(headers)} headers; this backend carries at most {caps.max_headers}"
        )


def message_size(body: bytes, headers: Mapping[str, str]) -> int:
    # surrogateescape: a header a plain client wrote in non-UTF-8 bytes still has a size.
    return len(body) + sum(len(k.encode("utf-8", "surrogateescape"))
                           + len(v.encode("utf-8", "surrogateescape"))
                           for k, v in headers.items())


def check_size(destination: str, body: bytes, headers: Mapping[str, str],
               caps: Capabilities) -> None:
    size = len(body) + (message_size(b"", headers) if headers else 0)
    if size > caps.max_message_bytes:
        raise MessageTooLarge(
            f"message to {destination!r} is {size} bytes (body and headers); "
            f"this backend accepts at most {caps.max_message_bytes}"
        )


def check_delay(delay: float | None, caps: Capabilities) -> float | None:
    if delay is None or delay == 0:
        return None
    delay = check_seconds("delay", delay, zero=True)
    if caps.max_delay is None:
        raise UnsupportedFeature("this backend cannot delay messages (max_delay is None)")
    if delay > caps.max_delay:
        raise UnsupportedFeature(
            f"delay {delay} s is over this backend's max_delay of {caps.max_delay} s"
        )
    return delay


def check_priority(priority: int | None, caps: Capabilities) -> int | None:
    if priority is None:
        return None
    if isinstance(priority, bool) or not isinstance(priority, int) or priority < 0:
        raise ConfigurationError(f"priority must be an int >= 0, got {priority!r}")
    if caps.priority == 0:
        raise UnsupportedFeature("this backend has no message priority")
    if priority >= caps.priority:
        raise UnsupportedFeature(
            f"priority {priority} is out of range: this backend has levels 0..{caps.priority - 1}"
        )
    return priority


def check_dedup(dedup_id: str | None, caps: Capabilities) -> str | None:
    if dedup_id is None:
        return None
    if not isinstance(dedup_id, str) or not dedup_id:
        raise ConfigurationError(f"dedup_id must be a non-empty str, got {dedup_id!r}")
    if not caps.dedup:
        raise UnsupportedFeature("this backend does not de-duplicate by dedup_id")
    return dedup_id


def check_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not isinstance(key, str):
        raise ConfigurationError(f"key must be a str or None, got {type(key).__name__}")
    if not key:
        # Kafka and Redis would keep "", RabbitMQ reads it back as no key and SQS cannot
        # carry it: refused everywhere, so the same code means the same on every backend.
        raise ConfigurationError("key must be a non-empty str, or None for no key")
    return key


def check_values(values: object) -> None:
    """``send_many``'s values are a collection of messages: one str or bytes would be
    sent as a message per character or byte, a mapping as one per key."""
    if isinstance(values, str | bytes | bytearray | memoryview | Mapping):
        raise ConfigurationError(
            f"send_many takes a list of message values, not one {type(values).__name__} "
            "(send sends one message)")
    if not isinstance(values, Iterable):
        raise ConfigurationError(
            f"send_many takes a list of message values, got {type(values).__name__}")
