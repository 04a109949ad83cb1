"""Where the test suite gets a real broker from.

For each broker, in this order (DESIGN.md, "Test fixtures"):

1. ``MESSAGING_TEST_<NAME>_URL`` from the environment: used as given, nothing is started.
2. A Docker engine that answers ``docker info``: testcontainers brings the broker up from
   ``compose/docker-compose.yml`` (``MESSAGING_TEST_DOCKER=0`` skips this step).
3. Otherwise ``compose/native up <name>`` installs and starts it on 127.0.0.1.

Each broker is resolved at most once per process, failures included, so a broker that
cannot start costs one attempt rather than one per test. Brokers started here are left
running for the next test run; ``compose/native down`` or
``docker compose -f compose/docker-compose.yml down`` stops them.

The resolution order is a plain object over four injected callables, so it is unit-tested
without Docker or brokers (tests/test_brokers.py).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPOSE_DIR = REPO_ROOT / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
NATIVE_LAUNCHER = COMPOSE_DIR / "native"
BROKERS: tuple[str, ...] = ("kafka", "rabbitmq", "sqs", "redis")
DOCKER_OPT_OUT = "MESSAGING_TEST_DOCKER"
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


class BrokerUnavailable(RuntimeError):
    """The broker could not be obtained by the chosen route; the message says why."""


@cache
def launcher_module() -> ModuleType:
    """compose/native_launcher.py, loaded by path: it is a script, not a package."""
    path = COMPOSE_DIR / "native_launcher.py"
    spec = importlib.util.spec_from_file_location("messaging_native_launcher", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def native_ports() -> dict[str, int]:
    """Client port per broker: the launcher's table, shared with the compose file."""
    return dict(launcher_module().PORTS)


def fixed_urls() -> dict[str, str]:
    """URL per broker on the fixed ports that both compose/native and compose use."""
    return dict(launcher_module().URLS)


def aws_test_credentials() -> dict[str, str]:
    return dict(launcher_module().AWS_TEST_CREDENTIALS)


def env_var(name: str) -> str:
    return f"MESSAGING_TEST_{name.upper()}_URL"


@dataclass(frozen=True)
class Resolved:
    url: str
    source: str  # "env", "docker" or "native"


@dataclass
class BrokerResolver:
    """Resolution order with a per-instance cache; every side effect is injected."""

    env: Mapping[str, str]
    docker_available: Callable[[], bool]
    start_container: Callable[[str], str]
    start_native: Callable[[str], str]
    _results: dict[str, Resolved | BrokerUnavailable] = field(default_factory=dict)
    _docker: bool | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def resolve(self, name: str) -> Resolved:
        if name not in BROKERS:
            raise ValueError(f"unknown broker {name!r}; expected one of {BROKERS}")
        with self._lock:
            if name not in self._results:
                self._results[name] = self._attempt(name)
        result = self._results[name]
        if isinstance(result, BrokerUnavailable):
            raise result
        return result

    def _attempt(self, name: str) -> Resolved | BrokerUnavailable:
        try:
            return self._resolve_uncached(name)
        except BrokerUnavailable as error:
            return error

    def _resolve_uncached(self, name: str) -> Resolved:
        explicit = self.env.get(env_var(name), "").strip()
        if explicit:
            return Resolved(explicit, "env")
        if self._use_docker():
            return Resolved(self.start_container(name), "docker")
        return Resolved(self.start_native(name), "native")

    def _use_docker(self) -> bool:
        if self.env.get(DOCKER_OPT_OUT, "").strip().lower() in FALSE_WORDS:
            return False
        if self._docker is None:
            self._docker = self.docker_available()
        return self._docker


def docker_engine_answers(timeout: float = 5.0) -> bool:
    """True when a Docker engine answers; a CLI without an engine is not enough."""
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        completed = subprocess.run(
            [docker, "info"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return completed.returncode == 0


def start_with_testcontainers(name: str) -> str:
    """Bring one compose service up through testcontainers and wait for its healthcheck.

    The compose file publishes the same fixed ports as compose/native, which is what lets
    Kafka advertise a listener that host clients can reach.
    """
    try:
        from testcontainers.compose import DockerCompose
    except ImportError as error:
        raise BrokerUnavailable(
            f"{name}: Docker answers but testcontainers is missing: "
            'pip install "messaging[dev]" or set ' + env_var(name)
        ) from error
    compose = DockerCompose(
        context=str(COMPOSE_DIR),
        compose_file_name=COMPOSE_FILE.name,
        services=[name],
        wait=True,
    )
    try:
        compose.start()
    except Exception as error:  # testcontainers raises plain subprocess/docker errors
        raise BrokerUnavailable(f"{name}: docker compose could not start it: {error}") from error
    return fixed_urls()[name]


def url_from_launcher_output(output: str, name: str) -> str:
    """The URL from the launcher's ``<name>  <url>  ...`` line."""
    for line in output.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == name:
            return words[1]
    raise BrokerUnavailable(f"{name}: the launcher printed no URL line:\n{output}")


def start_with_native_launcher(
    name: str, launcher: Path = NATIVE_LAUNCHER, timeout: float = 900.0
) -> str:
    # Output goes through files, not pipes: a broker daemon that inherited a pipe would
    # keep this call waiting for end-of-file long after the launcher exited.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        try:
            completed = subprocess.run(
                [str(launcher), "up", name],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise BrokerUnavailable(f"{name}: {launcher} up {name}: {error}") from error
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if completed.returncode != 0:
        raise BrokerUnavailable(
            f"{name}: {launcher} up {name} exited {completed.returncode}\n{stdout}{stderr}"
        )
    return url_from_launcher_output(stdout, name)


@cache
def default_resolver() -> BrokerResolver:
    return BrokerResolver(
        env=os.environ,
        docker_available=docker_engine_answers,
        start_container=start_with_testcontainers,
        start_native=start_with_native_launcher,
    )


def resolve(name: str) -> Resolved:
    return default_resolver().resolve(name)


def broker_url(name: str) -> str:
    """URL of a running broker named kafka, rabbitmq, sqs or redis; raises BrokerUnavailable."""
    return resolve(name).url
