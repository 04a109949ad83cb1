"""Interop both ways with plain redis-py, on the real broker: what the adapter sends is an
ordinary stream entry (field ``body`` holds the bytes unchanged, ``key`` the key, every
header a field of its own, nothing else), and what a plain client adds to the stream is
consumed by the adapter with body, key and headers unchanged. Settlement is plain Redis
too: an ack is an XACK, an unacked delivery is an entry of the group's pending list."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import messaging

try:
    from broker_fixtures import redis_client, redis_url
    from draining import drain
except ImportError:  # tests/ is not on sys.path when only tests/adapters is collected
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from broker_fixtures import redis_client, redis_url
    from draining import drain

__all__ = ["redis_client", "redis_url"]

EVERY_BYTE = bytes(range(256))
HEADERS = {"source": "web", "trace-id": "abc-123", "unicode": "d\u00e9j\u00e0 \u2713",
           "Mixed-Case": "Value With Spaces"}


@pytest.fixture
def plain(redis_client: messaging.Client) -> Any:
    """The plain redis-py client (the adapter's own, through the escape hatch)."""
    return redis_client.as_native()


@pytest.fixture
def destination(redis_client: messaging.Client) -> Iterator[str]:
    name = f"interop-{uuid.uuid4().hex[:10]}"
    yield name
    redis_client.admin.delete(name)


def plain_read(plain: Any, stream: str, group: str, count: int) -> list[tuple[bytes, dict[
        bytes, bytes]]]:
    """XREADGROUP until ``count`` entries came (10 s at most), acking them."""
    got: list[tuple[bytes, dict[bytes, bytes]]] = []
    deadline = time.monotonic() + 10
    while len(got) < count and time.monotonic() < deadline:
        reply = plain.xreadgroup(group, "plain-reader", {stream: ">"}, count=count, block=200)
        for _, entries in reply or []:
            got.extend(entries)
    if got:
        plain.xack(stream, group, *(entry_id for entry_id, _ in got))
    return got


def test_adapter_to_plain_client(redis_client: messaging.Client, plain: Any,
                                 destination: str) -> None:
    redis_client.admin.create(destination, groups=["plain"])
    sent_id = redis_client.producer().send(destination, EVERY_BYTE, key="user-42", headers=HEADERS)

    ((entry_id, fields),) = plain_read(plain, destination, "plain", 1)

    assert entry_id.decode() == sent_id
    assert fields == {
        b"body": EVERY_BYTE,
        b"key": b"user-42",
        **{name.encode(): value.encode() for name, value in HEADERS.items()},
        b"content-type": b"application/octet-stream",
    }
    # What XRANGE shows is the same: no envelope, no field beyond these.
    ((_, stored),) = plain.xrange(destination, sent_id, sent_id)
    assert stored == fields


def test_adapter_batch_and_values_to_plain_client(redis_client: messaging.Client, plain: Any,
                                                  destination: str) -> None:
    redis_client.admin.create(destination, groups=["plain"])
    ids = redis_client.producer().send_many(destination, ["caf\u00e9", {"id": 7}, b"\x00\xff"])

    got = plain_read(plain, destination, "plain", 3)

    assert [entry_id.decode() for entry_id, _ in got] == ids
    assert [fields for _, fields in got] == [
        {b"body": "caf\u00e9".encode(), b"content-type": b"text/plain; charset=utf-8"},
        {b"body": b'{"id":7}', b"content-type": b"application/json"},
        {b"body": b"\x00\xff", b"content-type": b"application/octet-stream"},
    ]


@pytest.mark.parametrize(("count", "size"), [
    (3, 10), (250, 100),  # small bodies: added by the batch script (250: three calls)
    (3, 4096),  # larger ones: XADD commands pipelined on a connection of the pool
    (100, 10240),
])
def test_every_way_of_adding_a_batch_gives_the_same_plain_entries(
        redis_client: messaging.Client, plain: Any, destination: str, count: int,
        size: int) -> None:
    redis_client.admin.create(destination, groups=["plain"])
    bodies = [n.to_bytes(2, "big") * (size // 2) for n in range(count)]
    ids = redis_client.producer().send_many(destination, bodies, key="k", headers={"h": "v"})

    got = plain_read(plain, destination, "plain", count)

    assert [entry_id.decode() for entry_id, _ in got] == ids
    assert [fields for _, fields in got] == [
        {b"body": body, b"key": b"k", b"h": b"v", b"content-type": b"application/octet-stream"}
        for body in bodies]


def test_a_send_to_a_key_that_is_not_a_stream_fails(
        redis_client: messaging.Client, plain: Any, destination: str) -> None:
    plain.set(destination, "a string")
    try:
        with pytest.raises(messaging.MessagingError, match="WRONGTYPE"):
            redis_client.producer().send(destination, b"one")
        assert plain.get(destination) == b"a string"
    finally:
        plain.delete(destination)
    redis_client.admin.create(destination)
    redis_client.producer().send(destination, b"two")  # the error reply was read: in step
    assert [fields[b"body"] for _, fields in plain.xrange(destination)] == [b"two"]


@pytest.mark.parametrize("size", [1, 4096])  # the batch script; pipelined XADD
def test_a_batch_to_a_key_that_is_not_a_stream_fails_every_message(
        redis_client: messaging.Client, plain: Any, destination: str, size: int) -> None:
    plain.set(destination, "a string")
    try:
        with pytest.raises(messaging.MessagingError, match="WRONGTYPE") as raised:
            redis_client.producer().send_many(destination, [bytes(size)] * 3)
        assert sorted(raised.value.failed) == [0, 1, 2]
        assert raised.value.sent == {}
        assert plain.get(destination) == b"a string"
    finally:
        plain.delete(destination)  # not a destination: admin.delete refuses it
    # Every error reply was read: the connections of the pool still answer in step.
    redis_client.admin.create(destination)
    assert len(redis_client.producer().send_many(destination, [bytes(size)] * 3)) == 3
    assert plain.xlen(destination) == 3


def test_plain_client_to_adapter(redis_client: messaging.Client, plain: Any,
                                 destination: str) -> None:
    consumer = redis_client.consumer(destination, "adapter", visibility_timeout=30)
    entry_id = plain.xadd(destination, {
        b"body": EVERY_BYTE, b"key": b"user-7", b"content-type": b"application/json",
        **{name.encode(): value.encode() for name, value in HEADERS.items()},
    })

    (message,) = consumer.receive(max_messages=10, timeout=10)

    assert message.body == EVERY_BYTE
    assert message.key == "user-7"
    assert message.headers == {**HEADERS, "content-type": "application/json"}
    assert message.id == message.position == entry_id.decode()
    assert message.attempt == 1
    assert message.timestamp is not None
    assert abs(message.timestamp.timestamp() - time.time()) < 5
    # Unacked, the delivery is an ordinary pending entry of the group, held by a consumer
    # whose name ends in its visibility timeout; the ack is an ordinary XACK.
    (pending,) = plain.xpending_range(destination, "adapter", "-", "+", 10)
    assert pending["message_id"] == entry_id
    assert pending["consumer"].decode().endswith("~v30000")
    assert pending["times_delivered"] == 1
    message.ack()
    assert plain.xpending(destination, "adapter")["pending"] == 0
    consumer.close()


def test_plain_entry_without_a_body_field(redis_client: messaging.Client, plain: Any,
                                          destination: str) -> None:
    """Some other program's entry: every field is a header, the body is empty."""
    consumer = redis_client.consumer(destination, "adapter")
    plain.xadd(destination, {b"temperature": b"21.5", b"room": b"kitchen"})

    (message,) = consumer.receive(max_messages=10, timeout=10)

    assert message.body == b""
    assert message.key is None
    assert message.headers == {"temperature": "21.5", "room": "kitchen"}
    message.ack()
    consumer.close()


def test_non_utf8_header_bytes_survive_dead_lettering(redis_client: messaging.Client, plain: Any,
                                                      destination: str) -> None:
    """Header bytes that are not UTF-8 come up as str (surrogateescape) and go back to the
    broker unchanged when the message is dead-lettered."""
    letters = f"{destination}-dlq"
    redis_client.admin.create(letters, groups=["plain"])
    consumer = redis_client.consumer(destination, "adapter", dead_letter=letters)
    plain.xadd(destination, {b"body": b"x", b"raw": b"\xff\xfe", b"\xc3(": b"name"})
    try:
        (message,) = consumer.receive(max_messages=10, timeout=10)
        assert message.headers["raw"] == "\udcff\udcfe"
        message.nack(requeue=False)
        ((_, fields),) = plain_read(plain, letters, "plain", 1)
    finally:
        consumer.close()
        redis_client.admin.delete(letters)
    assert fields[b"body"] == b"x"
    assert fields[b"raw"] == b"\xff\xfe"
    assert fields[b"\xc3("] == b"name"
    assert fields[b"x-dead-letter-reason"] == b"rejected"


def test_delayed_message_reaches_plain_readers_with_its_id(
        redis_client: messaging.Client, plain: Any, destination: str) -> None:
    """A delayed message enters the stream when due (moved there by a member of any
    group that receives), carrying the id send returned in its ``message-id`` field."""
    redis_client.admin.create(destination, groups=["plain"])
    message_id = redis_client.producer().send(destination, b"later", delay=0.2, headers={"h": "v"})
    assert plain.xlen(destination) == 0
    time.sleep(0.3)
    with redis_client.consumer(destination, "mover") as mover:  # its receive moves it
        (moved,) = mover.receive(max_messages=1, timeout=5)
        moved.ack()
    assert moved.id == message_id

    ((_, fields),) = plain_read(plain, destination, "plain", 1)

    assert fields == {b"body": b"later", b"message-id": message_id.encode(), b"h": b"v",
                      b"content-type": b"application/octet-stream"}


def test_reserved_field_names_are_refused_as_headers(redis_client: messaging.Client, plain: Any,
                                                     destination: str) -> None:
    redis_client.admin.create(destination, groups=["plain"])
    for name in ("body", "key", "message-id"):
        with pytest.raises(messaging.ConfigurationError, match=name):
            redis_client.producer().send_many(destination, [b"fine", messaging.Record(
                b"clash", headers={name: "x"})])
    assert plain.xlen(destination) == 0, "a refused batch sent something"


def test_entries_given_back_together_come_again_in_stream_order(
        redis_client: messaging.Client, plain: Any, destination: str) -> None:
    # Ids of one millisecond whose sequence crosses a digit: given back together they
    # share a due time, and a sorted set orders equal scores as strings (1-10 < 1-2).
    redis_client.admin.create(destination, groups=["g"])
    for n in range(12):
        plain.xadd(destination, {b"body": b"m%d" % n}, id=f"1-{n}")
    leaving = redis_client.consumer(destination, "g")
    assert len(leaving.receive(max_messages=12, timeout=5)) == 12
    leaving.close()  # gives all twelve back at once
    staying = redis_client.consumer(destination, "g")
    again = staying.receive(max_messages=12, timeout=5)
    assert [m.id for m in again] == [f"1-{n}" for n in range(12)]
    staying.ack_many(again)
    staying.close()


def test_delayed_messages_of_one_batch_come_in_the_order_sent(
        redis_client: messaging.Client, destination: str) -> None:
    # One batch is one script call, so its delayed ids share a millisecond and a due time
    # (the case the test above pins down for given-back entries).
    redis_client.admin.create(destination, groups=["g"])
    sent = [b"m%d" % n for n in range(12)]
    redis_client.producer().send_many(destination, [messaging.Record(body, delay=0.2)
                                                       for body in sent])
    consumer = redis_client.consumer(destination, "g")
    got = drain(consumer, len(sent), batch=len(sent))
    assert [m.body for m in got] == sent
    consumer.close()
