"""The README's usage example does what it shows, on every backend, run as a user copies
it: from a fresh destination, top to bottom (up to ``run()``, which serves forever)."""

from __future__ import annotations

import contextlib
import io
import re
import sys
import uuid
from pathlib import Path

import pytest

import messaging

try:
    from broker_fixtures import kafka_url, rabbitmq_url, redis_url, sqs_url
except ImportError:  # tests/ is not on sys.path when this file is collected on its own
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from broker_fixtures import kafka_url, rabbitmq_url, redis_url, sqs_url

__all__ = ["kafka_url", "rabbitmq_url", "redis_url", "sqs_url"]

README = Path(__file__).resolve().parents[1] / "README.md"


def _usage_example() -> str:
    text = README.read_text()
    section = text[text.index("## Use"):]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the Use section has no python example"
    return match.group(1)


@pytest.mark.parametrize("backend", ["memory", "sqlite", "kafka_url", "rabbitmq_url",
                                     "redis_url", "sqs_url"])
def test_the_usage_example_prints_the_order_it_sends(
        backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    # Before the example declared its group, the order was sent before the group existed
    # (contract 11), so the loop printed nothing on any backend.
    url = {"memory": f"memory://{uuid.uuid4().hex}",
           "sqlite": f"sqlite:///{tmp_path / 'readme.db'}"}.get(backend) or str(
        request.getfixturevalue(backend))
    code = _usage_example()
    code = code[:code.index('client.consumer("orders", group="billing").run(')]
    destination = f"orders-{uuid.uuid4().hex[:8]}"  # fresh, and the broker's own
    code = code.replace('"kafka://127.0.0.1:9092"', repr(url)).replace(
        '"orders"', repr(destination))
    printed = io.StringIO()
    namespace: dict[str, object] = {}
    try:
        with contextlib.redirect_stdout(printed):
            exec(compile(code, str(README), "exec"), namespace)
        assert printed.getvalue().splitlines() == ["{'id': 7} 1"]
    finally:
        client = namespace.get("client")
        if isinstance(client, messaging.Client):
            client.admin.delete(destination)
            client.close()
