"""Unit tests of the Kafka adapter without a broker: the offset bookkeeping and its commit
metadata, settings, the error table, the wire helpers, and the driver and subscription
over an in-memory fake of the three client objects (``messaging_kafka._client``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from messaging_kafka import KafkaDriver, _declarations, _offsets, _wire
from messaging_kafka._client import Admin, ConsumerClient, ProducerClient
from messaging_kafka._errors import Unreachable, error_code
from messaging_kafka._offsets import PartitionState, Record, decode, encode
from messaging_kafka._settings import Settings

import messaging
from messaging.ack_batcher import AckBatcher
from messaging.client import Client
from messaging.codecs import DefaultCodec
from messaging.driver import Delivery, OutgoingMessage
from messaging.errors import ErrorCode
from messaging.message import Settlement
from messaging.urls import parse_url

# -- the offset bookkeeping ----------------------------------------------------------------


def test_metadata_round_trips_unsettled_offsets_and_counts() -> None:
    text = encode(100, 107, [100, 103, 104], {100: 1, 103: 2, 104: 2})
    assert text == "mk1;e=7;u=0,3-4;n=0:1,3-4:2"
    assert decode(100, text) == Record(end=107, unsettled=frozenset({100, 103, 104}),
                                       deliveries={100: 1, 103: 2, 104: 2})


def test_nothing_pending_commits_no_metadata() -> None:
    assert encode(5, 5, [], {}) == ""
    assert decode(5, "") == Record(end=5)
    assert decode(5, "written by someone else") == Record(end=5)
    assert decode(5, "mk1;e=x") == Record(end=5)  # unreadable: ignored, not fatal


def test_metadata_over_the_limit_drops_counts_then_far_ranges() -> None:
    unsettled = list(range(0, 4000, 2))  # 2000 separate offsets
    counts = dict.fromkeys(unsettled, 1)
    text = encode(0, 4001, unsettled, counts, limit=600)
    assert len(text) <= 600
    record = decode(0, text)
    assert record.deliveries == {}
    # The cut moves the end down: offsets past it are re-read (duplicates, never lost).
    assert record.end <= 4001
    assert all(offset in record.unsettled for offset in unsettled if offset < record.end)
    assert not [o for o in record.unsettled if o >= record.end]


def test_one_run_of_equally_delivered_offsets_reads_as_the_general_form() -> None:
    # The common commits (right after a receive, after in-order acks) take a shortcut
    # in encode; it must write exactly what the general path writes.
    assert encode(10, 20, list(range(12, 20)), dict.fromkeys(range(12, 20), 1)) == (
        "mk1;e=10;u=2-9;n=2-9:1")
    assert encode(10, 11, [10], {10: 3}) == "mk1;e=1;u=0;n=0:3"
    assert encode(10, 13, [10, 11, 12], {}) == "mk1;e=3;u=0-2;n="
    assert encode(10, 13, [10, 11, 12], {10: 1, 11: 2, 12: 2}) == "mk1;e=3;u=0-2;n=0:1,1-2:2"
    assert encode(10, 14, [10, 11, 13], dict.fromkeys((10, 11, 13), 1)) == (
        "mk1;e=4;u=0-1,3;n=0-1:1,3:1")
    assert decode(10, encode(10, 20, list(range(12, 20)), dict.fromkeys(range(12, 20), 2))
                  ) == Record(end=20, unsettled=frozenset(range(12, 20)),
                              deliveries=dict.fromkeys(range(12, 20), 2))


def _state(committed: int | None = 0, record: Record | None = None) -> PartitionState:
    return PartitionState(0, 1, committed, record)


def _admit(state: PartitionState, *offsets: int, due: float = 0.0) -> None:
    for offset in offsets:
        assert state.admit(offset, f"m{offset}", due)


def _take(state: PartitionState, now: float = 0.0, limit: int = 100) -> list[tuple[int, int]]:
    out: list[_offsets.Taken] = []
    state.take(now, limit, out)
    return [(offset, attempt) for _, _, offset, _, attempt in out]


def test_only_the_contiguous_acked_prefix_is_committed() -> None:
    state = _state()
    _admit(state, 0, 1, 2, 3, 4)
    assert _take(state) == [(0, 1), (1, 1), (2, 1), (3, 1), (4, 1)]
    for offset in (1, 3, 4):
        assert state.ack(offset)
    point = state.commit_point()
    assert point is not None
    assert point[0] == 0, "a later ack must never commit past an unacked message"
    assert decode(*point) == Record(end=5, unsettled=frozenset({0, 2}),
                                    deliveries={0: 1, 2: 1})
    assert state.ack(0)
    assert state.commit_point() == (2, "mk1;e=3;u=0;n=0:1")
    assert state.ack(2)
    assert state.commit_point() == (5, "")


def test_the_next_owner_skips_what_was_acked_and_counts_attempts() -> None:
    record = decode(10, "mk1;e=5;u=0,3;n=0:1,3:2")  # 10 and 13 unsettled, 11, 12, 14 acked
    state = _state(10, record)
    admitted = [offset for offset in range(10, 17) if state.admit(offset, offset)]
    assert admitted == [10, 13, 15, 16]
    assert _take(state) == [(10, 2), (13, 3), (15, 1), (16, 1)]


def test_an_inherited_record_is_kept_until_fetched() -> None:
    state = _state(10, decode(10, "mk1;e=5;u=0,3;n=0:1,3:2"))
    assert state.commit_point() == (10, "mk1;e=5;u=0,3;n=0:1,3:2")
    state.admit(10, "m")
    _take(state)
    state.ack(10)
    assert state.commit_point() == (13, "mk1;e=2;u=0;n=0:2")


def test_gaps_in_offsets_do_not_hold_the_commit_back() -> None:
    state = _state()
    _admit(state, 0, 1, 5, 6)  # 2-4: transaction markers or compacted away
    _take(state)
    for offset in (0, 1, 5, 6):
        state.ack(offset)
    assert state.commit_point() == (7, "")


def test_nack_puts_a_message_back_at_its_place() -> None:
    state = _state()
    _admit(state, 0, 1, 2)
    assert _take(state, limit=2) == [(0, 1), (1, 1)]
    assert state.nack(0, now=0.0, delay=None)
    assert _take(state) == [(0, 2), (2, 1)]


def test_nacks_in_any_order_come_back_in_offset_order() -> None:
    state = _state()
    _admit(state, 0, 1, 2, 3, 4)
    state.admit(5, "later", due=50.0)
    assert _take(state, now=10.0, limit=3) == [(0, 1), (1, 1), (2, 1)]
    for offset in (2, 0):
        assert state.nack(offset, now=10.0, delay=None)
    assert _take(state, now=10.0, limit=2) == [(0, 2), (2, 2)]
    assert _take(state, now=10.0) == [(3, 1), (4, 1)], "the delayed send still waits"
    assert state.nack(3, now=10.0, delay=None)
    assert _take(state, now=50.0) == [(3, 2), (5, 1)]


def test_a_delayed_nack_holds_the_partition_back() -> None:
    state = _state()
    _admit(state, 0, 1)
    _take(state, limit=1)
    state.nack(0, now=100.0, delay=5.0)
    assert _take(state, now=104.0) == [], "nothing overtakes the delayed message"
    assert state.next_due(104.0) == 105.0
    assert _take(state, now=105.0) == [(0, 2), (1, 1)]


def test_a_delayed_send_waits_without_holding_up_later_records() -> None:
    state = _state()
    state.admit(0, "later", due=50.0)
    state.admit(1, "now")
    assert _take(state, now=10.0) == [(1, 1)]
    assert state.next_due(10.0) == 50.0
    assert _take(state, now=50.0) == [(0, 1)]


def test_reset_starts_over_and_makes_old_acks_stale() -> None:
    state = _state()
    _admit(state, 0, 1)
    _take(state)
    state.reset(0, epoch=2)
    assert not state.ack(0)
    assert state.epoch == 2
    assert state.commit_point() == (0, "")
    _admit(state, 0)
    assert _take(state) == [(0, 1)]


def test_a_repeat_from_before_a_seek_is_not_admitted() -> None:
    state = _state()
    _admit(state, 0, 1, 2)
    assert not state.admit(1, "again")


# -- settings, errors, wire -------------------------------------------------------------------


def test_settings_from_the_url() -> None:
    settings = Settings.parse(parse_url("kafka://a,b:9093"), {})
    assert settings.bootstrap == "a:9092,b:9093"
    sasl = Settings.parse(parse_url("kafka://alice:p%40ss@h:1"),
                          {"sasl_mechanism": "scram-sha-512"})
    config = sasl.common(_offsets.log, None)
    assert config["security.protocol"] == "sasl_plaintext"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (config["sasl.username"], config["sasl.password"]) == ("alice", "p@ss")
    assert "p@ss" not in repr(sasl)
    producer = Settings.parse(parse_url("kafka://h"), {"linger": 0}).producer(_offsets.log, None)
    assert (producer["acks"], producer["enable.idempotence"], producer["linger.ms"]) == (
        "all", True, 0.0)


@pytest.mark.parametrize(("session", "heartbeat_ms"), [(10.0, 1000), (45.0, 1000), (1.5, 500)])
def test_consumers_heartbeat_every_second_at_most(session: float, heartbeat_ms: int) -> None:
    # How soon members take part in a rebalance (librdkafka's 3 s doubled every join).
    settings = Settings.parse(parse_url("kafka://h"), {"session_timeout": session})
    config = settings.consumer("g", _offsets.log, None, lambda *_: None)
    assert config["heartbeat.interval.ms"] == heartbeat_ms
    assert config["topic.metadata.refresh.interval.ms"] == 5000  # sees a deleted topic


@pytest.mark.parametrize(("url", "options"), [
    ("kafka://", {}),
    ("kafka://h:9092/path", {}),
    ("kafka://h", {"compression": "brotli"}),
    ("kafka://h", {"session_timeout": 0}),
    ("kafka://h", {"kafka_config": {"enable.auto.commit": True}}),
    ("kafka://h", {"kafka_config": "acks=1"}),
    ("kafka://h", {"no_such_option": 1}),
])
def test_bad_settings_are_refused(url: str, options: dict[str, object]) -> None:
    with pytest.raises(messaging.ConfigurationError):
        Settings.parse(parse_url(url), options)


@pytest.mark.parametrize(("native", "code"), [
    (KafkaException(KafkaError(KafkaError._TRANSPORT)), ErrorCode.CONNECTION),
    (KafkaException(KafkaError(KafkaError._ALL_BROKERS_DOWN)), ErrorCode.CONNECTION),
    (KafkaException(KafkaError(KafkaError.SASL_AUTHENTICATION_FAILED)),
     ErrorCode.AUTHENTICATION),
    (KafkaException(KafkaError(KafkaError._AUTHENTICATION)), ErrorCode.AUTHENTICATION),
    (KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)),
     ErrorCode.AUTHENTICATION),
    (KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)), ErrorCode.NOT_FOUND),
    (KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)), ErrorCode.TOO_LARGE),
    (KafkaException(KafkaError(KafkaError.INVALID_CONFIG)), ErrorCode.CONFIGURATION),
    (KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT)), ErrorCode.TIMEOUT),
    (KafkaException(KafkaError(KafkaError.UNSUPPORTED_VERSION)), ErrorCode.UNSUPPORTED),
    (KafkaException(KafkaError(KafkaError.REBALANCE_IN_PROGRESS)), ErrorCode.UNKNOWN),
    (Unreachable("no broker"), ErrorCode.CONNECTION),
    (TimeoutError(), ErrorCode.TIMEOUT),
    (ValueError("bad"), ErrorCode.CONFIGURATION),
    (RuntimeError("Consumer closed"), ErrorCode.CONNECTION),
    (KeyError("x"), ErrorCode.UNKNOWN),
])
def test_the_error_table(native: BaseException, code: ErrorCode) -> None:
    assert error_code(native) is code


def test_keys_and_headers_keep_their_bytes() -> None:
    raw = b"\xff\x00k"
    key = _wire.decode_key(raw)
    assert key is not None
    assert _wire.encode_key(key) == raw
    headers = _wire.decode_headers([("bin", b"\xfe"), ("none", None), ("t", "\u2713".encode())])
    assert headers == {"bin": "\udcfe", "none": "", "t": "\u2713"}
    assert _wire.encode_headers({"bin": headers["bin"]}) == [("bin", b"\xfe")]
    assert _wire.deliver_at([("x-deliver-at", b"1500")]) == 1.5
    assert _wire.deliver_at([("x-deliver-at", b"soon")]) == 0.0


def test_positions() -> None:
    assert _wire.parse_position("2:17", "orders") == (2, 17)
    assert _wire.parse_position("orders:2:17", "orders") == (2, 17)
    for bad in ("17", "a:b", "other:2:17", "1:2:3:4"):
        with pytest.raises(ValueError, match=r"position|belongs"):
            _wire.parse_position(bad, "orders")


# -- a fake cluster ------------------------------------------------------------------------------


class FakeRecord:
    def __init__(self, topic: str, partition: int, offset: int, *, value: bytes | None,
                 key: bytes | None, headers: list[tuple[str, bytes]] | None) -> None:
        self._t, self._p, self._o = topic, partition, offset
        self._value, self._key, self._headers = value, key, headers
        self._ts = int(time.time() * 1000)

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return (1, self._ts)

    def error(self) -> None:
        return None


class FakeCluster:
    def __init__(self) -> None:
        self.logs: dict[str, list[list[FakeRecord]]] = {}
        self.offsets: dict[tuple[str, str, int], tuple[int, str]] = {}
        self.commits: list[list[tuple[int, int, str]]] = []
        self.members: dict[str, FakeConsumer] = {}  # group -> the one live member
        self.commit_failures: list[int] = []  # error codes the next commits raise
        self.probe_error: KafkaException | None = None
        self.auth_error: KafkaError | None = None
        self.max_value = 10_000

    def append(self, topic: str, value: bytes | None, key: bytes | None,
               headers: list[tuple[str, bytes]] | None) -> FakeRecord:
        partitions = self.logs[topic]
        partition = (hash(key) % len(partitions)) if key is not None else 0
        log = partitions[partition]
        record = FakeRecord(topic, partition, len(log), value=value, key=key, headers=headers)
        log.append(record)
        return record


class FakeProducer:
    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.reports: list[Callable[[], None]] = []

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None, *,
                headers: list[tuple[str, bytes]] | None = None,
                on_delivery: Callable[[KafkaError | None, Any], None] | None = None) -> None:
        assert on_delivery is not None
        if value is not None and len(value) > self.cluster.max_value:
            error = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
            self.reports.append(lambda: on_delivery(error, None))
            return
        record = self.cluster.append(topic, value, key, headers)
        self.reports.append(lambda: on_delivery(None, record))

    def poll(self, timeout: float = 0) -> int:
        served, self.reports = self.reports, []
        for report in served:
            report()
        return len(served)

    def flush(self, timeout: float = 0) -> int:
        self.poll()
        return 0


class FakeConsumer:
    def __init__(self, cluster: FakeCluster, config: Mapping[str, object]) -> None:
        self.cluster = cluster
        self.group = str(config["group.id"])
        self.on_commit = config["on_commit"]
        self.topic = ""
        self.callbacks: dict[str, Callable[..., None]] = {}
        self.positions: dict[int, int] = {}
        self.paused: set[int] = set()
        self.assigned_explicitly: dict[int, int] = {}
        self.closed = False

    def subscribe(self, topics: list[str], on_assign: Callable[..., None] = print,
                  on_revoke: Callable[..., None] = print,
                  on_lost: Callable[..., None] = print) -> None:
        self.topic = topics[0]
        self.callbacks = {"assign": on_assign, "revoke": on_revoke, "lost": on_lost}

    def _join(self) -> None:
        self.cluster.members[self.group] = self
        partitions = [TopicPartition(self.topic, p) for p in range(len(self.cluster.logs[
            self.topic]))]
        self.assigned_explicitly = {}
        self.callbacks["assign"](self, partitions)
        for tp in partitions:
            explicit = self.assigned_explicitly.get(tp.partition, -1001)
            committed = self.cluster.offsets.get((self.group, self.topic, tp.partition))
            self.positions[tp.partition] = explicit if explicit >= 0 else (
                committed[0] if committed else 0)

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        assert not self.closed
        if self.cluster.members.get(self.group) is not self:
            self._join()
        out: list[Any] = []
        for partition, log in enumerate(self.cluster.logs[self.topic]):
            if partition in self.paused:
                continue
            while self.positions[partition] < len(log) and len(out) < num_messages:
                out.append(log[self.positions[partition]])
                self.positions[partition] += 1
        if not out and timeout > 0:
            time.sleep(min(timeout, 0.005))
        return out

    def commit(self, offsets: list[TopicPartition] | None = None,
               asynchronous: bool = True) -> list[TopicPartition] | None:
        if self.cluster.commit_failures:
            raise KafkaException(KafkaError(self.cluster.commit_failures.pop(0)))
        assert offsets is not None
        self.cluster.commits.append([(tp.partition, tp.offset, tp.metadata or "")
                                     for tp in offsets])
        for tp in offsets:
            self.cluster.offsets[(self.group, self.topic, tp.partition)] = (
                tp.offset, tp.metadata or "")
        return None if asynchronous else offsets

    def committed(self, partitions: list[TopicPartition], timeout: float = 0
                  ) -> list[TopicPartition]:
        result = []
        for tp in partitions:
            offset, metadata = self.cluster.offsets.get((self.group, self.topic, tp.partition),
                                                        (-1001, ""))
            result.append(TopicPartition(self.topic, tp.partition, offset, metadata))
        return result

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned_explicitly = {tp.partition: tp.offset for tp in partitions}

    def seek(self, partition: TopicPartition) -> None:
        self.positions[partition.partition] = partition.offset

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused.update(tp.partition for tp in partitions)

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused.difference_update(tp.partition for tp in partitions)

    def offsets_for_times(self, partitions: list[TopicPartition], timeout: float = 0
                          ) -> list[TopicPartition]:
        result = []
        for tp in partitions:
            log = self.cluster.logs[self.topic][tp.partition]
            found = next((r.offset() for r in log if r.timestamp()[1] >= tp.offset), -1)
            result.append(TopicPartition(self.topic, tp.partition, found))
        return result

    def close(self) -> None:
        if self.cluster.members.get(self.group) is self:
            self.callbacks["revoke"](self, [TopicPartition(self.topic, p)
                                            for p in self.positions])
            del self.cluster.members[self.group]
        self.closed = True

    def die(self) -> None:
        """SIGKILL: gone without a word; the group reassigns on the next join."""
        self.cluster.members.pop(self.group, None)
        self.closed = True


class FakeAdmin:
    def __init__(self, cluster: FakeCluster, error_cb: Callable[[KafkaError], None]) -> None:
        self.cluster = cluster
        self.error_cb = error_cb

    def probe(self, timeout: float) -> None:
        if self.cluster.auth_error is not None:
            self.error_cb(self.cluster.auth_error)
        if self.cluster.probe_error is not None:
            raise self.cluster.probe_error

    def partitions(self, topic: str) -> list[int]:
        if topic not in self.cluster.logs:
            raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
        return list(range(len(self.cluster.logs[topic])))

    def create_topic(self, topic: str, partitions: int, replication_factor: int,
                     config: Mapping[str, str]) -> list[int]:
        self.cluster.logs.setdefault(topic, [[] for _ in range(partitions)])
        return self.partitions(topic)

    def delete_topic(self, topic: str) -> None:
        self.cluster.logs.pop(topic, None)

    def topics(self) -> list[str]:
        return sorted(self.cluster.logs)

    def offsets(self, topic: str, partitions: Sequence[int], which: str) -> dict[int, int]:
        return {p: 0 if which == "earliest" else len(self.cluster.logs[topic][p])
                for p in partitions}

    def group_offsets(self, group: str, topic: str, partitions: Sequence[int]
                      ) -> dict[int, tuple[int, str | None]]:
        return {p: self.cluster.offsets.get((group, topic, p), (-1001, None))
                for p in partitions}

    def set_group_offsets(self, group: str, topic: str, offsets: Mapping[int, int]) -> None:
        for partition, offset in offsets.items():
            self.cluster.offsets[(group, topic, partition)] = (offset, "")

    def forget_group(self, group: str) -> None:
        for key in [key for key in self.cluster.offsets if key[0] == group]:
            del self.cluster.offsets[key]

    def groups(self) -> list[str]:
        return sorted({group for group, _, _ in self.cluster.offsets})

    def native(self) -> object:
        return self

    def close(self) -> None:
        pass


class FakeClients:
    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.consumers: list[FakeConsumer] = []

    def producer(self, config: Mapping[str, object]) -> ProducerClient:
        return FakeProducer(self.cluster)

    def consumer(self, config: Mapping[str, object]) -> ConsumerClient:
        made = FakeConsumer(self.cluster, config)
        self.consumers.append(made)
        return made

    def admin(self, config: Mapping[str, object], request_timeout: float) -> Admin:
        error_cb = config["error_cb"]
        assert callable(error_cb)
        return FakeAdmin(self.cluster, error_cb)


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


@pytest.fixture
def clients(cluster: FakeCluster) -> FakeClients:
    return FakeClients(cluster)


@pytest.fixture
def client(clients: FakeClients) -> Iterator[messaging.Client]:
    class FakeKafkaDriver(KafkaDriver):
        @classmethod
        def open(cls, url: Any, options: Mapping[str, object],
                 clients_: Any = None) -> KafkaDriver:
            return KafkaDriver.open.__func__(cls, url, options, clients)  # type: ignore[attr-defined,no-any-return]

    connected = Client(FakeKafkaDriver, parse_url("kafka://fake:9092"),
                       {"connect_timeout": 1.0}, DefaultCodec())
    yield connected
    connected.close()


def _receive(consumer: messaging.Consumer, count: int, timeout: float = 2.0
             ) -> list[messaging.Message]:
    got: list[messaging.Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got += consumer.receive(max_messages=count - len(got), timeout=0.05)
    return got


# -- the driver and subscription over the fake --------------------------------------------------


def test_send_many_reports_each_message(client: messaging.Client, cluster: FakeCluster) -> None:
    client.admin.create("orders")
    ids = client.producer().send_many("orders", [b"a", b"b"], key="k")
    assert ids == ["orders:0:0", "orders:0:1"]
    cluster.max_value = 3
    with pytest.raises(messaging.MessageTooLarge) as raised:
        client.producer().send_many("orders", [b"ok", b"too long", b"ok"])
    assert sorted(raised.value.failed) == [1]
    assert sorted(raised.value.sent) == [0, 2]


def test_one_batch_mixes_headers_delays_and_keys(client: messaging.Client,
                                                cluster: FakeCluster) -> None:
    # send_batch encodes a headers mapping shared by consecutive messages once: a
    # delayed message, another mapping or a key in between must still get its own.
    client.admin.create("mixed")
    shared = {"a": "1"}
    driver = client._driver
    results = driver.send_batch("mixed", [
        OutgoingMessage(b"0", None, shared), OutgoingMessage(b"1", "k", shared, delay=5.0),
        OutgoingMessage(b"2", None, {"b": "2"}), OutgoingMessage(b"3", None, shared),
        OutgoingMessage(b"4", None, {}), OutgoingMessage(b"5", None, shared)])
    assert all(isinstance(result, str) for result in results)
    records = {record.value(): record for log in cluster.logs["mixed"] for record in log}
    assert records[b"0"].headers() == [("a", b"1")]
    delayed = records[b"1"].headers() or []
    assert delayed[0] == ("a", b"1")
    assert delayed[1][0] == _wire.DELIVER_AT
    assert records[b"1"].key() == b"k"
    assert records[b"2"].headers() == [("b", b"2")]
    assert records[b"3"].headers() == [("a", b"1")]
    assert not records[b"4"].headers()
    assert records[b"5"].headers() == [("a", b"1")]
    assert sorted(results) == sorted(  # type: ignore[type-var]
        f"mixed:{r.partition()}:{r.offset()}" for r in records.values())


def test_delivery_fields_are_in_the_order_the_adapter_passes() -> None:
    # The subscription builds Delivery positionally (its hot path).
    assert [field.name for field in dataclasses.fields(Delivery)] == [
        "ack_id", "body", "id", "attempt", "destination", "key", "headers", "timestamp",
        "position"]


def test_deliveries_with_the_same_headers_get_their_own_dicts(client: messaging.Client
                                                              ) -> None:
    client.admin.create("shared", groups=["g"])
    client.producer().send_many("shared", [b"a", b"b"], headers={"h": "v"})
    with client.consumer("shared", "g") as consumer:
        got = _receive(consumer, 2)
        assert [m.headers.get("h") for m in got] == ["v", "v"]
        assert got[0].headers is not got[1].headers
        consumer.ack_many(got)


def test_a_timestamp_no_datetime_can_hold_is_delivered_without_one(
        client: messaging.Client, cluster: FakeCluster) -> None:
    client.admin.create("far", groups=["g"])
    client.producer().send_many("far", [b"a", b"b"])
    cluster.logs["far"][0][0]._ts = 2**62  # a plain producer's CreateTime, year > 9999
    with client.consumer("far", "g") as consumer:
        got = _receive(consumer, 2)
        assert [(m.body, m.timestamp is None) for m in got] == [(b"a", True), (b"b", False)]
        consumer.ack_many(got)
    assert client.admin.depth("far", "g") == 0


def test_a_missing_topic_is_created_by_the_portable_layer(client: messaging.Client,
                                                          cluster: FakeCluster) -> None:
    client.producer().send("fresh", b"x")
    assert "fresh" in cluster.logs


def test_creating_an_existing_topic_with_more_partitions_says_it_keeps_fewer(
        client: messaging.Client, cluster: FakeCluster, caplog: pytest.LogCaptureFixture
) -> None:
    client.admin.create("orders", partitions=1)
    client.admin.create("orders", partitions=1)
    client.admin.create("orders")
    assert "fewer than" not in caplog.text
    client.admin.create("orders", partitions=4)
    assert len(cluster.logs["orders"]) == 1  # kept: adding partitions moves keys
    assert "exists with 1 partition(s), fewer than the 4 asked for" in caplog.text


def test_the_group_exists_from_the_first_consumer(client: messaging.Client,
                                                  cluster: FakeCluster) -> None:
    client.admin.create("events")
    client.producer().send("events", b"before")
    client.consumer("events", "late").close()  # never fetched anything
    client.producer().send("events", b"after")
    assert client.admin.depth("events", "late") == 1
    with client.consumer("events", "late") as consumer:
        assert [m.body for m in _receive(consumer, 2, 0.3)] == [b"after"]


def test_two_processes_declaring_a_group_at_once_skip_nothing_sent_after_the_first(
        cluster: FakeCluster) -> None:
    # Process B finds the group without offsets; process A declares it (at offset 2)
    # before B commits; two records are sent after A's consumer() returned, so they are
    # the group's. B's declaration replaces A's and must not skip them.
    admin = FakeAdmin(cluster, lambda error: None)
    admin.create_topic("signups", 1, 1, {})
    for value in (b"old-1", b"old-2"):
        cluster.append("signups", value, None, None)
    read = admin.group_offsets

    def group_offsets_then_a_declares(group: str, topic: str, partitions: Sequence[int]
                                      ) -> dict[int, tuple[int, str | None]]:
        found = read(group, topic, partitions)
        if group == "mailer":
            admin.set_group_offsets("mailer", "signups", {0: 2})  # process A
            for value in (b"new-1", b"new-2"):
                cluster.append("signups", value, None, None)
        return found

    admin.group_offsets = group_offsets_then_a_declares  # type: ignore[method-assign]
    _declarations.declare(admin, "signups", "mailer", [0])  # process B

    assert cluster.offsets[("mailer", "signups", 0)][0] <= 2


def test_out_of_order_acks_commit_the_prefix_and_record_the_rest(
        client: messaging.Client, cluster: FakeCluster) -> None:
    client.admin.create("jobs", groups=["workers"])
    client.producer().send_many("jobs", [f"j{i}".encode() for i in range(5)])
    consumer = client.consumer("jobs", "workers")
    got = _receive(consumer, 5)
    for index in (1, 3, 4):
        got[index].ack()
    assert cluster.offsets[("workers", "jobs", 0)] == (0, "mk1;e=5;u=0,2;n=0:1,2:1")
    assert client.admin.depth("jobs", "workers") == 2
    got[0].ack()
    got[2].ack()
    assert cluster.offsets[("workers", "jobs", 0)] == (5, "")
    assert client.admin.depth("jobs", "workers") == 0
    consumer.close()


def test_a_killed_member_hands_over_attempts_and_acks(client: messaging.Client,
                                                     clients: FakeClients) -> None:
    client.admin.create("jobs", groups=["workers"])
    client.producer().send_many("jobs", [f"j{i}".encode() for i in range(4)])
    first = client.consumer("jobs", "workers")
    got = _receive(first, 4)
    got[2].ack()  # out of order; 0, 1 and 3 are held when it dies
    clients.consumers[-1].die()

    second = client.consumer("jobs", "workers")
    again = _receive(second, 4, 0.5)
    assert [(m.body, m.attempt) for m in again] == [(b"j0", 2), (b"j1", 2), (b"j3", 2)]
    assert [m.id for m in again] == [got[i].id for i in (0, 1, 3)]
    second.ack_many(again)
    second.close()


def test_deliveries_are_recorded_before_any_ack(client: messaging.Client,
                                                clients: FakeClients) -> None:
    client.admin.create("jobs", groups=["workers"])
    client.producer().send("jobs", b"poison")
    first = client.consumer("jobs", "workers")
    assert [m.attempt for m in _receive(first, 1)] == [1]
    clients.consumers[-1].die()  # the handler crashed the process
    second = client.consumer("jobs", "workers")
    assert [m.attempt for m in _receive(second, 1)] == [2]
    second.close()


# -- read-ahead (decision 0108) --------------------------------------------------------------
def _read_ahead_of_two(client: messaging.Client, cluster: FakeCluster
                       ) -> messaging.Consumer:
    """Four records; a full receive of two; an ack of both, which takes j2 and j3 ahead."""
    client.admin.create("jobs", groups=["g"])
    client.producer().send_many("jobs", [f"j{i}".encode() for i in range(4)])
    consumer = client.consumer("jobs", "g")
    first = consumer.receive(max_messages=2, timeout=1.0)
    assert [m.body for m in first] == [b"j0", b"j1"]
    consumer.ack_many(first)
    assert cluster.offsets[("g", "jobs", 0)] == (2, "mk1;e=2;u=0-1;n=0-1:1"), (
        "the ack's commit records j2 and j3 as delivered once")
    return consumer


def test_an_ack_after_a_full_receive_records_the_next_batch(client: messaging.Client,
                                                            cluster: FakeCluster) -> None:
    consumer = _read_ahead_of_two(client, cluster)
    commits = len(cluster.commits)
    second = consumer.receive(max_messages=2, timeout=1.0)
    assert [(m.body, m.attempt) for m in second] == [(b"j2", 1), (b"j3", 1)]
    assert len(cluster.commits) == commits, "recorded already: the receive commits nothing"
    consumer.ack_many(second)
    assert cluster.offsets[("g", "jobs", 0)] == (4, "")
    consumer.close()


def test_a_short_receive_reads_nothing_ahead(client: messaging.Client,
                                             cluster: FakeCluster) -> None:
    client.admin.create("jobs", groups=["g"])
    client.producer().send_many("jobs", [b"j0", b"j1"])
    consumer = client.consumer("jobs", "g")
    got = consumer.receive(max_messages=3, timeout=1.0)
    client.producer().send("jobs", b"j2")
    consumer.ack_many(got)
    assert cluster.offsets[("g", "jobs", 0)] == (2, "")
    assert [(m.body, m.attempt) for m in _receive(consumer, 1)] == [(b"j2", 1)]
    consumer.close()


def test_a_member_killed_holding_a_read_ahead_leaves_it_counted(
        client: messaging.Client, cluster: FakeCluster, clients: FakeClients) -> None:
    """As a dead RabbitMQ consumer's prefetched messages come back redelivered."""
    _read_ahead_of_two(client, cluster)
    clients.consumers[-1].die()
    with client.consumer("jobs", "g") as second:
        assert [(m.body, m.attempt) for m in _receive(second, 2)] == [(b"j2", 2), (b"j3", 2)]


