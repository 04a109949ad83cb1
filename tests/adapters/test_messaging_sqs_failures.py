"""Failures the SQS adapter must report, on the real broker where one is needed:
unreachable endpoint -> ConnectionFailed within connect_timeout, no credentials ->
AuthenticationFailed, oversize -> MessageTooLarge before anything is sent.

(A member killed with SIGKILL mid-batch is the contract suite's ``test_crash``, run by
test_messaging_sqs_contract.py. Wrong credentials: LocalStack accepts any, so that
mapping is a unit test with a fake, test_messaging_sqs_unit.py. Durability across a
broker restart is not tested: LocalStack's community edition keeps everything in memory.)
"""

from __future__ import annotations

import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import messaging

try:
    from broker_fixtures import sqs_url
except ImportError:  # tests/ is not on sys.path when only tests/adapters is collected
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from broker_fixtures import sqs_url

__all__ = ["sqs_url"]

AWS_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unreachable_endpoint_fails_fast_with_connection_failed() -> None:
    url = f"sqs://test:test@?region=us-east-1&endpoint_url=http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(messaging.ConnectionFailed) as caught:
        messaging.connect(url, connect_timeout=2.0)
    assert time.monotonic() - started < 2.5
    assert caught.value.__cause__ is not None


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A local endpoint that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        server.close()


def test_silent_endpoint_fails_within_connect_timeout(silent_endpoint: str) -> None:
    started = time.monotonic()
    with pytest.raises(messaging.ConnectionFailed):
        messaging.connect(f"sqs://test:test@?region=us-east-1&endpoint_url={silent_endpoint}",
                          connect_timeout=1.0)
    assert time.monotonic() - started < 1.0 + 1.5


def test_missing_credentials_give_authentication_failed(
        sqs_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask an instance role
    without_user = sqs_url.replace("sqs://test:test@", "sqs://")
    with pytest.raises(messaging.AuthenticationFailed):
        messaging.connect(without_user, connect_timeout=2.0)


def test_missing_region_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(messaging.ConfigurationError):
        messaging.connect("sqs://test:test@?endpoint_url=http://127.0.0.1:1")


def test_oversize_is_refused_before_anything_is_sent(sqs_url: str) -> None:
    with messaging.connect(sqs_url) as client:
        name = f"oversize-{uuid.uuid4().hex[:8]}"
        client.admin.create(name, groups=["g"])
        try:
            limit = client.capabilities_for(name).max_message_bytes
            producer = client.producer()
            with pytest.raises(messaging.MessageTooLarge):
                producer.send_many(name, [b"small", bytes(limit + 1)])
            with pytest.raises(messaging.MessageTooLarge):
                producer.send(name, "x" * limit, headers={"h": "v"})
            assert client.admin.depth(name, "g") == 0
            # at the limit, a binary body (base64 on the wire) still fits SQS's 256 KiB
            header_bytes = len("content-type") + len("application/octet-stream")
            producer.send(name, bytes(range(256)) * ((limit - header_bytes) // 256),
                          key="k" * 128)
            assert client.admin.depth(name, "g") == 1
        finally:
            client.admin.delete(name)


def test_a_message_at_the_header_limit_is_still_dead_lettered(sqs_url: str) -> None:
    """Seven headers (the declared limit) plus the letter's own would exceed SQS's ten
    attributes: the letter keeps every original header and as many of its own as fit,
    the reason first, instead of failing and leaving the message stuck."""
    with messaging.connect(sqs_url) as client:
        name = f"full-{uuid.uuid4().hex[:8]}"
        client.admin.create(name, groups=["g"])
        client.admin.create(f"{name}.dlq", groups=["ops"])
        try:
            most = client.capabilities_for(name).max_headers
            assert most is not None
            headers = {f"h{n}": str(n) for n in range(most - 1)}  # + content-type = most
            client.producer().send(name, "order", key="k", headers=headers)
            with client.consumer(name, "g", dead_letter=f"{name}.dlq") as consumer:
                (message,) = consumer.receive(1, timeout=5)
                message.nack(requeue=False)
            with client.consumer(f"{name}.dlq", "ops") as ops:
                (letter,) = ops.receive(1, timeout=5)
                letter.ack()
            assert letter.body == b"order"
            assert {k: letter.headers.get(k) for k in headers} == headers
            assert letter.headers["x-dead-letter-reason"] == "rejected"
            assert client.admin.depth(name, "g") == 0
        finally:
            client.admin.delete(name)
            client.admin.delete(f"{name}.dlq")
