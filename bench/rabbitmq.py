"""``python -m bench rabbitmq``: the RabbitMQ adapter against raw pika, in one run.

For 100-byte and 10 KiB bodies and each batch size, the send, receive+ack and
end-to-end rates (see :mod:`bench.harness`) of

* the adapter through the public API (``send_many`` / ``receive`` + ``ack_many``; at
  batch 1 ``send`` / ``receive`` + ``ack``), and
* raw pika written for throughput: a ``SelectConnection`` driven from the measuring
  thread, a batch published whole before waiting for its publisher confirms, consumption
  with ``basic.qos`` and one ``basic.ack(multiple=True)`` per batch (at batch 1: one
  confirm round trip and one ack per message, what ``BlockingChannel`` users do).

Both use the same durability: a durable fanout exchange, a quorum queue bound to it
(the adapter's default group queue), persistent messages, publisher confirms, manual
acks, prefetch 100; and the raw messages carry the same properties the adapter sets
(``content_type``, ``message_id``, ``timestamp``), so the ratio is the adapter's cost
and not a difference in what travels. Each measurement is repeated ``--rounds`` times,
adapter and raw alternating, and the median is reported, because the broker shares the
machine's cores with the client.

Target (issue 5): adapter/raw >= 0.95 for send and receive+ack at batch sizes > 1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import pika

import messaging
from bench import harness
from bench.harness import SIZES, TARGET_RATIO, Ops, Rates, Row, chunks

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
DEFAULT_MESSAGES = 20_000
PREFETCH = 100
_WAIT = 30.0  # seconds any single broker answer may take before the run gives up


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    url = args.url or os.environ.get("MESSAGING_TEST_RABBITMQ_URL") or DEFAULT_URL
    rows: list[Row] = []
    for size in args.sizes:
        body = bytes(size)
        for batch in args.batches:
            count = harness.messages_for(batch, args.messages)
            label = f"amqp {_size_label(size)}"
            print(f"measuring {label} batch {batch} ({count:,} messages, {args.rounds} "
                  "rounds)...", file=sys.stderr, flush=True)
            adapter_runs: list[Rates] = []
            raw_runs: list[Rates] = []
            for _ in range(args.rounds):
                adapter_runs.append(measure_adapter(url, body, count, batch))
                raw_runs.append(measure_raw(_plain_url(url), body, count, batch))
            adapter, raw = _median(adapter_runs), _median(raw_runs)
            rows.extend(harness.rows_of(label, batch, count, adapter, raw))

    print(f"RabbitMQ adapter vs raw pika {pika.__version__} at {_redact(url)}: "
          f"quorum queue, persistent, publisher confirms, manual acks, prefetch "
          f"{PREFETCH}; median of {args.rounds} rounds")
    print(harness.format_table(rows))
    print()
    report, met = _ratios(rows)
    print(report)
    return 1 if args.strict and not met else 0


def _parser() -> argparse.ArgumentParser:
    parser = harness.parser("rabbitmq", (__doc__ or "").splitlines()[0], DEFAULT_MESSAGES)
    parser.add_argument("--url", default=None,
                        help="broker URL (default: $MESSAGING_TEST_RABBITMQ_URL, else "
                             f"{DEFAULT_URL})".replace("%", "%%"))
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), metavar="BYTES",
                        help="body sizes (default: 100 10240)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="repetitions of each measurement; the median is shown")
    return parser


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{host}"


def _size_label(size: int) -> str:
    return f"{size // 1024} KiB" if size >= 1024 and size % 1024 == 0 else f"{size} B"


def _plain_url(url: str) -> str:
    """The URL without the adapter's own query options, for pika."""
    return url.split("?", 1)[0]


def _median(runs: list[Rates]) -> Rates:
    send, receive, trip = zip(*(r.cpu for r in runs), strict=True)
    return Rates(statistics.median(r.send for r in runs),
                 statistics.median(r.receive_ack for r in runs),
                 statistics.median(r.end_to_end for r in runs),
                 (statistics.median(send), statistics.median(receive),
                  statistics.median(trip)))


def _ratios(rows: list[Row]) -> tuple[str, bool]:
    lines = [f"target: adapter/raw >= {TARGET_RATIO} for send and receive+ack at batch > 1"]
    met = True
    for row in rows:
        if row.batch > 1 and row.metric in ("send", "receive+ack"):
            ok = row.ratio >= TARGET_RATIO
            met = met and ok
            lines.append(f"  {row.backend} batch {row.batch} {row.metric}: "
                         f"{row.ratio:.3f}  {'met' if ok else 'NOT MET'}")
    return "\n".join(lines), met


# -- the adapter -------------------------------------------------------------------------


