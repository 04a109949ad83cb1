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
this machine, whatever the machine. Next to each rate is the client's CPU time per
message (the benchmark process, all its threads: a client's I/O threads count): a
broker whose speed swings moves the rates, hardly the CPU, so the difference of the
two CPU figures is what the adapter's own code costs per message.

Each side of a comparison is a set of :class:`Ops` on a fresh destination;
:func:`adapter_ops` is the public-API side for any backend, :func:`measure` times one
side, :func:`each_round` alternates the sides over rounds, and :func:`compare` is the whole
``main`` of a broker benchmark that only brings its baselines.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import pkgutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

import messaging

HELPERS = frozenset({"harness"})
"""Modules of the package that are not benchmarks."""

PAYLOAD = b"x" * 100
"""The body of every benchmark message (bytes: no codec cost beyond a passthrough)."""

GROUP = "bench"
METRICS = ("send", "receive+ack", "end-to-end")
SIZES = (100, 10 * 1024)
"""Body sizes in bytes a broker comparison measures by default."""
TARGET_RATIO = 0.95
"""adapter/baseline a broker comparison aims for on send and receive+ack."""
RECEIVE_WAIT = 10.0
"""Seconds without any message before a measurement gives up."""

Body = TypeVar("Body", bytes, str)


@dataclasses.dataclass(frozen=True)
class Rates:
    """Messages per second for the three figures, and the process CPU seconds per
    message each took."""

    send: float
    receive_ack: float
    end_to_end: float
    cpu: tuple[float, float, float]

    def by_metric(self) -> dict[str, float]:
        return dict(zip(METRICS, (self.send, self.receive_ack, self.end_to_end), strict=True))

    def cpu_by_metric(self) -> dict[str, float]:
        return dict(zip(METRICS, self.cpu, strict=True))


@dataclasses.dataclass(frozen=True)
class Row:
    backend: str
    batch: int
    metric: str
    messages: int
    adapter: float
    baseline: float
    adapter_cpu: float
    """Process CPU seconds per message, adapter side."""
    baseline_cpu: float

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


def _nothing() -> None:
    pass


class Ops(NamedTuple):
    """What one side of a comparison does on its destination."""

    send: Callable[[int, int], None]
    """send(count, batch): send ``count`` messages, ``batch`` at a time."""
    drain: Callable[[int, int], None]
    """drain(count, batch): receive and ack ``count`` messages, ``batch`` at a time."""
    close: Callable[[], None] = _nothing
    """Release what the side holds, once it is measured."""


OpsFactory = Callable[[messaging.Client, str, Body], Ops]
"""make(client, destination, body): the ops of one side on a destination just created
(with the group :data:`GROUP`) through ``client``."""


def known_benchmarks() -> list[str]:
    import bench

    return sorted(module.name for module in pkgutil.iter_modules(bench.__path__)
                  if not module.name.startswith("_") and module.name not in HELPERS)


def parser(prog: str, description: str, default_messages: int) -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(prog=f"python -m bench {prog}", description=description)
    result.add_argument(
        "--messages", type=positive_int, default=default_messages, metavar="N",
        help=f"messages per measurement at batch 100 (batch 1 uses N/10, at least 100); "
             f"default {default_messages}")
    result.add_argument("--batches", type=positive_int, nargs="+", default=[1, 100],
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


def timed(work: Callable[[], None]) -> tuple[float, float]:
    """Seconds ``work`` took, and the process CPU seconds it used."""
    started, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - started, time.process_time() - cpu


def rates(messages: int, sending: tuple[float, float], receiving: tuple[float, float],
          trips: tuple[float, float]) -> Rates:
    """The rates of ``messages`` sent, received and round-tripped in (wall, CPU) seconds."""
    return Rates(rate(messages, sending[0]), rate(messages, receiving[0]),
                 rate(messages, trips[0]),
                 (sending[1] / messages, receiving[1] / messages, trips[1] / messages))


def time_ops(ops: Ops, messages: int, batch: int) -> Rates:
    """Warm up with one batch (connections, caches, lazily created state: not timed),
    then time sending ``messages``, draining them, and round trips of one batch."""
    send, drain = ops.send, ops.drain
    send(min(batch, messages), batch)
    drain(min(batch, messages), batch)
    sending = timed(lambda: send(messages, batch))
    receiving = timed(lambda: drain(messages, batch))

    def round_trips() -> None:
        for size in chunks(messages, batch):
            send(size, batch)
            drain(size, batch)

    return rates(messages, sending, receiving, timed(round_trips))


def time_interleaved(sides: Sequence[Ops], messages: int, batch: int) -> list[Rates]:
    """:func:`time_ops` for several sides at once, taking turns batch by batch: each
    batch of each phase is timed on every side before the next batch, the side that goes
    first moving on by one each batch, and each side's times are summed. A broker whose
    speed drifts from one second to the next (LocalStack does, by tens of percent) then
    slows every side alike, instead of whichever one it happened to be measuring. Only for
    clients that do nothing between calls: a side's background threads would run while
    another side is timed."""
    for ops in sides:
        ops.send(min(batch, messages), batch)
        ops.drain(min(batch, messages), batch)

    def phase(*steps: Callable[[Ops, int], None]) -> list[tuple[float, float]]:
        wall = [0.0] * len(sides)
        cpu = [0.0] * len(sides)
        for turn, size in enumerate(chunks(messages, batch)):
            for k in range(len(sides)):
                n = (turn + k) % len(sides)
                started, used = time.perf_counter(), time.process_time()
                for step in steps:
                    step(sides[n], size)
                wall[n] += time.perf_counter() - started
                cpu[n] += time.process_time() - used
        return list(zip(wall, cpu, strict=True))

    sending = phase(lambda ops, size: ops.send(size, batch))
    receiving = phase(lambda ops, size: ops.drain(size, batch))
    trips = phase(lambda ops, size: ops.send(size, batch),
                  lambda ops, size: ops.drain(size, batch))
    return [rates(messages, s, r, t) for s, r, t in zip(sending, receiving, trips, strict=True)]


def measure(client: messaging.Client, messages: int, batch: int, body: Body,
            make_ops: OpsFactory[Body]) -> Rates:
    """The rates of the ops ``make_ops`` builds on a fresh destination of ``client``,
    deleted afterwards."""
    destination = f"bench-{uuid.uuid4().hex[:12]}"
    client.admin.create(destination, groups=[GROUP])
    try:
        ops = make_ops(client, destination, body)
        try:
            return time_ops(ops, messages, batch)
        finally:
            ops.close()
    finally:
        client.admin.delete(destination)


def adapter_ops(client: messaging.Client, destination: str, body: bytes | str, *,
                wait: float = RECEIVE_WAIT, **consumer_options: Any) -> Ops:
    """The public API: ``producer.send`` per message (batch 1) or ``send_many``;
    ``consumer.receive(max_messages=batch)`` then ``message.ack()`` (batch 1) or
    ``consumer.ack_many``, giving up after ``wait`` seconds without a message.
    ``consumer_options`` go to ``client.consumer``."""
    producer = client.producer()
    consumer = client.consumer(destination, GROUP, **consumer_options)

    def send(count: int, batch: int) -> None:
        if batch == 1:
            for _ in range(count):
                producer.send(destination, body)
            return
        for size in chunks(count, batch):
            producer.send_many(destination, [body] * size)

    def drain(count: int, batch: int) -> None:
        got = 0
        deadline = time.monotonic() + wait
        while got < count:
            received = consumer.receive(max_messages=min(batch, count - got), timeout=1.0)
            if received:
                deadline = time.monotonic() + wait
            elif time.monotonic() > deadline:
                raise messaging.Timeout(
                    f"benchmark: {count - got} of {count} messages did not arrive within "
                    f"{wait} s")
            if batch == 1:
                for message in received:
                    message.ack()
            else:
                consumer.ack_many(received)
            got += len(received)

    return Ops(send, drain, consumer.close)


def measure_adapter(url: str, messages: int, batch: int, size: int = len(PAYLOAD)) -> Rates:
    """Send, receive+ack and end-to-end rates through the public API, with ``size``-byte
    bodies, on a fresh destination of the backend at ``url`` (options go in the URL's
    query string)."""
    with messaging.connect(url) as client:
        return measure(client, messages, batch, b"x" * size, adapter_ops)


def measure_interleaved(client: messaging.Client, messages: int, batch: int, body: Body,
                        makers: Sequence[OpsFactory[Body]]) -> list[Rates]:
    """:func:`time_interleaved` of the sides ``makers`` build, each on a fresh destination
    of ``client``, all deleted afterwards."""
    with contextlib.ExitStack() as stack:
        sides = []
        for make_ops in makers:
            destination = f"bench-{uuid.uuid4().hex[:12]}"
            client.admin.create(destination, groups=[GROUP])
            stack.callback(client.admin.delete, destination)
            ops = make_ops(client, destination, body)
            stack.callback(ops.close)
            sides.append(ops)
        return time_interleaved(sides, messages, batch)


def each_round(rounds: int, client: messaging.Client, messages: int, batch: int, body: Body,
               *, sides: Sequence[OpsFactory[Body]], interleave: bool = False
               ) -> list[list[Rates]]:
    """Each side's figures of each of ``rounds`` measurements (at least one), in the
    order of ``sides``. The cores are shared with the broker and whatever else runs, so
    the sides take turns going first: in order in even rounds, reversed in odd ones; or,
    with ``interleave``, batch by batch within each measurement
    (:func:`time_interleaved`)."""
    results: list[list[Rates]] = [[] for _ in sides]
    order = list(zip(results, sides, strict=True))
    for n in range(max(1, rounds)):
        if interleave:
            for runs, rates in zip(results, measure_interleaved(
                    client, messages, batch, body, sides), strict=True):
                runs.append(rates)
            continue
        for runs, make_ops in order if n % 2 == 0 else reversed(order):
            runs.append(measure(client, messages, batch, body, make_ops))
    return results


def best(results: Sequence[Rates]) -> Rates:
    """The highest of each rate and the lowest of each CPU figure (not necessarily from
    the same run)."""
    send, receive, trip = zip(*(r.cpu for r in results), strict=True)
    return Rates(max(r.send for r in results), max(r.receive_ack for r in results),
                 max(r.end_to_end for r in results), (min(send), min(receive), min(trip)))


def rows_of(backend: str, batch: int, messages: int, adapter: Rates, baseline: Rates
            ) -> list[Row]:
    """The table rows of one comparison, a figure each."""
    adapter_cpu, baseline_cpu = adapter.cpu_by_metric(), baseline.cpu_by_metric()
    return [Row(backend, batch, metric, messages, value, baseline.by_metric()[metric],
                adapter_cpu[metric], baseline_cpu[metric])
            for metric, value in adapter.by_metric().items()]


def compare(argv: Sequence[str], *, name: str, doc: str | None, default_url: str,
            url_env: str, default_messages: int, baselines: Mapping[str, OpsFactory[Body]],
            body: Callable[[int], Body], title: Callable[[messaging.Client], str],
            summary: str, gate: str,
            messages_for: Callable[[int, int], int] = messages_for,
            target: float = TARGET_RATIO, rounds: int = 3, interleave: bool = False) -> int:
    """The ``main`` of ``python -m bench <name>``: the adapter against each baseline
    (label -> ops factory), for each body size (``body(size)``) and batch size, best of
    ``--rounds`` alternating runs on one client of the broker at ``--url`` (else
    ``$<url_env>``, else ``default_url``); then the table (rows ``<name> <size>B vs
    <label>``), headed by ``title(client)``, and the lowest send or receive+ack ratio at
    batch > 1 per baseline (the issues' target compares batch APIs) after ``summary``, a
    format string with one field per label. ``--strict`` exits 1 when the ``gate`` baseline's lowest
    ratio is below ``target``. ``interleave`` measures the sides batch by batch together
    (:func:`time_interleaved`), for clients without background threads."""
    arguments = parser(name, doc.splitlines()[0] if doc else "", default_messages)
    arguments.add_argument("--url", default=os.environ.get(url_env, default_url))
    arguments.add_argument("--sizes", type=int, nargs="+", default=list(SIZES),
                           metavar="BYTES")
    arguments.add_argument("--rounds", type=positive_int, default=rounds,
                           help="measurements of each side, alternating who goes first; "
                                f"the best of each is kept (default {rounds})")
    args = arguments.parse_args(argv)
    sides: list[OpsFactory[Body]] = [adapter_ops]
    sides.extend(baselines.values())
    rows: list[Row] = []
    spreads: list[str] = []
    gate_index = 1 + list(baselines).index(gate)
    with messaging.connect(args.url) as client:
        for size in args.sizes:
            for batch in args.batches:
                count = messages_for(batch, args.messages)
                print(f"measuring {size} bytes, batch {batch} ({count:,} messages)...",
                      file=sys.stderr, flush=True)
                runs = each_round(args.rounds, client, count, batch, body(size),
                                  sides=sides, interleave=interleave)
                adapter, *raws = (best(side) for side in runs)
                for label, raw in zip(baselines, raws, strict=True):
                    rows.extend(rows_of(f"{name} {size}B vs {label}", batch, count, adapter,
                                        raw))
                if batch > 1:
                    spreads.append(f"{size}B {ratio_spread(runs[0], runs[gate_index])}")
        heading = title(client)
    print(heading)
    print(format_table(rows))
    worst = {label: min((row.ratio for row in rows if row.backend.endswith(f" vs {label}")
                         and row.metric != "end-to-end" and row.batch > 1),
                        default=1.0)
             for label in baselines}
    print("\nlowest batch send or receive+ack ratio "
          f"(target >= {target}): {summary.format(**worst)}")
    print(extra_cpu(rows, gate))
    print(target_allowance(rows, gate, target))
    if spreads:
        print(f"the ratio against {gate} round by round (lowest-highest, batch > 1; how "
              f"much this machine's noise moves it): {'; '.join(spreads)}")
    return 1 if args.strict and worst[gate] < target else 0


def ratio_spread(adapter: Sequence[Rates], baseline: Sequence[Rates]) -> str:
    """The lowest and highest adapter/baseline ratio of send and receive+ack over rounds,
    each round's adapter against the same round's baseline."""
    pairs = [(a.by_metric(), b.by_metric()) for a, b in zip(adapter, baseline, strict=True)]
    parts = []
    for metric in ("send", "receive+ack"):
        ratios = [a[metric] / b[metric] for a, b in pairs if b[metric]]
        if ratios:
            parts.append(f"{metric} {min(ratios):.2f}-{max(ratios):.2f}")
    return ", ".join(parts) or "not measured"


def extra_cpu(rows: Sequence[Row], label: str) -> str:
    """The adapter's client CPU per message beyond the ``label`` baseline's, at batch >
    1, for send and receive+ack: the most over the body sizes, in microseconds."""
    parts = []
    for metric in ("send", "receive+ack"):
        extra = [row.adapter_cpu - row.baseline_cpu for row in _batch_rows(rows, label, metric)]
        if extra:
            parts.append(f"{metric} {max(extra) * 1e6:+.1f} us")
    return (f"the adapter's client CPU per message beyond {label}'s (the most over the "
            f"sizes, batch > 1): {', '.join(parts) or 'not measured'}")


def target_allowance(rows: Sequence[Row], label: str, target: float) -> str:
    """The time per message ``target`` lets the adapter spend beyond the ``label``
    baseline's, at batch > 1, for send and receive+ack: the least over the body sizes, in
    microseconds. Read beside :func:`extra_cpu`: a fast baseline leaves a budget smaller
    than what building the portable objects costs."""
    parts = []
    for metric in ("send", "receive+ack"):
        allowed = [(1 / target - 1) / row.baseline
                   for row in _batch_rows(rows, label, metric) if row.baseline > 0]
        if allowed:
            parts.append(f"{metric} {min(allowed) * 1e6:.2f} us")
    return (f"what the {target} target allows the adapter per message beyond {label}'s "
            f"time (the least over the sizes, batch > 1): {', '.join(parts) or 'not measured'}")


def _batch_rows(rows: Sequence[Row], label: str, metric: str) -> list[Row]:
    """The rows of ``metric`` against the ``label`` baseline at batch > 1 (what the
    issues' target compares)."""
    return [row for row in rows if row.backend.endswith(f" vs {label}")
            and row.metric == metric and row.batch > 1]


def format_table(rows: Sequence[Row]) -> str:
    header = ("backend", "batch", "measure", "messages", "adapter msg/s", "baseline msg/s",
              "ratio", "adapter cpu us/msg", "baseline cpu us/msg")
    cells = [header, *(
        (row.backend, str(row.batch), row.metric, f"{row.messages:,}", f"{row.adapter:,.0f}",
         f"{row.baseline:,.0f}", f"{row.ratio:.3f}", _micros(row.adapter_cpu),
         _micros(row.baseline_cpu))
        for row in rows
    )]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    left = {0, 2}

    def line(values: Sequence[str]) -> str:
        return "  ".join(value.ljust(width) if i in left else value.rjust(width)
                         for i, (value, width) in enumerate(zip(values, widths, strict=True)))

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(values) for values in cells[1:])])


def _micros(seconds: float) -> str:
    return f"{seconds * 1e6:.1f}"


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


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value
