"""Contract 12, wire format, as far as the public API can see it: the body a consumer gets
is exactly the bytes given (no private envelope around it), headers round-trip as
str -> str and a plain message carries no header but the ones sent plus ``content-type``,
keys round-trip, and the metadata (``id``, ``timestamp``, ``destination``, ``position``)
is what the API documents.

That the bytes on the broker are the same as seen here, and that headers are native
headers a plain client library reads, needs the broker's own client: adapters check it in
their own tests, through ``as_native()``.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

import messaging
from messaging_contracts.helpers import (
    MakeConsumer,
    MakeGroup,
    Timing,
    describe,
    receive_one,
    receive_until,
)

pytestmark = pytest.mark.messaging_contract("wire-format")

OCTETS = "application/octet-stream"
TEXT = "text/plain; charset=utf-8"
JSON = "application/json"

BODIES = {
    "every-byte": bytes(range(256)),
    "nul": b"\x00",
    "not-utf8": b"\xff\xfe\xfd",
    "looks-like-json": b'{"id": 7}',
    "text": "d\u00e9j\u00e0 vu \u2713".encode(),
    "large": bytes(range(256)) * 256,  # 64 KiB, or the most the backend accepts
}


@pytest.mark.parametrize("body", list(BODIES.values()), ids=list(BODIES))
def test_body_is_exactly_the_bytes_given(
    *, body: bytes, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    consumer = messaging_consumer(messaging_destination, messaging_group())
    limit = messaging_client.capabilities_for(messaging_destination).max_message_bytes
    body = body[:limit - len("content-type" + OCTETS)]
    messaging_client.producer().send(messaging_destination, body)

    message = receive_one(consumer, messaging_timing.deliver)

    assert message.body == body
    assert message.value == body
    assert message.headers == {"content-type": OCTETS}, "headers beyond the ones sent"
    message.ack()


def test_text_and_json_values_round_trip(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    consumer = messaging_consumer(messaging_destination, messaging_group())
    text = "h\u00e9llo \u2713 \U0001f600"
    document = {"id": 7, "items": [1, "two", None, 3.5, True], "name": "caf\u00e9"}
    producer = messaging_client.producer()
    producer.send(messaging_destination, text, key="text")
    producer.send(messaging_destination, document, key="json")

    got = {m.key: m for m in receive_until(consumer, 2, messaging_timing.deliver, ack=True)}

    assert set(got) == {"json", "text"}, describe(got.values())
    assert got["text"].body == text.encode("utf-8")
    assert got["text"].value == text
    assert got["text"].headers == {"content-type": TEXT}
    assert json.loads(got["json"].body) == document
    assert got["json"].value == document
    assert got["json"].headers == {"content-type": JSON}


def test_headers_round_trip_as_str_to_str(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    consumer = messaging_consumer(messaging_destination, messaging_group())
    headers = {
        "source": "web",
        "Mixed-Case": "Value With Spaces",
        "unicode": "\u00fcn\u00ef\u00e7\u00f8d\u00e9 \u2713",
        "number": "42",
        "json-text": '{"a": [1, 2]}',
    }
    most = messaging_client.capabilities_for(messaging_destination).max_headers
    if most is not None:  # leave room for content-type
        headers = dict(list(headers.items())[:max(1, most - 1)])
    messaging_client.producer().send(messaging_destination, b"payload", headers=headers)

    message = receive_one(consumer, messaging_timing.deliver)

    assert message.headers == {**headers, "content-type": OCTETS}
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in message.headers.items())
    assert message.body == b"payload"
    message.ack()


def test_an_explicit_content_type_is_kept(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    consumer = messaging_consumer(messaging_destination, messaging_group())
    body = b"<order id='7'/>"
    messaging_client.producer().send(messaging_destination, body,
                                      headers={"content-type": "application/xml"})
    message = receive_one(consumer, messaging_timing.deliver)
    assert message.headers == {"content-type": "application/xml"}
    assert message.body == body
    assert message.value == body
    message.ack()


@pytest.mark.parametrize("key", ["user-42", "\u043a\u043b\u044e\u0447 \u2713", None],
                         ids=["ascii", "unicode", "none"])
def test_key_round_trips(
    *, key: str | None, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    consumer = messaging_consumer(messaging_destination, messaging_group())
    messaging_client.producer().send(messaging_destination, b"keyed", key=key)
    message = receive_one(consumer, messaging_timing.deliver)
    assert message.key == key
    message.ack()


def test_message_metadata(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    consumer = messaging_consumer(messaging_destination, messaging_group())
    caps = messaging_client.capabilities_for(messaging_destination)
    before = dt.datetime.now(dt.UTC)
    sent_ids = messaging_client.producer().send_many(messaging_destination, [b"m1", b"m2"])
    after = dt.datetime.now(dt.UTC)

    got = sorted(receive_until(consumer, 2, messaging_timing.deliver, ack=True),
                 key=lambda m: m.body)

    assert [m.body for m in got] == [b"m1", b"m2"], describe(got)
    assert len(set(sent_ids)) == 2
    assert all(isinstance(i, str) and i for i in sent_ids)
    assert [m.id for m in got] == sent_ids, "the id send returned is the message's id"
    skew = dt.timedelta(seconds=5)  # broker and test clocks may differ slightly
    for message in got:
        assert message.destination == messaging_destination
        assert message.attempt == 1
        if message.timestamp is not None:
            assert message.timestamp.tzinfo is not None, "timestamps must be timezone-aware"
            assert before - skew <= message.timestamp <= after + skew, message.timestamp
        if caps.replay:
            assert isinstance(message.position, str)
            assert message.position
        else:
            assert message.position is None or isinstance(message.position, str)
