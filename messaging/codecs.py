"""Codecs: values to body bytes and back. Never pickle.

The body on the wire is exactly the encoded bytes; what kind of bytes they are travels
in the standard ``content-type`` header, so a plain-client consumer sees ordinary JSON
or text and a plain-client producer's message decodes by its own header. A message
without ``content-type`` decodes to its raw bytes.

Encoding rules of :class:`DefaultCodec`: ``bytes`` as is (``application/octet-stream``),
``str`` as UTF-8 (``text/plain; charset=utf-8``), dataclass instances and pydantic
models as JSON of their fields, anything ``json.dumps`` accepts as JSON
(``application/json``). :class:`JsonCodec` with a ``model`` decodes JSON into that
dataclass or pydantic model.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Protocol, runtime_checkable

from messaging.errors import SerializationError

CONTENT_TYPE = "content-type"
JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"
BYTES_TYPE = "application/octet-stream"


@runtime_checkable
class Codec(Protocol):
    """Turns values into (body, content type) and bodies back into values."""

    def encode(self, value: object) -> tuple[bytes, str | None]:
        """Return the body and its content type; raise SerializationError if impossible."""
        ...

    def decode(self, body: bytes, content_type: str | None) -> object:
        """Return the value; raise SerializationError if the body does not decode."""
        ...


def _jsonable(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        return model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class DefaultCodec:
    """bytes, str and JSON (dataclasses and pydantic models included)."""

    def encode(self, value: object) -> tuple[bytes, str | None]:
        if type(value) is bytes:  # the common case first: no copy, no union isinstance
            return value, BYTES_TYPE
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value), BYTES_TYPE
        if isinstance(value, str):
            return value.encode("utf-8"), TEXT_TYPE
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
                return body.decode("utf-8")
        except (UnicodeDecodeError, ValueError) as error:
            raise SerializationError(f"body does not decode as {kind}: {error}") from error
        return body


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
            return self.model(**data)
        except Exception as error:
            raise SerializationError(
                f"JSON does not fit {self.model.__name__}: {error}"
            ) from error
