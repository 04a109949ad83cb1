"""Run the project's test brokers on 127.0.0.1 without Docker.

Usage: ``compose/native up|down|status|env [kafka|rabbitmq|sqs|redis|all]`` (default all).

``up`` installs what is missing, starts each broker, waits until it answers and prints
one ``<name>  <url>`` line per broker on stdout (progress goes to stderr, so callers can
parse stdout). It is idempotent: a broker that already answers is left alone. ``status``
exits non-zero when a requested broker does not answer; ``down`` stops what ``up`` started;
``env`` prints shell ``export`` lines for the test fixtures.

Logs and data live under ``$MESSAGING_BROKERS_DIR`` (default: a folder in the system temp
dir); downloads are cached under ``${XDG_CACHE_HOME:-~/.cache}/messaging-brokers``.

Only the standard library is used, so the script runs before the project is installed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

# The one table of client ports: docker-compose.yml and the unit tests check against it.
PORTS: dict[str, int] = {"kafka": 9092, "rabbitmq": 5672, "sqs": 4566, "redis": 6379}
KAFKA_CONTROLLER_PORT = 9093
RABBITMQ_DIST_PORT = 25672
SQS_REGION = "us-east-1"
AWS_TEST_CREDENTIALS: dict[str, str] = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
}
URLS: dict[str, str] = {
    "kafka": f"kafka://127.0.0.1:{PORTS['kafka']}",
    "rabbitmq": f"amqp://guest:guest@127.0.0.1:{PORTS['rabbitmq']}/%2F",
    "sqs": f"sqs://?region={SQS_REGION}&endpoint_url=http://127.0.0.1:{PORTS['sqs']}",
    "redis": f"redis://127.0.0.1:{PORTS['redis']}/0",
}
BROKER_NAMES: tuple[str, ...] = ("kafka", "rabbitmq", "sqs", "redis")

LOCALSTACK_REQUIREMENTS: tuple[str, ...] = (
    "localstack-core[base-runtime]==4.0.3",
    # Newer moto-ext / crypto releases break localstack-core 4.0.3 on import.
    "moto-ext==5.0.28.post6",
    "cbor2<5.7",
    "cryptography<44",
    "pyopenssl<24.3",
    "service_identity<25",
)

HERE = Path(__file__).resolve().parent
KAFKA_POM = HERE / "kafka" / "pom.xml"
LOG_TAIL_LINES = 40
# Daemonising brokers write their pid file a moment after the start command returns,
# so a missing pid counts as a crash only after this many seconds.
PID_GRACE = 10.0


class LaunchError(Exception):
    """A broker could not be installed, started or stopped; the message says why."""


# --------------------------------------------------------------------------- paths


def state_root() -> Path:
    configured = os.environ.get("MESSAGING_BROKERS_DIR")
    # Absolute, because brokers run with their own working directory.
    root = Path(configured) if configured else Path(tempfile.gettempdir()) / "messaging-brokers"
    return root.resolve()


def cache_root() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return (base / "messaging-brokers").resolve()


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- probes
# Each probe speaks a few bytes of the broker's own protocol, so a foreign process that
# merely holds the port is not mistaken for a ready broker.


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("connection closed")
        data += chunk
    return data


def probe_redis(port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def probe_amqp(port: int, timeout: float = 1.0) -> bool:
    """True when the server answers the AMQP 0-9-1 header with Connection.Start."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            frame = _recv_exactly(sock, 11)
    except OSError:
        return False
    frame_type, channel = frame[0], struct.unpack(">H", frame[1:3])[0]
    class_and_method = struct.unpack(">HH", frame[7:11])
    return frame_type == 1 and channel == 0 and class_and_method == (10, 10)


def kafka_metadata_request(correlation_id: int) -> bytes:
    # Metadata v4 with an empty topic list: the oldest version Kafka 4.x still accepts,
    # and its answer lists only the registered (unfenced) brokers.
    client_id = b"messaging-native"
    header = struct.pack(">hhih", 3, 4, correlation_id, len(client_id)) + client_id
    body = struct.pack(">ib", 0, 0)
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def probe_kafka(port: int, timeout: float = 2.0) -> bool:
    """True when the broker answers Metadata with at least one live broker."""
    correlation_id = 7
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(kafka_metadata_request(correlation_id))
            size = struct.unpack(">i", _recv_exactly(sock, 4))[0]
            response = _recv_exactly(sock, size)
    except (OSError, struct.error):
        return False
    if len(response) < 12:
        return False
    got_id, _throttle, broker_count = struct.unpack(">iii", response[:12])
    return bool(got_id == correlation_id and broker_count > 0)


