"""``python -m bench sqs``: the SQS adapter against plain boto3, in the same run.

For 100-byte and 10 KiB text bodies, at each batch size, the send, receive+ack and
end-to-end rates (see :mod:`bench.harness`; best of ``--rounds`` alternating runs) of
the adapter next to a baseline that does the same work with boto3 alone on the same kind
of queue (a standard queue: SQS has no durability setting to choose):

* send: ``producer.send_many`` (``send`` at batch 1) against ``SendMessageBatch`` of up
  to 10 entries (``SendMessage`` at batch 1);
* receive+ack: ``consumer.receive`` + ``ack_many`` (``ack`` at batch 1) against
  ``ReceiveMessage`` (up to 10, long poll) + ``DeleteMessageBatch`` (``DeleteMessage``).

Two baselines: ``bare`` sends the body alone; ``attrs`` also sends the two message
attributes the adapter puts on such a message (``content-type`` and ``message-id``), so
the second ratio is the cost of the adapter's code and the first adds what those
attributes cost the broker.

The adapter's destination has one group, so both put each message into one queue. The
broker comes from ``--url``, else ``$MESSAGING_TEST_SQS_URL``, else LocalStack on
127.0.0.1:4566 with the test credentials.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import messaging
from bench import harness
from bench.harness import GROUP, Ops, chunks

DEFAULT_URL = "sqs://test:test@?region=us-east-1&endpoint_url=http://127.0.0.1:4566"
DEFAULT_MESSAGES = 5_000  # LocalStack does ~2,000 msg/s: a few seconds per figure
_WAIT = 10.0
_SQS_BATCH = 10


def main(argv: list[str]) -> int:
    return harness.compare(
        argv, name="sqs", doc=__doc__, default_url=DEFAULT_URL,
        url_env="MESSAGING_TEST_SQS_URL", default_messages=DEFAULT_MESSAGES,
        body=lambda size: "x" * size,
        baselines={"bare": _raw_ops, "attrs": _raw_ops_with_attributes},
        title=lambda client: f"SQS adapter vs plain boto3 on {client.url}; text bodies; "
                             "ratio = adapter/boto3",
        summary="against bare boto3 {bare:.3f}, against boto3 with the same attributes "
                "{attrs:.3f}",
        # LocalStack's own throughput swings by tens of percent from one second to the
        # next: the sides take turns batch by batch, so a slow second slows both, and
        # more rounds before the best of each side is believable. boto3 is synchronous,
        # and so is the adapter: neither works while the other is timed.
        gate="attrs", rounds=5, interleave=True)


def _raw_ops_with_attributes(client: messaging.Client, destination: str, body: str) -> Ops:
    return _raw_ops(client, destination, body, attributes=True)


def _raw_ops(client: messaging.Client, destination: str, body: str,
             attributes: bool = False) -> Ops:
    native: Any = client.as_native()
    sqs = native.sqs
    queue_url = sqs.get_queue_url(QueueName=f"{destination}--{GROUP}")["QueueUrl"]

    def extra() -> dict[str, Any]:
        if not attributes:
            return {}
        return {"MessageAttributes": {
            "content-type": {"DataType": "String", "StringValue": "text/plain; charset=utf-8"},
            "message-id": {"DataType": "String", "StringValue": uuid.uuid4().hex}}}

    def send(count: int, batch: int) -> None:
        if batch == 1:
            for _ in range(count):
                sqs.send_message(QueueUrl=queue_url, MessageBody=body, **extra())
            return
        for size in chunks(count, _SQS_BATCH):
            sqs.send_message_batch(QueueUrl=queue_url, Entries=[
                {"Id": str(n), "MessageBody": body, **extra()} for n in range(size)])

    def drain(count: int, batch: int) -> None:
        got = 0
        deadline = time.monotonic() + _WAIT
        while got < count:
            response = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=min(batch, count - got, _SQS_BATCH),
                WaitTimeSeconds=1, MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"])
            received = response.get("Messages", [])
            if received:
                deadline = time.monotonic() + _WAIT
            elif time.monotonic() > deadline:
                raise messaging.Timeout(f"{count - got} messages did not arrive")
            if batch == 1:
                for message in received:
                    sqs.delete_message(QueueUrl=queue_url,
                                       ReceiptHandle=message["ReceiptHandle"])
            elif received:
                sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                    for n, m in enumerate(received)])
            got += len(received)

    return Ops(send, drain)
