"""Unit tests of the Redis adapter with a fake behind its private protocol
(``messaging_redis._streams.StreamApi``): the translation of messages to stream fields
and back, the receive loop's timing, settlement arguments, option checks and the error
table. No server is needed; the Lua scripts are exercised by the contract, interop and
failure tests on a real Redis."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
import redis
from messaging_redis import RedisDriver, RedisSubscription, _driver, _wire
from messaging_redis._driver import Settings, _client_options
from messaging_redis._errors import RedisRefused, classify
from messaging_redis._streams import Add, AddResult, Collected, ServerInfo, ToAdd, Trim, _packed
from redis import exceptions as redis_errors

import messaging
from messaging.driver import OutgoingMessage, SubscriptionOptions
from messaging.errors import ErrorCode
from messaging.urls import parse_url


@dataclasses.dataclass
class FakeStreams:
    """Records every call; answers from the queues below."""

    calls: list[tuple[str, tuple[Any, ...]]] = dataclasses.field(default_factory=list)
    add_results: list[list[AddResult]] = dataclasses.field(default_factory=list)
    reads: list[list[tuple[bytes, list[bytes]]]] = dataclasses.field(default_factory=list)
    ahead: list[list[tuple[bytes, list[bytes]]]] = dataclasses.field(default_factory=list)
    """What reads ahead in an ack's round trip return, in turn."""
    collections: list[Collected] = dataclasses.field(default_factory=list)
    created: bool = True
    depth_answer: int = 0
    stream_names: list[str] = dataclasses.field(default_factory=list)
    settled: set[bytes] = dataclasses.field(default_factory=set)  # acked ids

    @property
    def native(self) -> object:
        return "native-client"

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def server(self) -> ServerInfo:
        return ServerInfo((7, 0, 15), aof_enabled=False)

    def add(self, stream: str, entries: Sequence[ToAdd], trim: Trim,
            dedup_window_ms: int) -> list[AddResult]:
        self.calls.append(("add", (stream, list(entries), trim, dedup_window_ms)))
        if self.add_results:
            return self.add_results.pop(0)
        return [f"1-{n}".encode() for n in range(len(entries))]

    def read(self, stream: str, group: str, consumer: str, count: int,
             block_ms: int | None) -> list[tuple[bytes, list[bytes]]]:
        self.calls.append(("read", (stream, group, consumer, count, block_ms)))
        if self.reads:
            return self.reads.pop(0)
        if block_ms:
            time.sleep(block_ms / 1000)
        return []

    def collect(self, stream: str, group: str, consumer: str, *, count: int,
                default_idle_ms: int, sweep_idle_ms: int, trim: Trim) -> Collected:
        self.calls.append(("collect", (stream, group, consumer, count, default_idle_ms)))
        if self.collections:
            return self.collections.pop(0)
        return Collected([], None, int(time.time() * 1000))

    def park(self, stream: str, group: str, deliveries: Sequence[tuple[bytes, int]],
             delay_ms: int, *, unread: bool = False) -> list[bytes]:
        name = "give back" if unread else "park"
        self.calls.append((name, (stream, group, list(deliveries), delay_ms)))
        return [entry_id for entry_id, _ in deliveries if entry_id not in self.settled]

    def ack(self, stream: str, group: str, ids: Sequence[bytes], unpark: Sequence[bytes],
            read_ahead: tuple[str, int] | None = None) -> list[tuple[bytes, list[bytes]]]:
        if read_ahead is None:
            self.calls.append(("ack", (stream, group, list(ids), list(unpark))))
        else:
            self.calls.append(("ack+read", (stream, group, list(ids), list(unpark),
                                            read_ahead[1])))
        self.settled.update(ids)
        return self.ahead.pop(0) if read_ahead is not None and self.ahead else []

    def leave(self, stream: str, group: str, consumer: str) -> None:
        self.calls.append(("leave", (stream, group, consumer)))

    def create(self, stream: str, groups: Sequence[str], make_stream: bool) -> bool:
        self.calls.append(("create", (stream, list(groups), make_stream)))
        return self.created or make_stream

    def delete(self, stream: str) -> None:
        self.calls.append(("delete", (stream,)))

    def depth(self, stream: str, group: str) -> int:
        return self.depth_answer

    def set_last_delivered(self, stream: str, group: str, last_id: str) -> None:
        self.calls.append(("setid", (stream, group, last_id)))

    def streams(self) -> list[str]:
        return self.stream_names

    def groups(self, stream: str) -> list[str]:
        return ["g"]

    def close(self) -> None:
        self.calls.append(("close", ()))


