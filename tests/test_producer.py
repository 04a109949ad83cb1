"""The portable producer's preparation of a ``send_many`` batch, on the reference engine:
values of several kinds and Records in one call, and the size check of each."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

import messaging
from messaging.codecs import DefaultCodec
from messaging.driver import OutgoingMessage
from messaging.producer import _PlainValues

OCTETS = "application/octet-stream"
TEXT = "text/plain; charset=utf-8"
JSON = "application/json"


@pytest.fixture
def client() -> Iterator[messaging.Client]:
    with messaging.connect(f"memory://{uuid.uuid4().hex}?max_message_bytes=200") as client:
        client.admin.create("orders", groups=["default"])
        yield client


def test_a_batch_of_mixed_values_and_records_keeps_each_message_its_own(
        client: messaging.Client) -> None:
    values: list[object] = [b"a", "b", {"c": 1}, b"d",
                            messaging.Record(b"e", key="own", headers={"x": "record"}), "f"]
    client.producer().send_many("orders", values, key="shared", headers={"x": "call"})

    with client.consumer("orders") as consumer:
        got = consumer.receive(10, timeout=1)
    assert [m.value for m in got] == [b"a", "b", {"c": 1}, b"d", b"e", "f"]
    assert [m.key for m in got] == ["shared"] * 4 + ["own", "shared"]
    assert [m.headers for m in got] == [
        {"x": "call", "content-type": OCTETS}, {"x": "call", "content-type": TEXT},
        {"x": "call", "content-type": JSON}, {"x": "call", "content-type": OCTETS},
        {"x": "record", "content-type": OCTETS}, {"x": "call", "content-type": TEXT}]
    # Each message has a headers dict of its own: changing one changes no other.
    got[0].headers["x"] = "changed"
    assert got[3].headers["x"] == "call"


def test_a_value_too_large_for_its_content_type_sends_nothing(
        client: messaging.Client) -> None:
    # 180 bytes fit as bytes with the call's headers, but not as text: the text
    # content-type is the longer header, so the size check must use each value's own.
    fits_as_bytes = b"x" * (200 - len("content-type" + OCTETS) - len("x" + "call"))
    producer = client.producer()
    producer.send_many("orders", [fits_as_bytes], headers={"x": "call"})
    with pytest.raises(messaging.MessageTooLarge):
        producer.send_many("orders", [b"small", fits_as_bytes.decode(), b"small"],
                           headers={"x": "call"})

    assert client.admin.depth("orders", group="default") == 1


def test_a_plain_value_is_prepared_as_the_named_tuple_would_build_it(
        client: messaging.Client) -> None:
    # prepare_all builds the tuple without OutgoingMessage's own constructor: whatever
    # fields that gains, a plain value must still come out equal to one it built.
    plain = _PlainValues(DefaultCodec(), "orders", "k", {"x": "call"},
                         client.capabilities_for("orders"))
    [prepared] = plain.prepare_all([b"v"], lambda record: pytest.fail("not a Record"))
    assert prepared == OutgoingMessage(b"v", "k", {"x": "call", "content-type": OCTETS})
    assert type(prepared) is OutgoingMessage