def test_close_gives_a_read_ahead_back_uncounted(client: messaging.Client,
                                                 cluster: FakeCluster) -> None:
    consumer = _read_ahead_of_two(client, cluster)
    before = len(cluster.commits)
    consumer.close()
    assert {commit for commits in cluster.commits[before:] for commit in commits} == {
        (0, 2, "mk1;e=2;u=0-1;n=")}, "no commit of close counts them"
    with client.consumer("jobs", "g") as second:
        assert [(m.body, m.attempt) for m in _receive(second, 2)] == [(b"j2", 1), (b"j3", 1)]


def test_a_nack_comes_back_before_a_read_ahead(client: messaging.Client,
                                               cluster: FakeCluster) -> None:
    consumer = _read_ahead_of_two(client, cluster)
    [j2] = consumer.receive(max_messages=1, timeout=1.0)  # j3 stays read ahead
    j2.nack()
    again = consumer.receive(max_messages=2, timeout=1.0)
    assert [(m.body, m.attempt) for m in again] == [(b"j2", 2), (b"j3", 1)]
    consumer.close()


def test_no_read_ahead_while_something_handed_out_is_unsettled(
        client: messaging.Client, cluster: FakeCluster, clients: FakeClients) -> None:
    """A member killed mid-batch (a poison message) leaves only what it was given
    counted, not also a batch it never saw."""
    client.admin.create("jobs", groups=["g"])
    client.producer().send_many("jobs", [f"j{i}".encode() for i in range(4)])
    consumer = client.consumer("jobs", "g")
    first = consumer.receive(max_messages=2, timeout=1.0)
    first[0].ack()  # j1 is still being worked on
    assert cluster.offsets[("g", "jobs", 0)] == (1, "mk1;e=1;u=0;n=0:1")
    clients.consumers[-1].die()
    with client.consumer("jobs", "g") as second:
        assert [(m.body, m.attempt) for m in _receive(second, 3)] == [
            (b"j1", 2), (b"j2", 1), (b"j3", 1)]