def last(fake: FakeStreams) -> tuple[str, tuple[Any, ...]]:
    """The latest call (a function, so that mypy does not narrow one index expression
    across assertions)."""
    return fake.calls[-1]


def driver(fake: FakeStreams, **options: object) -> RedisDriver:
    return RedisDriver(fake, Settings.from_options(options), durable=False)


def subscription(fake: FakeStreams, visibility: float | None = 2.5, prefetch: int = 100,
                 **options: object) -> RedisSubscription:
    sub = driver(fake, **options).subscribe(
        "orders", "billing", SubscriptionOptions(visibility_timeout=visibility,
                                                 prefetch=prefetch))
    assert isinstance(sub, RedisSubscription)
    fake.calls.clear()
    return sub


# -- wire ------------------------------------------------------------------------------
def test_fields_are_body_key_and_headers_only() -> None:
    message = OutgoingMessage(body=b"\x00\xff", key="user-\u2713",
                              headers={"content-type": "text/plain", "h": "v\u00e9"})
    assert _wire.parts_of(message) == [
        b"body", b"\x00\xff", b"key", "user-\u2713".encode(), b"content-type", b"text/plain",
        b"h", "v\u00e9".encode()]
    assert _wire.parts_of(OutgoingMessage(body=b"")) == [b"body", b""]
    assert _wire.parts_of(OutgoingMessage(body=b"x"), "mid") == [
        b"body", b"x", b"message-id", b"mid"]


def test_delivery_reads_fields_back() -> None:
    delivery = _wire.delivery_of("orders", b"1700000000123-4", [
        b"body", b"payload", b"key", b"k", b"message-id", b"m-1", b"h", b"v",
        b"bad", b"\xff"], 3)
    assert delivery.body == b"payload"
    assert delivery.key == "k"
    assert delivery.id == "m-1"
    assert delivery.position == "1700000000123-4"
    assert delivery.headers == {"h": "v", "bad": "\udcff"}
    assert delivery.attempt == 3
    assert delivery.ack_id == (b"1700000000123-4", 3)
    assert delivery.timestamp == dt.datetime(2023, 11, 14, 22, 13, 20, 123000, dt.UTC)
    plain = _wire.delivery_of("orders", b"5-0", [b"temp", b"21"], 1)
    assert (plain.body, plain.key, plain.id, plain.headers) == (b"", None, "5-0",
                                                               {"temp": "21"})
    # An id a plain client chose past year 9999: the entry still arrives, undated.
    far = _wire.delivery_of("orders", b"999999999999999-1", [b"body", b"x"], 1)
    assert (far.body, far.timestamp) == (b"x", None)


def test_a_batch_reads_each_entry_as_one_entry_alone() -> None:
    shared = [b"content-type", b"text/plain", b"h", b"v"]
    entries: list[tuple[bytes, list[bytes]]] = [
        (b"1700000000123-0", [b"body", b"a", *shared]),
        (b"1700000000123-1", [b"body", b"b", *shared]),  # same fields, same millisecond
        (b"1700000000124-0", [b"body", b"c", *shared]),  # same fields, next millisecond
        (b"1700000000124-1", [b"body", b"d", b"key", b"k1", *shared]),
        (b"1700000000124-2", [b"body", b"e", b"key", b"k2", *shared]),
        (b"1700000000124-3", [b"body", b"f", b"message-id", b"m-1", b"h", b"v"]),
        (b"1700000000124-4", [b"temp", b"21"]),  # written by someone else: no body first
        (b"1700000000124-5", [b"body", b"g", b"bad", b"\xff"]),
        (b"1700000000124-6", [b"body", b"h", b"bad", b"\xff"]),
        (b"1700000000124-7", [b"body", b"i", b"body", b"j"]),  # the last body wins
        (b"1700000000124-8", [b"body", b"k", *shared]),
    ]
    batch = _wire.deliveries_of("orders", entries, 2)
    assert batch == [_wire.delivery_of("orders", entry_id, parts, 2)
                     for entry_id, parts in entries]
    # Every receiver may change its own headers without touching another's.
    assert len({id(delivery.headers) for delivery in batch}) == len(batch)


