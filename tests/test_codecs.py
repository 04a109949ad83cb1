"""Codecs: bytes, str, JSON, dataclasses, pydantic; never pickle."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import sys
import uuid

import pydantic
import pytest

import messaging
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


@pytest.mark.parametrize("value", [object(), {1, 2}, {"raw": b"x"}, float("nan"),
                                   "\udcff lone surrogate"])  # was a bare UnicodeEncodeError
def test_unserialisable_values_raise_serialization_error(value: object) -> None:
    with pytest.raises(SerializationError):
        DefaultCodec().encode(value)


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Placed:
    at: dt.datetime
    day: dt.date


@dataclasses.dataclass
class Event:
    id: uuid.UUID
    amount: decimal.Decimal
    colour: Colour
    placed: Placed
    wait: dt.timedelta


def test_a_dataclass_with_times_uuids_decimals_and_enums_round_trips() -> None:
    event = Event(uuid.UUID(int=7), decimal.Decimal("1.10"), Colour.RED,
                  Placed(dt.datetime(2026, 12, 4, 1, 2, 3, tzinfo=dt.UTC), dt.date(2026, 1, 2)),
                  dt.timedelta(seconds=90))
    body, content_type = DefaultCodec().encode(event)
    assert json.loads(body) == {
        "id": "00000000-0000-0000-0000-000000000007", "amount": "1.10", "colour": "red",
        "placed": {"at": "2026-12-04T01:02:03Z", "day": "2026-01-02"}, "wait": "PT1M30S"}
    assert content_type == JSON_TYPE
    assert JsonCodec(Event).decode(body, content_type) == event
    assert DefaultCodec().encode({"at": dt.date(2026, 1, 2)})[0] == b'{"at":"2026-01-02"}'


def test_without_pydantic_a_datetime_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pydantic_core", None)  # import now fails
    with pytest.raises(SerializationError, match=r"messaging\[pydantic\]"):
        DefaultCodec().encode(Placed(dt.datetime(2026, 1, 1), dt.date(2026, 1, 1)))
    assert DefaultCodec().encode(Order(1, "tea"))[0] == b'{"id":1,"item":"tea"}'


def test_text_decodes_by_its_charset() -> None:
    codec = DefaultCodec()
    assert codec.decode("crème".encode("latin-1"), "text/plain; charset=ISO-8859-1") == "crème"
    assert codec.decode("crème".encode("utf-16"), 'text/plain;charset="utf-16"') == "crème"
    assert codec.decode("crème".encode(), "text/plain") == "crème"
    with pytest.raises(SerializationError, match="no-such"):
        codec.decode(b"x", "text/plain; charset=no-such")


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


def test_a_content_type_header_is_found_whatever_its_case() -> None:
    with messaging.connect(f"memory://{uuid.uuid4().hex}") as client:
        client.admin.create("orders", groups=["g"])
        producer = client.producer()
        producer.send("orders", b'{"id":1}', headers={"Content-Type": "application/json"})
        with client.consumer("orders", "g") as consumer:
            (message,) = consumer.receive(1, timeout=1)
    assert message.value == {"id": 1}
    assert message.headers == {"Content-Type": "application/json"}, "one, the user's own"


class _StrBody:
    def encode(self, value: object) -> tuple[bytes, str | None]:
        return "text", "text/plain"  # type: ignore[return-value]

    def decode(self, body: bytes, content_type: str | None) -> object:
        raise KeyError("no decoder")


class _Raising:
    def encode(self, value: object) -> tuple[bytes, str | None]:
        raise ValueError("cannot")

    def decode(self, body: bytes, content_type: str | None) -> object:
        return body


@pytest.mark.parametrize("codec", [_StrBody(), _Raising()], ids=["str-body", "raising"])
def test_a_custom_codec_that_misbehaves_gives_a_serialization_error_and_sends_nothing(
    codec: object,
) -> None:
    with messaging.connect(f"memory://{uuid.uuid4().hex}") as client:
        client.admin.create("orders", groups=["g"])
        producer = client.producer(codec)  # type: ignore[arg-type]
        with pytest.raises(SerializationError):
            producer.send("orders", 1)
        with pytest.raises(SerializationError):
            producer.send_many("orders", [1, 2])
        assert client.admin.depth("orders", "g") == 0


def test_a_custom_codec_that_fails_to_decode_gives_a_serialization_error() -> None:
    with messaging.connect(f"memory://{uuid.uuid4().hex}") as client:
        client.admin.create("orders", groups=["g"])
        client.producer().send("orders", b"raw")
        with client.consumer("orders", "g", codec=_StrBody()) as consumer:  # type: ignore[arg-type]
            (message,) = consumer.receive(1, timeout=1)
            with pytest.raises(SerializationError) as caught:
                _ = message.value
            assert isinstance(caught.value.__cause__, KeyError)
            message.ack()
