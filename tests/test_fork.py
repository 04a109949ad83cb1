"""A process forked after connecting (multiprocessing's default on Linux, gunicorn and
Celery workers) gets a connection of its own, and leaves its parent's alone.

Each case runs a small service in a subprocess, so that the forked child exits the way a
program does (a normal interpreter shutdown, finalizers and all), which no test inside
pytest's own process could do. Before clients reconnected in a child, the child's send
hung forever on Kafka and timed out on RabbitMQ, where it also made the broker close the
parent's connection; and a Kafka child crashed at exit (SIGSEGV) even without using the
client.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from broker_fixtures import kafka_url, rabbitmq_url, redis_url, sqs_url

__all__ = ["kafka_url", "rabbitmq_url", "redis_url", "sqs_url"]

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="this platform has no fork")

SERVICE = textwrap.dedent("""
    import json, os, sys, messaging

    url, destination, use = sys.argv[1], sys.argv[2], sys.argv[3] == "use"
    expected = int(sys.argv[4])
    client = messaging.connect(url)
    client.admin.create(destination, groups=["g"])
    client.producer().send(destination, b"parent-1")
    consumer = client.consumer(destination, "g")  # the parent's: joined before the fork
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        report = {}
        def attempt(what, call):
            try:
                report[what] = call()
            except messaging.MessagingError as error:
                report[what] = "refused" if "forked" in str(error) else repr(error)

        if use:
            attempt("sent", lambda: bool(client.producer().send(destination, b"child")))
            attempt("inherited consumer", lambda: consumer.receive(1, timeout=0.2) and "used")
            attempt("own consumer", lambda: client.consumer(destination, "child-group").group)
        os.write(write, json.dumps(report).encode())
        os.close(write)
        sys.exit(0)  # a normal shutdown: what the child inherited must not be finalized
    os.close(write)
    report = json.loads(os.read(read, 65536) or b"{}")
    _, status = os.waitpid(pid, 0)
    report["child status"] = status
    client.producer().send(destination, b"parent-2")
    got = []
    for _ in range(60):
        got += consumer.receive(10, timeout=0.5)
        if len(got) >= expected:
            break
    consumer.ack_many(got)
    report["parent received"] = sorted(m.body.decode() for m in got)
    client.admin.delete(destination)
    client.close()
    print(json.dumps(report))
""")


@pytest.mark.parametrize("use", ["use", "idle"])
@pytest.mark.parametrize("source", ["memory", "sqlite", "kafka_url", "rabbitmq_url",
                                    "sqs_url", "redis_url"])
def test_a_forked_child_connects_anew_and_leaves_the_parents_connection_alone(
        source: str, use: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path / 'fork.db'}"}.get(
        source) or str(request.getfixturevalue(source))
    # memory:// is the child's own copy after the fork: what it sends stays there. A
    # Kafka client refuses to work in a forked child at all (librdkafka is not fork-safe).
    reopens = source != "kafka_url"
    expected = ["parent-1", "parent-2"] + (
        ["child"] if use == "use" and reopens and source != "memory" else [])
    script = tmp_path / "service.py"
    script.write_text(SERVICE)
    result = subprocess.run(
        [sys.executable, str(script), url, f"fork-{uuid.uuid4().hex[:10]}", use,
         str(len(expected))], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report.pop("child status") == 0, report  # no crash at the child's exit
    assert report.pop("parent received") == sorted(expected), report
    if use == "use":
        assert report == {"sent": True if reopens else "refused",
                          "inherited consumer": "refused",
                          "own consumer": "child-group" if reopens else "refused"}
