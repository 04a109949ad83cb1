"""The Kafka adapter's ``seek`` on a topic of several partitions, on the real broker: a
member assigned them all moves every one of them, to each partition's own first offset
(which records deleted from its head move past 0), to each one's end, or past the
newest record by time.
"""

from __future__ import annotations

import datetime as dt
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

import messaging

try:
    from broker_fixtures import kafka_client, kafka_url
    from draining import drain
except ImportError:  # tests/ is not on sys.path when only tests/adapters is collected
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from broker_fixtures import kafka_client, kafka_url
    from draining import drain

__all__ = ["kafka_client", "kafka_url"]

GROUP = "replayers"
PARTITIONS = 3
KEYS = [f"k{n}" for n in range(12)]


@pytest.fixture
def topic(kafka_client: messaging.Client) -> Iterator[str]:
    name = f"seek-{uuid.uuid4().hex[:10]}"
    kafka_client.admin.create(name, partitions=PARTITIONS, groups=[GROUP])
    producer = kafka_client.producer()
    for key in KEYS:
        producer.send(name, key.encode(), key=key)
    yield name
    kafka_client.admin.delete(name)


def by_partition(messages: list[messaging.Message]) -> dict[int, list[str]]:
    result: dict[int, list[str]] = {}
    for message in messages:
        partition, _, _offset = str(message.position).partition(":")
        result.setdefault(int(partition), []).append(message.body.decode())
    return result


def assigned_everything(consumer: messaging.Consumer) -> list[messaging.Message]:
    """Join the group alone (so this member holds every partition) and read the backlog."""
    got = drain(consumer, len(KEYS))
    assert sorted(m.body.decode() for m in got) == sorted(KEYS)
    assert len(by_partition(got)) == PARTITIONS, "the keys should spread over every partition"
    return got


def test_seek_to_the_beginning_starts_each_partition_at_its_own_first_offset(
        kafka_client: messaging.Client, topic: str) -> None:
    with kafka_client.consumer(topic, group=GROUP) as consumer:
        first = by_partition(assigned_everything(consumer))
        # Delete the head record of one partition: its first offset is then 1, not 0.
        cut = min(first)
        bootstrap: str = kafka_client._driver.settings.bootstrap  # type: ignore[attr-defined]
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for future in admin.delete_records([TopicPartition(topic, cut, 1)]).values():
            future.result(timeout=10)

        consumer.seek("beginning")
        # The group's lag counts from the committed first offsets: a seek to offset 0
        # would count the deleted record (and leave the client to reset the position).
        assert kafka_client.admin.depth(topic, group=GROUP) == len(KEYS) - 1
        again = by_partition(drain(consumer, len(KEYS) - 1))
    expected = dict(first)
    expected[cut] = first[cut][1:]
    assert again == expected


def test_seek_to_the_end_moves_every_partition(kafka_client: messaging.Client, topic: str) -> None:
    with kafka_client.consumer(topic, group=GROUP) as consumer:
        assigned_everything(consumer)
        consumer.seek("beginning")
        assert consumer.receive(max_messages=1, timeout=5.0), "the beginning has the backlog"
        consumer.seek("end")
        assert consumer.receive(max_messages=len(KEYS), timeout=1.0) == []
        kafka_client.producer().send_many(topic, [b"after"] * 3)
        after = drain(consumer, 3)
    assert [m.body for m in after] == [b"after"] * 3


def test_seek_past_the_newest_record_by_time_is_the_end(
        kafka_client: messaging.Client, topic: str) -> None:
    with kafka_client.consumer(topic, group=GROUP) as consumer:
        assigned_everything(consumer)
        consumer.seek("beginning")
        consumer.seek(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
        assert consumer.receive(max_messages=len(KEYS), timeout=1.0) == []
        kafka_client.producer().send(topic, b"later", key=KEYS[0])
        [later] = drain(consumer, 1)
    assert later.body == b"later"


def test_a_position_outside_the_partition_is_kept_within_it(
        kafka_client: messaging.Client, topic: str) -> None:
    """Past the end (a hand-made position, one of a topic since made again) it is the
    end: librdkafka would reset the fetch to the beginning, and the records before the
    position would be skipped as seen, so the group would receive nothing. Before the
    start it is the start."""
    with kafka_client.consumer(topic, group=GROUP) as consumer:
        got = assigned_everything(consumer)
        partition = by_partition(got)
        busiest = max(partition, key=lambda p: len(partition[p]))
        consumer.seek(f"{busiest}:{len(partition[busiest]) + 1000}")
        assert consumer.receive(max_messages=len(KEYS), timeout=1.0) == []
        key = next(m.key for m in got if str(m.position).startswith(f"{busiest}:"))
        kafka_client.producer().send(topic, b"later", key=key)
        [later] = drain(consumer, 1)
        assert later.body == b"later"

        # Its head record deleted, the partition starts at offset 1: a seek to 0 is 1.
        bootstrap: str = kafka_client._driver.settings.bootstrap  # type: ignore[attr-defined]
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for future in admin.delete_records([TopicPartition(topic, busiest, 1)]).values():
            future.result(timeout=10)
        consumer.seek(f"{busiest}:0")
        kept = drain(consumer, len(partition[busiest]))
    assert [m.body.decode() for m in kept] == [*partition[busiest][1:], "later"]
    assert str(kept[0].position) == f"{busiest}:1"


def test_a_position_on_a_partition_the_topic_lacks_is_refused(
        kafka_client: messaging.Client, topic: str) -> None:
    """Before its first assignment a member keeps a seek for then, when a position on a
    partition it is not given is not its to move. One on a partition the topic does not
    have was kept that way too, and so ignored without a word; it is refused at once,
    as an assigned member refuses it."""
    with kafka_client.consumer(topic, group=GROUP) as consumer:
        with pytest.raises(messaging.ConfigurationError, match=f"no partition {PARTITIONS}"):
            consumer.seek(f"{PARTITIONS}:0")
        consumer.seek(f"{PARTITIONS - 1}:0")  # one it has is kept for the assignment
        assigned_everything(consumer)
        with pytest.raises(messaging.ConfigurationError, match="not assigned"):
            consumer.seek(f"{PARTITIONS}:0")
