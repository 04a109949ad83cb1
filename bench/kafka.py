"""``python -m bench kafka``: the Kafka adapter against plain confluent-kafka, in one run.

For 100-byte and 10 KiB bodies, at each batch size, the send, receive+ack and end-to-end
rates (see :mod:`bench.harness`; best of ``--rounds`` alternating runs) of the adapter
next to a baseline that does the same work with confluent-kafka alone, with the same
durability and client settings (``acks=all``, idempotence, the same ``linger.ms``, the
same consumer configuration, one partition):

* send: ``producer.send_many`` (``send`` at batch 1) against ``produce`` of each message
  with a delivery callback, then ``flush`` (one flush per message at batch 1);
* receive+ack: ``consumer.receive(max_messages=batch)`` + ``ack_many`` (``ack`` at
  batch 1) against ``consume(batch)``, reading each record's value, key and headers,
  then a synchronous ``commit`` of the batch's offsets (of each record at batch 1).

Two baselines: ``bare`` sends the body alone; ``hdr`` also sends the ``content-type``
header the adapter puts on a bytes body, so the second ratio is the cost of the
adapter's code alone and the first adds what that header costs the broker.

The broker comes from ``--url``, else ``$MESSAGING_TEST_KAFKA_URL``, else
``kafka://127.0.0.1:9092``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import messaging
from bench import harness
from bench.harness import GROUP, Ops, chunks

DEFAULT_URL = "kafka://127.0.0.1:9092"
DEFAULT_MESSAGES = 20_000
_WAIT = 10.0
_CONTENT_TYPE = ("content-type", b"application/octet-stream")


def main(argv: list[str]) -> int:
    return harness.compare(
        argv, name="kafka", doc=__doc__, default_url=DEFAULT_URL,
        url_env="MESSAGING_TEST_KAFKA_URL", default_messages=DEFAULT_MESSAGES,
        messages_for=_messages_for, body=bytes,
        baselines={"bare": _raw_ops, "hdr": _raw_ops_with_header},
        title=lambda client: f"Kafka adapter vs plain confluent-kafka on {client.url}; "
                             "acks=all, idempotent; ratio = adapter/plain",
        summary="against bare confluent-kafka {bare:.3f}, against confluent-kafka with the "
                "same header {hdr:.3f}",
        gate="hdr")


def _messages_for(batch: int, messages: int) -> int:
    """At batch 1 every send waits for its acks=all round trip: measure fewer."""
    return messages if batch > 1 else min(messages, max(messages // 40, 100))


def _raw_ops_with_header(client: messaging.Client, destination: str, body: bytes) -> Ops:
    return _raw_ops(client, destination, body, header=True)


def _raw_ops(client: messaging.Client, destination: str, body: bytes,
             header: bool = False) -> Ops:
    """The same work with confluent-kafka alone, configured as the adapter configures
    its clients (the same settings object builds both configurations)."""
    from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

    driver: Any = client._driver
    settings = driver.settings
    quiet = logging.getLogger("bench.kafka.plain")
    producer = Producer(settings.producer(quiet, None))
    config = settings.consumer(GROUP, quiet, None, lambda *_: None)
    consumer = Consumer(config)
    consumer.subscribe([destination])
    headers: list[tuple[str, str | bytes | None]] | None = [_CONTENT_TYPE] if header else None
    failures: list[KafkaError] = []

    def delivered(error: KafkaError | None, _message: object) -> None:
        if error is not None:
            failures.append(error)

    def send(count: int, batch: int) -> None:
        for size in chunks(count, batch):
            for _ in range(size):
                producer.produce(destination, value=body, headers=headers,
                                 on_delivery=delivered)
            producer.flush()
        if failures:
            raise RuntimeError(f"plain producer: {failures[0]}")

    def drain(count: int, batch: int) -> None:
        got = 0
        deadline = time.monotonic() + _WAIT
        while got < count:
            received = consumer.consume(min(batch, count - got), 1.0)
            if received:
                deadline = time.monotonic() + _WAIT
            elif time.monotonic() > deadline:
                raise messaging.Timeout(f"{count - got} messages did not arrive")
            last: dict[int, int] = {}
            for record in received:
                if record.error() is not None:
                    raise RuntimeError(f"plain consumer: {record.error()}")
                record.value()
                record.key()
                record.headers()
                last[record.partition() or 0] = record.offset() or 0
                if batch == 1:
                    consumer.commit(offsets=[TopicPartition(
                        destination, record.partition() or 0, (record.offset() or 0) + 1)],
                        asynchronous=False)
            if batch > 1 and last:
                consumer.commit(offsets=[TopicPartition(destination, p, o + 1)
                                         for p, o in last.items()], asynchronous=False)
            got += len(received)

    def close() -> None:
        consumer.close()
        producer.flush()

    return Ops(send, drain, close)
