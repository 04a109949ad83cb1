"""The contract suite against SQS + SNS (LocalStack here), in both destination kinds.

The broker comes from ``tests/broker_fixtures.py`` (``MESSAGING_TEST_SQS_URL``, else
testcontainers, else ``compose/native``). Every contract test runs twice:

* ``standard``: standard queues (no ordering, no dedup, DelaySeconds up to 900 s);
* ``fifo``: ``fifo=True``, so every destination the suite creates is FIFO (per-key
  ordering, dedup, no per-message delay).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from messaging_contracts.suite import *  # noqa: F403

try:
    from broker_fixtures import sqs_url
except ImportError:  # tests/ is not on sys.path when only tests/adapters is collected
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from broker_fixtures import sqs_url

__all__ = ["sqs_url"]

CONFIGURATIONS: dict[str, dict[str, Any]] = {
    "standard": {},
    "fifo": {"fifo": True},
}


@pytest.fixture
def messaging_url(sqs_url: str) -> str:
    return sqs_url


@pytest.fixture(params=list(CONFIGURATIONS), ids=list(CONFIGURATIONS))
def messaging_connect_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    return dict(CONFIGURATIONS[request.param])