def test_surrogates_go_back_as_the_original_bytes() -> None:
    delivery = _wire.delivery_of("d", b"1-0", [b"body", b"", b"\xc3(", b"\xfe"], 1)
    again = _wire.parts_of(OutgoingMessage(body=b"", headers=delivery.headers))
    assert again == [b"body", b"", b"\xc3(", b"\xfe"]


def test_direct_writes_are_the_ones_redis_py_would_make() -> None:
    """The same bytes in the same writes as the connection's own packer (decision 0109):
    small commands joined up to its cutoff, large ones alone."""
    pytest.importorskip("hiredis")  # without it _packed is pack_commands itself
    connection = redis.Connection()  # packing needs no server
    commands = [("XADD", "s", "NOMKSTREAM", "*", b"body", bytes(size), "n", 7, 1.5)
                for size in (10, 3000, 2990, 7000, 10, 10, 6500, 5)]
    commands.append(("XACK", "s", "g", *(f"1-{n}".encode() for n in range(300))))
    assert _packed(connection, commands) == connection.pack_commands(commands)


@pytest.mark.parametrize("name", ["body", "key", "message-id"])
def test_reserved_header_names_are_refused(name: str) -> None:
    with pytest.raises(RedisRefused) as caught:
        _wire.check_fields([OutgoingMessage(body=b""), OutgoingMessage(
            body=b"", headers={name: "x"})])
    assert caught.value.code is ErrorCode.CONFIGURATION
    assert name in str(caught.value)


@pytest.mark.parametrize(("target", "last_delivered"), [
    ("beginning", "0"),
    ("end", "$"),
    ("1700000000123-4", "1700000000123-3"),
    ("1700000000123-0", "1700000000122-18446744073709551615"),
    ("0-0", "0"),
    (dt.datetime(2023, 11, 14, 22, 13, 20, 123000, dt.UTC),
     "1700000000122-18446744073709551615"),
    (dt.datetime(2023, 11, 14, 22, 13, 20, 123500, dt.UTC),
     "1700000000123-18446744073709551615"),
    (dt.datetime(1970, 1, 1, tzinfo=dt.UTC), "0"),
])
def test_seek_targets(target: Any, last_delivered: str) -> None:
    assert _wire.last_delivered_for(target) == last_delivered


@pytest.mark.parametrize("target", ["yesterday", "12", "1-2-3"])
def test_bad_seek_targets_are_configuration_errors(target: Any) -> None:
    with pytest.raises(RedisRefused) as caught:
        _wire.last_delivered_for(target)
    assert caught.value.code is ErrorCode.CONFIGURATION


# -- driver ----------------------------------------------------------------------------
def test_capabilities_are_declared_once_and_honestly() -> None:
    caps = driver(FakeStreams(), max_message_bytes=1000, dedup_window=60).capabilities("any")
    assert (caps.ordering, caps.fan_out, caps.replay, caps.priority) == ("none", True, True, 0)
    assert caps.dead_letter == "emulated"
    assert caps.dedup
    assert caps.dedup_window == 60.0
    assert caps.max_delay is not None
    assert caps.max_message_bytes == 1000
    assert caps.durable is False
    assert caps.emulated == {"delay", "dead_letter", "dedup", "visibility_timeout", "extend"}
    durable = RedisDriver(FakeStreams(), Settings(), durable=True)
    assert durable.capabilities().durable


def test_plain_sends_are_one_batch_of_fields() -> None:
    fake = FakeStreams()
    ids = driver(fake).send_batch("orders", [OutgoingMessage(body=b"a", key="k"),
                                             OutgoingMessage(body=b"b")])
    assert ids == ["1-0", "1-1"]
    ((name, (stream, entries, trim, _)),) = fake.calls
    assert (name, stream, trim) == ("add", "orders", Trim())
    assert entries == [[b"body", b"a", b"key", b"k"], [b"body", b"b"]]


def test_delayed_and_dedup_sends_go_through_the_script_with_their_own_id() -> None:
    fake = FakeStreams()
    driver(fake, dedup_window=2.5).send_batch("orders", [
        OutgoingMessage(body=b"later", delay=1.2345),
        OutgoingMessage(body=b"once", dedup_id="order-7"),
    ])
    (_, (_, (later, once), _, window_ms)), = fake.calls
    assert window_ms == 2500
    assert isinstance(later, Add)
    assert later.delay_ms == 1235  # rounded up: never early
    assert later.message_id is not None
    assert later.parts[2:4] == [b"message-id", later.message_id.encode()]
    assert isinstance(once, Add)
    assert (once.delay_ms, once.dedup_id, once.message_id) == (0, "order-7", None)


