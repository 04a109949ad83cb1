"""Failures the Redis adapter must report or survive, on real servers: an unreachable or
silent server -> ConnectionFailed within connect_timeout; a wrong or missing password,
or an ACL that forbids a command -> AuthenticationFailed; oversize -> MessageTooLarge
before anything is sent; with AOF on, sends that returned (and unacked deliveries)
survive a server restart, and the same client carries on afterwards.

Servers that get a password or a restart are PRIVATE ``redis-server`` processes on a
free port and a temporary directory, started and stopped here (the shared broker is
never restarted). A member killed with SIGKILL mid-batch is the contract suite's
``test_crash``, run by test_messaging_redis_contract.py.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

import messaging
from messaging.message import Settlement

try:
    from broker_fixtures import redis_url
except ImportError:  # tests/ is not on sys.path when only tests/adapters is collected
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from broker_fixtures import redis_url

__all__ = ["redis_url"]

T = TypeVar("T")
SERVER = shutil.which("redis-server")
needs_server = pytest.mark.skipif(SERVER is None, reason="redis: no redis-server binary "
                                  "for a private server (compose/native up redis installs it)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRedis:
    """A redis-server of this test alone: its own port and directory."""

    def __init__(self, directory: Path, *arguments: str) -> None:
        self.port = free_port()
        self.directory = directory
        self.arguments = arguments
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert SERVER is not None
        self.process = subprocess.Popen(
            [SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--dir", str(self.directory), "--daemonize", "no", *self.arguments],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the private redis-server exited"
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=0.5) as connection:
                connection.sendall(b"PING\r\n")
                reply = connection.recv(64)
                if reply.startswith((b"+PONG", b"-NOAUTH")):
                    return
            time.sleep(0.05)
        raise AssertionError("the private redis-server did not start")

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM: a clean shutdown (the AOF is flushed); SIGKILL: a crash."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        self.process.wait(timeout=30)
        self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Callable[..., PrivateRedis]]:
    servers: list[PrivateRedis] = []

    def start(*arguments: str) -> PrivateRedis:
        server = PrivateRedis(tmp_path / f"redis-{len(servers)}", *arguments)
        server.directory.mkdir()
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop(kill=True)


# -- unreachable ------------------------------------------------------------------------
def test_refused_connection_fails_fast_with_connection_failed() -> None:
    started = time.monotonic()
    with pytest.raises(messaging.ConnectionFailed) as caught:
        messaging.connect(f"redis://127.0.0.1:{free_port()}/0", connect_timeout=2.0)
    assert time.monotonic() - started < 2.0
    assert caught.value.__cause__ is not None


def test_silent_server_fails_within_connect_timeout() -> None:
    """A host that accepts the connection and never answers (not Redis, or hung)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        accepted: list[socket.socket] = []
        threading.Thread(target=lambda: accepted.append(listener.accept()[0]),
                         daemon=True).start()
        started = time.monotonic()
        with pytest.raises(messaging.ConnectionFailed) as caught:
            messaging.connect(f"redis://127.0.0.1:{port}/0", connect_timeout=1.0)
        waited = time.monotonic() - started
        for connection in accepted:
            connection.close()
    assert waited < 1.0 + 1.5, f"took {waited:.2f} s with connect_timeout=1.0"
    assert "Timeout" in str(caught.value)


# -- credentials ------------------------------------------------------------------------
@needs_server
def test_wrong_or_missing_password_is_authentication_failed(
        private_redis: Callable[..., PrivateRedis]) -> None:
    server = private_redis("--requirepass", "right-secret")
    wrong = f"redis://:wrong-secret@127.0.0.1:{server.port}/0"
    with pytest.raises(messaging.AuthenticationFailed) as caught:
        messaging.connect(wrong, connect_timeout=5.0)
    assert "wrong-secret" not in str(caught.value)
    assert caught.value.__cause__ is not None
    with pytest.raises(messaging.AuthenticationFailed):
        messaging.connect(f"redis://user-nobody:pw@127.0.0.1:{server.port}/0")
    with pytest.raises(messaging.AuthenticationFailed):
        messaging.connect(server.url)  # no password at all: NOAUTH
    with messaging.connect(f"redis://:right-secret@127.0.0.1:{server.port}/0") as client:
        assert "right-secret" not in repr(client)
        client.admin.create("authorised")
        client.producer().send("authorised", b"x")


