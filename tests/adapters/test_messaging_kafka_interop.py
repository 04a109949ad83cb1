"""Interop with plain confluent-kafka, both ways, on the real broker: the adapter puts the
body bytes, the key and the headers on the wire as a plain Kafka record (no envelope),
reads what a plain producer wrote, and its group offsets are ordinary Kafka offsets.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

import messaging

try:
    from broker_fixtures import kafka_client, kafka_url
except ImportError:  # tests/ is not on sys.path when only tests/adapters is collected
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from broker_fixtures import kafka_client, kafka_url

__all__ = ["kafka_client", "kafka_url"]

BODY = bytes(range(256)) * 4
HEADERS = {"trace-id": "abc-123", "source": "web \u2713", "empty": ""}
WAIT = 15.0


def _bootstrap(url: str) -> str:
    return url.split("://", 1)[1].split("?", 1)[0].rstrip("/")


@pytest.fixture
def topic(kafka_client: messaging.Client) -> Iterator[str]:
    name = f"interop-{uuid.uuid4().hex[:10]}"
    kafka_client.admin.create(name, partitions=2)
    yield name
    kafka_client.admin.delete(name)


def _plain_consumer(kafka_url: str, group: str | None = None) -> Consumer:
    return Consumer({"bootstrap.servers": _bootstrap(kafka_url),
                     "group.id": group or f"plain-{uuid.uuid4().hex[:8]}",
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})


def _read_all(consumer: Consumer, topic: str, count: int) -> list[object]:
    consumer.assign([TopicPartition(topic, p, 0) for p in (0, 1)])
    records: list[object] = []
    deadline = time.monotonic() + WAIT
    while len(records) < count and time.monotonic() < deadline:
        for record in consumer.consume(count - len(records), 0.5):
            assert record.error() is None, record.error()
            records.append(record)
    return records


def test_a_message_sent_by_the_adapter_is_a_plain_kafka_record(
        kafka_url: str, kafka_client: messaging.Client, topic: str) -> None:
    kafka_client.producer().send(topic, BODY, key="user-42", headers=HEADERS)
    plain = _plain_consumer(kafka_url)
    try:
        (record,) = _read_all(plain, topic, 1)
    finally:
        plain.close()
    assert record.value() == BODY  # type: ignore[attr-defined]
    assert record.key() == b"user-42"  # type: ignore[attr-defined]
    headers = record.headers()  # type: ignore[attr-defined]
    assert dict(headers) == {**{k: v.encode() for k, v in HEADERS.items()},
                             "content-type": b"application/octet-stream"}
    assert len(headers) == len(HEADERS) + 1, "no header beyond the ones sent and content-type"


def test_values_keep_their_codec_as_a_plain_content_type_header(
        kafka_url: str, kafka_client: messaging.Client, topic: str) -> None:
    kafka_client.producer().send(topic, {"id": 7}, key="k")
    plain = _plain_consumer(kafka_url)
    try:
        (record,) = _read_all(plain, topic, 1)
    finally:
        plain.close()
    assert json.loads(record.value()) == {"id": 7}  # type: ignore[attr-defined]
    assert dict(record.headers()) == {"content-type": b"application/json"}  # type: ignore[attr-defined]


def test_a_record_written_by_a_plain_producer_is_consumed(
        kafka_url: str, kafka_client: messaging.Client, topic: str) -> None:
    consumer = kafka_client.consumer(topic, "readers")
    producer = Producer({"bootstrap.servers": _bootstrap(kafka_url)})
    producer.produce(topic, value=BODY, key=b"user-7", headers=[("trace-id", b"t-1"),
                                                                ("null", None)])
    producer.produce(topic, value=b"\xff\xfe not utf-8", key=b"\xff\x00")
    producer.produce(topic, value=None)  # a tombstone
    assert producer.flush(WAIT) == 0

    got: list[messaging.Message] = []
    deadline = time.monotonic() + WAIT
    while len(got) < 3 and time.monotonic() < deadline:
        got += consumer.receive(max_messages=10, timeout=0.5)
    by_body = {message.body: message for message in got}
    assert set(by_body) == {BODY, b"\xff\xfe not utf-8", b""}
    first = by_body[BODY]
    assert first.key == "user-7"
    assert first.headers == {"trace-id": "t-1", "null": ""}
    assert first.value == BODY  # no content-type: the bytes as they are
    assert first.attempt == 1
    binary_key = by_body[b"\xff\xfe not utf-8"]
    assert binary_key.headers == {}
    assert isinstance(binary_key.key, str)
    consumer.ack_many(got)
    consumer.close()


def test_a_binary_key_is_written_back_as_the_same_bytes(
        kafka_url: str, kafka_client: messaging.Client, topic: str) -> None:
    """A service that forwards what it read (or dead-letters it) keeps the key's bytes."""
    producer = Producer({"bootstrap.servers": _bootstrap(kafka_url)})
    consumer = kafka_client.consumer(topic, "forwarders")
    producer.produce(topic, value=b"x", key=b"\xff\x00k", partition=0)
    assert producer.flush(WAIT) == 0
    deadline = time.monotonic() + WAIT
    got: list[messaging.Message] = []
    while not got and time.monotonic() < deadline:
        got = consumer.receive(max_messages=1, timeout=0.5)
    (message,) = got
    message.ack()
    consumer.close()
    forward = f"{topic}-fwd"
    kafka_client.admin.create(forward)
    try:
        kafka_client.producer().send(forward, message.body, key=message.key)
        plain = _plain_consumer(kafka_url)
        try:
            plain.assign([TopicPartition(forward, 0, 0)])
            records = plain.consume(1, WAIT)
        finally:
            plain.close()
        assert records
        assert records[0].key() == b"\xff\x00k"
    finally:
        kafka_client.admin.delete(forward)