def test_a_missing_stream_fails_the_whole_batch_or_one_message() -> None:
    fake = FakeStreams(add_results=[[None, None]])
    with pytest.raises(RedisRefused) as caught:
        driver(fake).send_batch("nowhere", [OutgoingMessage(body=b"a")] * 2)
    assert caught.value.code is ErrorCode.NOT_FOUND
    refused = redis_errors.ResponseError("OOM command not allowed")
    fake.add_results = [[b"1-0", None, refused]]
    results = driver(fake).send_batch("gone", [OutgoingMessage(body=b"a")] * 3)
    assert results[0] == "1-0"
    assert isinstance(results[1], RedisRefused)
    assert results[1].code is ErrorCode.NOT_FOUND
    assert results[2] is refused


def test_trim_options_reach_every_xadd() -> None:
    assert Trim(maxlen=1000).arguments() == ["MAXLEN", "~", "1000"]
    kind, approximate, minid = Trim(retention=60.0).arguments()
    assert (kind, approximate) == ("MINID", "~")
    assert abs(int(minid) - (time.time() - 60) * 1000) < 5000
    assert Trim().arguments() == []
    fake = FakeStreams()
    driver(fake, maxlen=10).send_batch("orders", [OutgoingMessage(body=b"a")])
    assert fake.calls[0][1][2] == Trim(maxlen=10)


def test_subscribe_refuses_a_missing_stream_and_names_the_visibility() -> None:
    fake = FakeStreams(created=False)
    with pytest.raises(RedisRefused) as caught:
        driver(fake).subscribe("nowhere", "g", SubscriptionOptions())
    assert caught.value.code is ErrorCode.NOT_FOUND
    assert fake.calls == [("create", ("nowhere", ["g"], False))]
    fake.created = True
    assert driver(fake).subscribe("d", "g", SubscriptionOptions(
        visibility_timeout=1.5)).consumer.endswith("~v1500")
    default = driver(fake, default_visibility_timeout=7).subscribe("d", "g",
                                                                   SubscriptionOptions())
    assert default.consumer.endswith("~v7000")


def test_create_refuses_options_and_ignores_partitions() -> None:
    fake = FakeStreams()
    with pytest.raises(RedisRefused, match="no_such_option") as caught:
        driver(fake).create("d", 3, [], {"no_such_option": True})
    assert caught.value.code is ErrorCode.CONFIGURATION
    driver(fake).create("d", 3, ["a", "b"], {})
    assert fake.calls == [("create", ("d", ["a", "b"], True))]


def test_depth_answers_and_missing_things() -> None:
    fake = FakeStreams(depth_answer=5)
    assert driver(fake).depth("d", "g") == 5
    for answer in (-1, -2):
        fake.depth_answer = answer
        with pytest.raises(RedisRefused) as caught:
            driver(fake).depth("d", "g")
        assert caught.value.code is ErrorCode.NOT_FOUND


def test_destinations_leave_out_the_adapters_own_keys() -> None:
    fake = FakeStreams(stream_names=["orders", "{orders}:delayed", "events"])
    assert sorted(driver(fake).destinations()) == ["events", "orders"]


# -- subscription ------------------------------------------------------------------------
def test_receive_reclaims_first_then_reads_new_entries() -> None:
    fake = FakeStreams(
        collections=[Collected([(b"1-0", [b"body", b"old"], 2)], None, 0)],
        reads=[[(b"2-0", [b"body", b"new", b"h", b"v"])]])
    sub = subscription(fake)
    (old,) = sub.receive_batch(10, 1.0)
    assert (old.body, old.attempt, old.ack_id) == (b"old", 2, (b"1-0", 2))
    (new,) = sub.receive_batch(10, 1.0)
    assert (new.body, new.attempt, new.headers) == (b"new", 1, {"h": "v"})
    assert fake.names() == ["collect", "read"]
    assert fake.calls[0][1][3:] == (10, 30000)  # count, default idle for plain consumers


def test_count_is_capped_by_prefetch() -> None:
    fake = FakeStreams(reads=[[(b"1-0", [b"body", b"x"])]])
    subscription(fake, prefetch=3).receive_batch(50, 0.5)
    assert fake.calls[0][1][3] == 3
    assert fake.calls[1][1][3] == 3


