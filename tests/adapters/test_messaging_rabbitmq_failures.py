"""Failures on a real RabbitMQ: unreachable, silent or refusing brokers, oversize messages,
a member killed mid-batch, a connection lost and found again, a peer that stops reading,
a broker restart.

Nothing here stops or restarts the shared broker: connection loss goes through a TCP
proxy this module runs, and the restart test starts a private RabbitMQ node of its own
(another node name, port and data directory), marked ``restart`` and ``slow``.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import messaging

try:
    from broker_fixtures import rabbitmq_url
except ImportError:  # tests/ is not on sys.path when only tests/adapters is collected
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from broker_fixtures import rabbitmq_url

__all__ = ["rabbitmq_url"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _with_port(url: str, port: int) -> str:
    parts = urllib.parse.urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    return parts._replace(netloc=f"{userinfo}@127.0.0.1:{port}" if userinfo
                          else f"127.0.0.1:{port}").geturl()


def _broker_address(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 5672


@pytest.fixture
def destination(rabbitmq_url: str) -> Iterator[str]:
    name = f"failure-{uuid.uuid4().hex[:10]}"
    with messaging.connect(rabbitmq_url) as client:
        client.admin.create(name, groups=["workers"])
    yield name
    with messaging.connect(rabbitmq_url) as client:
        client.admin.create(name, groups=["workers"])  # so that delete knows the group
        client.admin.delete(name)


# -- connecting -------------------------------------------------------------------------


def test_an_unreachable_broker_fails_at_once_with_connection_failed() -> None:
    started = time.monotonic()
    with pytest.raises(messaging.ConnectionFailed) as caught:
        messaging.connect(f"amqp://guest:secret@127.0.0.1:{_free_port()}/", connect_timeout=5)
    assert time.monotonic() - started < 5
    assert "secret" not in str(caught.value)
    assert isinstance(caught.value.__cause__, OSError)


def test_a_silent_broker_fails_within_connect_timeout() -> None:
    """A host that takes the TCP connection but never speaks AMQP."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(messaging.ConnectionFailed) as caught:
            messaging.connect(f"amqp://guest:secret@127.0.0.1:{port}/", connect_timeout=1.0)
        waited = time.monotonic() - started
    assert 0.9 <= waited < 3.0, waited
    assert "secret" not in str(caught.value)


def test_wrong_credentials_give_authentication_failed(rabbitmq_url: str) -> None:
    parts = urllib.parse.urlsplit(rabbitmq_url)
    host = parts.netloc.rpartition("@")[2]
    wrong = parts._replace(netloc=f"{parts.username or 'guest'}:not-the-password@{host}")
    with pytest.raises(messaging.AuthenticationFailed) as caught:
        messaging.connect(wrong.geturl(), connect_timeout=5)
    assert "not-the-password" not in str(caught.value)


def test_an_unknown_virtual_host_is_refused_access(rabbitmq_url: str) -> None:
    parts = urllib.parse.urlsplit(rabbitmq_url)
    with pytest.raises(messaging.AuthenticationFailed, match="vhost"):
        messaging.connect(parts._replace(path="/no-such-vhost").geturl(), connect_timeout=5)


# -- limits -----------------------------------------------------------------------------


def test_oversize_messages_are_refused_before_anything_is_sent(rabbitmq_url: str,
                                                               destination: str) -> None:
    with messaging.connect(rabbitmq_url, max_message_bytes=1024) as client:
        assert client.capabilities.max_message_bytes == 1024
        producer = client.producer()
        with pytest.raises(messaging.MessageTooLarge):
            producer.send(destination, bytes(1025))
        with pytest.raises(messaging.MessageTooLarge):
            producer.send_many(destination, [b"small", bytes(2000), b"small"])
        with pytest.raises(messaging.MessageTooLarge):  # headers count too
            producer.send(destination, bytes(900), headers={"pad": "x" * 200})
        assert client.admin.depth(destination, "workers") == 0


def test_the_default_limit_is_the_brokers_max_message_size(rabbitmq_url: str) -> None:
    with messaging.connect(rabbitmq_url) as client:
        assert client.capabilities.max_message_bytes == 128 * 1024 * 1024


