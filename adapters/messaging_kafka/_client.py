"""The small surface of confluent-kafka the adapter uses, as protocols (Go CDK
``rabbitpubsub/amqp.go`` style), and the real implementations.

The producer and consumer protocols are subsets of confluent-kafka's own classes, so
the real objects are used as they are on the hot paths. Admin calls go through
:class:`Admin`, a narrow synchronous interface the adapter defines, because
confluent-kafka's ``AdminClient`` answers with futures per item. Unit tests give the
driver fakes of all three (see ``tests/adapters/test_messaging_kafka_unit.py``);
contract, interop and failure tests use the real broker.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, Protocol, TypeVar, cast

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec
from confluent_kafka.cimpl import NewTopic

Config = Mapping[str, object]
_LEADER_POLL = 0.02
_READERS = 8
_NOT_READY = frozenset({KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                        KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.UNKNOWN_LEADER_EPOCH,
                        KafkaError.FENCED_LEADER_EPOCH})
_COORDINATOR_NOT_READY = frozenset({KafkaError.NOT_COORDINATOR,
                                    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                                    KafkaError.COORDINATOR_NOT_AVAILABLE})
Which = Literal["earliest", "latest"]
T = TypeVar("T")


class KafkaMessage(Protocol):
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> list[tuple[str, bytes | None]] | None: ...
    def timestamp(self) -> tuple[int, int]: ...
    def error(self) -> KafkaError | None: ...


class ProducerClient(Protocol):
    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None, *,
                headers: list[tuple[str, bytes]] | None = None,
                on_delivery: Callable[[KafkaError | None, Any], None] | None = None
                ) -> None: ...
    def poll(self, timeout: float = ...) -> int: ...
    def flush(self, timeout: float = ...) -> int: ...


class ConsumerClient(Protocol):
    def subscribe(self, topics: list[str], on_assign: Callable[..., None] = ...,
                  on_revoke: Callable[..., None] = ..., on_lost: Callable[..., None] = ...
                  ) -> None: ...
    def consume(self, num_messages: int = ..., timeout: float = ...) -> list[Any]: ...
    def commit(self, offsets: list[TopicPartition] = ..., asynchronous: bool = ...
               ) -> list[TopicPartition] | None: ...
    def committed(self, partitions: list[TopicPartition], timeout: float = ...
                  ) -> list[TopicPartition]: ...
    def incremental_assign(self, partitions: list[TopicPartition]) -> None: ...
    def seek(self, partition: TopicPartition) -> None: ...
    def pause(self, partitions: list[TopicPartition]) -> None: ...
    def resume(self, partitions: list[TopicPartition]) -> None: ...
    def offsets_for_times(self, partitions: list[TopicPartition], timeout: float = ...
                          ) -> list[TopicPartition]: ...
    def close(self) -> None: ...


class Admin(Protocol):
    """Cluster and group administration, one synchronous call each.

    Errors are ``KafkaException`` (``UNKNOWN_TOPIC_OR_PART`` for a missing topic), or
    ``TimeoutError`` after ``request_timeout``.
    """

    def probe(self, timeout: float) -> None:
        """Fetch cluster metadata once (fails when no broker answers in ``timeout``).
        Then serve the client's queued callbacks, so that an error callback learns why
        (a refused authentication shows only there)."""

    def partitions(self, topic: str) -> list[int]: ...

    def create_topic(self, topic: str, partitions: int, replication_factor: int,
                     config: Mapping[str, str]) -> list[int]:
        """Create ``topic``; an existing one is left as it is (no error). Returns the
        topic's partitions, all ready for use."""

    def delete_topic(self, topic: str) -> None:
        """Delete ``topic``; a missing one is no error."""

    def topics(self) -> list[str]: ...

    def offsets(self, topic: str, partitions: Sequence[int], which: Which) -> dict[int, int]:
        """Each partition's first offset (``earliest``) or high watermark (``latest``)."""

    def group_offsets(self, group: str, topic: str, partitions: Sequence[int]
                      ) -> dict[int, tuple[int, str | None]]:
        """The group's committed (offset, metadata) per partition; offset < 0: none."""

    def set_group_offsets(self, group: str, topic: str, offsets: Mapping[int, int]) -> None:
        """Commit ``offsets`` for ``group`` from outside it (declares the group)."""

    def forget_group(self, group: str) -> None:
        """Delete ``group``, one that never has members, without waiting for the answer
        (a failure leaves offsets that are of no further use)."""

    def groups(self) -> list[str]: ...

    def native(self) -> object: ...

    def close(self) -> None:
        """Release what the admin keeps open."""