def test_receive_blocks_no_longer_than_its_timeout_nor_the_next_reclaim() -> None:
    fake = FakeStreams()
    sub = subscription(fake, reclaim_interval=0.3)
    started = time.monotonic()
    assert sub.receive_batch(10, 0.5) == []
    waited = time.monotonic() - started
    assert 0.45 <= waited < 0.8
    blocks = [call[1][4] for call in fake.calls if call[0] == "read"]
    assert blocks
    assert all(block is None or block <= 300 for block in blocks)
    assert fake.names().count("collect") == 2  # at once, then after reclaim_interval


def test_zero_timeout_reads_without_blocking() -> None:
    fake = FakeStreams()
    sub = subscription(fake)
    started = time.monotonic()
    assert sub.receive_batch(10, 0.0) == []
    assert time.monotonic() - started < 0.1
    assert last(fake) == ("read", ("orders", "billing", sub.consumer, 10, None))


def test_a_due_time_brings_the_next_reclaim_forward() -> None:
    now_ms = 1_000_000
    fake = FakeStreams(collections=[Collected([], now_ms + 120, now_ms)])
    sub = subscription(fake, reclaim_interval=1.0)
    started = time.monotonic()
    sub.receive_batch(10, 0.3)
    reclaims = fake.names().count("collect")
    assert reclaims == 2, fake.names()  # the second at the due time, not after 1 s
    assert time.monotonic() - started < 0.5


def test_nack_parks_with_its_delay_and_is_reclaimed_next() -> None:
    fake = FakeStreams()
    sub = subscription(fake)
    sub.receive_batch(1, 0.0)
    sub.send_nacks([(b"1-0", 1), (b"2-0", 3)], 0.0101)
    assert last(fake) == ("park", ("orders", "billing", [(b"1-0", 1), (b"2-0", 3)], 11))
    sub.send_nacks([(b"3-0", 1)], None)
    assert last(fake)[1][3] == 0
    fake.calls.clear()
    sub.receive_batch(1, 0.0)
    assert fake.names()[0] == "collect"  # its own nack is looked for at once


def test_extend_parks_and_the_ack_takes_it_back() -> None:
    fake = FakeStreams()
    sub = subscription(fake)
    sub.extend([(b"1-0", 1)], 4.0)
    assert last(fake) == ("park", ("orders", "billing", [(b"1-0", 1)], 4000))
    sub.send_acks([(b"1-0", 1), (b"2-0", 1)])
    assert last(fake) == ("ack", ("orders", "billing", [b"1-0", b"2-0"], [b"1-0"]))
    sub.send_acks([(b"1-0", 2)])
    assert last(fake) == ("ack", ("orders", "billing", [b"1-0"], []))


def test_extending_a_delivery_acked_a_moment_earlier_leaves_nothing_behind() -> None:
    fake = FakeStreams()
    sub = subscription(fake)
    sub.send_acks([(b"1-0", 1)])
    sub.extend([(b"1-0", 1), (b"2-0", 1)], 4.0)  # the lease keeper, just too late for 1-0
    sub.send_acks([(b"2-0", 1)])
    assert last(fake) == ("ack", ("orders", "billing", [b"2-0"], [b"2-0"]))
    assert not sub._extended  # 1-0 is never acked again: it must not wait there forever


def test_an_ack_that_lands_while_an_extension_travels_leaves_nothing_behind() -> None:
    """The lease keeper parks 1-0; before its answer is back, the handler's ack of 1-0
    reaches Redis (too late to unpark it, too early for the keeper's bookkeeping)."""
    fake = FakeStreams()
    sub = subscription(fake)
    parked = threading.Event()
    release = threading.Event()
    real_park = fake.park

    def slow_park(*args: Any) -> list[bytes]:
        answer = real_park(*args)
        parked.set()
        release.wait(5)
        return answer

    fake.park = slow_park  # type: ignore[method-assign]
    keeper = threading.Thread(target=sub.extend, args=([(b"1-0", 1)], 4.0))
    keeper.start()
    assert parked.wait(5)
    sub.send_acks([(b"1-0", 1)])
    release.set()
    keeper.join(5)
    assert not sub._extended
    assert not sub._acked_meanwhile


def entries(*numbers: int) -> list[tuple[bytes, list[bytes]]]:
    return [(f"{n}-0".encode(), [b"body", f"m{n}".encode()]) for n in numbers]


