"""The contract suite against a real Apache Kafka broker.

The broker comes from ``tests/broker_fixtures.py`` (``MESSAGING_TEST_KAFKA_URL``, else
testcontainers, else ``compose/native``). Kafka has no visibility timeout, so the crash
test waits for the group's failure detection: the members of this run use a short
session timeout (the native launcher lets the broker accept 1 s and more).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from messaging_contracts.suite import *  # noqa: F403

try:
    from broker_fixtures import kafka_url
except ImportError:  # tests/ is not on sys.path when only tests/adapters is collected
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from broker_fixtures import kafka_url

__all__ = ["kafka_url"]

SESSION_TIMEOUT = 6.0
"""Seconds a killed member keeps its partitions (the broker's default minimum)."""


@pytest.fixture
def messaging_url(kafka_url: str) -> str:
    return kafka_url


@pytest.fixture
def messaging_connect_options() -> dict[str, Any]:
    return {"session_timeout": SESSION_TIMEOUT}