def test_group_offsets_are_plain_kafka_offsets(
        kafka_url: str, kafka_client: messaging.Client, topic: str) -> None:
    """What the adapter acked, a plain consumer of the same group does not read again."""
    group = f"shared-{uuid.uuid4().hex[:8]}"
    consumer = kafka_client.consumer(topic, group)
    kafka_client.producer().send_many(topic, [f"m{i}".encode() for i in range(6)], key="one")
    got: list[messaging.Message] = []
    deadline = time.monotonic() + WAIT
    while len(got) < 6 and time.monotonic() < deadline:
        got += consumer.receive(max_messages=6, timeout=0.5)
    consumer.ack_many(got[:4])
    consumer.close()

    plain = _plain_consumer(kafka_url, group)
    plain.subscribe([topic])
    try:
        values: list[bytes] = []
        deadline = time.monotonic() + WAIT
        while len(values) < 2 and time.monotonic() < deadline:
            values += [r.value() or b"" for r in plain.consume(10, 0.5) if r.error() is None]
    finally:
        plain.close()
    assert sorted(values) == [b"m4", b"m5"]


def test_a_delayed_send_is_a_plain_record_with_one_header(
        kafka_url: str, kafka_client: messaging.Client, topic: str) -> None:
    before = time.time()
    kafka_client.producer().send(topic, b"later", delay=30.0)
    plain = _plain_consumer(kafka_url)
    try:
        (record,) = _read_all(plain, topic, 1)
    finally:
        plain.close()
    headers = dict(record.headers())  # type: ignore[attr-defined]
    assert record.value() == b"later"  # type: ignore[attr-defined]
    deliver_at = int(headers.pop("x-deliver-at")) / 1000
    assert before + 29 <= deliver_at <= time.time() + 31
    assert headers == {"content-type": b"application/octet-stream"}


def test_the_delay_header_is_the_adapters_own(kafka_client: messaging.Client,
                                               topic: str) -> None:
    """A delayed message read back has no ``x-deliver-at`` among its headers, so that
    forwarding it with its headers delays nothing; a user's own header of that name is
    refused, as it would set a delay."""
    producer = kafka_client.producer()
    producer.send(topic, b"later", headers={"trace": "t1"}, delay=1.0)
    with kafka_client.consumer(topic, "forwarders") as consumer:
        consumer.seek("beginning")
        deadline = time.monotonic() + 15
        got: list[messaging.Message] = []
        while not got and time.monotonic() < deadline:
            got = consumer.receive(max_messages=1, timeout=1.0)
        assert [m.body for m in got] == [b"later"]
        assert got[0].headers == {"trace": "t1", "content-type": "application/octet-stream"}
        got[0].ack()
    with pytest.raises(messaging.ConfigurationError, match="x-deliver-at"):
        producer.send(topic, b"x", headers={"x-deliver-at": "4102444800000"})
    with pytest.raises(messaging.ConfigurationError, match="x-deliver-at"):
        producer.send_many(topic, [b"y"], headers={"x-deliver-at": "1"})


def test_a_consumer_property_that_fits_the_members_fits_the_admin_too(
        kafka_url: str, topic: str) -> None:
    """``kafka_config`` goes to every client. The admin reads and writes group offsets
    through a consumer of the group that never joins it; given the members' short
    ``max.poll.interval.ms`` without their ``session.timeout.ms``, librdkafka refused to
    make it, so ``create(groups=...)`` and ``depth`` raised ConfigurationError for a
    configuration the members run with."""
    with messaging.connect(kafka_url, session_timeout=6.0,
                           kafka_config={"max.poll.interval.ms": 8000}) as client:
        client.admin.create(topic, groups=["g"])
        client.producer().send(topic, b"one")
        assert client.admin.depth(topic, "g") == 1
        consumer = client.consumer(topic, "g")
        (message,) = consumer.receive(max_messages=1, timeout=WAIT)
        message.ack()
        assert client.admin.depth(topic, "g") == 0
        consumer.close()


def test_properties_of_one_client_kind_are_not_warned_about_by_the_others(
        kafka_url: str, topic: str, caplog: pytest.LogCaptureFixture) -> None:
    """A consumer property in ``kafka_config`` (and a producer one) is expected to be
    ignored by the clients of the other kind, which librdkafka warned about on every
    connect; it still says so at DEBUG."""
    config = {"fetch.wait.max.ms": 100, "batch.num.messages": 5000}
    with caplog.at_level(logging.WARNING, logger="messaging.kafka"), messaging.connect(
            kafka_url, kafka_config=config) as client:
        client.admin.create(topic, groups=["g"])
        client.producer().send(topic, b"one")
        consumer = client.consumer(topic, "g")
        assert len(consumer.receive(max_messages=1, timeout=WAIT)) == 1
        consumer.close()
    assert not [r.getMessage() for r in caplog.records if "will be ignored" in r.getMessage()]
    with caplog.at_level(logging.DEBUG, logger="messaging.kafka"), messaging.connect(
            kafka_url, kafka_config=config):
        pass
    ignored = [r for r in caplog.records if "will be ignored" in r.getMessage()]
    assert ignored
    assert {r.levelno for r in ignored} == {logging.DEBUG}
