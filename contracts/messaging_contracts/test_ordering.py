"""Contract 4, ordering: with ``ordering == "per_key"``, messages with one key arrive in
send order in a group (also through the worker loop, which runs one key at a time).

Where ``ordering == "none"`` no call can refuse a key, so the outcome is recorded as
``unsupported`` and what does hold is asserted: every message arrives once, key intact.
"""

from __future__ import annotations

import collections
import random
import threading
import time
from collections.abc import Callable

import pytest

import messaging
from messaging_contracts.helpers import (
    MakeConsumer,
    MakeDestination,
    MakeGroup,
    Timing,
    assert_quiet,
    duplicates,
    receive_until,
    wait_for,
)

pytestmark = pytest.mark.messaging_contract("ordering")

KEYS = [f"user-{n}" for n in range(4)]
PER_KEY = 25


def _interleaved() -> list[messaging.Record]:
    """PER_KEY messages for each key, the keys interleaved, bodies ``key:seq``."""
    return [messaging.Record(f"{key}:{seq}".encode(), key=key)
            for seq in range(PER_KEY) for key in KEYS]


def _sequences(arrivals: list[tuple[str | None, bytes]]) -> dict[str, list[int]]:
    per_key: dict[str, list[int]] = collections.defaultdict(list)
    for key, body in arrivals:
        body_key, _, seq = body.decode().partition(":")
        assert key == body_key, f"key {key!r} arrived on a message sent with {body_key!r}"
        per_key[body_key].append(int(seq))
    return per_key


def _check(arrivals: list[tuple[str | None, bytes]], ordered: bool) -> None:
    assert duplicates(body for _, body in arrivals) == {}
    per_key = _sequences(arrivals)
    assert sorted(per_key) == KEYS
    for key, seqs in per_key.items():
        if ordered:
            assert seqs == list(range(PER_KEY)), f"key {key} arrived out of order: {seqs}"
        else:
            assert sorted(seqs) == list(range(PER_KEY)), f"key {key}: {seqs}"


@pytest.mark.parametrize("sending", ["one-by-one", "send_many"])
def test_one_key_arrives_in_send_order(
    *, sending: str, messaging_client: messaging.Client,
    messaging_make_destination: MakeDestination, messaging_group: MakeGroup,
    messaging_consumer: MakeConsumer, messaging_timing: Timing,
    messaging_record_unsupported: Callable[[str], None],
) -> None:
    destination = messaging_make_destination(partitions=3)
    group = messaging_group()
    ordered = messaging_client.capabilities_for(destination).ordering == "per_key"
    if not ordered:
        messaging_record_unsupported("ordering")
    consumer = messaging_consumer(destination, group)
    producer = messaging_client.producer()
    records = _interleaved()
    if sending == "send_many":
        producer.send_many(destination, records)
    else:
        for record in records:
            producer.send(destination, record.value, key=record.key)

    got = receive_until(consumer, len(records), messaging_timing.deliver * 2, ack=True)

    assert len(got) == len(records)
    _check([(m.key, m.body) for m in got], ordered)
    assert_quiet(consumer, messaging_timing.quiet, "after all were acked")


def test_worker_keeps_each_key_in_order(
    *, messaging_client: messaging.Client, messaging_make_destination: MakeDestination,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
    messaging_record_unsupported: Callable[[str], None],
) -> None:
    destination = messaging_make_destination(partitions=3)
    group = messaging_group()
    ordered = messaging_client.capabilities_for(destination).ordering == "per_key"
    if not ordered:
        messaging_record_unsupported("ordering")
    arrivals: list[tuple[str | None, bytes]] = []
    lock = threading.Lock()
    jitter = random.Random(4)

    def handler(message: messaging.Message) -> None:
        time.sleep(jitter.random() / 500)  # handlers overlap: order must come from lanes
        with lock:
            arrivals.append((message.key, message.body))

    consumer = messaging_consumer(destination, group)  # the group exists from here
    records = _interleaved()
    messaging_client.producer().send_many(destination, records)
    stop = threading.Event()
    worker = threading.Thread(
        target=consumer.run,
        kwargs={"handler": handler, "concurrency": 4, "stop_event": stop},
        name="contract-ordered-worker", daemon=True,
    )
    worker.start()
    try:
        done = wait_for(lambda: len(arrivals) >= len(records), messaging_timing.deliver * 2)
    finally:
        stop.set()
        worker.join(timeout=messaging_timing.deliver)
    assert not worker.is_alive(), "run() did not return on stop"
    assert done, f"handled {len(arrivals)} of {len(records)}"
    _check(arrivals, ordered)
    assert messaging_client.admin.depth(destination, group) == 0
