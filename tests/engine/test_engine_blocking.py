"""Blocking receives on the real clock: woken by a send, bounded by the timeout."""

from __future__ import annotations

import threading
import time

from conftest import OpenEngine
from engine_support import bodies, send, subscribe

from messaging.engine.clock import SystemClock


def test_a_blocked_receive_wakes_when_a_message_arrives(open_engine: OpenEngine) -> None:
    engine = open_engine(clock=SystemClock())
    engine.create("orders", 1, ["g"], {})
    subscription = subscribe(engine, "orders", "g")
    timer = threading.Timer(0.2, lambda: send(engine, "orders", b"wake up"))
    started = time.monotonic()
    timer.start()
    try:
        got = subscription.receive_batch(10, 5.0)
    finally:
        timer.cancel()
    waited = time.monotonic() - started

    assert bodies(got) == [b"wake up"]
    assert 0.15 < waited < 1.0, f"woke after {waited:.3f} s"


def test_an_empty_receive_returns_after_its_timeout(open_engine: OpenEngine) -> None:
    engine = open_engine(clock=SystemClock())
    engine.create("orders", 1, ["g"], {})
    subscription = subscribe(engine, "orders", "g")

    started = time.monotonic()
    got = subscription.receive_batch(10, 0.3)
    waited = time.monotonic() - started

    assert got == []
    assert 0.29 < waited < 0.3 + 1.0, f"returned after {waited:.3f} s"


def test_a_blocked_receive_wakes_when_a_delay_runs_out(open_engine: OpenEngine) -> None:
    engine = open_engine(clock=SystemClock())
    engine.create("orders", 1, ["g"], {})
    subscription = subscribe(engine, "orders", "g")
    started = time.monotonic()  # before the send: its delay starts there
    send(engine, "orders", b"soon", delay=0.3)
    got = subscription.receive_batch(10, 5.0)
    waited = time.monotonic() - started

    assert bodies(got) == [b"soon"]
    assert 0.28 < waited < 0.3 + 1.0, f"delivered after {waited:.3f} s"


def test_acks_go_through_while_a_receive_blocks(open_engine: OpenEngine) -> None:
    engine = open_engine(clock=SystemClock())
    engine.create("orders", 1, ["g"], {})
    receiver = subscribe(engine, "orders", "g")
    holder = subscribe(engine, "orders", "g")
    send(engine, "orders", b"held")
    held = holder.receive_batch(1, 1.0)
    assert bodies(held) == [b"held"]
    blocked = threading.Thread(target=receiver.receive_batch, args=(10, 1.0))
    blocked.start()
    try:
        time.sleep(0.05)
        started = time.monotonic()
        holder.send_acks([held[0].ack_id])
        assert time.monotonic() - started < 0.5, "the ack waited for the blocked receive"
    finally:
        blocked.join()
    assert engine.depth("orders", "g") == 0