def test_a_revocation_gives_a_read_ahead_back_uncounted(
        client: messaging.Client, cluster: FakeCluster, clients: FakeClients) -> None:
    consumer = _read_ahead_of_two(client, cluster)
    member = clients.consumers[-1]
    member.callbacks["revoke"](member, [TopicPartition("jobs", 0)])
    assert cluster.offsets[("g", "jobs", 0)] == (2, "mk1;e=2;u=0-1;n=")
    assert consumer.receive(max_messages=2, timeout=0.05) == []
    consumer.close()


def test_a_seek_drops_a_read_ahead(client: messaging.Client, cluster: FakeCluster) -> None:
    consumer = _read_ahead_of_two(client, cluster)
    consumer.seek("beginning")
    assert [(m.body, m.attempt) for m in _receive(consumer, 4)] == [
        (b"j0", 1), (b"j1", 1), (b"j2", 1), (b"j3", 1)]
    consumer.close()


def test_records_of_a_revoked_partition_are_no_longer_held(client: messaging.Client,
                                                          clients: FakeClients) -> None:
    client.admin.create("jobs", groups=["g"])
    client.producer().send_many("jobs", [b"a", b"b"])
    consumer = client.consumer("jobs", "g")
    got = _receive(consumer, 2)
    subscription = consumer._subscription
    assert [subscription.holds(m.delivery.ack_id) for m in got] == [True, True]
    member = clients.consumers[-1]
    member.callbacks["revoke"](member, [TopicPartition("jobs", 0)])  # a rebalance
    assert [subscription.holds(m.delivery.ack_id) for m in got] == [False, False]
    consumer.close()