@needs_server
def test_acl_that_forbids_sending_is_authentication_failed(
        private_redis: Callable[..., PrivateRedis]) -> None:
    server = private_redis()
    with messaging.connect(server.url) as admin:
        native: Any = admin.as_native()
        native.acl_setuser("reader", enabled=True, passwords=["+pw"], keys=["*"],
                           channels=["*"], commands=["+@all", "-xadd", "-evalsha", "-eval"])
        admin.admin.create("guarded", groups=["g"])
    with messaging.connect(f"redis://reader:pw@127.0.0.1:{server.port}/0") as reader, \
            pytest.raises(messaging.AuthenticationFailed, match=r"NOPERM|permission"):
        reader.producer().send("guarded", b"x")


@needs_server
def test_the_documented_acl_is_enough(private_redis: Callable[..., PrivateRedis]) -> None:
    """docs/adapters/redis.md lists the permissions the adapter needs: a user with just
    those runs every feature."""
    server = private_redis()
    with messaging.connect(server.url) as admin:
        native: Any = admin.as_native()
        native.acl_setuser("app", enabled=True, passwords=["+pw"], keys=["*"], commands=[
            "+@stream", "+@sortedset", "+@hash", "+@scripting", "+info", "+type", "+exists",
            "+del", "+scan", "+time"])
    with messaging.connect(f"redis://app:pw@127.0.0.1:{server.port}/0") as client:
        client.admin.create("acl", groups=["g"])
        producer = client.producer()
        producer.send_many("acl", [b"a", b"b"])
        producer.send("acl", b"later", delay=0.1)
        producer.send("acl", b"once", dedup_id="d-1")
        consumer = client.consumer("acl", "g", visibility_timeout=5)
        got = consumer.receive(10, timeout=5)
        got[0].extend(1.0)
        got[0].nack(delay=0.05)
        consumer.ack_many(got[1:])
        deadline = time.monotonic() + 5
        while client.admin.depth("acl", "g") and time.monotonic() < deadline:
            consumer.ack_many(consumer.receive(10, timeout=0.5))
        assert client.admin.depth("acl", "g") == 0
        consumer.seek("beginning")
        assert "acl" in client.admin.destinations()
        consumer.close()
        client.admin.delete("acl")


# -- limits -----------------------------------------------------------------------------
def test_oversize_is_refused_before_anything_is_sent(redis_url: str) -> None:
    with messaging.connect(redis_url, max_message_bytes=1024) as client:
        assert client.capabilities.max_message_bytes == 1024
        destination = f"oversize-{uuid.uuid4().hex[:8]}"
        client.admin.create(destination, groups=["g"])
        native: Any = client.as_native()
        try:
            content_type = len("content-type") + len("application/octet-stream")
            with pytest.raises(messaging.MessageTooLarge):
                client.producer().send(destination, bytes(1024 - content_type + 1))
            with pytest.raises(messaging.MessageTooLarge):
                client.producer().send_many(destination, [b"small", bytes(2048)])
            assert native.xlen(destination) == 0
            client.producer().send(destination, bytes(1024 - content_type))  # at the limit
            assert native.xlen(destination) == 1
        finally:
            client.admin.delete(destination)


# -- durability and reconnection ----------------------------------------------------------
def _once_reconnected(call: Callable[[], T]) -> T:
    """The first call after a restart may find its pooled connection dead and raise
    ConnectionFailed (redis-py does not retry, nor does the adapter); the next one
    reconnects. The worker loop does the same by itself."""
    try:
        return call()
    except messaging.ConnectionFailed:
        return call()


@needs_server
@pytest.mark.parametrize(("stop", "fsync"), [("clean", "everysec"), ("crash", "always")],
                         ids=["clean-shutdown", "sigkill-with-fsync-always"])
