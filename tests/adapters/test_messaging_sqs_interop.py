"""Interop both ways with plain boto3, on the real broker: what the adapter sends is an
ordinary SQS message (body unchanged, headers as String message attributes), and what a
plain client sends, to a group queue or to the destination's SNS topic, is consumed by
the adapter with body and headers unchanged."""

from __future__ import annotations

import base64
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
def destination(sqs_client: messaging.Client) -> Iterator[str]:
    name = f"interop-{uuid.uuid4().hex[:10]}"
    yield name
    sqs_client.admin.delete(name)


def plain_receive(sqs: Any, queue_url: str, count: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while len(got) < count and time.monotonic() < deadline:
        response = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                       WaitTimeSeconds=1, MessageAttributeNames=["All"])
        got.extend(response.get("Messages", []))
    for message in got:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return got


def attributes(native: dict[str, Any]) -> dict[str, str]:
    return {name: value["StringValue"]
            for name, value in native.get("MessageAttributes", {}).items()}


def test_adapter_to_plain_client(sqs_client: messaging.Client, destination: str) -> None:
    consumer = sqs_client.consumer(destination, "plain")  # creates the group's queue
    queue_url = consumer.as_native().queue_url  # type: ignore[attr-defined]
    sqs = sqs_client.as_native().sqs  # type: ignore[attr-defined]
    assert queue_url.endswith(f"/{destination}--plain")
    producer = sqs_client.producer()
    text_id = producer.send(destination, "d\u00e9j\u00e0 vu \u2713", key="user-42",
                            headers={"trace-id": "abc-123"})
    json_id = producer.send(destination, {"id": 7}, headers={"source": "web"})
    raw = bytes(range(256))
    bytes_id = producer.send(destination, raw)

    got = {attributes(m)["message-id"]: m for m in plain_receive(sqs, queue_url, 3)}

    assert set(got) == {text_id, json_id, bytes_id}
    text = got[text_id]
    assert text["Body"] == "d\u00e9j\u00e0 vu \u2713"
    assert attributes(text) == {"trace-id": "abc-123", "message-key": "user-42",
                                "content-type": "text/plain; charset=utf-8",
                                "message-id": text_id}
    assert got[json_id]["Body"] == '{"id":7}' or got[json_id]["Body"] == '{"id": 7}'
    assert attributes(got[json_id])["source"] == "web"
    binary = got[bytes_id]
    assert attributes(binary)["content-type"] == "application/octet-stream"
    assert base64.b64decode(binary["Body"]) == raw  # binary in a text body: base64
    consumer.close()


def test_plain_client_to_adapter_through_the_queue(sqs_client: messaging.Client,
                                                   destination: str) -> None:
    consumer = sqs_client.consumer(destination, "workers")
    queue_url = consumer.as_native().queue_url  # type: ignore[attr-defined]
    sqs = sqs_client.as_native().sqs  # type: ignore[attr-defined]
    sent = sqs.send_message(QueueUrl=queue_url, MessageBody='{"order": 7, "note": "\u2713"}',
                            MessageAttributes={
                                "content-type": {"DataType": "String",
                                                 "StringValue": "application/json"},
                                "tenant": {"DataType": "String", "StringValue": "acme"},
                                "retries": {"DataType": "Number", "StringValue": "3"}})

    (message,) = consumer.receive(max_messages=10, timeout=5)

    assert message.body == '{"order": 7, "note": "\u2713"}'.encode()
    assert message.value == {"order": 7, "note": "\u2713"}
    assert message.headers == {"content-type": "application/json", "tenant": "acme",
                               "retries": "3"}
    assert message.id == sent["MessageId"]
    assert (message.key, message.attempt) == (None, 1)
    message.ack()
    assert sqs_client.admin.depth(destination, "workers") == 0
    consumer.close()


def test_plain_client_to_adapter_through_the_topic(sqs_client: messaging.Client,
                                                   destination: str) -> None:
    """A message published to the SNS topic reaches every group (raw delivery)."""
    sqs_client.admin.create(destination, groups=["a", "b"])
    sns = sqs_client.as_native().sns  # type: ignore[attr-defined]
    topic_arn = next(t["TopicArn"] for t in sns.list_topics()["Topics"]
                     if t["TopicArn"].endswith(f":{destination}"))
    sns.publish(TopicArn=topic_arn, Message="hello groups", MessageAttributes={
        "source": {"DataType": "String", "StringValue": "plain-sns"}})

    for group in ("a", "b"):
        consumer = sqs_client.consumer(destination, group)
        (message,) = consumer.receive(max_messages=10, timeout=5)
        assert message.body == b"hello groups"
        assert message.headers == {"source": "plain-sns"}
        message.ack()
        consumer.close()


def test_plain_client_key_on_a_fifo_destination(sqs_client: messaging.Client) -> None:
    name = f"interop-fifo-{uuid.uuid4().hex[:8]}"
    sqs_client.admin.create(name, groups=["g"], fifo=True)
    try:
        consumer = sqs_client.consumer(name, "g")
        queue_url = consumer.as_native().queue_url  # type: ignore[attr-defined]
        assert queue_url.endswith(f"/{name}--g.fifo")
        sqs = sqs_client.as_native().sqs  # type: ignore[attr-defined]
        for n in range(3):
            sqs.send_message(QueueUrl=queue_url, MessageBody=f"step-{n}",
                             MessageGroupId="user-7", MessageDeduplicationId=f"d{n}")
        got: list[messaging.Message] = []
        deadline = time.monotonic() + 10
        while len(got) < 3 and time.monotonic() < deadline:
            for message in consumer.receive(max_messages=10, timeout=1):
                got.append(message)
                message.ack()
        assert [m.body for m in got] == [b"step-0", b"step-1", b"step-2"]
        assert {m.key for m in got} == {"user-7"}
        consumer.close()
    finally:
        sqs_client.admin.delete(name)