# -- a member killed mid-batch ----------------------------------------------------------

_MEMBER = """
import json, os, sys, time
import messaging
client = messaging.connect(os.environ["MESSAGING_URL"])
consumer = client.consumer(sys.argv[1], "workers", prefetch=5)
got = []
while len(got) < 5:
    got += consumer.receive(max_messages=5 - len(got), timeout=10)
for message in got[:2]:
    message.ack()
print(json.dumps({"acked": [m.body.decode() for m in got[:2]],
                  "held": [m.body.decode() for m in got[2:]]}), flush=True)
time.sleep(120)
"""


def test_a_member_killed_mid_batch_loses_nothing(rabbitmq_url: str, destination: str
                                                 ) -> None:
    sent = [f"job-{i}" for i in range(10)]
    with messaging.connect(rabbitmq_url) as client:
        client.producer().send_many(destination, [body.encode() for body in sent])
        member = subprocess.Popen([sys.executable, "-c", _MEMBER, destination],
                                  stdout=subprocess.PIPE, text=True,
                                  env={**os.environ, "MESSAGING_URL": rabbitmq_url})
        try:
            assert member.stdout is not None
            report = json.loads(member.stdout.readline())
        finally:
            member.send_signal(signal.SIGKILL)
            member.wait(timeout=30)

        survivor = client.consumer(destination, "workers")
        seen: dict[str, int] = {}
        deadline = time.monotonic() + 20
        while len(seen) < 8 and time.monotonic() < deadline:
            for message in survivor.receive(max_messages=10, timeout=0.5):
                seen[message.body.decode()] = message.attempt
                message.ack()

        assert set(seen) == set(sent) - set(report["acked"])
        assert {body: seen[body] for body in report["held"]} == dict.fromkeys(report["held"], 2)
        # The member's two acks made room for two more deliveries it never handed out;
        # the broker counts those too (a killed process cannot give them back).
        others = [a for body, a in seen.items() if body not in report["held"]]
        assert set(others) <= {1, 2}
        assert others.count(2) <= 2
        survivor.close()
        assert client.admin.depth(destination, "workers") == 0


# -- a connection lost and found again --------------------------------------------------


