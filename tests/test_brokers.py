"""Unit tests of where test brokers come from; no broker and no Docker needed.

Covers the resolution order in brokers.py, the pieces of compose/native_launcher.py that
can be checked without a broker, and compose/docker-compose.yml against the launcher.
"""

from __future__ import annotations

import socket
import stat
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import broker_fixtures
import brokers
import pytest
import yaml
from brokers import (
    BROKERS,
    BrokerResolver,
    BrokerUnavailable,
    native_ports,
    start_with_native_launcher,
    url_from_launcher_output,
)

launcher = brokers.launcher_module()


class Calls:
    """Records which route the resolver took; each route returns a recognisable URL."""

    def __init__(self, docker: bool = False) -> None:
        self.docker = docker
        self.log: list[str] = []

    def docker_available(self) -> bool:
        self.log.append("probe")
        return self.docker

    def start_container(self, name: str) -> str:
        self.log.append(f"docker:{name}")
        return f"docker-url-for-{name}"

    def start_native(self, name: str) -> str:
        self.log.append(f"native:{name}")
        return f"native-url-for-{name}"

    def resolver(self, env: dict[str, str] | None = None) -> BrokerResolver:
        return BrokerResolver(
            env=env or {},
            docker_available=self.docker_available,
            start_container=self.start_container,
            start_native=self.start_native,
        )


# --------------------------------------------------------------------- resolution order


@pytest.mark.parametrize("name", BROKERS)
def test_env_url_wins_and_starts_nothing(name: str) -> None:
    calls = Calls(docker=True)
    env = {f"MESSAGING_TEST_{name.upper()}_URL": f"{name}://elsewhere:1"}

    resolved = calls.resolver(env).resolve(name)

    assert (resolved.url, resolved.source) == (f"{name}://elsewhere:1", "env")
    assert calls.log == []


def test_docker_used_when_the_engine_answers() -> None:
    calls = Calls(docker=True)

    resolved = calls.resolver().resolve("kafka")

    assert (resolved.url, resolved.source) == ("docker-url-for-kafka", "docker")
    assert calls.log == ["probe", "docker:kafka"]


def test_native_launcher_when_no_engine_answers() -> None:
    calls = Calls(docker=False)

    resolved = calls.resolver().resolve("redis")

    assert (resolved.url, resolved.source) == ("native-url-for-redis", "native")
    assert calls.log == ["probe", "native:redis"]


def test_docker_opt_out_skips_the_probe() -> None:
    calls = Calls(docker=True)

    resolved = calls.resolver({"MESSAGING_TEST_DOCKER": "0"}).resolve("sqs")

    assert resolved.source == "native"
    assert calls.log == ["native:sqs"]


def test_blank_env_url_is_ignored() -> None:
    calls = Calls(docker=False)

    resolved = calls.resolver({"MESSAGING_TEST_KAFKA_URL": "  "}).resolve("kafka")

    assert resolved.source == "native"


def test_each_broker_is_resolved_once_and_docker_probed_once() -> None:
    calls = Calls(docker=False)
    resolver = calls.resolver()

    for name in ("kafka", "kafka", "redis", "kafka", "redis"):
        resolver.resolve(name)

    assert calls.log == ["probe", "native:kafka", "native:redis"]


def test_a_failure_is_remembered_not_retried() -> None:
    attempts: list[str] = []

    def failing_native(name: str) -> str:
        attempts.append(name)
        raise BrokerUnavailable(f"{name}: no luck")

    resolver = BrokerResolver(
        env={}, docker_available=lambda: False, start_container=str, start_native=failing_native
    )

    for _ in range(3):
        with pytest.raises(BrokerUnavailable, match="rabbitmq: no luck"):
            resolver.resolve("rabbitmq")
    assert attempts == ["rabbitmq"]


def test_unknown_broker_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown broker"):
        Calls().resolver().resolve("nats")


def unavailable(name: str) -> brokers.Resolved:
    raise BrokerUnavailable(f"{name}: launcher exited 1")


def test_fixture_skips_naming_the_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broker_fixtures, "resolve", unavailable)
    monkeypatch.delenv(broker_fixtures.REQUIRE_BROKERS, raising=False)

    with pytest.raises(pytest.skip.Exception, match="redis broker unavailable"):
        broker_fixtures.resolve_or_skip("redis")


