"""How destinations and groups are named on AWS (see docs/adapters/sqs.md).

* destination ``orders``        -> SNS topic ``orders``      (FIFO: ``orders.fifo``)
* group ``billing`` of it       -> SQS queue ``orders--billing`` (FIFO: ``orders--billing.fifo``)

SQS and SNS names allow ``A-Z a-z 0-9 _ -`` only, so a ``.`` of a portable name becomes
``_`` (``orders.dlq`` -> ``orders_dlq``). ``--`` separates destination and group, so a
destination name may not contain it. A queue name is at most 80 characters, a topic name
256, ``.fifo`` included.
"""

from __future__ import annotations

import dataclasses

from messaging.errors import ErrorCode
from messaging_sqs._errors import SqsRefused

SEPARATOR = "--"
FIFO_SUFFIX = ".fifo"
MAX_QUEUE_NAME = 80
MAX_TOPIC_NAME = 256


def _aws(name: str) -> str:
    return name.replace(".", "_")


def topic_name(destination: str, fifo: bool) -> str:
    if SEPARATOR in destination:
        raise SqsRefused(ErrorCode.CONFIGURATION, (
            f"destination {destination!r}: the SQS adapter uses '--' to join destination "
            "and group in queue names, so a destination name cannot contain it"))
    name = _aws(destination) + (FIFO_SUFFIX if fifo else "")
    if len(name) > MAX_TOPIC_NAME:
        raise SqsRefused(ErrorCode.CONFIGURATION,
                         f"SNS topic name {name!r} is over {MAX_TOPIC_NAME} characters")
    return name


def queue_name(destination: str, group: str, fifo: bool) -> str:
    base = topic_name(destination, fifo=False)
    name = f"{base}{SEPARATOR}{_aws(group)}" + (FIFO_SUFFIX if fifo else "")
    if len(name) > MAX_QUEUE_NAME:
        raise SqsRefused(ErrorCode.CONFIGURATION, (
            f"SQS queue name {name!r} for destination {destination!r} and group {group!r} "
            f"is over {MAX_QUEUE_NAME} characters; use shorter names"))
    return name


def group_of_queue(destination: str, queue: str, fifo: bool) -> str | None:
    """The group a queue name belongs to, or None when it is not one of ``destination``'s
    group queues (as its name shows)."""
    prefix = topic_name(destination, fifo=False) + SEPARATOR
    suffix = FIFO_SUFFIX if fifo else ""
    if not queue.startswith(prefix) or not queue.endswith(suffix) or len(queue) <= len(
            prefix) + len(suffix):
        return None
    return queue[len(prefix):len(queue) - len(suffix)]


@dataclasses.dataclass(frozen=True)
class Arn:
    """Where resources live: ``arn:<partition>:<service>:<region>:<account>:<name>``."""

    partition: str
    region: str
    account: str

    def topic(self, name: str) -> str:
        return f"arn:{self.partition}:sns:{self.region}:{self.account}:{name}"

    def queue(self, name: str) -> str:
        return f"arn:{self.partition}:sqs:{self.region}:{self.account}:{name}"


def name_of_arn(arn: str) -> str:
    return arn.rsplit(":", 1)[-1]


def account_of_arn(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[4] if len(parts) >= 6 and parts[4] else None


def account_of_queue_url(url: str) -> str | None:
    """``https://sqs.<region>.amazonaws.com/<account>/<name>`` -> ``<account>``."""
    parts = url.rstrip("/").split("/")
    return parts[-2] if len(parts) >= 2 and parts[-2].isdigit() else None