def test_an_ack_after_a_full_receive_reads_ahead_and_the_next_receive_uses_it() -> None:
    fake = FakeStreams(reads=[entries(1, 2, 3)], ahead=[entries(4, 5, 6)])
    sub = subscription(fake)
    sub.receive_batch(3, 0.0)  # full: more is likely waiting
    sub.send_acks([(b"1-0", 1), (b"2-0", 1), (b"3-0", 1)])
    assert last(fake) == ("ack+read", ("orders", "billing", [b"1-0", b"2-0", b"3-0"], [], 3))
    fake.calls.clear()
    batch = sub.receive_batch(3, 0.0)
    assert [(d.body, d.attempt) for d in batch] == [(b"m4", 1), (b"m5", 1), (b"m6", 1)]
    assert "read" not in fake.names()  # handed out from the read-ahead


def test_no_read_ahead_after_a_short_receive_nor_past_the_prefetch() -> None:
    fake = FakeStreams(reads=[entries(1), entries(2, 3, 4, 5)])
    sub = subscription(fake, prefetch=4)
    sub.receive_batch(3, 0.0)  # one of three: the stream is drained
    sub.send_acks([(b"1-0", 1)])
    assert last(fake)[0] == "ack"
    sub.receive_batch(10, 0.0)  # four of min(10, prefetch 4): full
    sub.send_acks([(b"2-0", 1)])  # three still out: no room for a batch of four
    assert last(fake)[0] == "ack"
    sub.send_acks([(b"3-0", 1), (b"4-0", 1), (b"5-0", 1)])
    assert last(fake) == ("ack+read", ("orders", "billing", [b"3-0", b"4-0", b"5-0"], [], 4))


def test_close_gives_back_what_was_read_ahead_before_leaving() -> None:
    fake = FakeStreams(reads=[entries(1)], ahead=[entries(2)])
    sub = subscription(fake)
    sub.receive_batch(1, 0.0)
    sub.send_acks([(b"1-0", 1)])
    sub.close()
    assert fake.calls[-2:] == [("give back", ("orders", "billing", [(b"2-0", 1)], 0)),
                               ("leave", ("orders", "billing", sub.consumer))]


def test_a_read_ahead_that_lands_after_a_seek_goes_back() -> None:
    fake = FakeStreams(reads=[entries(1)])
    sub = subscription(fake)
    sub.receive_batch(1, 0.0)
    real_ack = fake.ack

    def ack_while_seeking(*args: Any) -> list[tuple[bytes, list[bytes]]]:
        sub.seek("end")  # another thread's seek, while the read-ahead travels
        fake.ahead.append(entries(2))
        return real_ack(*args)

    fake.ack = ack_while_seeking  # type: ignore[method-assign]
    sub.send_acks([(b"1-0", 1)])
    assert last(fake) == ("give back", ("orders", "billing", [(b"2-0", 1)], 0))
    assert not sub._ahead


def test_a_stale_read_ahead_is_given_back_and_reclaimed_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeStreams(reads=[entries(1)], ahead=[entries(2)])
    sub = subscription(fake, reclaim_interval=5.0)
    sub.receive_batch(1, 0.0)
    sub.send_acks([(b"1-0", 1)])
    monkeypatch.setattr(_driver, "FRESH", 0.0)
    fake.calls.clear()
    fake.collections.append(Collected([(b"2-0", [b"body", b"m2"], 1)], None, 0))
    (again,) = sub.receive_batch(1, 0.0)
    assert (again.body, again.attempt) == (b"m2", 1)
    assert fake.names() == ["give back", "collect"]


def test_seek_and_close() -> None:
    fake = FakeStreams()
    sub = subscription(fake)
    sub.seek("1700000000123-4")
    assert last(fake) == ("setid", ("orders", "billing", "1700000000123-3"))
    sub.close()
    sub.close()
    assert fake.names().count("leave") == 1
    assert sub.as_native() == "native-client"


# -- options and URLs ---------------------------------------------------------------------
@pytest.mark.parametrize("options", [
    {"default_visibility_timeout": 0},
    {"reclaim_interval": -1.0},
    {"max_message_bytes": True},
    {"maxlen": 10, "retention": 60.0},
    {"reclaim_interval": 6.0, "socket_timeout": 10.0},
    {"socket_timeout": float("nan")},  # passes a "<= 0" check: NaN compares false
    {"default_visibility_timeout": float("inf")},
    {"retention": float("nan")},
    {"dedup_window": float("inf")},
])
def test_bad_options_are_configuration_errors(options: dict[str, object]) -> None:
    with pytest.raises(RedisRefused) as caught:
        Settings.from_options(options)
    assert caught.value.code is ErrorCode.CONFIGURATION


