"""``SqsDriver`` and ``SqsSubscription``: the driver protocol on SQS and SNS.

See the package documentation (``messaging_sqs``) for the mapping and semantics, and
docs/decisions/0102-sqs-direct-send-with-sns-group-registry.md for why sends go to the
group queues directly.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar

from messaging.capabilities import Capabilities
from messaging.driver import (
    AckId,
    Delivery,
    Driver,
    OutgoingMessage,
    SendResult,
    Subscription,
    SubscriptionOptions,
)
from messaging.errors import ErrorCode
from messaging.urls import BrokerURL
from messaging_sqs import _names, _wire
from messaging_sqs._client import (
    READ_TIMEOUT,
    Clients,
    NativeQueue,
    SnsApi,
    SqsApi,
    make_clients,
)
from messaging_sqs._errors import (
    BatchEntryError,
    SqsRefused,
    classify,
    is_stale_receipt,
)
from messaging_sqs._requests import DEFAULT_LIMIT, Requests

log = logging.getLogger("messaging.sqs")

MAX_WAIT_SECONDS = 20  # SQS's longest long poll
MAX_BATCH = 1000
"""Most messages of one driver batch; it goes out as requests of 10 (see _requests)."""
MAX_VISIBILITY = 43_200  # 12 hours
DEDUP_WINDOW = 300.0  # SQS FIFO de-duplication interval
DEFAULT_MAX_RECEIVE_COUNT = 10

_STANDARD = Capabilities(
    ordering="none",
    fan_out=True,
    replay=False,
    max_delay=_wire.MAX_DELAY,
    priority=0,
    dead_letter="emulated",
    dedup=False,
    max_message_bytes=_wire.MAX_MESSAGE_BYTES,
    max_headers=_wire.MAX_HEADERS,
    visibility_timeout=True,
    extend=True,
    durable=True,
    dedup_window=None,
    max_batch=MAX_BATCH,
    emulated=frozenset({"fan_out", "dead_letter"}),
)
_FIFO = _STANDARD.replace(
    ordering="per_key",
    max_delay=None,  # FIFO queues have no per-message DelaySeconds
    dedup=True,
    dedup_window=DEDUP_WINDOW,
)

_CREATE_OPTIONS: Mapping[str, type] = MappingProxyType({
    "fifo": bool, "dead_letter": str, "max_receive_count": int,
})


@dataclasses.dataclass(frozen=True)
class _Topic:
    destination: str
    arn: str
    fifo: bool


@dataclasses.dataclass(frozen=True)
class _Target:
    """One group's queue, as the topic's subscriptions list it."""

    group: str
    queue_url: str


class SqsDriver(Driver):
    """SQS + SNS through boto3 (see the package documentation)."""

    schemes: ClassVar[tuple[str, ...]] = ("sqs",)
    option_types: ClassVar[Mapping[str, type]] = MappingProxyType({
        "region": str,
        "endpoint_url": str,
        "profile": str,
        "account_id": str,
        "fifo": bool,
        "group_cache_ttl": float,
        "connect_timeout": float,
        "request_concurrency": int,
    })
    install_hint: ClassVar[str] = 'pip install "messaging[sqs]"'

    def __init__(self, clients: Clients, *, account_id: str | None = None, fifo: bool = False,
                 group_cache_ttl: float = 1.0, request_concurrency: int = DEFAULT_LIMIT,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clients = clients
        self._sqs: SqsApi = clients.sqs
        self._sns: SnsApi = clients.sns
        self._account = account_id
        self._default_fifo = fifo
        self._ttl = group_cache_ttl
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._topics: dict[str, _Topic] = {}
        self._targets: dict[str, tuple[float, list[_Target]]] = {}
        self._queue_urls: dict[str, str] = {}
        self._requests = Requests(request_concurrency)
        self._closed = False

    @classmethod
    def open(cls, url: BrokerURL, options: Mapping[str, object]) -> SqsDriver:
        known = set(cls.option_types)
        unknown = sorted(set(options) - known)
        if unknown:
            raise SqsRefused(ErrorCode.CONFIGURATION,
                             f"unknown SQS options {unknown}; known: {sorted(known)}")
        ttl = float(options.get("group_cache_ttl", 1.0))  # type: ignore[arg-type]
        if not (ttl >= 0 and math.isfinite(ttl)):  # forever: new groups never get sends
            raise SqsRefused(ErrorCode.CONFIGURATION,
                             f"group_cache_ttl must be a finite number >= 0, got {ttl!r}")
        connect_timeout = float(options.get("connect_timeout", 10.0))  # type: ignore[arg-type]
        # The portable layer has checked the type (option_types); the range is ours.
        concurrency = int(options.get("request_concurrency", DEFAULT_LIMIT))  # type: ignore[call-overload]
        if concurrency < 1:
            raise SqsRefused(ErrorCode.CONFIGURATION,
                             f"request_concurrency must be >= 1, got {concurrency}")
        # Probe with clients whose read timeout is connect_timeout too, so that open()
        # fails within connect_timeout also when the endpoint accepts and never answers.
        probe = make_clients(url, options, read_timeout=connect_timeout)
        topics = probe.sns.list_topics()
        queues = probe.sqs.list_queues(MaxResults=1)
        driver = cls(make_clients(url, options, read_timeout=READ_TIMEOUT),
                     account_id=_text(options.get("account_id")),
                     fifo=bool(options.get("fifo", False)), group_cache_ttl=ttl,
                     request_concurrency=concurrency)
        driver._learn_account(topics=topics, queues=queues)
        return driver

    # -- capabilities ---------------------------------------------------------------------
    def capabilities(self, destination: str | None = None) -> Capabilities:
        if destination is None:
            return _FIFO if self._default_fifo else _STANDARD
        try:
            topic = self._topic(destination)
        except Exception as error:
            if classify(error) is not ErrorCode.NOT_FOUND:
                raise
            # Not created yet: what create() (or the portable auto-create) would make.
            return _FIFO if self._default_fifo else _STANDARD
        return _FIFO if topic.fifo else _STANDARD

    # -- sending --------------------------------------------------------------------------
    def send_batch(self, destination: str, messages: Sequence[OutgoingMessage]
                   ) -> list[SendResult]:
        topic = self._topic(destination)
        ids = [uuid.uuid4().hex for _ in messages]
        # Encode everything first: a message SQS would refuse fails the batch before
        # anything is sent.
        checked: set[int] = set()  # ids of headers mappings checked (a batch shares them)
        encoded = []
        for message, message_id in zip(messages, ids, strict=True):
            encoded.append(_wire.encode(message, message_id, topic.fifo,
                                        id(message.headers) in checked))
            checked.add(id(message.headers))
        try:
            targets = self._group_targets(topic)
        except Exception as error:
            if classify(error) is ErrorCode.NOT_FOUND:
                self._forget_topic(destination)  # deleted elsewhere: look it up again
            raise
        chunks = list(_chunks(encoded))
        requests = [(target.queue_url, chunk) for target in targets for chunk in chunks]

        def post(queue_url: str, chunk: list[int]) -> Any:
            return self._sqs.send_message_batch(QueueUrl=queue_url, Entries=[
                {"Id": str(index), **encoded[index][0]} for index in chunk])

        outcomes = self._requests.run(
            [functools.partial(post, queue_url, chunk) for queue_url, chunk in requests],
            in_order=topic.fifo)
        errors = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
        if any(classify(error) is ErrorCode.NOT_FOUND for error in errors):
            self._forget_targets(destination)  # a group queue went away
        if errors and len(errors) == len(outcomes):
            raise errors[0]  # nothing reached the broker: the whole batch failed
        failed: dict[int, BaseException] = {}
        for (_, chunk), outcome in zip(requests, outcomes, strict=True):
            if isinstance(outcome, Exception):
                for index in chunk:
                    failed.setdefault(index, outcome)
                continue
            for entry in outcome.get("Failed", []):
                failed.setdefault(int(entry["Id"]), BatchEntryError(
                    str(entry.get("Code", "")), str(entry.get("Message", "")),
                    bool(entry.get("SenderFault", False))))
        return [failed.get(index, message_id) for index, message_id in enumerate(ids)]

    # -- consuming ------------------------------------------------------------------------
    def subscribe(self, destination: str, group: str, options: SubscriptionOptions
                  ) -> SqsSubscription:
        topic = self._topic(destination)
        queue_url, new = self._ensure_group(topic, group)
        if new:
            self._wait_for_other_senders()
        visibility = None
        if options.visibility_timeout is not None:
            # SQS counts whole seconds: round up, never redeliver before the timeout.
            visibility = min(MAX_VISIBILITY, max(1, math.ceil(options.visibility_timeout)))
        return SqsSubscription(self, destination, group, queue_url, fifo=topic.fifo,
                              visibility=visibility)

    # -- administration -------------------------------------------------------------------
    def create(self, destination: str, partitions: int, groups: Sequence[str],
               options: Mapping[str, object]) -> None:
        settings = _create_options(options)
        if settings.get("dead_letter") == destination:
            raise SqsRefused(ErrorCode.CONFIGURATION, (
                f"dead_letter {destination!r} is the destination itself: the redrive would "
                "move each message back onto the queue it came from"))
        fifo = bool(settings.get("fifo", self._default_fifo))
        for group in groups:  # refuse a name SQS cannot take before creating anything
            _names.queue_name(destination, group, fifo)
        topic = self._create_topic(destination, fifo)
        new = False
        urls: dict[str, str] = {}
        for group in groups:
            urls[group], created = self._ensure_group(topic, group)
            new = new or created
        dead_letter = settings.get("dead_letter")
        if dead_letter is not None:
            self._redrive(topic, urls, str(dead_letter),
                          int(settings.get("max_receive_count",  # type: ignore[call-overload]
                                           DEFAULT_MAX_RECEIVE_COUNT)))
        if new:
            self._wait_for_other_senders()

    def delete(self, destination: str) -> None:
        try:
            topic = self._topic(destination)
        except Exception as error:
            if classify(error) is ErrorCode.NOT_FOUND:
                return  # deleting a missing destination is no error
            raise
        for target in self._list_targets(topic):
            try:
                self._sqs.delete_queue(QueueUrl=target.queue_url)
            except Exception as error:
                if classify(error) is not ErrorCode.NOT_FOUND:
                    raise
        self._sns.delete_topic(TopicArn=topic.arn)
        with self._lock:
            self._topics.pop(destination, None)
            self._targets.pop(destination, None)
            prefix = _names.topic_name(destination, fifo=False) + _names.SEPARATOR
            for name in [name for name in self._queue_urls if name.startswith(prefix)]:
                del self._queue_urls[name]

    def depth(self, destination: str, group: str) -> int:
        topic = self._topic(destination)
        queue_url = self._queue_url(_names.queue_name(destination, group, topic.fifo))
        counts = self._sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed"])["Attributes"]
        return sum(int(value) for value in counts.values())

    def destinations(self) -> list[str]:
        names: list[str] = []
        for page in self._pages(self._sns.list_topics, "Topics", "NextToken"):
            name = _names.name_of_arn(str(page["TopicArn"]))
            names.append(name.removesuffix(_names.FIFO_SUFFIX))
        return names

    def groups(self, destination: str) -> list[str]:
        return [target.group for target in self._list_targets(self._topic(destination))]

    def error_code(self, error: BaseException) -> ErrorCode:
        return classify(error)

    def as_native(self) -> Clients:
        """The boto3 SQS and SNS clients (``.sqs``, ``.sns``) with region and partition."""
        return self._clients

    def close(self) -> None:
        # boto3 clients hold only pooled HTTP connections; nothing must be given back.
        self._closed = True
        self._requests.close()

    # -- internals: topics ---------------------------------------------------------------
    def _arn(self) -> _names.Arn | None:
        if self._account is None:
            self._learn_account(topics=self._sns.list_topics(),
                                queues=self._sqs.list_queues(MaxResults=1))
        if self._account is None:
            return None
        return _names.Arn(self._clients.partition, self._clients.region, self._account)

    def _learn_account(self, *, topics: Any, queues: Any) -> None:
        """The account id, from any topic ARN or queue URL the account already has (SNS
        needs ARNs; STS may not be available, e.g. on LocalStack)."""
        if self._account is not None:
            return
        for topic in topics.get("Topics", []):
            self._account = _names.account_of_arn(str(topic["TopicArn"]))
            if self._account:
                return
        for url in queues.get("QueueUrls", []):
            self._account = _names.account_of_queue_url(str(url))
            if self._account:
                return

    def _topic(self, destination: str) -> _Topic:
        """The destination's topic (standard or FIFO), looked up once and then cached."""
        with self._lock:
            known = self._topics.get(destination)
        if known is not None:
            return known
        arn = self._arn()
        if arn is None:
            raise SqsRefused(ErrorCode.NOT_FOUND,
                             f"destination {destination!r} does not exist (no SNS topics)")
        missing: BaseException | None = None
        for fifo in (False, True):
            topic_arn = arn.topic(_names.topic_name(destination, fifo))
            try:
                self._sns.get_topic_attributes(TopicArn=topic_arn)
            except Exception as error:
                if classify(error) is not ErrorCode.NOT_FOUND:
                    raise
                missing = error
                continue
            topic = _Topic(destination, topic_arn, fifo)
            with self._lock:
                self._topics[destination] = topic
            return topic
        assert missing is not None
        raise missing

    def _create_topic(self, destination: str, fifo: bool) -> _Topic:
        try:
            existing = self._topic(destination)
        except Exception as error:
            if classify(error) is not ErrorCode.NOT_FOUND:
                raise
        else:
            if existing.fifo != fifo:
                kind = "FIFO" if existing.fifo else "standard"
                raise SqsRefused(ErrorCode.CONFIGURATION,
                                 f"destination {destination!r} exists as a {kind} destination")
            return existing
        attributes = {"FifoTopic": "true", "ContentBasedDeduplication": "false"} if fifo else {}
        arn = str(self._sns.create_topic(Name=_names.topic_name(destination, fifo),
                                         Attributes=attributes)["TopicArn"])
        if self._account is None:
            self._account = _names.account_of_arn(arn)
        topic = _Topic(destination, arn, fifo)
        with self._lock:
            self._topics[destination] = topic
        return topic

    # -- internals: groups ---------------------------------------------------------------
    def _ensure_group(self, topic: _Topic, group: str) -> tuple[str, bool]:
        """Create the group's queue and subscribe it to the topic (raw delivery).
        Returns its URL and whether the subscription is new."""
        name = _names.queue_name(topic.destination, group, topic.fifo)
        attributes = {"FifoQueue": "true"} if topic.fifo else {}
        queue_url = str(self._sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])
        with self._lock:
            self._queue_urls[name] = queue_url
        if any(target.group == _names.group_of_queue(topic.destination, name, topic.fifo)
               for target in self._list_targets(topic)):
            return queue_url, False
        arn = self._arn()
        assert arn is not None  # the topic exists, so the account is known
        queue_arn = arn.queue(name)
        # Let the topic deliver what plain clients publish to it (needed on AWS).
        self._sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={
            "Policy": json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage", "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic.arn}}}]})})
        self._sns.subscribe(TopicArn=topic.arn, Protocol="sqs", Endpoint=queue_arn,
                            Attributes={"RawMessageDelivery": "true"},
                            ReturnSubscriptionArn=True)
        self._forget_targets(topic.destination)
        return queue_url, True

    def _wait_for_other_senders(self) -> None:
        """A new group receives every message sent after its creation (contract 11): a
        sender in another process may hold a group list up to ``group_cache_ttl`` old,
        so creation returns only once every such list has expired."""
        if self._ttl > 0:
            self._sleep(self._ttl)

    def _redrive(self, topic: _Topic, urls: Mapping[str, str], dead_letter: str,
                 max_receive_count: int) -> None:
        """SQS's own dead-lettering: after ``max_receive_count`` receives a message moves
        to the same group's queue of ``dead_letter`` (a backstop for messages whose
        handler kills the process; the worker's reasoned dead letters come first when
        ``Retry.max_attempts`` is lower)."""
        if not 1 <= max_receive_count <= 1000:
            raise SqsRefused(ErrorCode.CONFIGURATION, "max_receive_count must be 1..1000")
        letters = self._create_topic(dead_letter, topic.fifo)
        arn = self._arn()
        assert arn is not None
        for group, queue_url in urls.items():
            self._ensure_group(letters, group)
            target = arn.queue(_names.queue_name(dead_letter, group, topic.fifo))
            self._sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": target,
                                             "maxReceiveCount": max_receive_count})})

    def _group_targets(self, topic: _Topic) -> list[_Target]:
        """The group queues a send goes to, cached for ``group_cache_ttl`` seconds (SNS
        throttles ListSubscriptionsByTopic; see ``_wait_for_other_senders``)."""
        now = self._clock()
        with self._lock:
            cached = self._targets.get(topic.destination)
        if cached is not None and cached[0] > now:
            return cached[1]
        targets = self._list_targets(topic)
        with self._lock:
            self._targets[topic.destination] = (now + self._ttl, targets)
        return targets

    def _list_targets(self, topic: _Topic) -> list[_Target]:
        targets: list[_Target] = []
        pages = self._pages(lambda **kw: self._sns.list_subscriptions_by_topic(
            TopicArn=topic.arn, **kw), "Subscriptions", "NextToken")
        for subscription in pages:
            if subscription.get("Protocol") != "sqs":
                continue
            name = _names.name_of_arn(str(subscription.get("Endpoint", "")))
            group = _names.group_of_queue(topic.destination, name, topic.fifo)
            if group is not None and all(target.group != group for target in targets):
                targets.append(_Target(group, self._queue_url(name)))
        return targets

    def _forget_topic(self, destination: str) -> None:
        with self._lock:
            self._topics.pop(destination, None)
            self._targets.pop(destination, None)

    def _forget_targets(self, destination: str) -> None:
        with self._lock:
            self._targets.pop(destination, None)

    def _queue_url(self, name: str) -> str:
        with self._lock:
            url = self._queue_urls.get(name)
        if url is None:
            url = str(self._sqs.get_queue_url(QueueName=name)["QueueUrl"])
            with self._lock:
                self._queue_urls[name] = url
        return url

    @staticmethod
    def _pages(call: Callable[..., Any], field: str, token: str) -> Iterator[Mapping[str, Any]]:
        arguments: dict[str, Any] = {}
        while True:
            response = call(**arguments)
            yield from response.get(field, [])
            if not response.get(token):
                return
            arguments[token] = response[token]