def probe_localstack_sqs(port: int, timeout: float = 2.0) -> bool:
    url = f"http://127.0.0.1:{port}/_localstack/health"
    try:
        # No proxy: an http_proxy in the environment must not intercept a loopback probe.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=timeout) as response:
            health = json.loads(response.read().decode())
    except (OSError, ValueError):
        return False
    services = health.get("services", {}) if isinstance(health, dict) else {}
    return services.get("sqs") in ("available", "running")


def port_taken(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------- processes


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def process_matches(pid: int, marker: str) -> bool:
    """True when pid is alive and its command line names marker (guards against pid reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return marker.encode() in cmdline


def live_pid(pid_file: Path, marker: str) -> int | None:
    pid = read_pid(pid_file)
    return pid if pid is not None and process_matches(pid, marker) else None


def terminate(pid: int, marker: str, grace: float, group: bool) -> None:
    """SIGTERM, then SIGKILL after grace seconds; group=True signals the process group."""

    def send(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)

    send(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not process_matches(pid, marker):
            return
        time.sleep(0.2)
    send(signal.SIGKILL)


def run_logged(
    command: Sequence[str], log: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> int:
    # Output goes to a file, never a pipe: a daemon that inherits a pipe would keep a
    # caller that captures our stdout waiting forever.
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"$ {' '.join(command)}\n".encode())
        out.flush()
        completed = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            timeout=timeout,
            check=False,
        )
    return completed.returncode


def spawn_logged(command: Sequence[str], log: Path, env: dict[str, str], cwd: Path) -> int:
    # A new session keeps the broker alive after the launcher (or a Ctrl-C) ends, and
    # gives it a process group that `down` can signal as a whole.
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    return process.pid


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        content = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(content[-lines:])


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Serialise launchers working on the same broker (pytest-xdist workers, two shells)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- apt


class Apt:
    """Installs Debian packages, at most one apt-get run at a time in this process."""

    POLICY_RC_D = Path("/usr/sbin/policy-rc.d")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._updated = False
        self._wanted: list[str] = []

    def want(self, packages: Sequence[str]) -> None:
        """Announce packages other brokers will ask for, so one apt-get run installs all."""
        self._wanted.extend(p for p in packages if p not in self._wanted)

    @staticmethod
    def installed(package: str) -> bool:
        if shutil.which("dpkg-query") is None:
            return False
        result = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", package],
            capture_output=True,
            text=True,
            check=False,
        )
        return result.returncode == 0 and "install ok installed" in result.stdout

    def ensure(self, packages: Sequence[str], log: Path) -> None:
        if not packages:
            return
        with self._lock:
            candidates = dict.fromkeys([*packages, *self._wanted])
            missing = [p for p in candidates if not self.installed(p)]
            if missing:
                self._install(missing, log)

    def _install(self, packages: list[str], log: Path) -> None:
        if shutil.which("apt-get") is None:
            raise LaunchError(f"{' '.join(packages)} missing and apt-get not found: install it")
        prefix = self._privilege_prefix(packages)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        lock_wait = ["-o", "DPkg::Lock::Timeout=300"]
        say(f"installing {' '.join(packages)} with apt-get (log: {log})")
        if not self._updated:
            run_logged([*prefix, "apt-get", *lock_wait, "update"], log, env)
            self._updated = True
        with self._no_service_autostart():
            command = [*prefix, "apt-get", *lock_wait, "install", "-y", "--no-install-recommends"]
            rc = run_logged([*command, *packages], log, env)
        if rc != 0:
            raise LaunchError(f"apt-get install {' '.join(packages)} failed:\n{tail(log)}")
        self._disable_boot_units(prefix, packages, log)

    @staticmethod
    def _privilege_prefix(packages: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return []
        if shutil.which("sudo"):
            return ["sudo", "-n"]
        raise LaunchError(f"run as root or install: apt-get install {' '.join(packages)}")

    @contextlib.contextmanager
    def _no_service_autostart(self) -> Iterator[None]:
        # Debian starts a system service from the package's postinst; it would take the
        # port, with data and logs outside our state dir. policy-rc.d exit 101 forbids
        # that. An existing policy is the admin's and is left alone.
        if self.POLICY_RC_D.exists() or os.geteuid() != 0:
            yield
            return
        self.POLICY_RC_D.write_text("#!/bin/sh\nexit 101\n")
        self.POLICY_RC_D.chmod(0o755)
        try:
            yield
        finally:
            self.POLICY_RC_D.unlink(missing_ok=True)

    @staticmethod
    def _disable_boot_units(prefix: list[str], packages: list[str], log: Path) -> None:
        # Under systemd the unit is still enabled and would grab the port at next boot.
        units = [p for p in packages if p in ("redis-server", "rabbitmq-server")]
        if units and Path("/run/systemd/system").is_dir():
            run_logged([*prefix, "systemctl", "disable", "--now", *units], log)


# --------------------------------------------------------------------------- brokers


class Broker:
    """One broker: how to install, start, probe and stop it. Subclasses fill the hooks."""

    name = ""
    start_timeout = 90.0

    def __init__(self, apt: Apt) -> None:
        self.apt = apt
        self.port = PORTS[self.name]
        self.url = URLS[self.name]
        self.state = state_root() / self.name
        self.cache = cache_root()

    # hooks -----------------------------------------------------------------
    @property
    def pid_file(self) -> Path:
        return self.state / f"{self.name}.pid"

    @property
    def log(self) -> Path:
        return self.state / f"{self.name}.log"

    @property
    def install_log(self) -> Path:
        return self.state / "install.log"

    def apt_packages(self) -> list[str]:
        """Debian packages this broker still needs on this machine."""
        return []

    def install(self) -> None:
        self.apt.ensure(self.apt_packages(), self.install_log)

    def probe(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def running_pid(self) -> int | None:
        """Pid of the broker this launcher started, if it is still alive."""
        return None

    def stop(self) -> None:
        raise NotImplementedError

    def note(self) -> str:
        """Extra words for the URL line (e.g. credentials)."""
        return ""

    def failure_logs(self) -> list[Path]:
        return [self.log]

    # lifecycle ---------------------------------------------------------------
    def up(self) -> str:
        """Start unless already answering; returns 'already running' or 'started'."""
        with file_lock(state_root() / f".{self.name}.lock"):
            if self.probe():
                return "already running"
            if self.running_pid() is not None:
                # Started by an earlier launcher that did not wait for it: just wait.
                self._wait_ready(time.monotonic())
                return "started"
            self._refuse_foreign_port()
            self.state.mkdir(parents=True, exist_ok=True)
            self.install()
            self._start_and_wait()
            return "started"

    def _refuse_foreign_port(self) -> None:
        if port_taken(self.port):
            raise LaunchError(
                f"port {self.port} is taken by a process that does not answer as {self.name}"
            )

    def _start_and_wait(self) -> None:
        say(f"{self.name}: starting (log: {self.log})")
        began = time.monotonic()
        # A stale pid file from a crashed run would be taken for the new process.
        self.pid_file.unlink(missing_ok=True)
        try:
            self.start()
            self._wait_ready(began)
        except LaunchError:
            # A half-started broker would make the next `up` refuse the port.
            self._stop_quietly()
            raise

    def _wait_ready(self, began: float) -> None:
        while time.monotonic() - began < self.start_timeout:
            if self.probe():
                return
            if self.running_pid() is None and time.monotonic() - began > PID_GRACE:
                raise LaunchError(f"{self.name} exited during start-up")
            time.sleep(0.25)
        raise LaunchError(
            f"{self.name} did not answer on port {self.port} within {self.start_timeout:.0f} s"
        )

    def _stop_quietly(self) -> None:
        with contextlib.suppress(LaunchError, OSError, subprocess.SubprocessError):
            self.stop()

    def down(self) -> str:
        with file_lock(state_root() / f".{self.name}.lock"):
            if self.running_pid() is None:
                return "answers, but was not started here" if self.probe() else "not running"
            self.stop()
            return "stopped"


class Redis(Broker):
    name = "redis"
    start_timeout = 20.0

    def apt_packages(self) -> list[str]:
        return [] if shutil.which("redis-server") else ["redis-server"]

    def probe(self) -> bool:
        return probe_redis(self.port)

    def start(self) -> None:
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
        command = [
            server,
            "--daemonize", "yes",
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            # A test broker: nothing to keep across restarts, and no fsync stalls.
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.state),
            "--pidfile", str(self.pid_file),
            "--logfile", str(self.log),
        ]  # fmt: skip
        if run_logged(command, self.log) != 0:
            raise LaunchError(f"redis-server refused to start:\n{tail(self.log)}")

    def running_pid(self) -> int | None:
        return live_pid(self.pid_file, "redis-server")

    def stop(self) -> None:
        pid = self.running_pid()
        if pid is not None:
            terminate(pid, "redis-server", grace=10, group=False)


class RabbitMQ(Broker):
    name = "rabbitmq"
    node = "rabbit@localhost"

    @property
    def pid_file(self) -> Path:
        return self.state / "rabbitmq.pid"

    @property
    def log(self) -> Path:
        return self.state / "log" / f"{self.node}.log"

    @property
    def startup_log(self) -> Path:
        return self.state / "startup.log"

    def failure_logs(self) -> list[Path]:
        return [self.log, self.startup_log]

    def apt_packages(self) -> list[str]:
        return (
            [] if shutil.which("rabbitmq-server", path=self._search_path()) else ["rabbitmq-server"]
        )

    @staticmethod
    def _search_path() -> str:
        return os.pathsep.join(["/usr/lib/rabbitmq/bin", os.environ.get("PATH", ""), "/usr/sbin"])

    def _tool(self, name: str) -> str:
        # Debian's /usr/sbin entries re-exec as the rabbitmq user with its own data dir;
        # the real scripts in /usr/lib/rabbitmq/bin honour our environment instead.
        found = shutil.which(name, path=self._search_path())
        if found is None:
            raise LaunchError(f"{name} not found after installing rabbitmq-server")
        return found

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            # The Erlang cookie is read from $HOME: one of our own, shared with rabbitmqctl.
            "HOME": str(self.state),
            # A fixed short name avoids depending on the machine's hostname resolving.
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(RABBITMQ_DIST_PORT),
            "RABBITMQ_MNESIA_BASE": str(self.state / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.state / "log"),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.state / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.state / "rabbitmq.conf"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def probe(self) -> bool:
        return probe_amqp(self.port)

    def _write_config(self) -> None:
        (self.state / "enabled_plugins").write_text("[].\n")
        (self.state / "rabbitmq.conf").write_text(
            "# written by compose/native on every start\n"
            "loopback_users.guest = true\n"
            "log.file.level = info\n"
        )

    def start(self) -> None:
        self._write_config()
        rc = run_logged([self._tool("rabbitmq-server"), "-detached"], self.startup_log, self.env())
        if rc != 0:
            raise LaunchError(f"rabbitmq-server -detached failed:\n{tail(self.startup_log)}")
        self._await_startup()

    def _await_startup(self) -> None:
        # await_startup gives up at once while the Erlang node is not yet registered,
        # so it is retried until the node exists and reports the app booted.
        ctl = self._tool("rabbitmqctl")
        began = time.monotonic()
        deadline = began + self.start_timeout
        while time.monotonic() < deadline:
            remaining = str(max(1, int(deadline - time.monotonic())))
            command = [ctl, "-n", self.node, "await_startup", "--timeout", remaining]
            if run_logged(command, self.startup_log, self.env()) == 0:
                return
            if self.running_pid() is None and time.monotonic() - began > PID_GRACE:
                raise LaunchError("the RabbitMQ node exited during start-up")
            time.sleep(1)
        raise LaunchError("rabbitmqctl await_startup did not succeed in time")

    def running_pid(self) -> int | None:
        return live_pid(self.pid_file, "beam")

    def stop(self) -> None:
        command = [self._tool("rabbitmqctl"), "-n", self.node, "shutdown"]
        rc = run_logged(command, self.startup_log, self.env(), timeout=120)
        pid = self.running_pid()
        if rc != 0 and pid is not None:
            terminate(pid, "beam", grace=20, group=False)


class LocalStack(Broker):
    name = "sqs"

    @property
    def pid_file(self) -> Path:
        return self.state / "localstack.pid"

    @property
    def log(self) -> Path:
        return self.state / "localstack.log"

    @property
    def venv(self) -> Path:
        # Keyed by the pins, so changing them builds a fresh environment.
        digest = hashlib.sha256("\n".join(LOCALSTACK_REQUIREMENTS).encode()).hexdigest()[:12]
        return self.cache / f"localstack-{digest}"

    def note(self) -> str:
        return " ".join(f"{k}={v}" for k, v in AWS_TEST_CREDENTIALS.items())

    def probe(self) -> bool:
        return probe_localstack_sqs(self.port)

    def install(self) -> None:
        marker = self.venv / ".complete"
        if marker.exists():
            return
        say(f"sqs: installing LocalStack into {self.venv} (log: {self.install_log})")
        shutil.rmtree(self.venv, ignore_errors=True)
        if run_logged([sys.executable, "-m", "venv", str(self.venv)], self.install_log) != 0:
            raise LaunchError(f"could not create a virtualenv:\n{tail(self.install_log)}")
        pip = [str(self.venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        pip += ["--disable-pip-version-check", *LOCALSTACK_REQUIREMENTS]
        if run_logged(pip, self.install_log) != 0:
            raise LaunchError(f"pip could not install LocalStack:\n{tail(self.install_log)}")
        marker.touch()

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            **AWS_TEST_CREDENTIALS,
            "GATEWAY_LISTEN": f"127.0.0.1:{self.port}",
            # The default (twisted) server ignores the host above and listens on every
            # interface; hypercorn binds where it is told.
            "GATEWAY_SERVER": "hypercorn",
            "SERVICES": "sqs,sns",
            "EAGER_SERVICE_LOADING": "1",
            "DISABLE_EVENTS": "1",
            # LocalStack guesses "inside Docker" from cgroups and would then write to
            # /var/lib/localstack; host mode keeps its files under FILESYSTEM_ROOT.
            "OVERRIDE_IN_DOCKER": "0",
            "FILESYSTEM_ROOT": str(self.state / "filesystem"),
            # No DNS server and no certificate download: there is no internet to reach.
            "DNS_ADDRESS": "0",
            "SKIP_SSL_CERT_DOWNLOAD": "1",
            # Queue URLs that resolve without DNS: http://127.0.0.1:4566/queue/...
            "SQS_ENDPOINT_STRATEGY": "path",
            "LOCALSTACK_HOST": f"127.0.0.1:{self.port}",
        }

    def start(self) -> None:
        python = str(self.venv / "bin" / "python")
        command = [python, "-m", "localstack.runtime.main"]
        pid = spawn_logged(command, self.log, self.env(), cwd=self.state)
        self.pid_file.write_text(f"{pid}\n")

    def running_pid(self) -> int | None:
        return live_pid(self.pid_file, "localstack.runtime.main")

    def stop(self) -> None:
        pid = self.running_pid()
        if pid is not None:
            terminate(pid, "localstack.runtime.main", grace=20, group=True)


def kafka_version(pom: Path = KAFKA_POM) -> str:
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(pom).getroot().find("m:properties/m:kafka.version", namespace)
    if node is None or not node.text:
        raise LaunchError(f"{pom} has no kafka.version property")
    return node.text.strip()


def kafka_server_properties(data_dir: Path, port: int) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{KAFKA_CONTROLLER_PORT}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{KAFKA_CONTROLLER_PORT}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir),
        # One node: every internal topic must accept a replication factor of 1.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        # Few internal partitions: the first group or transaction is ready sooner.
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.num.partitions": "1",
        "num.partitions": "1",
        # The 3 s default makes every new group wait before its first assignment.
        "group.initial.rebalance.delay.ms": "0",
        # Lets crash tests use short session timeouts so a killed member is evicted fast.
        "group.min.session.timeout.ms": "1000",
        "auto.create.topics.enable": "true",
        "delete.topic.enable": "true",
        "num.network.threads": "2",
        "num.io.threads": "4",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


KAFKA_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
# The full config dump at start hides the lines that matter in a failure tail.
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
"""


class Kafka(Broker):
    name = "kafka"
    # Kafka asks for 1 GiB by default; half of that is plenty for tests on a small machine.
    heap: tuple[str, ...] = ("-Xms256m", "-Xmx512m")

    def __init__(self, apt: Apt) -> None:
        super().__init__(apt)
        self.version = kafka_version()

    @property
    def data_dir(self) -> Path:
        return self.state / "data"

    @property
    def jars(self) -> Path:
        # Keyed by the pom, so editing it resolves a fresh jar set.
        digest = hashlib.sha256(KAFKA_POM.read_bytes()).hexdigest()[:12]
        return self.cache / f"kafka-{self.version}-{digest}"

    def note(self) -> str:
        return f"Apache Kafka {self.version}"

    def apt_packages(self) -> list[str]:
        packages = [] if java_major_version() >= 17 else ["openjdk-17-jre-headless"]
        return packages + ([] if shutil.which("mvn") else ["maven"])

    def probe(self) -> bool:
        return probe_kafka(self.port)

    def install(self) -> None:
        super().install()
        if java_major_version() < 17:
            raise LaunchError("Kafka 4 needs Java 17 or newer on PATH")
        if not (self.jars / ".complete").exists():
            self._resolve_jars()

    def _resolve_jars(self) -> None:
        say(f"kafka: resolving Kafka {self.version} jars with Maven (log: {self.install_log})")
        shutil.rmtree(self.jars, ignore_errors=True)
        command = [
            "mvn", "-q", "-B", "-f", str(KAFKA_POM),
            f"-Dmaven.repo.local={self.cache / 'm2'}",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={self.jars}",
            "-DincludeScope=runtime",
        ]  # fmt: skip
        if run_logged(command, self.install_log) != 0:
            raise LaunchError(
                "Maven could not resolve Kafka's jars (is Maven Central reachable?). "
                f"No stand-in broker is started.\n{tail(self.install_log)}"
            )
        (self.jars / ".complete").touch()

    def _java(self, main: str, *args: str) -> list[str]:
        log4j = f"-Dlog4j2.configurationFile={self.state / 'log4j2.properties'}"
        classpath = str(self.jars / "*")
        jvm = [*self.heap, "-Djava.awt.headless=true", log4j]
        return ["java", *jvm, "-cp", classpath, main, *args]

    def _write_config(self) -> Path:
        (self.state / "log4j2.properties").write_text(KAFKA_LOG4J2)
        properties = self.state / "server.properties"
        properties.write_text(kafka_server_properties(self.data_dir, self.port))
        return properties

    def _format_storage(self, properties: Path) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        storage_tool = "kafka.tools.StorageTool"
        uuid_file = self.state / "cluster-id"
        if run_logged(self._java(storage_tool, "random-uuid"), uuid_file) != 0:
            raise LaunchError(f"StorageTool random-uuid failed:\n{tail(uuid_file)}")
        cluster_id = uuid_file.read_text().split()[-1]
        command = self._java(storage_tool, "format", "--standalone", "-t", cluster_id,
                             "-c", str(properties))  # fmt: skip
        if run_logged(command, self.log) != 0:
            raise LaunchError(f"Kafka storage format failed:\n{tail(self.log)}")

    def start(self) -> None:
        say(f"kafka: Apache Kafka {self.version}")
        properties = self._write_config()
        self._format_storage(properties)
        command = self._java("kafka.Kafka", str(properties))
        pid = spawn_logged(command, self.log, dict(os.environ), cwd=self.state)
        self.pid_file.write_text(f"{pid}\n")

    def running_pid(self) -> int | None:
        return live_pid(self.pid_file, "kafka.Kafka")

    def stop(self) -> None:
        pid = self.running_pid()
        if pid is not None:
            terminate(pid, "kafka.Kafka", grace=30, group=True)


def java_major_version() -> int:
    if shutil.which("java") is None:
        return 0
    result = subprocess.run(
        ["java", "-XshowSettings:properties", "-version"],
        capture_output=True,
        text=True,
        check=False,
    )
    for line in result.stderr.splitlines():
        key, _, value = line.strip().partition(" = ")
        if key == "java.specification.version":
            return int(value.split(".")[-1] if value.startswith("1.") else value)
    return 0


BROKER_CLASSES: dict[str, type[Broker]] = {
    "kafka": Kafka,
    "rabbitmq": RabbitMQ,
    "sqs": LocalStack,
    "redis": Redis,
}


# --------------------------------------------------------------------------- commands


def url_line(broker: Broker, suffix: str) -> str:
    extra = "  ".join(part for part in (suffix, broker.note()) if part)
    return f"{broker.name:<9} {broker.url}  {extra}".rstrip()


def run_parallel(brokers: list[Broker], action: Callable[[Broker], str]) -> dict[str, str]:
    """Run action per broker in threads; returns broker name -> error text for failures."""
    errors: dict[str, str] = {}
    lock = threading.Lock()

    def work(broker: Broker) -> None:
        try:
            action(broker)
        except (LaunchError, OSError, subprocess.SubprocessError) as error:
            with lock:
                errors[broker.name] = str(error)

    threads = [threading.Thread(target=work, args=(b,), name=b.name) for b in brokers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def report_failure(broker: Broker, error: str) -> None:
    say(f"\n{broker.name}: FAILED: {error}")
    for log in broker.failure_logs():
        say(f"--- last {LOG_TAIL_LINES} lines of {log} ---\n{tail(log)}")


def command_up(brokers: list[Broker]) -> int:
    started = time.monotonic()
    print_lock = threading.Lock()

    def up_one(broker: Broker) -> str:
        begin = time.monotonic()
        outcome = broker.up()
        elapsed = f"{outcome} in {time.monotonic() - begin:.1f} s"
        with print_lock:
            print(url_line(broker, elapsed), flush=True)
        return outcome

    errors = run_parallel(brokers, up_one)
    for broker in brokers:
        if broker.name in errors:
            report_failure(broker, errors[broker.name])
    print(f"total     {time.monotonic() - started:.1f} s for {len(brokers)} broker(s)")
    return 1 if errors else 0


def command_status(brokers: list[Broker]) -> int:
    down = 0
    for broker in brokers:
        answering = broker.probe()
        down += not answering
        pid = broker.running_pid()
        owner = f"pid {pid}" if pid else ("not started here" if answering else "")
        state = "up" if answering else "DOWN"
        print(url_line(broker, f"{state}  {owner}".rstrip()))
    return 1 if down else 0


def command_down(brokers: list[Broker]) -> int:
    outcomes: dict[str, str] = {}

    def down_one(broker: Broker) -> str:
        outcomes[broker.name] = broker.down()
        return outcomes[broker.name]

    errors = run_parallel(brokers, down_one)
    for broker in brokers:
        print(f"{broker.name:<9} {errors.get(broker.name) or outcomes.get(broker.name, '')}")
    return 1 if errors else 0


def command_env(brokers: list[Broker]) -> int:
    for broker in brokers:
        print(f"export MESSAGING_TEST_{broker.name.upper()}_URL='{broker.url}'")
    if any(b.name == "sqs" for b in brokers):
        for key, value in AWS_TEST_CREDENTIALS.items():
            print(f"export {key}={value}")
    return 0


COMMANDS: dict[str, Callable[[list[Broker]], int]] = {
    "up": command_up,
    "down": command_down,
    "status": command_status,
    "env": command_env,
}


def select(names: Sequence[str]) -> list[str]:
    if not names or "all" in names:
        return list(BROKER_NAMES)
    unknown = sorted(set(names) - set(BROKER_NAMES))
    if unknown:
        raise LaunchError(f"unknown broker(s): {', '.join(unknown)}; know {BROKER_NAMES}")
    return list(dict.fromkeys(names))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in COMMANDS:
        say(f"usage: compose/native {{{'|'.join(COMMANDS)}}} [{'|'.join(BROKER_NAMES)}|all]...")
        return 2
    try:
        apt = Apt()
        brokers = [BROKER_CLASSES[name](apt) for name in select(args[1:])]
        if args[0] == "up":
            for broker in brokers:
                apt.want(broker.apt_packages())
        return COMMANDS[args[0]](brokers)
    except LaunchError as error:
        say(f"error: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
