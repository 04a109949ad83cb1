"""The contract suite against a real RabbitMQ, in both queue configurations.

The broker comes from ``tests/broker_fixtures.py`` (``MESSAGING_TEST_RABBITMQ_URL``, else
testcontainers, else ``compose/native``). Every contract test runs twice:

* ``quorum``: the default (quorum group queues: exact ``attempt``, no priority);
* ``classic-priority``: ``queue_type=classic`` with ``max_priority=9`` (10 levels).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from messaging_contracts.suite import *  # noqa: F403

try:
    from broker_fixtures import rabbitmq_url
except ImportError:  # tests/ is not on sys.path when only tests/adapters is collected
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from broker_fixtures import rabbitmq_url

__all__ = ["rabbitmq_url"]

CONFIGURATIONS: dict[str, dict[str, Any]] = {
    "quorum": {},
    "classic-priority": {"queue_type": "classic", "max_priority": 9},
}


@pytest.fixture
def messaging_url(rabbitmq_url: str) -> str:
    return rabbitmq_url


@pytest.fixture(params=list(CONFIGURATIONS), ids=list(CONFIGURATIONS))
def messaging_connect_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    return dict(CONFIGURATIONS[request.param])
