"""Codecs: values to body bytes and back. Never pickle.

The body on the wire is exactly the encoded bytes; what kind of bytes they are travels
in the standard ``content-type`` header, so a plain-client consumer sees ordinary JSON
or text and a plain-client producer's message decodes by its own header. A message
without ``content-type`` decodes to its raw bytes.

Encoding rules of :class:`DefaultCodec`: ``bytes`` as is (``application/octet-stream``),
``str`` as UTF-8 (``text/plain; charset=utf-8``; a ``text/*`` body decodes by its
``charset``), dataclass instances and pydantic models as JSON of their fields, anything
``json.dumps`` accepts as JSON (``application/json``). With pydantic installed, dates,
times, durations, UUIDs, Decimals and Enums are sent in pydantic's JSON forms, alone or
inside a dataclass. :class:`JsonCodec` with a ``model`` decodes JSON into that dataclass
(through pydantic when installed, so nested dataclasses and datetimes come back as such)
or pydantic model.
"""

from __future__ import annotations

import codecs
import dataclasses
import datetime
import decimal
import enum
import functools
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from messaging.errors import SerializationError

CONTENT_TYPE = "content-type"
JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"
BYTES_TYPE = "application/octet-stream"


def content_type_of(headers: Mapping[str, str]) -> str | None:
    """The ``content-type`` header, whatever its case: plain producers write
    ``Content-Type`` as often (HTTP's spelling), and header names are case-sensitive on
    Kafka and Redis. An exact name costs one lookup."""
    found = headers.get(CONTENT_TYPE)
    if found is None and headers:
        for name, value in headers.items():
            if name.lower() == CONTENT_TYPE:
                return value
    return found


@runtime_checkable
class Codec(Protocol):
    """Turns values into (body, content type) and bodies back into values."""

    def encode(self, value: object) -> tuple[bytes, str | None]:
        """Return the body and its content type; raise SerializationError if impossible."""
        ...

    def decode(self, body: bytes, content_type: str | None) -> object:
        """Return the value; raise SerializationError if the body does not decode."""
        ...


# The values an event commonly carries that JSON has no type for. With pydantic installed
# they travel in pydantic's JSON forms (ISO 8601 times and durations, UUID and Decimal as
# text, an Enum as its value), inside dataclasses too; a set or bytes stays refused at the
# top, because it would come back as something else (a list, a str).
_PYDANTIC_SCALARS = (datetime.date, datetime.time, datetime.timedelta, uuid.UUID,
                     decimal.Decimal, enum.Enum)


def _jsonable(value: object) -> object:
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        return model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        to_json = _pydantic_to_json()
        return dataclasses.asdict(value) if to_json is None else to_json(value)
    if isinstance(value, _PYDANTIC_SCALARS):
        to_json = _pydantic_to_json()
        if to_json is None:
            raise TypeError(f"{type(value).__name__} needs pydantic to be sent as JSON "
                            "(pip install 'messaging[pydantic]')")
        return to_json(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _pydantic_to_json() -> Callable[[object], object] | None:
    try:
        from pydantic_core import to_jsonable_python
    except ImportError:
        return None
    return to_jsonable_python


class DefaultCodec:
    """bytes, str and JSON (dataclasses and pydantic models included)."""

    def encode(self, value: object) -> tuple[bytes, str | None]:
        if type(value) is bytes:  # the common case first: no copy, no union isinstance
            return value, BYTES_TYPE
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value), BYTES_TYPE
        if isinstance(value, str):
            try:
                return value.encode("utf-8"), TEXT_TYPE
            except UnicodeEncodeError as error:  # lone surrogates: no UTF-8 text has them
                raise SerializationError(
                    f"cannot encode a str as UTF-8: {error}; send bytes for binary data") from error
        try:
            text = json.dumps(value, default=_jsonable, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as error:
            raise SerializationError(
                f"cannot encode a {type(value).__name__}: {error}; send bytes, str, JSON "
                "values, dataclasses or pydantic models (pickle is never used)"
            ) from error
        return text.encode("utf-8"), JSON_TYPE

    def decode(self, body: bytes, content_type: str | None) -> object:
        kind = (content_type or "").split(";", 1)[0].strip().lower()
        try:
            if kind == JSON_TYPE or kind.endswith("+json"):
                return json.loads(body)
            if kind.startswith("text/"):
                return body.decode(_charset(content_type))
        except (UnicodeDecodeError, ValueError) as error:
            raise SerializationError(f"body does not decode as {kind}: {error}") from error
        return body


def _charset(content_type: str | None) -> str:
    """The ``charset`` parameter of a text content type (UTF-8 when there is none), so a
    plain client's ``text/plain; charset=iso-8859-1`` decodes as it was written."""
    for parameter in (content_type or "").split(";")[1:]:
        name, _, charset = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = charset.strip().strip('"')
            try:
                return codecs.lookup(charset).name
            except LookupError:
                raise ValueError(f"unknown charset {charset!r}") from None
    return "utf-8"


@functools.cache
def _validator(model: type[Any]) -> Any:
    """pydantic's validator for a dataclass ``model`` (nested dataclasses, datetimes and
    the like rebuilt from their JSON forms), or None without pydantic."""
    try:
        from pydantic import TypeAdapter
    except ImportError:
        return None
    return TypeAdapter(model).validate_python


class JsonCodec(DefaultCodec):
    """JSON into a dataclass or pydantic ``model`` on decode; encodes like DefaultCodec."""

    def __init__(self, model: type[Any] | None = None) -> None:
        self.model = model

    def decode(self, body: bytes, content_type: str | None) -> object:
        try:
            data = json.loads(body)
        except ValueError as error:
            raise SerializationError(f"body is not JSON: {error}") from error
        if self.model is None:
            return data
        try:
            validate = getattr(self.model, "model_validate", None)
            if callable(validate):
                return validate(data)
            validate = _validator(self.model) if dataclasses.is_dataclass(self.model) else None
            return self.model(**data) if validate is None else validate(data)
        except Exception as error:
            raise SerializationError(
                f"JSON does not fit {self.model.__name__}: {error}"
            ) from error


def checked_codec(codec: Codec) -> Codec:
    """``codec`` as the producer and consumer call it: this module's codecs as they are,
    any other one wrapped so that what it does wrong surfaces as a ``SerializationError``
    at the call (the contract of every error here being a ``MessagingError``), not as a
    ``ValueError`` from inside it or a str body reaching a driver."""
    if type(codec) in (DefaultCodec, JsonCodec):
        return codec  # the common case: no wrapper on the per-message path
    return _Checked(codec)


class _Checked:
    __slots__ = ("_codec",)

    def __init__(self, codec: Codec) -> None:
        self._codec = codec

    def encode(self, value: object) -> tuple[bytes, str | None]:
        name = type(self._codec).__name__
        try:
            result = self._codec.encode(value)
        except SerializationError:
            raise
        except Exception as error:
            raise SerializationError(f"{name}.encode failed on a value of type "
                                     f"{type(value).__name__}: {type(error).__name__}: "
                                     f"{error}") from error
        match result:
            case (bytes() as body, str() | None as content_type):
                return body, content_type
        raise SerializationError(f"{name}.encode must return (bytes, content type or None), "
                                 f"got {result!r:.80}")

    def decode(self, body: bytes, content_type: str | None) -> object:
        try:
            return self._codec.decode(body, content_type)
        except SerializationError:
            raise
        except Exception as error:
            raise SerializationError(f"{type(self._codec).__name__}.decode failed: "
                                     f"{type(error).__name__}: {error}") from error
