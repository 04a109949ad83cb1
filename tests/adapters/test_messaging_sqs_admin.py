"""The AWS resources the SQS adapter creates, on the real broker: names, FIFO queues and
topics, the optional redrive policy, and the refusals of create."""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import messaging

try:
    from broker_fixtures import sqs_client, sqs_url
except ImportError:  # tests/ is not on sys.path when only tests/adapters is collected
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from broker_fixtures import sqs_client, sqs_url

__all__ = ["sqs_client", "sqs_url"]


@pytest.fixture
def names(sqs_client: messaging.Client) -> Iterator[list[str]]:
    created: list[str] = []
    yield created
    for name in created:
        sqs_client.admin.delete(name)


def native(client: messaging.Client) -> Any:
    return client.as_native()


def test_resources_follow_the_naming_scheme(sqs_client: messaging.Client,
                                            names: list[str]) -> None:
    name = f"admin.{uuid.uuid4().hex[:8]}"
    names.append(name)
    sqs_client.admin.create(name, groups=["billing", "audit.v2"])
    aws = name.replace(".", "_")
    sqs, sns = native(sqs_client).sqs, native(sqs_client).sns
    topics = [t["TopicArn"] for t in sns.list_topics()["Topics"]]
    assert any(arn.endswith(f":{aws}") for arn in topics)
    for group in ("billing", "audit_v2"):
        url = sqs.get_queue_url(QueueName=f"{aws}--{group}")["QueueUrl"]
        policy = json.loads(sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["Policy"])["Attributes"]["Policy"])
        assert policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"].endswith(aws)
    assert sorted(sqs_client.admin.groups(name)) == ["audit_v2", "billing"]
    assert name.replace(".", "_") in sqs_client.admin.destinations()
    caps = sqs_client.capabilities_for(name)
    assert (caps.ordering, caps.dedup, caps.max_delay) == ("none", False, 900.0)


def test_fifo_destination(sqs_client: messaging.Client, names: list[str]) -> None:
    name = f"admin-fifo-{uuid.uuid4().hex[:8]}"
    names.append(name)
    sqs_client.admin.create(name, groups=["g"], fifo=True)
    sqs_client.admin.create(name, groups=["g"], fifo=True)  # idempotent
    url = native(sqs_client).sqs.get_queue_url(QueueName=f"{name}--g.fifo")["QueueUrl"]
    attributes = native(sqs_client).sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["FifoQueue"])["Attributes"]
    assert attributes["FifoQueue"] == "true"
    caps = sqs_client.capabilities_for(name)
    assert (caps.ordering, caps.dedup, caps.max_delay, caps.dedup_window) == (
        "per_key", True, None, 300.0)
    with pytest.raises(messaging.ConfigurationError, match="FIFO"):
        sqs_client.admin.create(name, fifo=False)
    with pytest.raises(messaging.UnsupportedFeature):
        sqs_client.producer().send(name, b"x", delay=1)


def test_redrive_policy_moves_messages_after_max_receive_count(
        sqs_client: messaging.Client, names: list[str]) -> None:
    name, letters = f"admin-rd-{uuid.uuid4().hex[:8]}", f"admin-rd-dl-{uuid.uuid4().hex[:6]}"
    names.extend([name, letters])
    sqs_client.admin.create(name, groups=["g"], dead_letter=letters, max_receive_count=1)
    sqs_client.producer().send(name, b"poison", headers={"trace": "t1"})
    consumer = sqs_client.consumer(name, "g", visibility_timeout=1)
    (first,) = consumer.receive(max_messages=1, timeout=5)
    first.nack()  # received once: the next receive moves it to the dead-letter queue
    assert consumer.receive(max_messages=1, timeout=2) == []
    consumer.close()
    parked = sqs_client.consumer(letters, "g")
    deadline = time.monotonic() + 10
    got: list[messaging.Message] = []
    while not got and time.monotonic() < deadline:
        got = parked.receive(max_messages=1, timeout=1)
    assert [m.body for m in got] == [b"poison"]
    assert got[0].headers == {"trace": "t1", "content-type": "application/octet-stream"}
    got[0].ack()
    parked.close()


def test_create_refuses_what_it_cannot_make(sqs_client: messaging.Client) -> None:
    with pytest.raises(messaging.ConfigurationError, match="--"):
        sqs_client.admin.create("two--dashes")
    with pytest.raises(messaging.ConfigurationError, match="80"):
        sqs_client.admin.create("d" * 60, groups=["g" * 30])
    with pytest.raises(messaging.ConfigurationError, match="max_receive_count"):
        sqs_client.admin.create(f"x-{uuid.uuid4().hex[:6]}", max_receive_count=3)
    itself = f"x-{uuid.uuid4().hex[:6]}"
    with pytest.raises(messaging.ConfigurationError, match="itself"):
        sqs_client.admin.create(itself, groups=["g"], dead_letter=itself)
    assert itself not in sqs_client.admin.destinations(), "refused, yet created"