class Proxy:
    """A TCP proxy to the broker that a test can cut (as a network failure would) and
    mend, without touching the broker everyone else uses."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._links: list[socket.socket] = []
        self._lock = threading.Lock()
        self._open = True
        self._closed = False
        self._flowing = threading.Event()
        self._flowing.set()
        threading.Thread(target=self._accept, daemon=True, name="test-proxy").start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                if not self._open:
                    client.close()  # refused while cut
                    continue
                upstream = socket.create_connection(self._target)
                self._links += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, one: socket.socket, other: socket.socket) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(one, selectors.EVENT_READ, other)
            selector.register(other, selectors.EVENT_READ, one)
            with contextlib.suppress(OSError, ValueError):
                while True:
                    for key, _ in selector.select():
                        source: socket.socket = key.fileobj  # type: ignore[assignment]
                        data = source.recv(65536)
                        if not data:
                            return
                        self._flowing.wait()
                        key.data.sendall(data)

    def freeze(self) -> None:
        """Stop forwarding without closing anything: a peer that hangs, or a network that
        silently drops packets."""
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    def cut(self) -> None:
        self._flowing.set()
        with self._lock:
            self._open = False
            links, self._links = self._links, []
        for link in links:
            with contextlib.suppress(OSError):
                link.shutdown(socket.SHUT_RDWR)
            link.close()

    def mend(self) -> None:
        with self._lock:
            self._open = True

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._server.close()


@pytest.fixture
def proxy(rabbitmq_url: str) -> Iterator[Proxy]:
    running = Proxy(_broker_address(rabbitmq_url))
    yield running
    running.close()


def test_a_lost_connection_is_reported_and_the_next_calls_reconnect(
        rabbitmq_url: str, proxy: Proxy, destination: str) -> None:
    with messaging.connect(_with_port(rabbitmq_url, proxy.port), connect_timeout=5) as far, \
            messaging.connect(rabbitmq_url) as near:
        consumer = far.consumer(destination, "workers", prefetch=3)
        near.producer().send_many(destination, [b"a", b"b", b"c"])
        held = []
        while len(held) < 3:
            held += consumer.receive(max_messages=3, timeout=5.0)
        assert all(consumer._subscription.holds(m.delivery.ack_id) for m in held)

        proxy.cut()

        # The broker saw the connection go: another member gets the messages, counted.
        other = near.consumer(destination, "workers")
        back = []
        deadline = time.monotonic() + 20
        while len(back) < 3 and time.monotonic() < deadline:
            back += other.receive(max_messages=3, timeout=0.5)
        assert sorted(m.body for m in back) == [b"a", b"b", b"c"]
        assert {m.attempt for m in back} == {2}
        other.ack_many(back)
        other.close()

        with pytest.raises(messaging.ConnectionFailed):  # reported once ...
            consumer.receive(max_messages=1, timeout=5.0)
        # ... what it held is no longer its own (a worker would not start it) ...
        assert not any(consumer._subscription.holds(m.delivery.ack_id) for m in held)
        with pytest.raises(messaging.ConnectionFailed):  # ... acks of the lost channel fail
            held[0].ack()
        with pytest.raises(messaging.ConnectionFailed):  # the broker is still unreachable
            far.producer().send(destination, b"while cut")

        proxy.mend()
        time.sleep(0.6)  # the first reconnection backoff
        sent_id = far.producer().send(destination, b"after")
        got = consumer.receive(max_messages=1, timeout=10.0)  # ... and re-attached
        assert [(m.body, m.id, m.attempt) for m in got] == [(b"after", sent_id, 1)]
        got[0].ack()
        consumer.close()
        assert near.admin.depth(destination, "workers") == 0


@pytest.mark.slow
def test_a_silent_peer_is_noticed_by_heartbeats(rabbitmq_url: str, proxy: Proxy,
                                                destination: str) -> None:
    with messaging.connect(_with_port(rabbitmq_url, proxy.port), heartbeat=1) as far, \
            messaging.connect(rabbitmq_url) as near:
        consumer = far.consumer(destination, "workers", prefetch=1)
        near.producer().send(destination, b"held by a hung member")
        (held,) = consumer.receive(max_messages=1, timeout=5.0)

        proxy.freeze()
        frozen_at = time.monotonic()

        # The broker misses the member's heartbeats and gives its message to another.
        other = near.consumer(destination, "workers")
        (again,) = other.receive(max_messages=1, timeout=20.0)
        assert (again.id, again.attempt) == (held.id, 2)
        again.ack()
        # The member misses the broker's and reports the connection lost.
        with pytest.raises(messaging.ConnectionFailed):
            _receive_until_failure(consumer, frozen_at + 30)
        other.close()


def _receive_until_failure(consumer: messaging.Consumer, deadline: float) -> None:
    while time.monotonic() < deadline:
        consumer.receive(max_messages=1, timeout=0.5)


def test_sends_cut_off_are_reported_never_dropped(rabbitmq_url: str, proxy: Proxy,
                                                  destination: str) -> None:
    with messaging.connect(_with_port(rabbitmq_url, proxy.port)) as far:
        producer = far.producer()
        producer.send(destination, b"first")
        result: dict[str, object] = {}

        def send_many() -> None:
            try:
                result["ids"] = producer.send_many(destination, [bytes(10_000)] * 3000)
            except messaging.MessagingError as error:
                result["error"] = error

        # Frozen first, so that the cut finds the batch mid-write however slowly the
        # sender thread gets going.
        proxy.freeze()
        sender = threading.Thread(target=send_many)
        sender.start()
        _wait_until_pika_buffers(far)
        proxy.cut()
        sender.join(30)

    if "ids" in result:  # everything was confirmed before the cut: fine too
        pytest.skip("the whole batch was confirmed before the connection was cut")
    error = result["error"]
    assert isinstance(error, messaging.ConnectionFailed), error
    failed = getattr(error, "failed", None)
    sent = getattr(error, "sent", {})
    assert failed, "the unconfirmed messages must be reported"
    # Each message of the call, in the driver batch that was in flight or in another, is
    # either confirmed (error.sent) or reported failed (error.failed), none dropped.
    assert sorted([*failed, *sent]) == list(range(3000))


# -- a peer that stops reading: writes the socket cannot take at once -------------------
#
# Calling threads write their frames to the socket themselves, under the connection's
# lock, while the I/O thread waits in epoll or poll; with pika's select poller every call
# is handed to the I/O thread instead (see messaging_rabbitmq._pika). Both ways are run,
# and a third: calls made on the calling thread but written by pika's own loop, which is
# what a TLS connection does (only the plaintext transport is written directly).


@pytest.fixture(params=["epoll", "poll", "select", "epoll-pika-writes"])
def poller(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    from messaging_rabbitmq import _pika
    from pika.adapters import select_connection

    kind, _, writes = str(request.param).partition("-")
    monkeypatch.setattr(select_connection, "SELECT_TYPE", kind)
    if writes:
        monkeypatch.setattr(_pika, "_PLAINTEXT", ())
    return kind


def _transport_mode(client: messaging.Client) -> bool:
    return bool(client._driver._transport._direct)  # type: ignore[attr-defined]


def _wait_until_pika_buffers(client: messaging.Client) -> None:
    """Until the socket has stopped taking what is written and pika holds the rest."""
    stream = client._driver._transport._connection._transport  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while not stream.get_write_buffer_size():
        assert time.monotonic() < deadline, "the socket never filled up"
        time.sleep(0.01)


def _numbered(sender: int, count: int) -> list[bytes]:
    return [bytes([sender]) + index.to_bytes(4, "big") * 2560 for index in range(count)]


def test_batches_larger_than_the_socket_takes_arrive_whole_and_in_order(
        rabbitmq_url: str, proxy: Proxy, destination: str, poller: str) -> None:
    senders = 3  # about 3 MB each: the second and third find the socket full
    with messaging.connect(_with_port(rabbitmq_url, proxy.port)) as far:
        assert _transport_mode(far) is (poller != "select")
        producer = far.producer()
        producer.send(destination, b"first")  # its first send to the exchange checks it
        proxy.freeze()
        results: dict[int, object] = {}

        def send(sender: int) -> None:
            try:
                results[sender] = producer.send_many(destination, _numbered(sender, 300))
            except BaseException as error:
                results[sender] = error

        threads = [threading.Thread(target=send, args=(n,)) for n in range(senders)]
        try:
            for thread in threads:
                thread.start()
            _wait_until_pika_buffers(far)
            time.sleep(0.2)
            assert all(thread.is_alive() for thread in threads), "confirmed while frozen"
        finally:
            proxy.thaw()
        for thread in threads:
            thread.join(30)
    assert all(isinstance(results[n], list) and len(results[n]) == 300  # type: ignore[arg-type]
               for n in range(senders)), results

    with messaging.connect(rabbitmq_url) as near:
        consumer = near.consumer(destination, "workers")
        bodies: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(bodies) < 1 + 300 * senders and time.monotonic() < deadline:
            got = consumer.receive(max_messages=100, timeout=1.0)
            bodies += [m.body for m in got]
            consumer.ack_many(got)
        consumer.close()
    assert bodies[0] == b"first"
    for sender in range(senders):  # every byte intact, each sender's batch in its order
        assert [b for b in bodies if b[:1] == bytes([sender])] == _numbered(sender, 300)
    assert len(bodies) == 1 + 300 * senders


def test_an_ack_returns_only_once_its_frame_is_in_the_socket(
        rabbitmq_url: str, proxy: Proxy, destination: str, poller: str) -> None:
    with messaging.connect(rabbitmq_url) as near:
        near.producer().send_many(destination, [b"acked", b"kept"])
    with messaging.connect(_with_port(rabbitmq_url, proxy.port)) as far:
        assert _transport_mode(far) is (poller != "select")
        consumer = far.consumer(destination, "workers", prefetch=2)
        held: list[messaging.Message] = []
        while len(held) < 2:
            held += consumer.receive(max_messages=2, timeout=5.0)
        acked = next(m for m in held if m.body == b"acked")
        producer = far.producer()
        producer.send(destination, b"warm")  # its first send to the exchange checks it

        proxy.freeze()
        try:
            fillers = [threading.Thread(target=producer.send_many,
                                        args=(destination, _numbered(n, 300)))
                       for n in range(2)]
            for filler in fillers:  # about 6 MB: more than the socket takes
                filler.start()
            _wait_until_pika_buffers(far)
            acking = threading.Thread(target=acked.ack)
            acking.start()
            acking.join(0.5)
            assert acking.is_alive(), "the ack returned while its frame could not be written"
        finally:
            proxy.thaw()
        acking.join(30)
        assert not acking.is_alive()
        for filler in fillers:
            filler.join(30)
        assert not any(filler.is_alive() for filler in fillers)
        consumer.close()  # gives back the message it did not ack
    with messaging.connect(rabbitmq_url) as near:
        other = near.consumer(destination, "workers")
        back: list[messaging.Message] = []
        deadline = time.monotonic() + 30
        while len(back) < 602 and time.monotonic() < deadline:
            got = other.receive(max_messages=100, timeout=0.5)
            back += got
            other.ack_many(got)
        other.close()
    assert [m.attempt for m in back if m.body == b"kept"] == [2]
    assert not [m for m in back if m.body == b"acked"]
    assert len(back) == 602  # "kept", "warm" and the fillers


# -- many threads on one connection -------------------------------------------------


def test_threads_sharing_a_connection_never_mix_their_frames(
        rabbitmq_url: str, destination: str, poller: str) -> None:
    """Senders publish while members receive and ack one message at a time, all on one
    connection: interleaved frames would make the broker close it, and a lost or doubled
    ack would bring a message back. The interpreter switches threads every microsecond
    meanwhile, so that a call into pika left unguarded is interrupted often."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        _share_one_connection(rabbitmq_url, destination, poller)
    finally:
        sys.setswitchinterval(previous)


