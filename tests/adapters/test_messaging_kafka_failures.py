"""Failure behaviour of the Kafka adapter on real brokers.

* Unreachable brokers fail within ``connect_timeout`` with ``ConnectionFailed``.
* Oversize messages fail with ``MessageTooLarge`` before anything is sent, and a record
  the broker itself refuses (a topic's own ``max.message.bytes``) fails with it too,
  per message.
* A member killed with SIGKILL mid-batch loses nothing: its unacked messages reach the
  next member with ``attempt`` 2 and its acked ones do not come back.
* Wrong credentials give ``AuthenticationFailed``, and sends that returned survive a
  broker killed with SIGKILL: both on a PRIVATE broker (its own ports and directory,
  started from the jars the native launcher resolved), never on the shared one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition

import messaging
from messaging.ack_batcher import AckBatcher

try:
    from broker_fixtures import kafka_url
    from brokers import launcher_module
    from draining import drain
except ImportError:  # tests/ is not on sys.path when only tests/adapters is collected
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from broker_fixtures import kafka_url
    from brokers import launcher_module
    from draining import drain

__all__ = ["kafka_url"]

WAIT = 20.0
SESSION_TIMEOUT = 6.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def client(kafka_url: str) -> Iterator[messaging.Client]:
    with messaging.connect(kafka_url, session_timeout=SESSION_TIMEOUT) as connected:
        yield connected


@pytest.fixture
def topic(client: messaging.Client) -> Iterator[str]:
    name = f"failure-{uuid.uuid4().hex[:10]}"
    client.admin.create(name)
    yield name
    client.admin.delete(name)


# -- unreachable ----------------------------------------------------------------------
def test_a_closed_port_fails_within_connect_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(messaging.ConnectionFailed) as raised:
        messaging.connect(f"kafka://user:s3cret-pw@127.0.0.1:{_free_port()}",
                          connect_timeout=2.0)
    assert time.monotonic() - started < 2.0 + 1.5
    assert isinstance(raised.value.__cause__, Exception)
    assert "s3cret-pw" not in str(raised.value)


def test_a_silent_server_fails_within_connect_timeout() -> None:
    """The TCP handshake succeeds (the kernel accepts), the broker never answers."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(messaging.ConnectionFailed):
            messaging.connect(f"kafka://127.0.0.1:{port}", connect_timeout=2.0)
        assert time.monotonic() - started < 2.0 + 1.5


def test_a_missing_topic_is_not_found_at_once_without_auto_create(kafka_url: str) -> None:
    with messaging.connect(kafka_url, auto_create=False) as client:
        started = time.monotonic()
        with pytest.raises(messaging.DestinationNotFound):
            client.producer().send(f"missing-{uuid.uuid4().hex[:8]}", b"x")
        with pytest.raises(messaging.DestinationNotFound):
            client.consumer(f"missing-{uuid.uuid4().hex[:8]}", "g")
        assert time.monotonic() - started < 5.0


# -- size ------------------------------------------------------------------------------
def test_an_oversize_body_is_refused_before_sending(client: messaging.Client,
                                                    topic: str) -> None:
    client.admin.create(topic, groups=["watch"])
    limit = client.capabilities.max_message_bytes
    with pytest.raises(messaging.MessageTooLarge):
        client.producer().send(topic, bytes(limit + 1))
    with pytest.raises(messaging.MessageTooLarge):
        client.producer().send_many(topic, [b"small", bytes(limit + 1)])
    assert client.admin.depth(topic, "watch") == 0, "part of a refused batch was sent"


def test_a_record_the_broker_refuses_is_too_large(client: messaging.Client) -> None:
    """A topic may accept less than the adapter's limit: the broker's refusal maps to
    MessageTooLarge. Kafka refuses the whole record batch the client built, so every
    message of it is reported failed (none silently), and nothing was written."""
    name = f"small-{uuid.uuid4().hex[:8]}"
    client.admin.create(name, groups=["watch"], config={"max.message.bytes": "2000"})
    try:
        with pytest.raises(messaging.MessageTooLarge) as raised:
            client.producer().send(name, bytes(5000))
        assert isinstance(raised.value.__cause__, KafkaException)
        with pytest.raises(messaging.MessageTooLarge) as raised:
            client.producer().send_many(name, [b"small", bytes(5000), b"also small"])
        failed = raised.value.failed
        sent = raised.value.sent
        assert 1 in failed
        assert sorted([*failed, *sent]) == [0, 1, 2], "every message has its own outcome"
        assert client.admin.depth(name, "watch") == len(sent)
        client.producer().send(name, b"fits")
        assert client.admin.depth(name, "watch") == len(sent) + 1
    finally:
        client.admin.delete(name)


