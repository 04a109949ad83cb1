"""Session fixtures that hand tests the URL of a real broker, and a client of one.

Import them into a conftest (``from broker_fixtures import *``) or by name into a test
module. ``kafka_client``, ``rabbitmq_client``, ``redis_client`` and ``sqs_client`` are per
test: a client of that broker with default options. Where each broker comes from is decided
in brokers.py. A broker that cannot be had skips the tests that need it,
naming the broker; with ``MESSAGING_TEST_REQUIRE_BROKERS=1`` (for CI) it fails them
instead, so a broken launcher cannot pass as a green run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from brokers import BrokerUnavailable, Resolved, aws_test_credentials, resolve

import messaging

__all__ = ["kafka_client", "kafka_url", "rabbitmq_client", "rabbitmq_url", "redis_client",
           "redis_url", "sqs_client", "sqs_url"]

REQUIRE_BROKERS = "MESSAGING_TEST_REQUIRE_BROKERS"


def brokers_required() -> bool:
    return os.environ.get(REQUIRE_BROKERS, "").strip().lower() in {"1", "true", "yes", "on"}


def resolve_or_skip(name: str) -> Resolved:
    try:
        return resolve(name)
    except BrokerUnavailable as error:
        if brokers_required():
            pytest.fail(f"{name} broker unavailable ({REQUIRE_BROKERS} is set): {error}")
        pytest.skip(f"{name} broker unavailable: {error}")


@pytest.fixture(scope="session")
def kafka_url() -> str:
    return resolve_or_skip("kafka").url


@pytest.fixture
def kafka_client(kafka_url: str) -> Iterator[messaging.Client]:
    """A client of the real Kafka broker with default options, closed after the test."""
    yield from _connected(kafka_url)


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    return resolve_or_skip("rabbitmq").url


@pytest.fixture
def rabbitmq_client(rabbitmq_url: str) -> Iterator[messaging.Client]:
    """A client of the real RabbitMQ broker with default options, closed after the test."""
    yield from _connected(rabbitmq_url)


@pytest.fixture(scope="session")
def redis_url() -> str:
    return resolve_or_skip("redis").url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[messaging.Client]:
    """A client of the real Redis server with default options, closed after the test."""
    yield from _connected(redis_url)


@pytest.fixture(scope="session")
def sqs_url() -> Iterator[str]:
    """LocalStack's URL; its test credentials are set unless the environment has some.

    A URL given in the environment may point at real AWS, so then nothing is set.
    """
    resolved = resolve_or_skip("sqs")
    with pytest.MonkeyPatch.context() as patch:
        if resolved.source != "env":
            for key, value in aws_test_credentials().items():
                if key not in os.environ:
                    patch.setenv(key, value)
        yield resolved.url


@pytest.fixture
def sqs_client(sqs_url: str) -> Iterator[messaging.Client]:
    """A client of the real SQS endpoint with default options, closed after the test."""
    yield from _connected(sqs_url)


def _connected(url: str) -> Iterator[messaging.Client]:
    with messaging.connect(url) as connected:
        yield connected