def measure_adapter(url: str, body: bytes, messages: int, batch: int) -> Rates:
    """The public API on a fresh connection, the consumer with ``prefetch=PREFETCH``."""
    with messaging.connect(url) as client:
        return harness.measure(client, messages, batch, body, _adapter_ops)


def _adapter_ops(client: messaging.Client, destination: str, body: bytes) -> Ops:
    return harness.adapter_ops(client, destination, body, wait=_WAIT, prefetch=PREFETCH)


# -- raw pika ----------------------------------------------------------------------------


class RawPika:
    """One ``SelectConnection`` whose I/O loop runs in the calling thread until the
    condition a step waits for holds (pika's fastest way to pipeline confirms)."""

    def __init__(self, url: str) -> None:
        self._error: BaseException | None = None
        self.connection: Any = pika.SelectConnection(
            pika.URLParameters(url), on_open_callback=self._stop,
            on_open_error_callback=self._failed, on_close_callback=self._failed)
        self._loop(lambda: self.connection.is_open)
        self.channel = self.open_channel()
        self._confirmed = 0
        self._published = 0
        self._done = False
        self.call(lambda done: self.channel.confirm_delivery(self._on_confirm, callback=done))

    def _stop(self, *_args: object) -> None:
        self.connection.ioloop.stop()

    def _failed(self, _connection: object, error: BaseException) -> None:
        self._error = error
        self._stop()

    def _loop(self, until: Callable[[], bool]) -> None:
        deadline = time.monotonic() + _WAIT
        while not until():
            if self._error is not None:
                raise messaging.ConnectionFailed(f"raw pika: {self._error!r}")
            if time.monotonic() > deadline:
                raise messaging.Timeout("raw pika: no answer from the broker")
            ioloop = self.connection.ioloop
            wake = ioloop.call_later(0.05, self._stop)  # to re-check the deadline
            ioloop.start()
            ioloop.remove_timeout(wake)

    def call(self, start: Callable[[Callable[..., None]], None]) -> Any:
        results: list[Any] = []

        def done(*args: Any) -> None:
            results.append(args)
            self._stop()

        start(done)
        self._loop(lambda: bool(results))
        return results[0][0] if results[0] else None

    def open_channel(self) -> Any:
        return self.call(lambda done: self.connection.channel(on_open_callback=done))

    def _on_confirm(self, frame: Any) -> None:
        self._confirmed = max(self._confirmed, frame.method.delivery_tag)
        if self._confirmed >= self._published:
            self._stop()

    def publish(self, exchange: str, body: bytes, count: int, prefix: str) -> None:
        for _ in range(count):
            self._published += 1
            self.channel.basic_publish(exchange, "", body, pika.BasicProperties(
                delivery_mode=2, content_type="application/octet-stream",
                message_id=f"{prefix}-{self._published}", timestamp=int(time.time())))
        self._loop(lambda: self._confirmed >= self._published)

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()
            self._loop(lambda: self.connection.is_closed)


def measure_raw(url: str, body: bytes, messages: int, batch: int) -> Rates:
    raw = RawPika(url)
    name = f"bench-raw-{uuid.uuid4().hex[:12]}"
    channel = raw.channel
    raw.call(lambda done: channel.exchange_declare(name, "fanout", durable=True,
                                                   callback=done))
    raw.call(lambda done: channel.queue_declare(
        name, durable=True, arguments={"x-queue-type": "quorum"}, callback=done))
    raw.call(lambda done: channel.queue_bind(name, name, callback=done))
    consuming = raw.open_channel()
    raw.call(lambda done: consuming.basic_qos(prefetch_count=PREFETCH, callback=done))
    deliveries: list[int] = []
    wanted = [0]

    def on_message(_channel: Any, method: Any, _properties: Any, _body: bytes) -> None:
        deliveries.append(method.delivery_tag)
        if len(deliveries) >= wanted[0]:
            raw._stop()

    consuming.basic_consume(name, on_message)
    prefix = uuid.uuid4().hex[:16]

    def send(count: int, batch: int) -> None:
        for size in chunks(count, batch):
            raw.publish(name, body, size, prefix)

    def drain(count: int, batch: int) -> None:
        got = 0
        while got < count:
            wanted[0] = min(batch, count - got)
            raw._loop(lambda: len(deliveries) >= wanted[0])
            taken = deliveries[:wanted[0]]
            del deliveries[:wanted[0]]
            if batch == 1:
                for tag in taken:
                    consuming.basic_ack(tag)
            else:
                consuming.basic_ack(taken[-1], multiple=True)
            got += len(taken)

    try:
        return harness.time_ops(Ops(send, drain), messages, batch)
    finally:
        raw.call(lambda done: channel.queue_delete(name, callback=done))
        raw.call(lambda done: channel.exchange_delete(name, callback=done))
        raw.close()
