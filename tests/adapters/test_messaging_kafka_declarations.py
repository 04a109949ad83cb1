"""A group declared while it has members on another topic (one service's group reading
two topics is one Kafka consumer group): Kafka refuses the declaring commit from
outside, so the declaration waits in a side group on the broker until the group's member
commits it as the group's own (``messaging_kafka._declarations``). The contract tests
``test_a_group_declared_while_busy_elsewhere_finds_its_backlog`` and
``..._exists_from_its_first_consumer`` show that nothing is lost; these show what is on
the broker meanwhile and after.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from messaging_kafka._declarations import side_group

import messaging

try:
    from broker_fixtures import kafka_client, kafka_url
    from draining import drain
except ImportError:  # tests/ is not on sys.path when only tests/adapters is collected
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from broker_fixtures import kafka_client, kafka_url
    from draining import drain

__all__ = ["kafka_client", "kafka_url"]

WAIT = 15.0


@pytest.fixture
def topics(kafka_client: messaging.Client) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for name in made:
        kafka_client.admin.delete(name)


def _group_names(client: messaging.Client) -> list[str]:
    """Every consumer group on the cluster, side groups too (as plain Kafka tools list
    them), through the driver's admin."""
    return client._driver._admin.groups()  # type: ignore[attr-defined,no-any-return]


def _busy(client: messaging.Client, topics: list[str], group: str) -> messaging.Consumer:
    elsewhere = f"decl-elsewhere-{uuid.uuid4().hex[:8]}"
    topics.append(elsewhere)
    client.admin.create(elsewhere, groups=[group])
    client.producer().send(elsewhere, b"elsewhere")
    consumer = client.consumer(elsewhere, group)
    assert [m.body for m in drain(consumer, 1)] == [b"elsewhere"]
    return consumer


def test_a_declaration_kafka_refuses_waits_in_a_side_group_until_the_member_commits_it(
        kafka_client: messaging.Client, topics: list[str]) -> None:
    group = f"decl-{uuid.uuid4().hex[:8]}"
    busy = _busy(kafka_client, topics, group)
    topic = f"decl-{uuid.uuid4().hex[:8]}"
    topics.append(topic)

    kafka_client.admin.create(topic, partitions=2, groups=[group])

    side = side_group(topic, group)
    assert side in _group_names(kafka_client)
    assert kafka_client.admin.groups(topic) == [group]  # the side group is not listed
    kafka_client.producer().send_many(topic, [b"one", b"two", b"three"])
    assert kafka_client.admin.depth(topic, group) == 3

    consumer = kafka_client.consumer(topic, group)
    assert sorted(m.body for m in drain(consumer, 3)) == [b"one", b"three", b"two"]
    deadline = time.monotonic() + WAIT
    while side in _group_names(kafka_client) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert side not in _group_names(kafka_client), "the side group outlived its use"
    assert kafka_client.admin.groups(topic) == [group]
    assert kafka_client.admin.depth(topic, group) == 0
    consumer.close()
    busy.close()


def test_a_group_without_members_is_declared_directly(
        kafka_client: messaging.Client, topics: list[str]) -> None:
    group, topic = f"decl-{uuid.uuid4().hex[:8]}", f"decl-{uuid.uuid4().hex[:8]}"
    topics.append(topic)

    kafka_client.admin.create(topic, groups=[group])

    assert side_group(topic, group) not in _group_names(kafka_client)
    bootstrap = kafka_client._driver.settings.bootstrap  # type: ignore[attr-defined]
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:  # (not AdminClient.list_consumer_group_offsets: see docs/adapters/kafka.md)
        assert [tp.offset for tp in reader.committed([TopicPartition(topic, 0)], 10)] == [0]
    finally:
        reader.close()