# -- a member killed mid-batch -----------------------------------------------------------
MEMBER = textwrap.dedent("""
    import json, sys, time
    import messaging
    url, topic, group = sys.argv[1:4]
    client = messaging.connect(url, session_timeout=float(sys.argv[4]))
    consumer = client.consumer(topic, group)
    held = []
    deadline = time.monotonic() + 30
    while len(held) < 6 and time.monotonic() < deadline:
        held += consumer.receive(max_messages=6 - len(held), timeout=0.5)
    for message in held[:2]:
        message.ack()
    print(json.dumps({"acked": [m.body.decode() for m in held[:2]],
                      "held": [[m.body.decode(), m.id, m.attempt] for m in held[2:]]}),
          flush=True)
    time.sleep(120)
""")


def test_a_member_killed_mid_batch_loses_nothing(kafka_url: str, client: messaging.Client,
                                                 topic: str) -> None:
    group = f"crash-{uuid.uuid4().hex[:8]}"
    client.admin.create(topic, groups=[group])
    sent = [f"job-{i}" for i in range(10)]
    client.producer().send_many(topic, sent, key="one-key")
    member = subprocess.Popen([sys.executable, "-c", MEMBER, kafka_url, topic, group,
                               str(SESSION_TIMEOUT)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert member.stdout is not None
    try:
        report = json.loads(member.stdout.readline() or "{}")
    finally:
        member.send_signal(signal.SIGKILL)
        member.wait(timeout=30)
    assert report, member.stderr.read() if member.stderr else "no report"
    assert len(report["acked"]) == 2
    assert len(report["held"]) == 4
    assert [attempt for _, _, attempt in report["held"]] == [1] * 4

    survivor = client.consumer(topic, group)
    got: list[messaging.Message] = []
    deadline = time.monotonic() + SESSION_TIMEOUT + WAIT
    while len(got) < 8 and time.monotonic() < deadline:
        batch = survivor.receive(max_messages=10, timeout=0.5)
        survivor.ack_many(batch)
        got += batch
    by_body = {message.body.decode(): message for message in got}
    assert sorted(by_body) == sorted(set(sent) - set(report["acked"])), "lost or repeated"
    assert len(got) == 8
    for body, message_id, _ in report["held"]:
        assert by_body[body].id == message_id
        assert by_body[body].attempt == 2, f"{body} came back with attempt {by_body[body].attempt}"
    for message in got:
        if message.body.decode() not in {body for body, _, _ in report["held"]}:
            # Never handed out: no ack read it ahead while the member held messages
            # (decision 0108), so nothing counts it as delivered.
            assert message.attempt == 1
    assert client.admin.depth(topic, group) == 0


# -- a rebalance -------------------------------------------------------------------------
def _two_partitions_held_by_one_member(client: messaging.Client, name: str, group: str
                                       ) -> tuple[messaging.Consumer, list[messaging.Message]]:
    """20 messages over the 2 partitions of ``name``, all held by a first member."""
    client.admin.create(name, partitions=2, groups=[group])
    producer = client.producer()
    for i in range(20):  # different keys: both partitions get some
        producer.send(name, f"m{i}", key=f"k{i}")
    first = client.consumer(name, group)
    held: list[messaging.Message] = []
    deadline = time.monotonic() + WAIT
    while len(held) < 20 and time.monotonic() < deadline:
        held += first.receive(max_messages=20, timeout=0.5)
    assert len(held) == 20
    return first, held


def _second_member_joins(client: messaging.Client, name: str, group: str,
                         first: messaging.Consumer
                         ) -> tuple[messaging.Consumer, list[messaging.Message]]:
    """A second member joins and takes one partition; what it received of it."""
    second = client.consumer(name, group)
    moved: list[messaging.Message] = []
    joined = threading.Event()

    def join() -> None:
        end = time.monotonic() + SESSION_TIMEOUT + WAIT
        while time.monotonic() < end:
            batch = second.receive(max_messages=20, timeout=0.5)
            if not batch and moved:
                break  # the moved partition's backlog is all here
            moved.extend(batch)
        joined.set()

    threading.Thread(target=join, daemon=True).start()
    while not joined.is_set():
        first.receive(max_messages=1, timeout=0.2)  # the first member rebalances here
    assert moved, "the second member got nothing"
    return second, moved


def _partition(message: messaging.Message) -> str:
    return str(message.position).split(":")[0]


def _settle_and_leave(client: messaging.Client, name: str, group: str,
                      *members: tuple[messaging.Consumer, list[messaging.Message]]) -> None:
    """Each member acks its messages, all leave: the group has nothing left."""
    for member, acks in members:
        member.ack_many(acks)
    for member, _ in reversed(members):
        member.close()
    assert client.admin.depth(name, group) == 0


@pytest.fixture
def moving(client: messaging.Client) -> Iterator[tuple[str, str]]:
    """A topic name (created by the test) and a group for a rebalance; deleted after."""
    name = f"failure-{uuid.uuid4().hex[:10]}"
    yield name, f"moved-{uuid.uuid4().hex[:8]}"
    client.admin.delete(name)


def test_what_a_rebalance_moves_is_no_longer_held_by_its_old_member(
        client: messaging.Client, moving: tuple[str, str]) -> None:
    """The second member of a group takes one of two partitions: the first member stops
    holding that partition's unacked records (so its worker does not start them) and
    keeps the other's, and the second member gets them with ``attempt`` 2."""
    name, group = moving
    first, held = _two_partitions_held_by_one_member(client, name, group)
    subscription = first._subscription
    second, moved = _second_member_joins(client, name, group, first)
    kept = [m for m in held if subscription.holds(m.delivery.ack_id)]
    gone = [m for m in held if not subscription.holds(m.delivery.ack_id)]
    assert {_partition(m) for m in gone} == {_partition(moved[0])}
    assert kept, "the first member kept no partition"
    assert not {_partition(m) for m in kept} & {_partition(m) for m in gone}
    assert sorted(m.id for m in moved) == sorted(m.id for m in gone)
    assert {m.attempt for m in moved} == {2}
    _settle_and_leave(client, name, group, (first, kept), (second, moved))


def test_acks_a_worker_has_not_sent_yet_are_not_redone_after_a_rebalance(
        client: messaging.Client, moving: tuple[str, str]) -> None:
    """Half of what the first member holds is acked by a worker's ack batch that has
    not gone out (it waits while the member is inside the client, where the rebalance
    happens): the second member gets only the other half of the moved partition."""
    name, group = moving
    first, held = _two_partitions_held_by_one_member(client, name, group)
    waiting = AckBatcher(first)  # not started: its batch has not gone out
    done = held[::2]
    for message in done:
        waiting.ack(message)
    second, moved = _second_member_joins(client, name, group, first)
    partition = _partition(moved[0])
    assert sorted(m.id for m in moved) == sorted(
        m.id for m in held[1::2] if _partition(m) == partition), (
        "the second member got work the first had done, or missed some")
    assert {m.attempt for m in moved} == {2}
    first._settle_acks(done)  # the batch, once it goes: those of the moved partition
    kept = [m for m in held[1::2] if _partition(m) != partition]
    _settle_and_leave(client, name, group, (first, kept), (second, moved))


def test_handlers_running_when_a_worker_joins_are_not_done_twice(
        client: messaging.Client, moving: tuple[str, str]) -> None:
    """A second worker joins while the first one's slow handlers run on both
    partitions. The revocation waits for the handlers of the partition it moves, and
    commits their acks, so the second worker does none of that work again; what the
    first held but had not started, it skips, and the second does once."""
    name, group = moving
    client.admin.create(name, partitions=2, groups=[group])
    total = 160  # about 10 s of work for the first worker alone: the second joins
    client.producer().send_many(name, [messaging.Record(f"m{i}", key=f"k{i}")
                                       for i in range(total)])
    handled: list[tuple[str, str, int]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def handler_of(member: str) -> Callable[[messaging.Message], None]:
        def handle(message: messaging.Message) -> None:
            time.sleep(0.25)  # slow: handlers are running whenever the rebalance comes
            with lock:
                handled.append((str(message.value), member, message.attempt))
        return handle

    def worker(member: str) -> threading.Thread:
        consumer = client.consumer(name, group)
        thread = threading.Thread(target=consumer.run, args=(handler_of(member),),
                                  kwargs={"concurrency": 4, "stop_event": stop},
                                  daemon=True)
        thread.start()
        return thread

    workers = [worker("first")]
    deadline = time.monotonic() + WAIT
    while len(handled) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert handled, "the first worker handled nothing"
    workers.append(worker("second"))
    deadline = time.monotonic() + SESSION_TIMEOUT + 2 * WAIT
    while len({value for value, _, _ in handled}) < total and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # a repeat would come now
    stop.set()
    for thread in workers:
        thread.join(WAIT)
    values = [value for value, _, _ in handled]
    assert sorted(set(values)) == sorted(f"m{i}" for i in range(total)), "lost"
    repeated = sorted(value for value in set(values) if values.count(value) > 1)
    assert not repeated, f"done twice: {[h for h in handled if h[0] in repeated]}"
    assert {member for _, member, _ in handled} == {"first", "second"}, (
        "the second worker got no partition")
    assert client.admin.depth(name, group) == 0


def test_members_of_one_group_on_two_topics_close_at_once(
        kafka_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """One group name on two topics is one Kafka group: a member that joins rebalances
    the other, which may not poll again before it closes. Its client then serves the
    queued rebalance inside close(), with nothing new to assign: no committed offsets are
    read there (they would wait out the request timeout on a closing consumer)."""
    request_timeout = 8.0
    group = f"shared-{uuid.uuid4().hex[:8]}"
    names = [f"failure-{uuid.uuid4().hex[:10]}" for _ in range(2)]
    with messaging.connect(kafka_url, request_timeout=request_timeout,
                           session_timeout=SESSION_TIMEOUT) as client:
        try:
            for name in names:
                client.admin.create(name, groups=[group])
                client.producer().send(name, name)
            members: list[messaging.Consumer] = []
            for name in names:  # the second joins once the first has stopped polling
                members.append(client.consumer(name, group))
                assert [m.body.decode() for m in drain(members[-1], 1, batch=1)] == [name]
            for member in members:
                started = time.monotonic()
                member.close()
                assert time.monotonic() - started < request_timeout / 2, (
                    "close waited out the request timeout")
            assert "could not read the committed offsets" not in caplog.text
        finally:
            for name in names:
                client.admin.delete(name)


def test_a_worker_keeps_handling_messages_while_another_joins(kafka_url: str) -> None:
    """A cooperative rebalance lets a member keep its other partitions; but librdkafka
    holds a synchronous commit made while the member rejoins (the rebalance's second
    half) until the rebalance is over, and the worker handled nothing while its acks'
    commit waited holding the consumer: a stop of about a heartbeat interval on every
    join. Made long here (5 s heartbeats) so that it cannot hide. (The acks' commit now
    waits without holding the consumer.)"""
    session, heartbeat = 15.0, {"heartbeat.interval.ms": 5000}
    group, topic = f"joining-{uuid.uuid4().hex[:8]}", f"failure-{uuid.uuid4().hex[:10]}"
    stop = threading.Event()
    with messaging.connect(kafka_url, session_timeout=session, kafka_config=heartbeat
                           ) as client, messaging.connect(
            kafka_url, session_timeout=session, kafka_config=heartbeat) as joiner_client:
        client.admin.create(topic, partitions=4, groups=[group])

        def produce() -> None:
            producer = client.producer()
            while not stop.is_set():
                producer.send_many(topic, [b"tick"] * 8)
                time.sleep(0.05)

        received: list[float] = []

        def work(consumer: messaging.Consumer) -> None:
            consumer.run(lambda message: received.append(time.monotonic()), concurrency=2,
                         stop_event=stop)

        threads = [threading.Thread(target=produce)]
        member = client.consumer(topic, group)
        joiner: messaging.Consumer | None = None
        threads.append(threading.Thread(target=work, args=(member,)))
        try:
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + WAIT
            while not received and time.monotonic() < deadline:
                time.sleep(0.05)
            assert received, "the first worker handled nothing"
            joined = time.monotonic()
            joiner = joiner_client.consumer(topic, group)
            assert drain(joiner, 1, batch=50), "the joining member was never assigned"
            assigned = time.monotonic()
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
            if joiner is not None:
                joiner.close()
            client.admin.delete(topic)
        seen = [t for t in received if joined <= t <= assigned]
        gaps = [later - earlier for earlier, later in zip([joined, *seen], [*seen, assigned],
                                                          strict=True)]
        assert max(gaps) < 2.5, (
            f"the first worker handled nothing for {max(gaps):.1f} s while the other "
            f"joined ({assigned - joined:.1f} s)")


# -- a private broker: authentication and durability ------------------------------------
class PrivateKafka:
    """A single-node KRaft broker of our own: PLAINTEXT and SASL/PLAIN listeners."""

    USERS: ClassVar[dict[str, str]] = {"admin": "admin-secret", "alice": "alice-secret"}

    def __init__(self, root: Path, jars: Path) -> None:
        self.root = root
        self.jars = jars
        self.plain_port, self.sasl_port, self.controller_port = (
            _free_port(), _free_port(), _free_port())
        self.process: subprocess.Popen[bytes] | None = None
        self.log = root / "broker.log"

    @property
    def plain_url(self) -> str:
        return f"kafka://127.0.0.1:{self.plain_port}"

    def sasl_url(self, user: str, password: str) -> str:
        return f"kafka://{user}:{password}@127.0.0.1:{self.sasl_port}"

    def _java(self, main: str, *args: str) -> list[str]:
        # setpriv: the private broker must not outlive a test run killed before teardown.
        guard = ["setpriv", "--pdeathsig", "KILL"] if shutil.which("setpriv") else []
        return [*guard, "java", "-Xms128m", "-Xmx384m", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={self.root / 'log4j2.properties'}",
                "-cp", str(self.jars / "*"), main, *args]

    def configure(self) -> None:
        launcher = launcher_module()
        (self.root / "log4j2.properties").write_text(launcher.KAFKA_LOG4J2)
        lines = dict(line.split("=", 1) for line in launcher.kafka_server_properties(
            self.root / "data", self.plain_port).splitlines() if "=" in line)
        jaas = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
                'username="admin" password="admin-secret" '
                + " ".join(f'user_{u}="{p}"' for u, p in self.USERS.items()) + ";")
        lines.update({
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.plain_port},"
                         f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_port},"
                         f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.plain_port},"
                                    f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}",
            "listener.security.protocol.map":
                "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
            "sasl.enabled.mechanisms": "PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas,
        })
        properties = self.root / "server.properties"
        properties.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
        cluster = subprocess.run(self._java("kafka.tools.StorageTool", "random-uuid"),
                                 capture_output=True, text=True, check=True, timeout=120)
        subprocess.run(self._java("kafka.tools.StorageTool", "format", "--standalone", "-t",
                                  cluster.stdout.split()[-1], "-c", str(properties)),
                       capture_output=True, check=True, timeout=120)

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self._java("kafka.Kafka", str(self.root / "server.properties")),
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        probe = launcher_module().probe_kafka
        deadline = time.monotonic() + 120
        while not (probe(self.plain_port) and self._coordinator_ready()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"private Kafka did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.5)

    def _coordinator_ready(self) -> bool:
        """A fresh or restarted broker answers metadata before its group coordinator
        has loaded: the harness waits for both. (A consumer asks, not an AdminClient:
        see ConfluentAdmin's note on librdkafka#5040.)"""
        probe = Consumer({"bootstrap.servers": f"127.0.0.1:{self.plain_port}",
                          "group.id": "readiness-probe"})
        try:
            probe.committed([TopicPartition("readiness-probe", 0)], 5)
        except KafkaException:
            return False
        finally:
            probe.close()
        return True

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


def _launcher_jars() -> Path | None:
    launcher = launcher_module()
    digest = hashlib.sha256(launcher.KAFKA_POM.read_bytes()).hexdigest()[:12]
    jars = launcher.cache_root() / f"kafka-{launcher.kafka_version()}-{digest}"
    return jars if (jars / ".complete").exists() else None


@pytest.fixture(scope="module")
def private_kafka() -> Iterator[PrivateKafka]:
    jars = _launcher_jars()
    if jars is None:
        pytest.skip("no Kafka jars from compose/native here (run `compose/native up kafka`)")
    with tempfile.TemporaryDirectory(prefix="kafka-private-") as root:
        broker = PrivateKafka(Path(root), jars)
        broker.configure()
        broker.start()
        try:
            yield broker
        finally:
            broker.kill()


@pytest.mark.slow
def test_wrong_credentials_give_authentication_failed(private_kafka: PrivateKafka) -> None:
    started = time.monotonic()
    with pytest.raises(messaging.AuthenticationFailed) as raised:
        messaging.connect(private_kafka.sasl_url("alice", "wrong-password"),
                          connect_timeout=10.0)
    assert time.monotonic() - started < 10.0 + 1.5
    assert "wrong-password" not in str(raised.value)
    with messaging.connect(private_kafka.sasl_url("alice", "alice-secret")) as client:
        name = f"sasl-{uuid.uuid4().hex[:8]}"
        client.admin.create(name, groups=["g"])
        client.producer().send(name, b"authenticated")
        with client.consumer(name, "g") as consumer:
            got = consumer.receive(max_messages=1, timeout=WAIT)
            assert [m.body for m in got] == [b"authenticated"]
            got[0].ack()


@pytest.mark.slow
def test_sends_that_returned_survive_a_broker_kill(private_kafka: PrivateKafka) -> None:
    name = f"durable-{uuid.uuid4().hex[:8]}"
    sent = [f"order-{i}".encode() for i in range(500)]
    with messaging.connect(private_kafka.plain_url) as client:
        client.admin.create(name, partitions=3, groups=["billing"])
        client.producer().send_many(name, sent[:250])
        for body in sent[250:260]:
            client.producer().send(name, body, key=body.decode())
        client.producer().send_many(name, sent[260:])

    private_kafka.kill()  # SIGKILL: no clean shutdown, no flush
    private_kafka.start()

    with messaging.connect(private_kafka.plain_url, session_timeout=SESSION_TIMEOUT) as client:
        assert client.admin.depth(name, "billing") == len(sent)
        with client.consumer(name, "billing") as consumer:
            got: list[bytes] = []
            deadline = time.monotonic() + 60
            while len(got) < len(sent) and time.monotonic() < deadline:
                batch = consumer.receive(max_messages=100, timeout=0.5)
                consumer.ack_many(batch)
                got += [message.body for message in batch]
        assert sorted(got) == sorted(sent)
        assert client.admin.depth(name, "billing") == 0


@pytest.mark.slow
def test_a_consumer_rides_out_a_broker_restart(private_kafka: PrivateKafka) -> None:
    """The worker loop keeps going through an outage (ConnectionFailed pauses it) and
    finishes the work once the broker is back: nothing acked is lost or repeated.

    The worker acks a handled message from its ack thread, a moment later, so the
    broker is killed only once the group's committed offsets cover the first batch: a
    kill between handling and committing would rightly deliver that batch again."""
    name = f"outage-{uuid.uuid4().hex[:8]}"
    before = [f"a{i}".encode() for i in range(50)]
    after = [f"b{i}".encode() for i in range(50)]
    handled: list[bytes] = []
    lock = threading.Lock()

    def handler(message: messaging.Message) -> None:
        with lock:
            handled.append(message.body)

    with messaging.connect(private_kafka.plain_url, session_timeout=SESSION_TIMEOUT) as client:
        client.admin.create(name, groups=["workers"])
        client.producer().send_many(name, before)
        stop = threading.Event()
        worker = threading.Thread(target=client.consumer(name, "workers").run,
                                  kwargs={"handler": handler, "stop_event": stop},
                                  daemon=True)
        worker.start()
        try:
            assert _wait(lambda: client.admin.depth(name, "workers") == 0, WAIT), \
                f"the first batch was not committed; handled {len(handled)}"
            private_kafka.kill()
            time.sleep(2.0)
            private_kafka.start()
            client.producer().send_many(name, after)
            assert _wait(lambda: set(handled) >= {*before, *after}, 60), \
                f"not handled after the restart: {sorted({*after} - set(handled))[:5]}"
        finally:
            stop.set()
            worker.join(timeout=30)
        repeated = sorted(body for body in before if handled.count(body) != 1)
        assert not repeated, f"committed before the outage, yet handled again: {repeated}"
        with contextlib.suppress(messaging.MessagingError):
            client.admin.delete(name)


def _wait(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False
