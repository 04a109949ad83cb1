"""What every benchmark shares: measuring the adapter through the public API, the
result table, the targets, and the common command-line options.

Three figures per (backend, batch size), each in messages per second:

* ``send``: ``producer.send`` per message (batch 1) or ``producer.send_many`` of
  ``batch`` messages, each call returning once the broker confirmed.
* ``receive+ack``: draining what was sent with ``consumer.receive(max_messages=batch)``
  and ``message.ack()`` (batch 1) or ``consumer.ack_many`` (batch > 1).
* ``end-to-end``: one batch sent, then received and acked, then the next batch: the
  rate at which messages make the whole trip.

A baseline does the same work with the bare client library (or a bare data structure)
in the same run, so the ratio adapter/baseline says what the portable layer costs on
this machine, whatever the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import pkgutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence

import messaging

HELPERS = frozenset({"harness"})
"""Modules of the package that are not benchmarks."""

PAYLOAD = b"x" * 100
"""The body of every benchmark message (bytes: no codec cost beyond a passthrough)."""

GROUP = "bench"
METRICS = ("send", "receive+ack", "end-to-end")
_RECEIVE_WAIT = 10.0  # seconds without any message before a measurement gives up


@dataclasses.dataclass(frozen=True)
class Rates:
    """Messages per second for the three figures."""

    send: float
    receive_ack: float
    end_to_end: float

    def by_metric(self) -> dict[str, float]:
        return dict(zip(METRICS, (self.send, self.receive_ack, self.end_to_end), strict=True))


@dataclasses.dataclass(frozen=True)
class Row:
    backend: str
    batch: int
    metric: str
    messages: int
    adapter: float
    baseline: float

    @property
    def ratio(self) -> float:
        return self.adapter / self.baseline if self.baseline else float("nan")


@dataclasses.dataclass(frozen=True)
class Target:
    """``backend`` must reach ``minimum`` msgs/s on ``metric`` at ``batch``."""

    backend: str
    batch: int
    metric: str
    minimum: float

    def find(self, rows: Sequence[Row]) -> Row | None:
        for row in rows:
            if (row.backend, row.batch, row.metric) == (self.backend, self.batch, self.metric):
                return row
        return None


def known_benchmarks() -> list[str]:
    import bench

    return sorted(module.name for module in pkgutil.iter_modules(bench.__path__)
                  if not module.name.startswith("_") and module.name not in HELPERS)


def parser(prog: str, description: str, default_messages: int) -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(prog=f"python -m bench {prog}", description=description)
    result.add_argument(
        "--messages", type=_positive_int, default=default_messages, metavar="N",
        help=f"messages per measurement at batch 100 (batch 1 uses N/10, at least 100); "
             f"default {default_messages}")
    result.add_argument("--batches", type=_positive_int, nargs="+", default=[1, 100],
                        metavar="B", help="batch sizes (default: 1 100)")
    result.add_argument("--strict", action="store_true",
                        help="exit 1 when a target is not met (default: report only)")
    return result


def messages_for(batch: int, messages: int) -> int:
    """Per-message calls are slow: batch 1 measures a tenth as many messages."""
    return messages if batch > 1 else min(messages, max(messages // 10, 100))


def chunks(total: int, size: int) -> Iterator[int]:
    """Sizes of the batches that make up ``total`` messages."""
    for start in range(0, total, size):
        yield min(size, total - start)


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def timed(work: Callable[[], None]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def measure_adapter(url: str, messages: int, batch: int) -> Rates:
    """Send, receive+ack and end-to-end rates through the public API on a fresh
    destination of the backend at ``url`` (options go in the URL's query string)."""
    with messaging.connect(url) as client:
        destination = f"bench-{uuid.uuid4().hex[:12]}"
        client.admin.create(destination, groups=[GROUP])
        producer = client.producer()
        try:
            with client.consumer(destination, group=GROUP) as consumer:
                # Warm-up (statement caches, lazily created state), not timed.
                _send(producer, destination, min(batch, messages), batch)
                _drain(consumer, min(batch, messages), batch)
                sending = timed(lambda: _send(producer, destination, messages, batch))
                receiving = timed(lambda: _drain(consumer, messages, batch))

                def round_trips() -> None:
                    for size in chunks(messages, batch):
                        _send(producer, destination, size, batch)
                        _drain(consumer, size, batch)

                trip = timed(round_trips)
        finally:
            client.admin.delete(destination)
    return Rates(rate(messages, sending), rate(messages, receiving), rate(messages, trip))


def _send(producer: messaging.Producer, destination: str, count: int, batch: int) -> None:
    if batch == 1:
        for _ in range(count):
            producer.send(destination, PAYLOAD)
        return
    for size in chunks(count, batch):
        producer.send_many(destination, [PAYLOAD] * size)


def _drain(consumer: messaging.Consumer, count: int, batch: int) -> None:
    got = 0
    while got < count:
        received = consumer.receive(max_messages=min(batch, count - got), timeout=_RECEIVE_WAIT)
        if not received:
            raise messaging.Timeout(
                f"benchmark: {count - got} of {count} messages did not arrive within "
                f"{_RECEIVE_WAIT} s")
        if batch == 1:
            for message in received:
                message.ack()
        else:
            consumer.ack_many(received)
        got += len(received)


def format_table(rows: Sequence[Row]) -> str:
    header = ("backend", "batch", "measure", "messages", "adapter msg/s", "baseline msg/s",
              "ratio")
    cells = [header, *(
        (row.backend, str(row.batch), row.metric, f"{row.messages:,}", f"{row.adapter:,.0f}",
         f"{row.baseline:,.0f}", f"{row.ratio:.3f}")
        for row in rows
    )]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    left = {0, 2}

    def line(values: Sequence[str]) -> str:
        return "  ".join(value.ljust(width) if i in left else value.rjust(width)
                         for i, (value, width) in enumerate(zip(values, widths, strict=True)))

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(values) for values in cells[1:])])


def format_targets(targets: Sequence[Target], rows: Sequence[Row]) -> tuple[str, bool]:
    """The targets with their outcome; and whether every measured one was met."""
    lines = ["targets:"]
    all_met = True
    for target in targets:
        row = target.find(rows)
        wanted = (f"  {target.backend} {target.metric} at batch {target.batch} "
                  f">= {target.minimum:,.0f} msg/s:")
        if row is None:
            lines.append(f"{wanted} not measured")
            continue
        met = row.adapter >= target.minimum
        all_met = all_met and met
        lines.append(f"{wanted} {row.adapter:,.0f}  {'met' if met else 'NOT MET'}")
    return "\n".join(lines), all_met


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value
