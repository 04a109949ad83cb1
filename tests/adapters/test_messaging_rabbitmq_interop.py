"""Interop with plain pika, both ways, on a real RabbitMQ (DESIGN contract 12).

What the adapter sends, a pika program reads from the group's queue with the body bytes,
the routing key and the headers unchanged; what a pika program publishes to the
destination's exchange, the adapter delivers with its headers turned into text.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pytest
from messaging_rabbitmq import _frames

import messaging

try:
    from broker_fixtures import rabbitmq_client, rabbitmq_url
except ImportError:  # tests/ is not on sys.path when only tests/adapters is collected
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from broker_fixtures import rabbitmq_client, rabbitmq_url

__all__ = ["rabbitmq_client", "rabbitmq_url"]

EVERY_BYTE = bytes(range(256))


@pytest.fixture
def plain(rabbitmq_url: str) -> Iterator[Any]:
    """A plain pika channel, as a service written without this library would use."""
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    try:
        yield connection.channel()
    finally:
        connection.close()


@pytest.fixture
def destination(rabbitmq_client: messaging.Client) -> Iterator[str]:
    name = f"interop-{uuid.uuid4().hex[:10]}"
    rabbitmq_client.admin.create(name, groups=["plain"])
    yield name
    rabbitmq_client.admin.delete(name)


def _get(channel: Any, queue: str, timeout: float = 10.0) -> tuple[Any, Any, bytes]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is not None:
            return method, properties, body
        time.sleep(0.05)
    raise AssertionError(f"nothing arrived in {queue!r} within {timeout} s")


def test_pika_reads_what_the_adapter_sent(rabbitmq_client: messaging.Client, plain: Any,
                                          destination: str) -> None:
    headers = {"source": "web", "unicode": "\u00fcn\u00efc\u00f8d\u00e9 \u2713",
               "json-text": '{"a": [1, 2]}'}
    sent_id = rabbitmq_client.producer().send(destination, EVERY_BYTE, key="user-42",
                                              headers=headers)

    method, properties, body = _get(plain, f"{destination}:plain")

    assert body == EVERY_BYTE
    assert method.exchange == destination
    assert method.routing_key == "user-42"
    # Nothing added, no envelope (a quorum queue's basic.get adds its x-delivery-count).
    assert {k: v for k, v in properties.headers.items() if k != "x-delivery-count"} == headers
    assert properties.content_type == "application/octet-stream"
    assert properties.delivery_mode == 2
    assert properties.message_id == sent_id
    assert abs(properties.timestamp - time.time()) < 60


def test_pika_reads_json_and_text_as_ordinary_content(rabbitmq_client: messaging.Client, plain: Any,
                                                      destination: str) -> None:
    producer = rabbitmq_client.producer()
    producer.send(destination, {"id": 7, "name": "caf\u00e9"})
    producer.send(destination, "h\u00e9llo")

    _, json_properties, json_body = _get(plain, f"{destination}:plain")
    _, text_properties, text_body = _get(plain, f"{destination}:plain")

    assert json_properties.content_type == "application/json"
    assert json.loads(json_body) == {"id": 7, "name": "caf\u00e9"}
    assert (text_properties.content_type, text_body) == (
        "text/plain; charset=utf-8", "h\u00e9llo".encode())
    assert set(json_properties.headers or {}) <= {"x-delivery-count"}
    assert set(text_properties.headers or {}) <= {"x-delivery-count"}


def test_the_adapter_reads_what_pika_published(rabbitmq_client: messaging.Client, plain: Any,
                                               destination: str) -> None:
    consumer = rabbitmq_client.consumer(destination, "billing")
    plain.confirm_delivery()
    plain.basic_publish(destination, "user-7", b'{"id": 7}', pika.BasicProperties(
        content_type="application/json", delivery_mode=2, message_id="plain-1",
        timestamp=int(time.time()),
        headers={"source": "legacy", "count": 5, "urgent": True, "raw": b"bytes",
                 "nested": {"a": 1}}))

    (message,) = consumer.receive(max_messages=10, timeout=10.0)

    assert message.body == b'{"id": 7}'
    assert message.value == {"id": 7}
    assert message.key == "user-7"
    assert message.id == "plain-1"
    assert message.attempt == 1
    assert message.headers == {"source": "legacy", "count": "5", "urgent": "true",
                               "raw": "bytes", "nested": '{"a":1}',
                               "content-type": "application/json"}
    assert message.timestamp is not None
    message.ack()
    consumer.close()
    assert rabbitmq_client.admin.depth(destination, "billing") == 0


def test_a_plain_message_without_an_id_keeps_one_across_redeliveries(
        rabbitmq_client: messaging.Client, plain: Any, destination: str) -> None:
    consumer = rabbitmq_client.consumer(destination, "billing")
    plain.confirm_delivery()
    plain.basic_publish(destination, "", EVERY_BYTE)  # no properties at all

    (first,) = consumer.receive(max_messages=10, timeout=10.0)
    assert (first.body, first.key, first.headers, first.value) == (EVERY_BYTE, None, {},
                                                                   EVERY_BYTE)
    first.nack(requeue=True)
    (again,) = consumer.receive(max_messages=10, timeout=10.0)

    assert (again.id, again.attempt, again.body) == (first.id, 2, EVERY_BYTE)
    again.ack()
    consumer.close()


def test_pika_reads_a_redelivered_message_unchanged(rabbitmq_client: messaging.Client, plain: Any,
                                                    destination: str) -> None:
    """A nack re-publishes the message into the group's queue: a plain consumer of that
    queue sees the same body, key and headers, plus the count in x-prior-deliveries."""
    consumer = rabbitmq_client.consumer(destination, "plain")
    rabbitmq_client.producer().send(destination, b"retry", key="k", headers={"h": "v"})
    (message,) = consumer.receive(max_messages=1, timeout=10.0)
    message.nack(requeue=True, delay=0.2)
    consumer.close()

    method, properties, body = _get(plain, f"{destination}:plain")

    assert (body, method.routing_key) == (b"retry", "k")
    assert properties.headers["h"] == "v"
    assert properties.headers["x-prior-deliveries"] == 1
    assert properties.message_id == message.id


def test_pika_reads_a_dead_letter_with_its_reason(rabbitmq_client: messaging.Client, plain: Any,
                                                  destination: str) -> None:
    letters = f"{destination}-dlq"
    rabbitmq_client.admin.create(letters, groups=["plain"])
    try:
        consumer = rabbitmq_client.consumer(destination, "billing", dead_letter=letters)
        rabbitmq_client.producer().send(destination, b"poison", key="k", headers={"h": "v"})
        (message,) = consumer.receive(max_messages=1, timeout=10.0)
        message.nack(requeue=False)

        method, properties, body = _get(plain, f"{letters}:plain")

        assert (body, method.routing_key) == (b"poison", "k")
        assert properties.headers["h"] == "v"
        assert properties.headers["x-dead-letter-reason"] == "rejected"
        assert properties.headers["x-original-destination"] == destination
        consumer.close()
    finally:
        rabbitmq_client.admin.delete(letters)


def test_the_connection_reads_through_the_adapters_frame_reader(
        rabbitmq_client: messaging.Client) -> None:
    # The reader replaces private names of pika (decision 0110): a pika that renamed one
    # would be read as pika reads, correct but slower, and only this test would notice.
    connection: Any = rabbitmq_client._driver._transport._connection  # type: ignore[attr-defined]
    assert connection._on_data_available.func is _frames.read
    assert connection._transport._MAX_RECV_BYTES == _frames.RECV_BYTES


@pytest.mark.parametrize("name", ["x-prior-deliveries", "x-delivery-count", "x-death"])
def test_a_header_read_for_attempt_is_refused_on_send(
        rabbitmq_client: messaging.Client, destination: str, name: str) -> None:
    """These are read for ``attempt`` and left out of ``Message.headers``: a user's
    ``x-prior-deliveries: 5`` made the first delivery attempt 6 (and a worker with five
    attempts dead-lettered it unhandled), and the header itself vanished."""
    producer = rabbitmq_client.producer()
    with pytest.raises(messaging.ConfigurationError, match=name):
        producer.send(destination, b"x", headers={name: "5", "trace": "t"})
    with pytest.raises(messaging.ConfigurationError, match=name):
        producer.send_many(destination, [b"y", b"z"], headers={name: "5"})
    assert rabbitmq_client.admin.depth(destination, "plain") == 0, "nothing was sent"