class Clients(Protocol):
    """Makes the client objects; the driver's only way to reach the library."""

    def producer(self, config: Config) -> ProducerClient: ...
    def consumer(self, config: Config) -> ConsumerClient: ...
    def admin(self, config: Config, request_timeout: float) -> Admin: ...


class ConfluentClients:
    """The real clients. confluent-kafka's stubs type its classes more widely (and with
    overloads) than the protocols above, which name exactly what the adapter calls."""

    def producer(self, config: Config) -> ProducerClient:
        return cast(ProducerClient, Producer(_native(config)))

    def consumer(self, config: Config) -> ConsumerClient:
        return cast(ConsumerClient, Consumer(_native(config)))

    def admin(self, config: Config, request_timeout: float) -> Admin:
        return ConfluentAdmin(AdminClient(_native(config)), request_timeout, config)


def _native(config: Config) -> dict[str, Any]:
    return dict(config)


_NOT_FOR_READERS = frozenset({"allow.auto.create.topics", "max.poll.interval.ms"})


class ConfluentAdmin:
    """:class:`Admin` over confluent-kafka's ``AdminClient``.

    A group's committed offsets are read and written through a short-lived ``Consumer``
    of that group that never subscribes (a few milliseconds), not through
    ``AdminClient.list_consumer_group_offsets``: librdkafka 2.x dereferences a null
    consumer-group handle when an admin client's OffsetFetch is answered with
    ``NOT_COORDINATOR`` (as during a broker restart or a coordinator move), which kills
    the process (confluentinc/librdkafka#5040).
    """

    def __init__(self, client: AdminClient, request_timeout: float,
                 config: Config) -> None:
        self._client = client
        self._timeout = request_timeout
        # Properties of a member that joins the group mean nothing to a reader that never
        # does, and max.poll.interval.ms must not be below session.timeout.ms, which
        # members get from the session_timeout option and a reader leaves at
        # librdkafka's default (45 s): a user's value that fits the members would
        # make every reader refused.
        self._group_config = {key: value for key, value in config.items()
                              if key not in _NOT_FOR_READERS}
        self._readers: collections.OrderedDict[str, tuple[Consumer, threading.Lock]] = (
            collections.OrderedDict())
        self._readers_lock = threading.Lock()

    def probe(self, timeout: float) -> None:
        try:
            self._client.list_topics(timeout=timeout)
        finally:
            self._client.poll(0)

    def partitions(self, topic: str) -> list[int]:
        metadata = self._client.list_topics(topic=topic, timeout=self._timeout)
        described = metadata.topics.get(topic)
        if described is None:
            raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART,
                                            f"topic {topic!r} does not exist"))
        if described.error is not None:
            raise KafkaException(described.error)
        return sorted(described.partitions)

    def create_topic(self, topic: str, partitions: int, replication_factor: int,
                     config: Mapping[str, str]) -> list[int]:
        new = NewTopic(topic, num_partitions=partitions,
                       replication_factor=replication_factor, config=dict(config))
        future = self._client.create_topics([new], request_timeout=self._timeout)[topic]
        try:
            future.result(timeout=self._timeout)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        return self._wait_for_leaders(topic)

    def _wait_for_leaders(self, topic: str) -> list[int]:
        """The controller answers CreateTopics before the partitions' leader has taken
        them up: reading offsets fails for a moment (NOT_LEADER_FOR_PARTITION,
        UNKNOWN_LEADER_EPOCH). Wait,
        within ``request_timeout``, until every partition answers, so ``create``
        returns a topic that is ready for use. Returns its partitions."""
        ready = self._when_ready(lambda: self.offsets(topic, self.partitions(topic), "latest"),
                                 _NOT_READY)
        return sorted(ready)

    def _when_ready(self, call: Callable[[], T], not_ready: frozenset[int]) -> T:
        """``call()``, again while it fails with a ``not_ready`` code (a broker still
        getting ready, not a failure), within ``request_timeout``."""
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                return call()
            except KafkaException as error:
                if error.args[0].code() not in not_ready or time.monotonic() > deadline:
                    raise
            time.sleep(_LEADER_POLL)

    def delete_topic(self, topic: str) -> None:
        future = self._client.delete_topics([topic], request_timeout=self._timeout)[topic]
        try:
            future.result(timeout=self._timeout)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise

    def topics(self) -> list[str]:
        return sorted(self._client.list_topics(timeout=self._timeout).topics)

    def offsets(self, topic: str, partitions: Sequence[int], which: Which) -> dict[int, int]:
        if not partitions:
            return {}
        spec = (OffsetSpec.earliest() if which == "earliest"  # type: ignore[no-untyped-call]
                else OffsetSpec.latest())  # type: ignore[no-untyped-call]
        futures = self._client.list_offsets(
            {TopicPartition(topic, p): spec for p in partitions},
            request_timeout=self._timeout)
        return {tp.partition: int(future.result(timeout=self._timeout).offset)
                for tp, future in futures.items()}

    def group_offsets(self, group: str, topic: str, partitions: Sequence[int]
                      ) -> dict[int, tuple[int, str | None]]:
        """A group's first request on a freshly started broker creates
        ``__consumer_offsets``, and its coordinator answers NOT_COORDINATOR or
        COORDINATOR_LOAD_IN_PROGRESS until it has loaded it. Like a new topic's leaders
        (``_wait_for_leaders``), that is a broker still getting ready, not a failure:
        wait for it within ``request_timeout``."""
        return self._when_ready(lambda: self._committed(group, topic, partitions),
                                _COORDINATOR_NOT_READY)

    def _committed(self, group: str, topic: str, partitions: Sequence[int]
                   ) -> dict[int, tuple[int, str | None]]:
        with self._group_member(group) as reader:
            answer = reader.committed([TopicPartition(topic, p) for p in partitions],
                                      self._timeout)
        result: dict[int, tuple[int, str | None]] = {}
        for tp in answer:
            if tp.error is not None:
                raise KafkaException(tp.error)
            result[tp.partition] = (int(tp.offset), tp.metadata)
        return result

    def set_group_offsets(self, group: str, topic: str, offsets: Mapping[int, int]) -> None:
        """Kafka accepts it only while the group has no members (else UNKNOWN_MEMBER_ID)."""
        with self._group_member(group) as writer:
            answer = writer.commit(offsets=topic_partitions(topic, offsets),
                                   asynchronous=False)
        for tp in answer or []:
            if tp.error is not None:
                raise KafkaException(tp.error)

    @contextlib.contextmanager
    def _group_member(self, group: str) -> Iterator[Consumer]:
        """A consumer of ``group`` that never joins it, kept for the next call (the
        ``_READERS`` most recently used ones): making one costs a connection and a
        coordinator lookup, tens of milliseconds."""
        with self._readers_lock:
            entry = self._readers.pop(group, None)
            if entry is None:
                entry = (Consumer({**self._group_config, "group.id": group,
                                   "enable.auto.commit": False,
                                   "enable.auto.offset.store": False}), threading.Lock())
            self._readers[group] = entry
            evicted = []
            while len(self._readers) > _READERS:
                evicted.append(self._readers.popitem(last=False)[1])
        for consumer, lock in evicted:
            with lock:
                consumer.close()
        consumer, lock = entry
        with lock:
            yield consumer

    def close(self) -> None:
        with self._readers_lock:
            readers, self._readers = list(self._readers.values()), collections.OrderedDict()
        for consumer, lock in readers:
            with lock:
                consumer.close()

    def forget_group(self, group: str) -> None:
        self._client.delete_consumer_groups([group], request_timeout=self._timeout)

    def groups(self) -> list[str]:
        future = self._client.list_consumer_groups(request_timeout=self._timeout)
        listed = future.result(timeout=self._timeout)
        return sorted(str(group.group_id) for group in listed.valid)

    def native(self) -> AdminClient:
        return self._client


