"""Several real processes sharing one sqlite file: they compete without losing or
duplicating messages, and a process that dies holding leases loses nothing."""

from __future__ import annotations

import multiprocessing
import queue
import time
from pathlib import Path

import pytest
from engine_support import consume, hold_and_die, produce, send, subscribe

from messaging.driver import Delivery
from messaging.engine.clock import SystemClock
from messaging.engine.driver import EngineDriver
from messaging.urls import parse_url

pytestmark = pytest.mark.timeout(120)

PER_PRODUCER = 300


def test_processes_share_a_file_without_loss_or_duplicates(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    parent = EngineDriver.open(parse_url(url), {})
    parent.create("orders", 1, ["workers"], {})
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    stop = context.Event()
    consumers = [context.Process(target=consume, args=(url, "orders", "workers", results, stop))
                 for _ in range(2)]
    producers = [context.Process(target=produce, args=(url, "orders", n * PER_PRODUCER,
                                                       PER_PRODUCER)) for n in range(2)]
    for process in consumers + producers:
        process.start()
    received: list[bytes] = []
    deadline = time.monotonic() + 90
    try:
        while len(received) < 2 * PER_PRODUCER and time.monotonic() < deadline:
            try:
                received.append(results.get(timeout=1.0))
            except queue.Empty:
                continue
    finally:
        stop.set()
        for process in producers + consumers:
            process.join(timeout=30)
    while True:  # anything delivered twice arrives after the expected count
        try:
            received.append(results.get(timeout=0.5))
        except queue.Empty:
            break

    assert all(process.exitcode == 0 for process in producers + consumers)
    assert sorted(int(body) for body in received) == list(range(2 * PER_PRODUCER))
    assert parent.depth("orders", "workers") == 0
    parent.close()


def test_a_dead_process_leases_return_to_the_group(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    survivor = EngineDriver.open(parse_url(url), {"clock": SystemClock()})
    survivor.create("orders", 1, ["workers"], {})
    sent = [f"m{n}".encode() for n in range(5)]
    send(survivor, "orders", *sent)
    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    member = context.Process(target=hold_and_die, args=(url, "orders", "workers", ready))
    member.start()
    held = ready.get(timeout=60)
    member.join(timeout=30)
    assert sorted(held) == sorted(sent)
    assert member.exitcode == 0

    subscription = subscribe(survivor, "orders", "workers")
    got: list[Delivery] = []
    deadline = time.monotonic() + 10
    while len(got) < len(sent) and time.monotonic() < deadline:
        got.extend(subscription.receive_batch(10, 1.0))

    assert sorted(d.body for d in got) == sorted(sent)
    assert {d.attempt for d in got} == {2}
    subscription.send_acks([d.ack_id for d in got])
    assert survivor.depth("orders", "workers") == 0
    survivor.close()