def test_acks_the_worker_has_not_sent_yet_go_with_a_revocations_commit(
        client: messaging.Client, cluster: FakeCluster, clients: FakeClients) -> None:
    """A worker's batch of acks waits while its consumer is inside the client (where a
    rebalance happens): the revocation commits them, so the next owner skips them."""
    client.admin.create("jobs", groups=["g"])
    client.producer().send_many("jobs", [b"a", b"b", b"c"])
    consumer = client.consumer("jobs", "g")
    a, b, c = _receive(consumer, 3)
    waiting = AckBatcher(consumer)  # not started: its batch has not gone out
    waiting.ack(a)
    waiting.ack(b)
    member = clients.consumers[-1]
    member.callbacks["revoke"](member, [TopicPartition("jobs", 0)])
    assert cluster.offsets[("g", "jobs", 0)] == (2, "mk1;e=1;u=0;n=0:1")
    consumer._settle_acks([a, b])  # the batch, once it goes: a no-op now
    assert cluster.offsets[("g", "jobs", 0)] == (2, "mk1;e=1;u=0;n=0:1")
    assert c.settlement is Settlement.PENDING
    consumer.close()


def test_a_revocation_waits_for_running_handlers_and_commits_their_acks(
        client: messaging.Client, cluster: FakeCluster, clients: FakeClients) -> None:
    """The worker's handlers of a and b are still running when the rebalance comes: the
    revocation stops holding the partition's records first (the worker starts no more
    of them), waits for the handlers, and commits what they acked meanwhile."""
    client.admin.create("jobs", groups=["g"])
    client.producer().send_many("jobs", [b"a", b"b", b"c"])
    consumer = client.consumer("jobs", "g")
    a, b, c = _receive(consumer, 3)
    batch = AckBatcher(consumer)  # not started: its acks go with the revocation
    waits: list[tuple[bool, float, bool]] = []

    def running_wait(leaving: Callable[[object], bool], timeout: float) -> None:
        waits.append((leaving(a.delivery.ack_id), timeout,
                      consumer._subscription.holds(c.delivery.ack_id)))
        batch.ack(a)  # the handlers finish while the revocation waits
        batch.ack(b)

    consumer._running_wait = running_wait
    member = clients.consumers[-1]
    member.callbacks["revoke"](member, [TopicPartition("jobs", 0)])
    assert waits == [(True, 10.0, False)], "it waited, with c no longer held"
    assert cluster.offsets[("g", "jobs", 0)] == (2, "mk1;e=1;u=0;n=0:1")
    consumer._running_wait = None
    consumer.close()


