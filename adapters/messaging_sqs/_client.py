"""The part of boto3 the driver uses, behind two small protocols (Go CDK
``rabbitpubsub/amqp.go`` style), so unit tests can hand the driver fakes while contract
tests use boto3 against a real SQS/SNS.

Every method takes the AWS API's keyword arguments and returns its response dict, exactly
as a boto3 client does; the driver never depends on anything else of boto3.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol, cast

import boto3
from botocore.config import Config

from messaging.urls import BrokerURL

READ_TIMEOUT = 60.0
"""Seconds a call may wait for its answer: above SQS's longest long poll (20 s)."""


class SqsApi(Protocol):
    def send_message_batch(self, **kwargs: Any) -> Any: ...
    def receive_message(self, **kwargs: Any) -> Any: ...
    def delete_message_batch(self, **kwargs: Any) -> Any: ...
    def change_message_visibility_batch(self, **kwargs: Any) -> Any: ...
    def get_queue_attributes(self, **kwargs: Any) -> Any: ...
    def set_queue_attributes(self, **kwargs: Any) -> Any: ...
    def create_queue(self, **kwargs: Any) -> Any: ...
    def get_queue_url(self, **kwargs: Any) -> Any: ...
    def delete_queue(self, **kwargs: Any) -> Any: ...
    def list_queues(self, **kwargs: Any) -> Any: ...


class SnsApi(Protocol):
    def create_topic(self, **kwargs: Any) -> Any: ...
    def delete_topic(self, **kwargs: Any) -> Any: ...
    def get_topic_attributes(self, **kwargs: Any) -> Any: ...
    def list_topics(self, **kwargs: Any) -> Any: ...
    def list_subscriptions_by_topic(self, **kwargs: Any) -> Any: ...
    def subscribe(self, **kwargs: Any) -> Any: ...


@dataclasses.dataclass(frozen=True)
class Clients:
    """What ``SqsDriver.as_native()`` returns: the boto3 clients and where they point."""

    sqs: SqsApi
    sns: SnsApi
    region: str
    partition: str


@dataclasses.dataclass(frozen=True)
class NativeQueue:
    """What ``Subscription.as_native()`` returns: the boto3 SQS client and the group's
    queue (``sqs.receive_message(QueueUrl=queue_url, ...)``)."""

    sqs: SqsApi
    queue_url: str


def make_clients(url: BrokerURL, options: Mapping[str, object], read_timeout: float
                 ) -> Clients:
    """boto3 clients for the URL: credentials from the URL's user and password, else the
    usual AWS chain (environment, profile, ...). botocore's own retries are off: the
    driver must not retry, the portable layer decides."""
    session = boto3.session.Session(
        aws_access_key_id=url.username or None,
        aws_secret_access_key=url.password if url.username else None,
        region_name=_text(options.get("region")),
        profile_name=_text(options.get("profile")),
    )
    connect_timeout = float(cast(float, options.get("connect_timeout", 10.0)))
    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=32,
    )
    endpoint = _text(options.get("endpoint_url"))
    sqs = session.client("sqs", endpoint_url=endpoint, config=config)
    sns = session.client("sns", endpoint_url=endpoint, config=config)
    region = sqs.meta.region_name
    partition = session.get_partition_for_region(region) if region else "aws"
    return Clients(cast(SqsApi, sqs), cast(SnsApi, sns), region, partition)


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)