class SqsSubscription(Subscription):
    """One consumer of a group's queue."""

    def __init__(self, driver: SqsDriver, destination: str, group: str, queue_url: str, *,
                 fifo: bool, visibility: int | None) -> None:
        self._driver = driver
        self._sqs: SqsApi = driver._sqs
        self.destination = destination
        self.group = group
        self.queue_url = queue_url
        self._fifo = fifo
        self._visibility = visibility
        self._queue_visibility: float | None = None  # read by lease() when it is needed
        self._closed = False

    def receive_batch(self, max_messages: int, timeout: float) -> list[Delivery]:
        started = time.monotonic()
        arguments: dict[str, Any] = {
            "QueueUrl": self.queue_url,
            "MaxNumberOfMessages": max(1, min(max_messages, _wire.MAX_BATCH)),
            # Whole seconds, rounded down: never block longer than asked.
            "WaitTimeSeconds": max(0, min(MAX_WAIT_SECONDS, math.floor(timeout))),
            "MessageAttributeNames": ["All"],
            "MessageSystemAttributeNames": [
                "ApproximateReceiveCount", "SentTimestamp", "MessageGroupId"],
        }
        if self._visibility is not None:
            arguments["VisibilityTimeout"] = self._visibility
        natives = list(self._sqs.receive_message(**arguments).get("Messages", []))
        if len(natives) == _wire.MAX_BATCH < max_messages and not self._fifo:
            natives += self._receive_more(arguments, max_messages - len(natives))
        deliveries = [_wire.decode(native, self.destination, self._fifo) for native in natives]
        if not deliveries and arguments["WaitTimeSeconds"] == 0:
            # A sub-second wait is a short poll: wait out the rest, so a caller polling
            # with a short timeout does not spin on the broker.
            remaining = timeout - (time.monotonic() - started)
            if remaining > 0:
                time.sleep(remaining)
        return deliveries

    def _receive_more(self, arguments: Mapping[str, Any], wanted: int) -> list[Any]:
        """After a full answer, up to ``wanted`` more in requests side by side that do not
        wait (a short poll): the queue most likely holds more, and a caller asking for
        100 gets them in about one round trip instead of ten. Not on a FIFO queue, whose
        order per message group is kept by taking its messages in one stream of calls.

        A failed request is logged, not raised: what the others received is this
        consumer's now, and must be handed out (the error recurs at the next receive)."""
        wanted = min(wanted, self._driver._requests.limit * _wire.MAX_BATCH)  # one wave
        sizes = [min(_wire.MAX_BATCH, wanted - start)
                 for start in range(0, wanted, _wire.MAX_BATCH)]
        calls = [functools.partial(self._sqs.receive_message, **{
            **arguments, "MaxNumberOfMessages": size, "WaitTimeSeconds": 0}) for size in sizes]
        natives: list[Any] = []
        for outcome in self._driver._requests.run(calls):
            if isinstance(outcome, Exception):
                log.warning("a receive from %s beside another failed: %r", self.queue_url,
                            outcome)
                continue
            natives += outcome.get("Messages", [])
        return natives

    def send_acks(self, ack_ids: Sequence[AckId]) -> None:
        def delete(chunk: Sequence[AckId]) -> Any:
            return self._sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(n), "ReceiptHandle": str(receipt)} for n, receipt in enumerate(chunk)])

        self._settle([functools.partial(delete, chunk) for chunk in _slices(ack_ids)], "ack")

    def send_nacks(self, ack_ids: Sequence[AckId], delay: float | None) -> None:
        # Visibility 0 makes the message receivable at once; a delay keeps it invisible
        # that long (rounded up: never earlier). Either way ApproximateReceiveCount grows
        # on the next receive, which is the attempt + 1.
        self._change_visibility(ack_ids, math.ceil(delay) if delay else 0, "nack")

    def lease(self) -> float:
        """The consumer's visibility timeout, else the queue's (one GetQueueAttributes
        the first time: the queue may have been made with another than SQS's 30 s)."""
        if self._visibility is not None:
            return float(self._visibility)
        if self._queue_visibility is None:
            attributes = self._sqs.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["VisibilityTimeout"])["Attributes"]
            self._queue_visibility = float(attributes["VisibilityTimeout"])
        return self._queue_visibility

    def extend(self, ack_ids: Sequence[AckId], seconds: float) -> None:
        self._change_visibility(ack_ids, min(MAX_VISIBILITY, math.ceil(seconds)), "extend")

    def _change_visibility(self, ack_ids: Sequence[AckId], seconds: int, doing: str) -> None:
        def change(chunk: Sequence[AckId]) -> Any:
            return self._sqs.change_message_visibility_batch(
                QueueUrl=self.queue_url, Entries=[
                    {"Id": str(n), "ReceiptHandle": str(receipt), "VisibilityTimeout": seconds}
                    for n, receipt in enumerate(chunk)])

        self._settle([functools.partial(change, chunk) for chunk in _slices(ack_ids)], doing)

    def _settle(self, requests: Sequence[Callable[[], Any]], doing: str) -> None:
        """Run settlement requests side by side; then raise the first error, if any (every
        request was made: those that succeeded took effect)."""
        for outcome in self._driver._requests.run(requests):
            if isinstance(outcome, Exception):
                raise outcome
            _raise_failures(outcome, doing)

    def close(self) -> None:
        """Nothing to detach: an SQS consumer is only a series of ReceiveMessage calls.
        Deliveries still held become receivable when their visibility timeout passes
        (the portable layer gives back its unsettled ones before this, at once)."""
        self._closed = True

    def as_native(self) -> NativeQueue:
        return NativeQueue(self._sqs, self.queue_url)