def test_returned_sends_survive_a_restart_with_aof(
        stop: str, fsync: str, private_redis: Callable[..., PrivateRedis]) -> None:
    server = private_redis("--appendonly", "yes", "--appendfsync", fsync)
    with messaging.connect(server.url, connect_timeout=5.0) as client:
        assert client.capabilities.durable is True
        client.admin.create("orders", groups=["billing"])
        sent = [f"order-{n}".encode() for n in range(50)]
        client.producer().send_many("orders", sent)
        first = client.consumer("orders", "billing", visibility_timeout=1.0)
        held = first.receive(max_messages=5, timeout=5)
        assert len(held) == 5
        first.ack_many(held[:2])  # two acked, three in flight when the server goes

        server.stop(kill=stop == "crash")
        server.start()

        second = client.consumer("orders", "billing", visibility_timeout=1.0)  # reconnects
        got: dict[bytes, messaging.Message] = {}
        deadline = time.monotonic() + 15
        while len(got) < 48 and time.monotonic() < deadline:
            for message in _once_reconnected(lambda: second.receive(50, timeout=0.5)):
                got[message.body] = message
        second.ack_many(got.values())
        assert sorted(got) == sorted(set(sent) - {m.body for m in held[:2]})
        for message in held[2:]:  # in flight at the restart: redelivered
            assert got[message.body].attempt == 2
            assert got[message.body].id == message.id
        assert client.admin.depth("orders", "billing") == 0
        first.close()
        second.close()


def test_without_aof_the_adapter_does_not_claim_durability(redis_url: str) -> None:
    with messaging.connect(redis_url) as client:
        native: Any = client.as_native()
        aof = bool(int(native.info("persistence")["aof_enabled"]))
        assert client.capabilities.durable is aof


@needs_server
def test_a_worker_carries_on_across_a_restart(
        private_redis: Callable[..., PrivateRedis]) -> None:
    server = private_redis("--appendonly", "yes")
    handled: list[bytes] = []
    stop = threading.Event()
    with messaging.connect(server.url, connect_timeout=2.0) as client:
        client.admin.create("jobs", groups=["workers"])
        consumer = client.consumer("jobs", "workers")
        worker = threading.Thread(
            target=consumer.run, daemon=True,
            kwargs={"handler": lambda m: handled.append(m.body), "stop_event": stop})
        worker.start()
        try:
            client.producer().send("jobs", b"before")
            # The worker acks from its ack thread a moment after the handler returns;
            # a restart in between would rightly deliver "before" again.
            assert _wait(lambda: client.admin.depth("jobs", "workers") == 0), handled
            server.stop()
            server.start()
            _once_reconnected(lambda: client.producer().send("jobs", b"after"))
            assert _wait(lambda: b"after" in handled), handled
        finally:
            stop.set()
            worker.join(timeout=30)
    assert not worker.is_alive()
    assert sorted(handled) == [b"after", b"before"]


@needs_server
def test_a_settlement_that_failed_can_be_made_again(
        private_redis: Callable[..., PrivateRedis]) -> None:
    # An ack or a nack that raised did not reach the server: the message is pending
    # again, so the service's own retry sends it, rather than finding it "acked".
    server = private_redis("--appendonly", "yes", "--appendfsync", "always")
    with messaging.connect(server.url, connect_timeout=2.0) as client:
        client.admin.create("orders", groups=["billing"])
        client.producer().send_many("orders", [b"to-ack", b"to-ack-many", b"to-nack"])
        consumer = client.consumer("orders", "billing", visibility_timeout=60.0)
        held = {m.body: m for m in consumer.receive(max_messages=3, timeout=5)}
        assert sorted(held) == [b"to-ack", b"to-ack-many", b"to-nack"]

        server.stop()
        with pytest.raises(messaging.ConnectionFailed):
            held[b"to-ack"].ack()
        with pytest.raises(messaging.ConnectionFailed):
            consumer.ack_many([held[b"to-ack-many"]])
        with pytest.raises(messaging.ConnectionFailed):
            held[b"to-nack"].nack()
        assert {m.settlement for m in held.values()} == {Settlement.PENDING}
        server.start()

        _once_reconnected(held[b"to-ack"].ack)
        consumer.ack_many([held[b"to-ack-many"]])
        held[b"to-nack"].nack()
        assert held[b"to-ack"].settlement is held[b"to-ack-many"].settlement is Settlement.ACKED
        again = consumer.receive(max_messages=2, timeout=5)  # long before the 60 s lease
        assert [(m.body, m.attempt) for m in again] == [(b"to-nack", 2)]
        again[0].ack()
        assert client.admin.depth("orders", "billing") == 0
        consumer.close()


def _wait(condition: Callable[[], bool], seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()
