"""The Redis adapter's read-ahead on the real broker (decision 0107): an ack that follows
a full receive also reads the next batch in its round trip. What it read is this member's
in Redis before anyone asked for it, so these tests pin down that nothing is lost and no
``attempt`` is inflated when it is never handed out (close, seek, a long pause).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from messaging_redis import _driver

import messaging

try:
    from broker_fixtures import redis_client, redis_url
    from draining import drain
except ImportError:  # tests/ is not on sys.path when only tests/adapters is collected
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from broker_fixtures import redis_client, redis_url
    from draining import drain

__all__ = ["redis_client", "redis_url"]

GROUP = "workers"


@pytest.fixture
def destination(redis_client: messaging.Client) -> Iterator[str]:
    name = f"ahead-{uuid.uuid4().hex[:10]}"
    redis_client.admin.create(name, groups=[GROUP])
    redis_client.producer().send_many(name, [f"m{n}".encode() for n in range(30)])
    yield name
    redis_client.admin.delete(name)


def pending_of(client: messaging.Client, destination: str) -> dict[str, int]:
    """Entries pending per consumer of the group, as Redis has them."""
    native: Any = client.as_native()
    return {info["name"].decode(): int(info["pending"])
            for info in native.xinfo_consumers(destination, GROUP)}


def ack_a_full_batch(consumer: messaging.Consumer) -> None:
    """Receive a full batch of 10 and ack it: the ack reads the next 10 ahead."""
    consumer.ack_many(consumer.receive(max_messages=10, timeout=2.0))


def test_an_ack_after_a_full_receive_reads_the_next_batch(redis_client: messaging.Client,
                                                          destination: str) -> None:
    consumer = redis_client.consumer(destination, GROUP)
    first = consumer.receive(max_messages=10, timeout=2.0)
    assert len(first) == 10
    consumer.ack_many(first)
    # The next ten are this member's already: Redis lists them as pending to it.
    assert sum(pending_of(redis_client, destination).values()) == 10
    second = consumer.receive(max_messages=10, timeout=0)
    assert [m.body for m in second] == [f"m{n}".encode() for n in range(10, 20)]
    assert {m.attempt for m in second} == {1}
    consumer.close()


def test_what_was_read_ahead_goes_back_at_close_with_its_attempt(
        redis_client: messaging.Client, destination: str) -> None:
    leaving = redis_client.consumer(destination, GROUP)
    ack_a_full_batch(leaving)
    leaving.close()
    # Given back: held by no member (the leaving one is gone from the group), parked
    # to be delivered at once.
    assert pending_of(redis_client, destination) == {"messaging:parked": 10}
    staying = redis_client.consumer(destination, GROUP)
    rest = drain(staying, 20)
    assert sorted(m.body for m in rest) == sorted(f"m{n}".encode() for n in range(10, 30))
    assert {m.attempt for m in rest} == {1}  # never handed out: not a redelivery
    staying.close()


def test_a_read_ahead_left_waiting_is_delivered_with_a_fresh_lease(
        redis_client: messaging.Client, destination: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_driver, "FRESH", 0.0)  # every read-ahead is stale at once
    consumer = redis_client.consumer(destination, GROUP)
    ack_a_full_batch(consumer)
    later = consumer.receive(max_messages=10, timeout=2.0)
    assert [m.body for m in later] == [f"m{n}".encode() for n in range(10, 20)]
    assert {m.attempt for m in later} == {1}
    native: Any = redis_client.as_native()
    idle = [entry["time_since_delivered"]
            for entry in native.xpending_range(destination, GROUP, "-", "+", 20)]
    assert len(idle) == 10
    assert max(idle) < 1000  # claimed again when handed out, not when read ahead
    consumer.close()


def test_a_seek_drops_what_was_read_ahead_from_before_it(redis_client: messaging.Client,
                                                         destination: str) -> None:
    consumer = redis_client.consumer(destination, GROUP)
    ack_a_full_batch(consumer)
    consumer.seek("end")
    redis_client.producer().send(destination, b"after the seek")
    # The ten read ahead before the seek were owed to the group: they come (with
    # attempt 1, never having been handed out), and so does the new one.
    rest = drain(consumer, 11)
    assert len(rest) == 11
    assert b"after the seek" in {m.body for m in rest}
    assert {m.attempt for m in rest} == {1}
    consumer.close()


def test_closing_after_the_destination_was_deleted_has_nothing_to_give_back(
        redis_client: messaging.Client, destination: str) -> None:
    consumer = redis_client.consumer(destination, GROUP)
    ack_a_full_batch(consumer)
    redis_client.admin.delete(destination)  # the read-ahead went with the stream
    consumer.close()  # as it did before the read-ahead: no error