def _share_one_connection(rabbitmq_url: str, destination: str, poller: str) -> None:
    total, senders, members = 3000, 2, 4
    with messaging.connect(rabbitmq_url) as client:
        transport = client._driver._transport  # type: ignore[attr-defined]
        assert _transport_mode(client) is (poller != "select")
        producer = client.producer()
        seen: list[tuple[bytes, int]] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def send(sender: int) -> None:
            for start in range(0, total // senders, 50):
                producer.send_many(destination, [b"%d-%d" % (sender, start + i)
                                                 for i in range(50)])

        def member() -> None:
            consumer = client.consumer(destination, "workers", prefetch=20)
            try:
                while True:
                    with lock:
                        if len(seen) >= total or errors:
                            return
                    for message in consumer.receive(max_messages=5, timeout=0.5):
                        message.ack()
                        with lock:
                            seen.append((message.body, message.attempt))
            except BaseException as error:
                with lock:
                    errors.append(error)
            finally:
                consumer.close()

        threads = [threading.Thread(target=send, args=(n,)) for n in range(senders)]
        threads += [threading.Thread(target=member) for _ in range(members)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not errors, errors
        assert client._driver._transport is transport, "the connection was lost"  # type: ignore[attr-defined]
        assert sorted(body for body, _ in seen) == sorted(
            b"%d-%d" % (sender, i) for sender in range(senders)
            for i in range(total // senders))
        assert {attempt for _, attempt in seen} == {1}
        assert client.admin.depth(destination, "workers") == 0


def test_a_waiting_receive_gets_every_delivery_read_in_one_pass(
        rabbitmq_url: str, destination: str, poller: str) -> None:
    """Deliveries the I/O thread reads together reach a waiting receive together: woken
    at the first one, it would take that alone (and ack it alone, and wait again). The
    I/O thread is held while the broker sends, so that all of them are in the socket
    when it reads; the interpreter switches threads every microsecond, so a receive
    woken early would run at once."""
    burst = 50
    with messaging.connect(rabbitmq_url) as client:
        consumer = client.consumer(destination, "workers", prefetch=100)
        got: list[list[messaging.Message]] = []
        receiving = threading.Thread(
            target=lambda: got.append(consumer.receive(max_messages=100, timeout=30)))
        gate = threading.Event()
        transport = client._driver._transport  # type: ignore[attr-defined]
        transport._ioloop.add_callback_threadsafe(lambda: gate.wait(30))
        previous = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        try:
            receiving.start()
            with messaging.connect(rabbitmq_url) as other:
                other.producer().send_many(destination, [b"%d" % i for i in range(burst)])
                # None ready: the broker has pushed them all to the held connection.
                deadline = time.monotonic() + 30
                while other.admin.depth(destination, "workers"):
                    assert time.monotonic() < deadline, "the broker never pushed the burst"
                    time.sleep(0.05)
            time.sleep(0.1)  # from the broker's socket to this one: loopback
            gate.set()
            receiving.join(30)
        finally:
            gate.set()
            sys.setswitchinterval(previous)
        assert [len(batch) for batch in got] == [burst]
        consumer.ack_many(got[0])
        consumer.close()


# -- a broker restart (a private node) -------------------------------------------------

_RABBIT_PATH = os.pathsep.join(["/usr/lib/rabbitmq/bin", os.environ.get("PATH", ""),
                                "/usr/sbin"])


class PrivateBroker:
    """A RabbitMQ node of this test's own: its own name, ports, cookie and data; with
    ``tls``, also a TLS listener whose certificate a CA of its own signed."""

    def __init__(self, directory: Path, *, tls: bool = False) -> None:
        self.directory = directory
        self.port = _free_port()
        self.tls_port = _free_port()
        self.ca_file = str(directory / "ca.pem")
        # Its own name also beside another private node (the TLS one lives per module).
        self.node = f"msgtest{os.getpid()}{'tls' if tls else ''}@localhost"
        (directory / "enabled_plugins").write_text("[].\n")
        config = "loopback_users.guest = true\n"
        if tls:
            _make_certificates(directory)
            config += "".join(f"{line}\n" for line in (
                f"listeners.ssl.default = {self.tls_port}",
                f"ssl_options.cacertfile = {directory / 'ca.pem'}",
                f"ssl_options.certfile = {directory / 'server.pem'}",
                f"ssl_options.keyfile = {directory / 'server.key'}",
                "ssl_options.verify = verify_none",
                "ssl_options.fail_if_no_peer_cert = false",
            ))
        (directory / "rabbitmq.conf").write_text(config)
        self.env = {
            **os.environ,
            "HOME": str(directory),  # the Erlang cookie, shared with rabbitmqctl
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(_free_port()),
            "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(directory / "log"),
            "RABBITMQ_PID_FILE": str(directory / "rabbitmq.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(directory / "rabbitmq.conf"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"
        self.tls_url = f"amqps://guest:guest@127.0.0.1:{self.tls_port}/%2F"

    def _tool(self, name: str) -> str:
        found = shutil.which(name, path=_RABBIT_PATH)
        if found is None:
            pytest.skip(f"RabbitMQ broker for the restart test unavailable: no {name}")
        return found

    def start(self) -> None:
        subprocess.run([self._tool("rabbitmq-server"), "-detached"], env=self.env,
                       check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = subprocess.run([self._tool("rabbitmqctl"), "-n", self.node,
                                   "await_startup", "--timeout", "30"],
                                  env=self.env, capture_output=True, timeout=60, check=False)
            if done.returncode == 0:
                return
            time.sleep(1)
        raise AssertionError(f"the private RabbitMQ node {self.node} did not start")

    def stop(self) -> None:
        subprocess.run([self._tool("rabbitmqctl"), "-n", self.node, "shutdown"],
                       env=self.env, capture_output=True, timeout=120, check=False)


def _make_certificates(directory: Path) -> None:
    """A CA, and a certificate it signed for 127.0.0.1 and localhost (openssl)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("RabbitMQ broker with TLS unavailable: no openssl to make its certificate")

    def run(*arguments: str) -> None:
        subprocess.run([openssl, *arguments], cwd=directory, check=True, capture_output=True,
                       timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        "/CN=messaging test CA", "-keyout", "ca.key", "-out", "ca.pem")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", "server.key", "-out", "server.csr")
    (directory / "server.ext").write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "server.ext", "-out", "server.pem")
    for name in ("server.key", "server.pem", "ca.pem"):
        (directory / name).chmod(0o644)  # the broker reads them as the same user anyway


@contextlib.contextmanager
def _running(prefix: str, *, tls: bool = False) -> Iterator[PrivateBroker]:
    with tempfile.TemporaryDirectory(prefix=prefix) as directory:
        broker = PrivateBroker(Path(directory), tls=tls)
        broker.start()
        try:
            yield broker
        finally:
            broker.stop()


@pytest.fixture
def private_broker() -> Iterator[PrivateBroker]:
    with _running("messaging-rabbitmq-restart-") as broker:
        yield broker


@pytest.fixture(scope="module")
def tls_broker() -> Iterator[PrivateBroker]:
    with _running("messaging-rabbitmq-tls-", tls=True) as broker:
        yield broker


@pytest.mark.slow
def test_amqps_sends_receives_and_acks_over_tls(tls_broker: PrivateBroker) -> None:
    """The TLS path for real: pika writes the frames itself there (its TLS transport is
    not written to directly), and an ack waits for the I/O loop to write it."""
    bodies = [index.to_bytes(4, "big") * 2560 for index in range(300)]  # 10 KiB each
    with messaging.connect(tls_broker.tls_url, ca_file=tls_broker.ca_file,
                           connect_timeout=10.0) as client:
        stream = client._driver._transport._connection._transport  # type: ignore[attr-defined]
        assert "SSL" in type(stream).__name__
        client.admin.create("orders", groups=["billing"])
        assert client.producer().send_many("orders", bodies[:200])
        for body in bodies[200:]:
            client.producer().send("orders", body)
        consumer = client.consumer("orders", "billing", prefetch=50)
        got: list[bytes] = []
        deadline = time.monotonic() + 60
        while len(got) < len(bodies) and time.monotonic() < deadline:
            batch = consumer.receive(max_messages=50, timeout=1.0)
            if len(got) < 100:
                for message in batch:
                    message.ack()  # one at a time, then in batches
            else:
                consumer.ack_many(batch)
            got += [message.body for message in batch]
        consumer.close()
        assert got == bodies
        assert client.admin.depth("orders", "billing") == 0


def test_amqps_refuses_a_certificate_no_trusted_ca_signed(tls_broker: PrivateBroker
                                                          ) -> None:
    with pytest.raises(messaging.ConnectionFailed, match=r"(?i)certificate"):
        messaging.connect(tls_broker.tls_url, connect_timeout=10.0)  # the system's CAs


@pytest.mark.restart
@pytest.mark.slow
def test_confirmed_sends_survive_a_broker_restart(private_broker: PrivateBroker) -> None:
    sent = [f"durable-{i}".encode() for i in range(100)]
    with messaging.connect(private_broker.url) as client:
        client.admin.create("orders", groups=["billing"])
        client.producer().send_many("orders", sent, key="k", headers={"h": "v"})
        client.producer().send("orders", b"delayed", delay=3.0)

    private_broker.stop()
    private_broker.start()

    with messaging.connect(private_broker.url) as client:
        consumer = client.consumer("orders", "billing")
        got: list[messaging.Message] = []
        deadline = time.monotonic() + 30
        while len(got) < len(sent) + 1 and time.monotonic() < deadline:
            batch = consumer.receive(max_messages=100, timeout=1.0)
            consumer.ack_many(batch)
            got += batch
        assert sorted(m.body for m in got) == sorted([*sent, b"delayed"])
        assert {(m.key, m.headers.get("h")) for m in got if m.body != b"delayed"} == {("k", "v")}
