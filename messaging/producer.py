"""``Producer``: encode, check, batch and send.

Delivery semantics
------------------
``send`` returns only after the broker confirmed the message, and ``send_many`` only
after it confirmed every message; both raise otherwise. Nothing is sent when a check
fails: every message of a ``send_many`` call is encoded and checked before the first
byte leaves. ``send_many`` hands the driver batches of up to ``capabilities.max_batch``
messages, which the driver keeps in flight together.

Errors
------
``SerializationError`` (value not encodable), ``MessageTooLarge``, ``UnsupportedFeature``
(delay, priority, dedup or headers the backend lacks), ``ConfigurationError`` (bad
name or argument) before sending; ``ConnectionFailed``, ``DestinationNotFound`` and the
rest of the driver's table while sending. When a ``send_many`` fails while sending, the
error raised is the first failure's, with ``error.sent`` (index to id of each message
confirmed) and ``error.failed`` (index to error) attached, and every index of the call
is in one of them: sending again what is in ``failed`` loses nothing. A message in
``failed`` was not confirmed, which does not mean the broker does not have it (a
connection lost while it was in flight), so a resend may duplicate it. The messages
after the failing batch were never sent; their error is the one raised.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, cast

from messaging import checks
from messaging.capabilities import Capabilities
from messaging.codecs import CONTENT_TYPE, Codec, checked_codec, content_type_of
from messaging.driver import Driver, OutgoingMessage, SendResult
from messaging.errors import MessagingError
from messaging.guard import native_errors, translated

if TYPE_CHECKING:
    from messaging.client import Client


@dataclasses.dataclass(frozen=True)
class Record:
    """One message for ``send_many`` when messages differ in key, headers or options."""

    value: object
    key: str | None = None
    headers: Mapping[str, str] | None = None
    delay: float | None = None
    priority: int | None = None
    dedup_id: str | None = None


class Producer:
    """Sends messages. Safe to share between threads."""

    def __init__(self, client: Client, codec: Codec) -> None:
        self._client = client
        self.codec = codec
        self._codec = checked_codec(codec)

    def send(
        self,
        destination: str,
        value: object,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float | None = None,
        priority: int | None = None,
        dedup_id: str | None = None,
    ) -> str:
        """Send one message; return the broker's id for it once confirmed."""
        checks.check_name("destination", destination)
        caps = self._client.capabilities_for(destination)
        message = self._prepare(destination, caps, value, key=key, headers=headers,
                                delay=delay, priority=priority, dedup_id=dedup_id)
        return self._send_batch(destination, [message], offset=0)[0]

    def send_many(
        self,
        destination: str,
        values: Iterable[object],
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> list[str]:
        """Send many messages (values, or :class:`Record` for per-message options).

        ``key`` and ``headers`` apply to plain values; a Record carries its own.
        """
        checks.check_name("destination", destination)
        checks.check_values(values)
        caps = self._client.capabilities_for(destination)
        plain = _PlainValues(self._codec, destination, key, headers, caps)
        outgoing = plain.prepare_all(values, lambda item: self._prepare(
            destination, caps, item.value, key=item.key, headers=item.headers,
            delay=item.delay, priority=item.priority, dedup_id=item.dedup_id))
        ids: list[str] = []
        for start in range(0, len(outgoing), caps.max_batch):
            try:
                ids.extend(self._send_batch(
                    destination, outgoing[start:start + caps.max_batch], offset=start))
            except MessagingError as error:
                _account_for_every_message(error, ids, start, len(outgoing))
                raise
        return ids

    def flush(self) -> None:
        """Wait until everything sent is confirmed. ``send`` and ``send_many`` already
        return only after confirmation, so nothing is ever pending here; the method
        exists so code written for buffering clients (confluent-kafka) ports unchanged."""
        self._client._check_open()

    def close(self) -> None:
        """Nothing to release: the connection belongs to the client."""

    def __repr__(self) -> str:
        return f"<Producer {self._client.url.redacted}>"

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------
    def _prepare(self, destination: str, caps: Capabilities, value: object, *,
                 key: str | None, headers: Mapping[str, str] | None, delay: float | None,
                 priority: int | None, dedup_id: str | None) -> OutgoingMessage:
        body, content_type = self._codec.encode(value)
        checked = _with_content_type(checks.check_headers(headers, caps), content_type, caps)
        checks.check_size(destination, body, checked, caps)
        return OutgoingMessage(
            body,
            checks.check_key(key),
            checked,
            None if delay is None else checks.check_delay(delay, caps),
            None if priority is None else checks.check_priority(priority, caps),
            None if dedup_id is None else checks.check_dedup(dedup_id, caps),
        )

    def _send_batch(self, destination: str, batch: Sequence[OutgoingMessage], offset: int,
                    groups: Sequence[str] = ()) -> list[str]:
        """Send ``batch``; a missing destination is created (where ``auto_create``
        holds) with ``groups`` declared on it, then sent to again."""
        driver = self._client._live_driver()

        def send() -> Sequence[SendResult]:
            with native_errors(driver, "send to %r", destination):
                return driver.send_batch(destination, batch)

        results = self._client._creating(destination, send, groups)
        return _ids_or_raise(driver, results, offset, destination)


class _PlainValues:
    """Prepares the plain values of one ``send_many`` call, which share key and headers.

    Hot path (every message of a batch): what is the same for every value (the key, the
    user's headers, their checks and byte size) is done once per call, and once per
    content type for the header the codec adds; per value there remain the encoding, one
    size comparison and the ``OutgoingMessage``. The messages share one headers mapping,
    which drivers only read (see ``OutgoingMessage``).
    """

    __slots__ = ("_by_type", "_caps", "_destination", "_encode", "_headers", "_key")

    def __init__(self, codec: Codec, destination: str, key: str | None,
                 headers: Mapping[str, str] | None, caps: Capabilities) -> None:
        self._encode = codec.encode
        self._destination = destination
        self._caps = caps
        self._key = checks.check_key(key)
        self._headers = checks.check_headers(headers, caps)
        # content type -> (the headers of a message of that type, their size in bytes)
        self._by_type: dict[str | None, tuple[dict[str, str], int]] = {}

    def prepare_all(self, values: Iterable[object],
                    prepare_record: Callable[[Record], OutgoingMessage]
                    ) -> list[OutgoingMessage]:
        """The messages of ``values``; a :class:`Record` goes to ``prepare_record``."""
        # One loop with its locals bound, rather than a call per value; a codec gives the
        # same content-type object for every value of a kind, so an identity check finds
        # the headers of the value before. The tuple is built directly: a NamedTuple's
        # own __new__ is Python code, run once per message. (Its field order is pinned by
        # test_a_plain_value_is_prepared_as_the_named_tuple_would_build_it.)
        encode, key, limit = self._encode, self._key, self._caps.max_message_bytes
        new = tuple.__new__
        out: list[OutgoingMessage] = []
        append = out.append
        last_type: object = _NO_TYPE
        headers: dict[str, str] = {}
        header_bytes = 0
        for value in values:
            if isinstance(value, Record):
                append(prepare_record(value))
                continue
            body, content_type = encode(value)
            if content_type is not last_type:
                headers, header_bytes = self._headers_for(content_type)
                last_type = content_type
            if len(body) + header_bytes > limit:
                checks.check_size(self._destination, body, headers, self._caps)  # raises
            append(new(OutgoingMessage, (body, key, headers, None, None, None)))
        return out

    def _headers_for(self, content_type: str | None) -> tuple[dict[str, str], int]:
        """The headers of a value of ``content_type`` and their size, made once per type."""
        made = self._by_type.get(content_type)
        if made is None:
            headers = _with_content_type(self._headers, content_type, self._caps)
            made = self._by_type[content_type] = (headers, checks.message_size(b"", headers))
        return made


_NO_TYPE = object()
"""No content type seen yet (None is one: a codec may give no content type)."""


def _with_content_type(headers: dict[str, str], content_type: str | None,
                       caps: Capabilities) -> dict[str, str]:
    """``headers`` (checked) plus the codec's ``content-type`` unless the user set one;
    a new dict when one is added, so a mapping shared by a batch stays as it was."""
    if content_type is None or content_type_of(headers) is not None:
        return headers  # the user's own, whatever its case: never two of them
    typed = {**headers, CONTENT_TYPE: content_type}
    # Only the count can change by adding our own well-formed header.
    checks.check_header_count(typed, caps)
    return typed


def _account_for_every_message(error: MessagingError, ids: Sequence[str], start: int,
                               total: int) -> None:
    """Make ``error.sent`` and ``error.failed`` cover the whole ``send_many`` call of
    ``total`` messages that stopped at the batch beginning at index ``start``: the ids of
    the batches before it are confirmed, and the messages after it were never handed to
    the driver, so they go to ``failed`` with the error that stopped the call. A batch
    that raised as a whole (no per-message outcome) counts as failed: some of it may
    have reached the broker, and sending it again duplicates rather than loses."""
    sent: dict[int, str] = dict(enumerate(ids))
    sent.update(getattr(error, "sent", {}))
    failed: dict[int, MessagingError] = dict(getattr(error, "failed", {}))
    for index in range(start, total):
        if index not in sent and index not in failed:
            failed[index] = error
    error.sent = sent
    error.failed = failed


def _ids_or_raise(driver: Driver, results: Sequence[SendResult], offset: int,
                  destination: str) -> list[str]:
    if set(map(type, results)) <= {str}:
        # The usual case, every message confirmed, found without a Python call per result.
        return cast(list[str], list(results))
    doing = f"send to {destination!r}"
    failed: dict[int, MessagingError] = {}
    sent: dict[int, str] = {}
    for index, result in enumerate(results, start=offset):
        if isinstance(result, BaseException):
            error = translated(driver, result, doing)
            if error is not result:
                error.__cause__ = result
            failed[index] = error
        else:
            sent[index] = str(result)
    if failed:
        first = failed[min(failed)]
        first.sent = sent
        first.failed = failed
        raise first
    return [sent[i] for i in sorted(sent)]