def test_records_from_before_a_seek_are_no_longer_held(client: messaging.Client) -> None:
    client.admin.create("jobs", groups=["g"])
    client.producer().send_many("jobs", [b"a", b"b"])
    consumer = client.consumer("jobs", "g")
    got = _receive(consumer, 2)
    consumer.seek("beginning")
    assert [consumer._subscription.holds(m.delivery.ack_id) for m in got] == [False, False]
    again = _receive(consumer, 2)
    assert [consumer._subscription.holds(m.delivery.ack_id) for m in again] == [True, True]
    consumer.close()


def test_nack_with_delay_keeps_the_order_of_its_partition(client: messaging.Client) -> None:
    client.admin.create("ordered", groups=["g"])
    client.producer().send_many("ordered", [b"first", b"second"], key="k")
    consumer = client.consumer("ordered", "g")
    first = _receive(consumer, 1)[0]
    assert first.body == b"first"
    started = time.monotonic()
    first.nack(delay=1.0)  # long enough that a stall of this thread cannot outlast it
    early = consumer.receive(max_messages=10, timeout=0.3)
    assert early == [], "a later message overtook the delayed one"
    late = _receive(consumer, 2, 3.0)
    assert [(m.body, m.attempt) for m in late] == [(b"first", 2), (b"second", 1)]
    assert time.monotonic() - started >= 1.0 - 0.02
    consumer.ack_many(late)
    consumer.close()