def test_fixture_fails_when_brokers_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broker_fixtures, "resolve", unavailable)
    monkeypatch.setenv(broker_fixtures.REQUIRE_BROKERS, "1")

    with pytest.raises(pytest.fail.Exception, match="kafka broker unavailable"):
        broker_fixtures.resolve_or_skip("kafka")


# --------------------------------------------------------------------- native launcher output


def test_url_is_read_from_the_launchers_line() -> None:
    output = (
        "redis     redis://127.0.0.1:6379/0  started in 0.1 s\n"
        "sqs       sqs://?region=us-east-1&endpoint_url=http://127.0.0.1:4566  "
        "already running in 0.0 s  AWS_ACCESS_KEY_ID=test\n"
        "total     0.1 s for 2 broker(s)\n"
    )

    assert url_from_launcher_output(output, "redis") == "redis://127.0.0.1:6379/0"
    assert url_from_launcher_output(output, "sqs") == launcher.URLS["sqs"]
    with pytest.raises(BrokerUnavailable, match="no URL line"):
        url_from_launcher_output(output, "kafka")


def fake_launcher(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "native"
    script.write_text(f'#!/bin/sh\necho "$@" > {tmp_path / "args"}\n{body}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_native_start_runs_up_and_parses_the_url(tmp_path: Path) -> None:
    script = fake_launcher(tmp_path, "echo 'kafka     kafka://127.0.0.1:9092  started in 2 s'")

    url = start_with_native_launcher("kafka", launcher=script)

    assert url == "kafka://127.0.0.1:9092"
    assert (tmp_path / "args").read_text().split() == ["up", "kafka"]


def test_native_start_failure_carries_the_launchers_words(tmp_path: Path) -> None:
    script = fake_launcher(tmp_path, "echo 'port 9092 is taken' >&2; exit 1")

    with pytest.raises(BrokerUnavailable, match="port 9092 is taken"):
        start_with_native_launcher("kafka", launcher=script)


# --------------------------------------------------------------------- launcher pieces


def test_launcher_urls_use_the_launcher_ports() -> None:
    assert set(launcher.URLS) == set(launcher.PORTS) == set(BROKERS)
    for name, port in launcher.PORTS.items():
        assert f"127.0.0.1:{port}" in launcher.URLS[name]


def test_launcher_rejects_unknown_broker_names() -> None:
    assert launcher.select([]) == list(BROKERS)
    assert launcher.select(["all"]) == list(BROKERS)
    assert launcher.select(["redis", "redis"]) == ["redis"]
    with pytest.raises(launcher.LaunchError, match="nats"):
        launcher.select(["nats"])


def test_kafka_properties_suit_a_single_local_test_node(tmp_path: Path) -> None:
    text = launcher.kafka_server_properties(tmp_path, 9092)
    settings = dict(line.split("=", 1) for line in text.splitlines())

    assert settings["process.roles"] == "broker,controller"
    assert settings["group.initial.rebalance.delay.ms"] == "0"
    assert settings["offsets.topic.replication.factor"] == "1"
    assert settings["transaction.state.log.replication.factor"] == "1"
    listeners = settings["listeners"].split(",")
    assert listeners == [
        "PLAINTEXT://127.0.0.1:9092",
        f"CONTROLLER://127.0.0.1:{launcher.KAFKA_CONTROLLER_PORT}",
    ]


def test_kafka_version_comes_from_the_pom() -> None:
    version = launcher.kafka_version()

    assert version.split(".")[0] == "4"


@pytest.fixture
def one_shot_server() -> Iterator[Callable[[bytes], int]]:
    """A loopback server that reads one request and answers with the given bytes."""
    sockets: list[socket.socket] = []

    def serve(answer: bytes) -> int:
        server = socket.create_server(("127.0.0.1", 0))
        sockets.append(server)

        def handle() -> None:
            connection, _ = server.accept()
            with connection:
                connection.recv(1024)
                connection.sendall(answer)

        threading.Thread(target=handle, daemon=True).start()
        return int(server.getsockname()[1])

    yield serve
    for server in sockets:
        server.close()


def test_redis_probe_wants_pong(one_shot_server: Callable[[bytes], int]) -> None:
    assert launcher.probe_redis(one_shot_server(b"+PONG\r\n"))
    assert not launcher.probe_redis(one_shot_server(b"-NOAUTH Authentication required\r\n"))


def test_amqp_probe_wants_connection_start(one_shot_server: Callable[[bytes], int]) -> None:
    start_frame = b"\x01\x00\x00" + struct.pack(">I", 4) + struct.pack(">HH", 10, 10) + b"\xce"

    assert launcher.probe_amqp(one_shot_server(start_frame))
    assert not launcher.probe_amqp(one_shot_server(b"HTTP/1.1 400 Bad Request\r\n\r\n"))


def test_kafka_probe_wants_a_live_broker(one_shot_server: Callable[[bytes], int]) -> None:
    def metadata_answer(broker_count: int) -> bytes:
        body = struct.pack(">iii", 7, 0, broker_count)
        return struct.pack(">i", len(body)) + body

    assert launcher.probe_kafka(one_shot_server(metadata_answer(1)))
    assert not launcher.probe_kafka(one_shot_server(metadata_answer(0)))


def test_kafka_probe_request_is_metadata_v4() -> None:
    request = launcher.kafka_metadata_request(7)
    size, api_key, api_version, correlation_id = struct.unpack(">ihhi", request[:12])

    assert (size, api_key, api_version, correlation_id) == (len(request) - 4, 3, 4, 7)


def test_probes_say_no_when_nothing_listens() -> None:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        free_port = int(placeholder.getsockname()[1])
    assert not launcher.probe_redis(free_port)
    assert not launcher.probe_kafka(free_port)
    assert not launcher.probe_localstack_sqs(free_port)


# --------------------------------------------------------------------- docker-compose.yml


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(brokers.COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def host_ports(service: dict[str, Any]) -> set[int]:
    """Host side of each "[ip:]host:container" mapping."""
    return {int(str(mapping).split(":")[-2]) for mapping in service.get("ports", [])}


# Published by compose only: the management UI of the rabbitmq:3-management image.
COMPOSE_ONLY_PORTS: dict[str, set[int]] = {"rabbitmq": {15672}}


def test_compose_has_one_service_per_broker(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == set(BROKERS)


@pytest.mark.parametrize("name", BROKERS)
def test_compose_publishes_the_native_launchers_port(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]

    assert host_ports(service) == {native_ports()[name]} | COMPOSE_ONLY_PORTS.get(name, set())


@pytest.mark.parametrize("name", BROKERS)
def test_compose_ports_are_loopback_only(compose: dict[str, Any], name: str) -> None:
    for mapping in compose["services"][name]["ports"]:
        assert str(mapping).startswith("127.0.0.1:"), mapping


@pytest.mark.parametrize("name", BROKERS)
def test_compose_service_has_a_healthcheck(compose: dict[str, Any], name: str) -> None:
    check = compose["services"][name].get("healthcheck")

    assert isinstance(check, dict)
    assert check.get("test"), f"{name} healthcheck has no test"
    assert check["test"][0] in ("CMD", "CMD-SHELL")
    assert check.get("retries", 0) > 0


def test_compose_images_match_the_native_versions(compose: dict[str, Any]) -> None:
    services = compose["services"]
    localstack_pin = launcher.LOCALSTACK_REQUIREMENTS[0].split("==")[1]

    assert services["kafka"]["image"] == f"apache/kafka:{launcher.kafka_version()}"
    assert services["sqs"]["image"] == f"localstack/localstack:{localstack_pin}"
    assert services["rabbitmq"]["image"].startswith("rabbitmq:3")
    assert services["redis"]["image"] == "redis:7"


def test_compose_kafka_advertises_the_published_port(compose: dict[str, Any]) -> None:
    environment = compose["services"]["kafka"]["environment"]

    assert (
        environment["KAFKA_ADVERTISED_LISTENERS"]
        == f"PLAINTEXT://127.0.0.1:{native_ports()['kafka']}"
    )
    assert environment["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"


def test_compose_localstack_runs_sqs_and_sns(compose: dict[str, Any]) -> None:
    services = compose["services"]["sqs"]["environment"]["SERVICES"].split(",")

    assert {"sqs", "sns"} <= set(services)