def _raise_failures(response: Mapping[str, Any], doing: str) -> None:
    """Raise the first failed entry of a settlement batch, except stale receipts (the
    visibility timeout passed or the message is already deleted): settling a delivery
    that is no longer this consumer's is moot, like an expired lease."""
    for entry in response.get("Failed", []):
        code, text = str(entry.get("Code", "")), str(entry.get("Message", ""))
        if is_stale_receipt(code, text):
            log.info("%s of a stale receipt ignored: %s: %s", doing, code, text)
            continue
        raise BatchEntryError(code, text, bool(entry.get("SenderFault", False)))


def _chunks(encoded: Sequence[tuple[dict[str, Any], int]]) -> Iterator[list[int]]:
    """Indices in SendMessageBatch-sized groups: at most 10 entries and 256 KiB."""
    chunk: list[int] = []
    size = 0
    for index, (_, entry_size) in enumerate(encoded):
        if chunk and (len(chunk) == _wire.MAX_BATCH or size + entry_size > _wire.SQS_MAX_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(index)
        size += entry_size
    if chunk:
        yield chunk


def _slices(items: Sequence[AckId]) -> Iterator[Sequence[AckId]]:
    for start in range(0, len(items), _wire.MAX_BATCH):
        yield items[start:start + _wire.MAX_BATCH]


def _create_options(options: Mapping[str, object]) -> dict[str, object]:
    unknown = sorted(set(options) - set(_CREATE_OPTIONS))
    if unknown:
        raise SqsRefused(ErrorCode.CONFIGURATION, (
            f"unknown create options {unknown} for SQS; known: {sorted(_CREATE_OPTIONS)}"))
    for name, value in options.items():
        expected = _CREATE_OPTIONS[name]
        if isinstance(value, bool) is not (expected is bool) or not isinstance(value, expected):
            raise SqsRefused(ErrorCode.CONFIGURATION,
                             f"create option {name!r} must be {expected.__name__}, got {value!r}")
    if "max_receive_count" in options and "dead_letter" not in options:
        raise SqsRefused(ErrorCode.CONFIGURATION, "max_receive_count needs dead_letter")
    return dict(options)


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)

