"""``python -m bench worker``: ``Consumer.run`` against the consumer's batch loop, in one run.

For every ``--url`` (default ``memory://``) and every ``--concurrency``, 100-byte
messages sent beforehand (not timed) are drained, best of ``--rounds`` alternating runs:

* worker: ``consumer.run(handler, concurrency=N)`` with a handler that only counts and
  returns, so the worker acks each message (timed until the last one was handled);
* baseline: the same consumer API driven by hand the fastest way,
  ``receive(max_messages=100)`` + ``ack_many``.

The ratio worker/baseline is what the worker loop costs (its handler threads, per-key
lanes, lease keeping, acks) over a hand-written batch loop on the same backend; the
broker benchmarks (``python -m bench kafka`` and so on) compare that batch loop with the
raw clients. Next to each rate is the process CPU per message.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from collections.abc import Sequence

import messaging
from bench import harness
from bench.harness import GROUP, PAYLOAD, Row, chunks

DEFAULT_MESSAGES = 20_000
BATCH = 100
_WAIT = 60.0  # seconds the last message may take before the run gives up


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    rows: list[Row] = []
    for url in args.url or ["memory://"]:
        with messaging.connect(url) as client:
            for concurrency in args.concurrency:
                print(f"measuring run(concurrency={concurrency}) on {client.url} "
                      f"({args.messages:,} messages, {args.rounds} rounds)...",
                      file=sys.stderr, flush=True)
                worker: list[tuple[float, float]] = []
                baseline: list[tuple[float, float]] = []
                for n in range(args.rounds):  # who goes first alternates
                    if n % 2 == 0:
                        worker.append(_worker(client, args.messages, concurrency))
                        baseline.append(_batch_loop(client, args.messages))
                    else:
                        baseline.append(_batch_loop(client, args.messages))
                        worker.append(_worker(client, args.messages, concurrency))
                (rate, cpu), (base_rate, base_cpu) = _best(worker), _best(baseline)
                rows.append(Row(f"{client.url.scheme} run(concurrency="
                                f"{concurrency})", BATCH, "handled", args.messages, rate,
                                base_rate, cpu, base_cpu))
    print("Consumer.run with a handler that returns at once (adapter) vs receive("
          f"max_messages={BATCH}) + ack_many (baseline); ratio = run/batch loop")
    print(harness.format_table(rows))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench worker",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", action="append",
                        help="a backend to measure (repeatable; default memory://)")
    parser.add_argument("--concurrency", type=harness.positive_int, nargs="+",
                        default=[1, 8], metavar="N", help="handler threads (default: 1 8)")
    parser.add_argument("--messages", type=harness.positive_int, default=DEFAULT_MESSAGES,
                        metavar="N", help=f"messages per measurement (default "
                                          f"{DEFAULT_MESSAGES:,})")
    parser.add_argument("--rounds", type=harness.positive_int, default=3,
                        help="measurements of each side, alternating who goes first; the "
                             "best of each is kept (default 3)")
    return parser


def _best(runs: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """The highest rate and the lowest CPU per message of the runs."""
    return max(rate for rate, _ in runs), min(cpu for _, cpu in runs)


def _fresh(client: messaging.Client, messages: int) -> str:
    destination = f"bench-{uuid.uuid4().hex[:12]}"
    client.admin.create(destination, groups=[GROUP])
    producer = client.producer()
    for size in chunks(messages, BATCH):
        producer.send_many(destination, [PAYLOAD] * size)
    return destination


def _worker(client: messaging.Client, messages: int, concurrency: int) -> tuple[float, float]:
    """(messages/s, CPU s/message) of ``run`` handling ``messages``."""
    destination = _fresh(client, messages)
    try:
        consumer = client.consumer(destination, GROUP)
        done = threading.Event()
        lock = threading.Lock()
        handled = 0
        finished = [0.0, 0.0]

        def handler(_message: messaging.Message) -> None:
            nonlocal handled
            with lock:
                handled += 1
                if handled == messages:
                    finished[:] = [time.perf_counter(), time.process_time()]
                    done.set()

        watchdog = threading.Timer(_WAIT, done.set)  # a stuck run ends; the check raises
        watchdog.start()
        started, cpu = time.perf_counter(), time.process_time()
        try:
            consumer.run(handler, concurrency=concurrency, stop_event=done)
        finally:
            watchdog.cancel()
        if handled < messages:
            raise messaging.Timeout(f"benchmark: run handled {handled} of {messages} "
                                    f"messages within {_WAIT} s")
        return (harness.rate(messages, finished[0] - started),
                (finished[1] - cpu) / messages)
    finally:
        client.admin.delete(destination)


def _batch_loop(client: messaging.Client, messages: int) -> tuple[float, float]:
    """(messages/s, CPU s/message) of receive + ack_many draining ``messages``."""
    destination = _fresh(client, messages)
    try:
        ops = harness.adapter_ops(client, destination, PAYLOAD)
        try:
            seconds, cpu = harness.timed(lambda: ops.drain(messages, BATCH))
        finally:
            ops.close()
        return harness.rate(messages, seconds), cpu / messages
    finally:
        client.admin.delete(destination)
