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
import os
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import messaging
from bench import harness
from bench.harness import Rates, Row, chunks, rate, timed

DEFAULT_URL = "kafka://127.0.0.1:9092"
DEFAULT_MESSAGES = 20_000
SIZES = (100, 10 * 1024)
GROUP = "bench"
TARGET = 0.95
_WAIT = 10.0
_CONTENT_TYPE = ("content-type", b"application/octet-stream")

Ops = tuple[Callable[[int, int], None], Callable[[int, int], None], Callable[[], None]]
"""send(count, batch), drain(count, batch), close()."""


def main(argv: list[str]) -> int:
    parser = harness.parser("kafka", __doc__.splitlines()[0] if __doc__ else "",
                            DEFAULT_MESSAGES)
    parser.add_argument("--url", default=os.environ.get("MESSAGING_TEST_KAFKA_URL",
                                                        DEFAULT_URL))
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), metavar="BYTES")
    parser.add_argument("--rounds", type=int, default=3,
                        help="measurements of each side, alternating who goes first; the "
                             "best of each is kept (default 3)")
    args = parser.parse_args(argv)
    rows: list[Row] = []
    with messaging.connect(args.url) as client:
        for size in args.sizes:
            body = bytes(size)
            for batch in args.batches:
                count = _messages_for(batch, args.messages)
                print(f"measuring {size} bytes, batch {batch} ({count:,} messages)...",
                      file=sys.stderr, flush=True)
                adapter, bare, with_header = _best_of(args.rounds, client, count, batch, body)
                for label, raw in (("bare", bare), ("hdr", with_header)):
                    for metric, value in adapter.by_metric().items():
                        rows.append(Row(f"kafka {size}B vs {label}", batch, metric, count,
                                        value, raw.by_metric()[metric]))
        shown = client.url
    print(f"Kafka adapter vs plain confluent-kafka on {shown}; acks=all, idempotent; "
          "ratio = adapter/plain")
    print(harness.format_table(rows))
    worst = {label: min((row.ratio for row in rows if row.backend.endswith(label)
                         and row.batch > 1 and row.metric != "end-to-end"), default=1.0)
             for label in ("bare", "hdr")}
    print(f"\nlowest batch send or receive+ack ratio (target >= {TARGET}): against bare "
          f"confluent-kafka {worst['bare']:.3f}, against confluent-kafka with the same "
          f"header {worst['hdr']:.3f}")
    return 1 if args.strict and worst["hdr"] < TARGET else 0


def _messages_for(batch: int, messages: int) -> int:
    """At batch 1 every send waits for its acks=all round trip: measure fewer."""
    return messages if batch > 1 else min(messages, max(messages // 40, 100))


def _best_of(rounds: int, client: messaging.Client, count: int, batch: int, body: bytes
             ) -> tuple[Rates, Rates, Rates]:
    """Two cores are shared with the broker: alternate who goes first and keep each
    side's best figures."""
    adapter: list[Rates] = []
    bare: list[Rates] = []
    with_header: list[Rates] = []
    sides: list[tuple[list[Rates], Callable[[messaging.Client, str, bytes], Ops]]] = [
        (adapter, _adapter_ops), (bare, _raw_ops), (with_header, _raw_ops_with_header)]
    for n in range(max(1, rounds)):
        for results, ops in sides if n % 2 == 0 else reversed(sides):
            results.append(_measure(client, count, batch, body, ops))
    return _best(adapter), _best(bare), _best(with_header)


def _best(results: list[Rates]) -> Rates:
    return Rates(max(r.send for r in results), max(r.receive_ack for r in results),
                 max(r.end_to_end for r in results))


def _measure(client: messaging.Client, messages: int, batch: int, body: bytes,
             make: Callable[[messaging.Client, str, bytes], Ops]) -> Rates:
    destination = f"bench-{uuid.uuid4().hex[:12]}"
    client.admin.create(destination, groups=[GROUP])
    send, drain, close = make(client, destination, body)
    try:
        send(min(batch, messages), batch)  # warm-up: connections, group join
        drain(min(batch, messages), batch)
        sending = timed(lambda: send(messages, batch))
        receiving = timed(lambda: drain(messages, batch))

        def round_trips() -> None:
            for size in chunks(messages, batch):
                send(size, batch)
                drain(size, batch)

        trip = timed(round_trips)
    finally:
        close()
        client.admin.delete(destination)
    return Rates(rate(messages, sending), rate(messages, receiving), rate(messages, trip))


def _adapter_ops(client: messaging.Client, destination: str, body: bytes) -> Ops:
    producer = client.producer()
    consumer = client.consumer(destination, GROUP)

    def send(count: int, batch: int) -> None:
        if batch == 1:
            for _ in range(count):
                producer.send(destination, body)
            return
        for size in chunks(count, batch):
            producer.send_many(destination, [body] * size)

    def drain(count: int, batch: int) -> None:
        got = 0
        deadline = time.monotonic() + _WAIT
        while got < count:
            received = consumer.receive(max_messages=min(batch, count - got), timeout=1.0)
            if received:
                deadline = time.monotonic() + _WAIT
            elif time.monotonic() > deadline:
                raise messaging.Timeout(f"{count - got} messages did not arrive")
            if batch == 1:
                for message in received:
                    message.ack()
            else:
                consumer.ack_many(received)
            got += len(received)

    return send, drain, consumer.close


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

    return send, drain, close
