"""The Kafka adapter's read-ahead on the real broker (decision 0108): an ack that follows
a full receive takes the next batch from the client, so that its commit records that
batch's delivery and the next receive needs no commit of its own. These tests read the
group's committed record back from Kafka: the read-ahead is counted while it is held,
and uncounted again when it is never handed out (close, seek).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

import messaging

try:
    from broker_fixtures import kafka_client, kafka_url
    from draining import drain
except ImportError:  # tests/ is not on sys.path when only tests/adapters is collected
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from broker_fixtures import kafka_client, kafka_url
    from draining import drain

__all__ = ["kafka_client", "kafka_url"]

GROUP = "workers"


@pytest.fixture
def topic(kafka_client: messaging.Client) -> Iterator[str]:
    name = f"ahead-{uuid.uuid4().hex[:10]}"
    kafka_client.admin.create(name, groups=[GROUP])
    kafka_client.producer().send_many(name, [f"m{n}".encode() for n in range(30)])
    yield name
    kafka_client.admin.delete(name)


def committed(kafka_client: messaging.Client, topic: str) -> tuple[int, str]:
    """The group's committed offset and metadata of partition 0, as Kafka stores them
    (read by a plain client that does not join the group, at the brokers the adapter's
    own URL parsing found)."""
    bootstrap: str = kafka_client._driver.settings.bootstrap  # type: ignore[attr-defined]
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP})
    try:
        [tp] = reader.committed([TopicPartition(topic, 0)], timeout=10)
        return tp.offset, tp.metadata or ""
    finally:
        reader.close()


def ack_a_full_batch(consumer: messaging.Consumer) -> None:
    """Receive a full batch of 10 and ack it: the ack takes the next 10 ahead."""
    first = consumer.receive(max_messages=10, timeout=5.0)
    assert [m.body for m in first] == [f"m{n}".encode() for n in range(10)]
    consumer.ack_many(first)


def test_the_ack_after_a_full_receive_records_the_next_batch(
        kafka_client: messaging.Client, topic: str) -> None:
    consumer = kafka_client.consumer(topic, GROUP)
    ack_a_full_batch(consumer)
    # The next ten count as delivered once already: a member killed now leaves them with
    # attempt 2 for the next owner, as if it had received them.
    assert committed(kafka_client, topic) == (10, "mk1;e=10;u=0-9;n=0-9:1")
    assert kafka_client.admin.depth(topic, GROUP) == 20
    second = consumer.receive(max_messages=10, timeout=0)
    assert [(m.body, m.attempt) for m in second] == [(f"m{n}".encode(), 1)
                                                     for n in range(10, 20)]
    consumer.ack_many(second)
    assert committed(kafka_client, topic)[0] == 20
    consumer.close()


def test_close_gives_a_read_ahead_back_uncounted(kafka_client: messaging.Client,
                                                 topic: str) -> None:
    consumer = kafka_client.consumer(topic, GROUP)
    ack_a_full_batch(consumer)
    consumer.close()
    assert committed(kafka_client, topic) == (10, "mk1;e=10;u=0-9;n=")
    with kafka_client.consumer(topic, GROUP) as second:
        got = drain(second, 20)
    assert [(m.body, m.attempt) for m in got] == [(f"m{n}".encode(), 1)
                                                  for n in range(10, 30)]


def test_a_seek_drops_a_read_ahead(kafka_client: messaging.Client, topic: str) -> None:
    consumer = kafka_client.consumer(topic, GROUP)
    ack_a_full_batch(consumer)
    consumer.seek("beginning")
    got = drain(consumer, 30)
    assert [(m.body, m.attempt) for m in got] == [(f"m{n}".encode(), 1) for n in range(30)]
    consumer.close()
