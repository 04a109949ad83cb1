"""Codecs: bytes, str, JSON, dataclasses, pydantic; never pickle."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pydantic
import pytest

from messaging.codecs import BYTES_TYPE, JSON_TYPE, TEXT_TYPE, DefaultCodec, JsonCodec
from messaging.errors import SerializationError


@dataclasses.dataclass
class Order:
    id: int
    item: str


class Payment(pydantic.BaseModel):
    id: int
    amount: float


@pytest.mark.parametrize(
    ("value", "body", "content_type"),
    [
        (b"\x00raw", b"\x00raw", BYTES_TYPE),
        ("héllo", "héllo".encode(), TEXT_TYPE),
        ({"id": 7}, b'{"id":7}', JSON_TYPE),
        ([1, 2], b"[1,2]", JSON_TYPE),
        (Order(1, "tea"), b'{"id":1,"item":"tea"}', JSON_TYPE),
        (Payment(id=2, amount=1.5), b'{"id":2,"amount":1.5}', JSON_TYPE),
    ],
)
def test_encode_round_trips(value: object, body: bytes, content_type: str) -> None:
    codec = DefaultCodec()
    assert codec.encode(value) == (body, content_type)
    decoded = codec.decode(body, content_type)
    expected = value
    if dataclasses.is_dataclass(value) or isinstance(value, pydantic.BaseModel):
        expected = {"id": 1, "item": "tea"} if isinstance(value, Order) else {"id": 2,
                                                                             "amount": 1.5}
    assert decoded == expected


@pytest.mark.parametrize("value", [object(), {1, 2}, dt.datetime.now(), float("nan")])
def test_unserialisable_values_raise_serialization_error(value: object) -> None:
    with pytest.raises(SerializationError):
        DefaultCodec().encode(value)


def test_no_content_type_decodes_to_bytes() -> None:
    assert DefaultCodec().decode(b'{"a":1}', None) == b'{"a":1}'


def test_bad_json_raises_serialization_error() -> None:
    with pytest.raises(SerializationError):
        DefaultCodec().decode(b"{not json", JSON_TYPE)


def test_json_codec_builds_models() -> None:
    assert JsonCodec(Order).decode(b'{"id":3,"item":"x"}', None) == Order(3, "x")
    assert JsonCodec(Payment).decode(b'{"id":3,"amount":2}', None) == Payment(id=3, amount=2)
    with pytest.raises(SerializationError):
        JsonCodec(Order).decode(b'{"id":3}', None)