def test_client_options_hand_redis_py_the_url_without_our_query() -> None:
    url = parse_url("redis://user:s%40cret@host:6380/2?reclaim_interval=0.5")
    text, kwargs = _client_options(url, {"connect_timeout": 3}, Settings())
    assert text == "redis://user:s%40cret@host:6380/2"
    assert kwargs == {"socket_connect_timeout": 3.0, "socket_timeout": 10.0}
    text, kwargs = _client_options(parse_url("rediss://h:1/0"),
                                   {"ssl_cert_reqs": "none"}, Settings())
    assert kwargs["ssl_cert_reqs"] == "none"


@pytest.mark.parametrize(("url", "options"), [
    ("redis://a:1,b:2/0", {}),
    ("redis://h:1/zero", {}),
    ("redis://h:1/0", {"ssl_ca_certs": "/ca.pem"}),
])
def test_bad_urls_are_configuration_errors(url: str, options: dict[str, object]) -> None:
    with pytest.raises(RedisRefused) as caught:
        _client_options(parse_url(url), options, Settings())
    assert caught.value.code is ErrorCode.CONFIGURATION


def test_unknown_options_are_refused_before_connecting() -> None:
    with pytest.raises(messaging.ConfigurationError, match="nonsense"):
        messaging.connect("redis://127.0.0.1:1/0?nonsense=1")
    with pytest.raises(messaging.ConfigurationError, match="reclaim_interval"):
        messaging.connect("redis://127.0.0.1:1/0", reclaim_interval="often")


# -- errors --------------------------------------------------------------------------------
@pytest.mark.parametrize(("error", "code"), [
    (redis_errors.ConnectionError("Error 111 connecting"), ErrorCode.CONNECTION),
    (redis_errors.TimeoutError("Timeout reading from socket"), ErrorCode.CONNECTION),
    (redis_errors.BusyLoadingError("Redis is loading"), ErrorCode.CONNECTION),
    (redis_errors.InvalidResponse("Protocol Error: b'HTTP/1.1'"), ErrorCode.CONNECTION),
    (redis_errors.AuthenticationError("invalid username-password pair"),
     ErrorCode.AUTHENTICATION),
    (redis_errors.NoPermissionError("NOPERM no permissions to run 'xadd'"),
     ErrorCode.AUTHENTICATION),
    (redis_errors.ResponseError("NOAUTH Authentication required."), ErrorCode.AUTHENTICATION),
    (redis_errors.ResponseError("NOGROUP No such key 'd' or consumer group 'g'"),
     ErrorCode.NOT_FOUND),
    (redis_errors.ResponseError("ERR The XGROUP subcommand requires the key to exist."),
     ErrorCode.NOT_FOUND),
    (redis_errors.ResponseError("WRONGTYPE Operation against a key holding the wrong kind"),
     ErrorCode.CONFIGURATION),
    (redis_errors.ResponseError("BUSY Redis is busy running a script."), ErrorCode.CONNECTION),
    (redis_errors.ReadOnlyError("READONLY You can't write against a read only replica."),
     ErrorCode.CONNECTION),
    (redis_errors.ResponseError("ERR string exceeds maximum allowed size (proto-max-bulk-len)"),
     ErrorCode.TOO_LARGE),
    (redis_errors.ResponseError("ERR unknown command 'XAUTOCLAIM'"), ErrorCode.UNSUPPORTED),
    (redis_errors.MovedError("3999 127.0.0.1:6381"), ErrorCode.CONFIGURATION),
    (redis_errors.DataError("Invalid input of type: 'dict'"), ErrorCode.CONFIGURATION),
    (redis_errors.ResponseError("OOM command not allowed"), ErrorCode.UNKNOWN),
    (RedisRefused(ErrorCode.UNSUPPORTED, "needs 7.0"), ErrorCode.UNSUPPORTED),
    (ValueError("anything else"), ErrorCode.UNKNOWN),
])
def test_the_error_table(error: BaseException, code: ErrorCode) -> None:
    assert classify(error) is code
    assert RedisDriver.error_code(RedisDriver.__new__(RedisDriver), error) is code
