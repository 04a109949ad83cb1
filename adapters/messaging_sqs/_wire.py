"""Messages on the wire: OutgoingMessage -> SendMessageBatch entry, and SQS message ->
Delivery. No envelope: the body is the SQS message body and headers are message
attributes (type ``String``).

Three attribute names are the adapter's (documented in docs/adapters/sqs.md):

* ``message-id``: the id ``send`` returned, the same in every group's queue (SQS gives
  each queue's copy its own ``MessageId``);
* ``message-key``: the key, on standard queues (FIFO queues carry it as
  ``MessageGroupId``);
* ``content-transfer-encoding: base64``: the body is base64, because it is not text SQS
  can carry (SQS bodies are Unicode text without NUL and most control characters).
  A body whose ``content-type`` is ``application/octet-stream`` is always base64 and needs
  no such attribute: binary data in a text body can only be encoded.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import math
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from messaging.codecs import BYTES_TYPE, CONTENT_TYPE
from messaging.driver import Delivery, OutgoingMessage
from messaging.errors import ErrorCode
from messaging_sqs._errors import SqsRefused

ID_ATTRIBUTE = "message-id"
KEY_ATTRIBUTE = "message-key"
ENCODING_ATTRIBUTE = "content-transfer-encoding"
BASE64 = "base64"
RESERVED = frozenset({ID_ATTRIBUTE, KEY_ATTRIBUTE, ENCODING_ATTRIBUTE})

SQS_MAX_BYTES = 262_144
"""SQS's limit for one message: body plus every attribute's name, type and value."""
MAX_ATTRIBUTES = 10
"""SQS's (and SNS raw delivery's) limit of message attributes per message."""
MAX_HEADERS = MAX_ATTRIBUTES - len(RESERVED)
"""Headers a message may carry: the adapter's three attributes may all be needed."""
MAX_KEY = 128
"""Longest key: MessageGroupId's limit (characters, after percent-encoding), and on
standard queues UTF-8 bytes of the ``message-key`` value."""
MAX_BATCH = 10
"""Entries of one SendMessageBatch / DeleteMessageBatch / ChangeMessageVisibilityBatch."""
MAX_DELAY = 900.0
"""DelaySeconds' limit (15 minutes)."""
_ID_LENGTH = 32  # uuid4().hex
_TYPE = "String"

# The declared max_message_bytes must hold for ANY message the portable checks let
# through: a body that travels base64 (4/3 of its size) with every header at the limit,
# the three reserved attributes at their longest, and every attribute's type name.
_RESERVED_BYTES = (
    len(ID_ATTRIBUTE) + len(_TYPE) + _ID_LENGTH
    + len(KEY_ATTRIBUTE) + len(_TYPE) + MAX_KEY
    + len(ENCODING_ATTRIBUTE) + len(_TYPE) + len(BASE64)
    + MAX_HEADERS * len(_TYPE)
)
MAX_MESSAGE_BYTES = (SQS_MAX_BYTES - _RESERVED_BYTES) // 4 * 3

# Characters SQS accepts in a body or a String attribute value.
_ILLEGAL_ASCII = bytes(c for c in range(0x20) if c not in (0x09, 0x0A, 0x0D))
_ILLEGAL_TEXT = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,256}")
# MessageGroupId / MessageDeduplicationId: alphanumerics and ASCII punctuation. A key or
# dedup id with other characters is percent-encoded ('%' itself included).
_GROUP_ID_SAFE = "!\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~"


def _refuse(code: ErrorCode, text: str) -> SqsRefused:
    return SqsRefused(code, text)


def _is_text(body: bytes) -> str | None:
    """The body as text if SQS can carry it unchanged, else None."""
    if body.isascii():
        # The common case, checked in C: of ASCII, SQS refuses only the control
        # characters other than tab, LF and CR. A memchr per such byte value beats
        # isprintable() eightfold on a 10 KiB body; on a small one a single pass does.
        legal = (not any(c in body for c in _ILLEGAL_ASCII) if len(body) > 512
                 else len(body.translate(None, _ILLEGAL_ASCII)) == len(body))
        return body.decode("ascii") if legal else None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    # isprintable() (fast, in C) excludes every character SQS refuses; the regex decides
    # the rest (tabs, newlines, other legal but unprintable characters).
    return text if text.isprintable() or not _ILLEGAL_TEXT.search(text) else None


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def _check_header(name: str, value: str) -> None:
    if name.lower() in RESERVED:
        raise _refuse(ErrorCode.CONFIGURATION,
                      f"header {name!r} is reserved by the SQS adapter ({sorted(RESERVED)})")
    if (not _ATTRIBUTE_NAME.fullmatch(name) or name.startswith(".") or name.endswith(".")
            or ".." in name or name.lower().startswith(("aws.", "amazon."))):
        raise _refuse(ErrorCode.UNSUPPORTED, (
            f"header name {name!r} cannot be an SQS message attribute name (A-Z a-z 0-9 "
            "_ - . up to 256, no leading, trailing or double '.', no 'AWS.'/'Amazon.')"))
    if not value:
        raise _refuse(ErrorCode.UNSUPPORTED,
                      f"header {name!r} is empty: SQS message attributes cannot be empty")
    if _ILLEGAL_TEXT.search(value):
        raise _refuse(ErrorCode.UNSUPPORTED,
                      f"header {name!r} has characters SQS message attributes cannot carry")