def topic_partitions(topic: str, offsets: Mapping[int, int] | Sequence[int],
                     metadata: Mapping[int, str] | None = None) -> list[TopicPartition]:
    """TopicPartition objects for ``offsets`` (partition -> offset) or bare partitions."""
    if isinstance(offsets, Mapping):
        return [TopicPartition(topic, p, offset, (metadata or {}).get(p, ""))
                for p, offset in offsets.items()]
    return [TopicPartition(topic, p) for p in offsets]


LIBRARY_LOG = logging.getLogger("messaging.kafka.librdkafka")
"""Where librdkafka's own log lines go (instead of the process's stderr)."""

_OTHER_KINDS_PROPERTY = re.compile(
    r"is a (consumer|producer) property and will be ignored by this (consumer|producer)")


def _quiet_about_other_kinds_properties(record: logging.LogRecord) -> bool:
    """``kafka_config`` goes to every client the adapter makes (producer, admin, group
    members), so each warns, on every connect, about the properties of the other kinds
    it ignores: expected, so logged at DEBUG. (Handlers do not check the logger's level
    again, so a line lowered below it is dropped here.)"""
    if record.levelno > logging.DEBUG and _OTHER_KINDS_PROPERTY.search(record.getMessage()):
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return LIBRARY_LOG.isEnabledFor(logging.DEBUG)
    return True


LIBRARY_LOG.addFilter(_quiet_about_other_kinds_properties)
