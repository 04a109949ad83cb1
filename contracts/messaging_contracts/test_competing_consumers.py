"""Contract 2, competing consumers: inside one group, each message goes to one consumer.

Nothing is said about how evenly messages spread (one Kafka partition feeds one member),
only that no message reaches two members of a group while everyone acks promptly.
"""

from __future__ import annotations

import collections
import threading

import pytest

import messaging
from messaging_contracts.helpers import (
    MakeConsumer,
    MakeDestination,
    MakeGroup,
    Timing,
    assert_quiet,
    duplicates,
    receive_any,
    wait_for,
)

pytestmark = pytest.mark.messaging_contract("competing-consumers")


def test_each_message_goes_to_one_member(
    *, messaging_client: messaging.Client, messaging_make_destination: MakeDestination,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    destination = messaging_make_destination(partitions=3)
    group = messaging_group()
    members = [messaging_consumer(destination, group, prefetch=5) for _ in range(3)]
    sent = [f"job-{i}".encode() for i in range(60)]
    messaging_client.producer().send_many(destination, sent)

    got = receive_any(members, len(sent), messaging_timing.deliver * 2)

    delivered = [message.body for _, message in got]
    assert duplicates(delivered) == {}, "a message reached the group twice"
    assert sorted(delivered) == sorted(sent)
    assert {message.attempt for _, message in got} == {1}
    for member in members:
        assert_quiet(member, messaging_timing.quiet / len(members), "after all were acked")
    assert messaging_client.admin.depth(destination, group) == 0


def test_worker_pools_process_each_message_once(
    *, messaging_client: messaging.Client, messaging_make_destination: MakeDestination,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    destination = messaging_make_destination(partitions=2)
    group = messaging_group()
    handled: collections.Counter[bytes] = collections.Counter()
    lock = threading.Lock()

    def handler(message: messaging.Message) -> None:
        with lock:
            handled[message.body] += 1

    stop = threading.Event()
    workers = [
        threading.Thread(
            target=messaging_consumer(destination, group, prefetch=10).run,
            kwargs={"handler": handler, "concurrency": 3, "stop_event": stop},
            name=f"contract-worker-{n}", daemon=True,
        )
        for n in range(2)
    ]
    for worker in workers:
        worker.start()
    sent = [f"order-{i}".encode() for i in range(100)]
    messaging_client.producer().send_many(destination, sent)
    try:
        finished = wait_for(lambda: len(handled) >= len(sent), messaging_timing.deliver * 2)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=messaging_timing.deliver)
    assert not any(worker.is_alive() for worker in workers), "run() did not return on stop"
    assert finished, f"handled {len(handled)} of {len(sent)}"
    assert sorted(handled) == sorted(sent)
    assert {body: n for body, n in handled.items() if n > 1} == {}
    assert messaging_client.admin.depth(destination, group) == 0