def test_a_delayed_send_does_not_hold_up_the_next(client: messaging.Client) -> None:
    client.admin.create("mail")
    consumer = client.consumer("mail", "g")
    client.producer().send("mail", b"later", delay=1.0)  # not due before "now" is read
    client.producer().send("mail", b"now")
    assert [m.body for m in _receive(consumer, 1)] == [b"now"]
    assert client.admin.depth("mail", "g") == 2  # the ack of "now" waits behind "later"
    later = _receive(consumer, 1, 3.0)
    assert [m.body for m in later] == [b"later"]
    assert "x-deliver-at" not in later[0].headers  # the adapter's own
    consumer.close()


def test_a_seek_before_the_first_receive_applies_at_assignment(
        client: messaging.Client) -> None:
    client.admin.create("history")
    client.producer().send_many("history", [b"h0", b"h1", b"h2"])
    consumer = client.consumer("history", "replayer")
    consumer.seek("0:1")  # no partition yet: applied when the first one is assigned
    assert [m.body for m in _receive(consumer, 2)] == [b"h1", b"h2"]
    consumer.close()
    with client.consumer("history", "replayer2") as other:
        other.seek("beginning")
        assert [m.body for m in _receive(other, 3)] == [b"h0", b"h1", b"h2"]


def test_a_seek_to_the_end_before_the_first_receive_is_the_end_then(
        client: messaging.Client) -> None:
    """Not the end at the first assignment, which comes with the first receive: what
    is sent between the seek and that receive is read."""
    client.admin.create("late", partitions=2)
    client.producer().send_many("late", [b"old-0", b"old-1"], key="k")
    consumer = client.consumer("late", "g")
    consumer.seek("end")
    client.producer().send("late", b"new", key="k")
    assert [m.body for m in _receive(consumer, 1)] == [b"new"]
    consumer.close()