def _group_id(kind: str, value: str) -> str:
    encoded = urllib.parse.quote(value, safe=_GROUP_ID_SAFE)
    if not encoded or len(encoded) > MAX_KEY:
        raise _refuse(ErrorCode.CONFIGURATION,
                      f"{kind} {value!r} is empty or over {MAX_KEY} characters as a FIFO "
                      f"{'MessageGroupId' if kind == 'key' else 'MessageDeduplicationId'}")
    return encoded


def encode(message: OutgoingMessage, message_id: str, fifo: bool,
           headers_checked: bool = False) -> tuple[dict[str, Any], int]:
    """The SendMessageBatch entry (without ``Id``) and its size as SQS counts it;
    ``headers_checked``: this message's headers mapping passed the checks already (the
    messages of one batch often share it).

    Raises SqsRefused for what SQS would refuse, before anything is sent.
    """
    if not headers_checked:
        for name, value in message.headers.items():
            _check_header(name, value)
    attributes = dict(message.headers)
    attributes[ID_ATTRIBUTE] = message_id
    text = None if _media_type(message.headers.get(CONTENT_TYPE)) == BYTES_TYPE else _is_text(
        message.body)
    if text is None:
        body = base64.b64encode(message.body).decode("ascii")
        body_bytes = len(body)
        if _media_type(message.headers.get(CONTENT_TYPE)) != BYTES_TYPE:
            attributes[ENCODING_ATTRIBUTE] = BASE64
    else:
        body, body_bytes = text, len(message.body)
    if not body:
        raise _refuse(ErrorCode.UNSUPPORTED, "SQS cannot carry an empty message body")
    entry: dict[str, Any] = {"MessageBody": body}
    if fifo:
        entry["MessageGroupId"] = (message_id if message.key is None
                                   else _group_id("key", message.key))
        entry["MessageDeduplicationId"] = (message_id if message.dedup_id is None
                                           else _group_id("dedup_id", message.dedup_id))
    elif message.key is not None:
        if not message.key or len(message.key.encode()) > MAX_KEY or _ILLEGAL_TEXT.search(
                message.key):
            raise _refuse(ErrorCode.CONFIGURATION, (
                f"key {message.key!r} must be 1..{MAX_KEY} UTF-8 bytes of text SQS can "
                "carry"))
        attributes[KEY_ATTRIBUTE] = message.key
    if len(attributes) > MAX_ATTRIBUTES:
        raise _refuse(ErrorCode.UNSUPPORTED, (
            f"{len(attributes)} message attributes ({len(message.headers)} headers plus the "
            f"adapter's own); SQS carries at most {MAX_ATTRIBUTES}"))
    if message.delay:
        entry["DelaySeconds"] = math.ceil(message.delay)  # never earlier than asked
    entry["MessageAttributes"] = {
        name: {"DataType": _TYPE, "StringValue": value} for name, value in attributes.items()
    }
    size = body_bytes + sum(
        len(name.encode()) + len(_TYPE) + len(value.encode())
        for name, value in attributes.items())
    if size > SQS_MAX_BYTES:
        raise _refuse(ErrorCode.TOO_LARGE,
                      f"message is {size} bytes on the wire; SQS accepts {SQS_MAX_BYTES}")
    return entry, size


def _attribute_text(value: Mapping[str, Any]) -> str:
    if "StringValue" in value:  # String and Number, also with custom type labels
        return str(value["StringValue"])
    raw = value.get("BinaryValue", b"")  # Binary from a plain client: shown as base64
    return base64.b64encode(raw if isinstance(raw, bytes) else bytes(raw)).decode("ascii")


def decode(native: Mapping[str, Any], destination: str, fifo: bool) -> Delivery:
    """A received SQS message as a Delivery (ack id: its receipt handle)."""
    attributes = {name: _attribute_text(value)
                  for name, value in native.get("MessageAttributes", {}).items()}
    system = native.get("Attributes", {})
    message_id = attributes.get(ID_ATTRIBUTE) or str(native["MessageId"])
    text = str(native.get("Body", ""))
    encoding = attributes.get(ENCODING_ATTRIBUTE)
    if encoding is not None:
        body = _from_base64(text) if encoding.lower() == BASE64 else text.encode()
    elif _media_type(attributes.get(CONTENT_TYPE)) == BYTES_TYPE:
        body = _from_base64(text)
    else:
        body = text.encode()
    if fifo:
        group = system.get("MessageGroupId")
        key = None if group is None or group == message_id else urllib.parse.unquote(group)
    else:
        key = attributes.get(KEY_ATTRIBUTE)
    sent = system.get("SentTimestamp")
    return Delivery(
        ack_id=str(native["ReceiptHandle"]),
        body=body,
        id=message_id,
        attempt=int(system.get("ApproximateReceiveCount", 1)),
        destination=destination,
        key=key,
        headers={name: value for name, value in attributes.items() if name not in RESERVED},
        timestamp=None if sent is None else dt.datetime.fromtimestamp(int(sent) / 1000,
                                                                      tz=dt.UTC),
        position=None,
    )


def _from_base64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        # A plain client marked the body binary but sent it unencoded: hand the text up
        # as it came rather than failing the whole receive for one message.
        return text.encode()
