"""The contract suite against a real Redis (Streams), through the public API only.

The broker comes from ``tests/broker_fixtures.py`` (``MESSAGING_TEST_REDIS_URL``, else
testcontainers, else ``compose/native``). The adapter's defaults are what is tested: a
plain Redis 7 with no option set.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from messaging_contracts.suite import *  # noqa: F403

try:
    from broker_fixtures import redis_url
except ImportError:  # tests/ is not on sys.path when only tests/adapters is collected
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from broker_fixtures import redis_url

__all__ = ["redis_url"]


@pytest.fixture
def messaging_url(redis_url: str) -> str:
    return redis_url