def test_seek_to_a_time_and_to_the_end(client: messaging.Client) -> None:
    client.admin.create("timeline")
    consumer = client.consumer("timeline", "g")
    client.producer().send("timeline", b"old")
    assert [m.body for m in _receive(consumer, 1)] == [b"old"]
    consumer.seek("end")
    time.sleep(0.01)
    moment = dt.datetime.now(dt.UTC)
    time.sleep(0.01)
    client.producer().send("timeline", b"new")
    assert [m.body for m in _receive(consumer, 1)] == [b"new"]
    consumer.seek(moment)
    assert [m.body for m in _receive(consumer, 1)] == [b"new"]
    with pytest.raises(messaging.ConfigurationError):
        consumer.seek("not-a-position")
    consumer.close()


def test_a_commit_refused_while_rebalancing_goes_with_the_next(
        client: messaging.Client, cluster: FakeCluster) -> None:
    client.admin.create("jobs", groups=["g"])
    client.producer().send_many("jobs", [b"a", b"b"])
    consumer = client.consumer("jobs", "g")
    got = _receive(consumer, 2)
    cluster.commit_failures.append(KafkaError.REBALANCE_IN_PROGRESS)
    got[0].ack()  # no error: the ack stays recorded
    assert consumer.receive(max_messages=1, timeout=0.05) == []
    assert cluster.offsets[("g", "jobs", 0)][0] == 1
    cluster.commit_failures.append(KafkaError.GROUP_AUTHORIZATION_FAILED)
    with pytest.raises(messaging.AuthenticationFailed):
        got[1].ack()
    consumer.close()
    assert cluster.offsets[("g", "jobs", 0)] == (2, "")


def test_an_ack_while_the_member_rejoins_commits_once_the_rebalance_is_over(
        client: messaging.Client, cluster: FakeCluster, clients: FakeClients) -> None:
    """librdkafka holds a synchronous commit made while the member rejoins after a
    cooperative revocation until that second rebalance is over, and then fails it; a
    commit waiting there with the consumer held stopped the member's receiving. So the
    ack waits for the rebalance's end without holding the consumer, then commits."""
    client.admin.create("jobs", partitions=2, groups=["g"])
    client.producer().send_many("jobs", [b"a", b"b"])
    consumer = client.consumer("jobs", "g")
    got = _receive(consumer, 2)
    member = clients.consumers[-1]
    member.callbacks["revoke"](member, [TopicPartition("jobs", 1)])  # the first half
    member.callbacks["assign"](member, [])
    before = len(cluster.commits)

    acking = threading.Thread(target=got[0].ack)
    acking.start()
    time.sleep(0.2)
    assert consumer.receive(max_messages=1, timeout=0.05) == []  # not held up
    assert acking.is_alive()
    assert len(cluster.commits) == before

    member.callbacks["assign"](member, [])  # the rebalance is over
    acking.join(timeout=5)
    assert not acking.is_alive()
    assert cluster.offsets[("g", "jobs", 0)][0] == 1
    consumer.close()


def test_acks_from_many_threads_share_commits(client: messaging.Client,
                                              cluster: FakeCluster) -> None:
    client.admin.create("jobs", groups=["g"])
    client.producer().send_many("jobs", [f"j{i}".encode() for i in range(200)])
    consumer = client.consumer("jobs", "g")
    got = _receive(consumer, 200)
    before = len(cluster.commits)
    threads = [threading.Thread(target=lambda ms=got[i::4]: [m.ack() for m in ms])
               for i in range(4)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        consumer.receive(max_messages=1, timeout=0.01)  # the receiver gives way
    assert cluster.offsets[("g", "jobs", 0)] == (200, "")
    assert len(cluster.commits) - before <= 200
    consumer.close()


def test_capabilities_are_honest(client: messaging.Client) -> None:
    caps = client.capabilities
    assert (caps.ordering, caps.fan_out, caps.replay) == ("per_key", True, True)
    assert (caps.visibility_timeout, caps.extend, caps.priority, caps.dedup) == (
        False, False, 0, False)
    assert caps.emulated == {"delay", "dead_letter"}
    assert caps.max_delay is not None
    with pytest.raises(messaging.UnsupportedFeature):
        client.consumer("x", "g", visibility_timeout=5.0)


def test_unknown_create_options_are_refused(client: messaging.Client) -> None:
    with pytest.raises(messaging.ConfigurationError, match="no_such_option"):
        client.admin.create("t", no_such_option=1)
    client.admin.create("t", replication_factor=1, config={"retention.ms": 1000})


def test_open_reports_an_unreachable_broker(cluster: FakeCluster, clients: FakeClients) -> None:
    cluster.probe_error = KafkaException(KafkaError(KafkaError._TRANSPORT))
    with pytest.raises(Unreachable):
        KafkaDriver.open(parse_url("kafka://h"), {}, clients)
    cluster.auth_error = KafkaError(KafkaError._AUTHENTICATION, "bad password")
    with pytest.raises(KafkaException) as raised:
        KafkaDriver.open(parse_url("kafka://h"), {}, clients)
    assert error_code(raised.value) is ErrorCode.AUTHENTICATION
