"""The Kafka driver: destinations, groups, keys and settlement mapped onto Apache Kafka
through confluent-kafka (librdkafka).

Mapping (the full table is ``docs/adapters/kafka.md``): a destination is a topic; a
group is a Kafka consumer group (members compete for partitions, every group reads every
record); the key is the record key (same key, same partition, in order); headers are
Kafka headers; the body is the record value, byte for byte.

Delivery semantics
------------------
* Sends: ``acks=all`` and the idempotent producer by default. ``send_batch`` hands the
  whole batch to the client (which batches and pipelines it) and returns once every
  record has its delivery report, each message's own result in order.
* A group exists from ``subscribe`` (or ``create(groups=...)``): the driver commits
  the current end offsets for the group's partitions that have none, so every record
  sent afterwards reaches it, even before the member has joined (through a side group
  when the group has members elsewhere: :mod:`messaging_kafka._declarations`).
  Partitions added later are read from their beginning.
* At-least-once, per partition in order (see :mod:`messaging_kafka._subscription`):
  the committed offset is the contiguous acked prefix; acks above a gap and delivery
  counts travel in the commit metadata (:mod:`messaging_kafka._offsets`), so the next
  owner of a partition skips what was acked and reports ``attempt`` = deliveries + 1.
  Deliveries are recorded by an asynchronous commit right after they are handed out,
  or, for a batch an ack read ahead, by that ack's commit; a member killed within that
  round trip leaves them uncounted (``attempt`` 1 again), one killed holding a
  read-ahead (between acking its whole batch and its next receive) leaves it counted
  (``attempt`` 2).
* No visibility timeout: a partition is reassigned only when its member leaves, is
  closed, or misses ``session_timeout`` (then its unsettled records go to another
  member). ``visibility_timeout`` and ``extend`` are declared unsupported.
* ``nack`` redelivers in the same member, at the message's place in its partition; a
  delayed nack holds the partition back until the delay has passed (seek-back: order
  kept, the partition waits). ``send(delay=)`` is emulated: an ``x-deliver-at`` header
  that this adapter's consumers honour (up to ``MAX_DELAY``); plain consumers see the
  record at once.
* Dead letters are emulated by the portable layer (publish, then ack); priority and
  dedup_id are unsupported (Kafka has neither).
* ``depth`` is the group's lag (high watermark - committed offset) minus what the
  commit metadata records as acked above the committed offset.

Errors
------
One table, :func:`messaging_kafka._errors.error_code`: an unreachable broker
(``Unreachable``, ``_TRANSPORT``, ``_ALL_BROKERS_DOWN``) is ``CONNECTION``; SASL/TLS
and authorization failures ``AUTHENTICATION``; an unknown topic or group ``NOT_FOUND``;
``MSG_SIZE_TOO_LARGE`` ``TOO_LARGE``; invalid topic settings or arguments
``CONFIGURATION``; librdkafka's local and request timeouts ``TIMEOUT``. A failed
delivery report is that message's result; the batch's other messages keep theirs.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from confluent_kafka import KafkaError, KafkaException

from messaging.capabilities import Capabilities
from messaging.driver import (
    Driver,
    OutgoingMessage,
    SendResult,
    Subscription,
    SubscriptionOptions,
)
from messaging.errors import ErrorCode
from messaging.urls import BrokerURL
from messaging_kafka import _declarations, _errors, _wire
from messaging_kafka._client import (
    LIBRARY_LOG,
    Admin,
    Clients,
    ConfluentClients,
    ConsumerClient,
    ProducerClient,
    Which,
)
from messaging_kafka._errors import InvalidRequest, Unreachable
from messaging_kafka._offsets import decode
from messaging_kafka._settings import OPTION_TYPES, Settings
from messaging_kafka._subscription import KafkaSubscription

MAX_DELAY = 900.0
"""Longest ``delay``: a delayed record pins its partition's committed offset (what is
acked behind it rides in the commit metadata) and waits in the consumer's memory."""
MAX_BATCH = 1000
CREATE_OPTIONS = frozenset({"replication_factor", "config"})
_POLL = 0.05
_SHARED_POLL = 0.002
"""Longest wait in ``poll`` while other senders are at work: another sender's poll may
serve this batch's last report, and this one's poll would then sleep on regardless."""
log = logging.getLogger("messaging.kafka")
_AUTH_CODES = frozenset({KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED,
                         KafkaError._SSL, KafkaError.TOPIC_AUTHORIZATION_FAILED,
                         KafkaError.CLUSTER_AUTHORIZATION_FAILED})


class _Batch:
    """Delivery reports of one ``send_batch``, filled in by the client's callbacks."""

    __slots__ = ("done", "finished", "prefix", "results", "size")

    def __init__(self, topic: str, size: int) -> None:
        self.size = size
        self.prefix = topic + ":"  # every message id starts with it
        self.results: list[SendResult] = [""] * size
        self.finished: list[int] = []
        self.done = threading.Event()
        if size == 0:
            self.done.set()

    def delivered(self, index: int, error: KafkaError | None, message: Any) -> None:
        # The hot path of sending: one call per message, so the id is built inline
        # (the topic is the batch's own). Served by whichever thread polls the producer:
        # list.append is atomic, so the count holds with several pollers.
        if error is None:
            self.results[index] = f"{self.prefix}{message.partition()}:{message.offset()}"
        else:
            self.results[index] = KafkaException(error)
        finished = self.finished
        finished.append(index)
        if len(finished) >= self.size:
            self.done.set()

    def fail(self, index: int, error: BaseException) -> None:
        self.results[index] = error
        self.finished.append(index)
        if len(self.finished) >= self.size:
            self.done.set()


class _FirstAuthError:
    """librdkafka's error callback during ``open``: remembers an authentication failure
    (which a metadata timeout would otherwise hide)."""

    def __init__(self) -> None:
        self.error: KafkaError | None = None

    def __call__(self, error: KafkaError) -> None:
        if error.code() in _AUTH_CODES and self.error is None:
            self.error = error
        LIBRARY_LOG.debug("kafka admin client: %s", error)


class KafkaDriver(Driver):
    """Apache Kafka through confluent-kafka (see the module documentation)."""

    schemes: ClassVar[tuple[str, ...]] = ("kafka",)
    option_types: ClassVar[Mapping[str, type]] = OPTION_TYPES
    install_hint: ClassVar[str] = 'pip install "messaging[kafka]"'
    # librdkafka keeps process-wide state (locks its threads may hold at the fork): a
    # client made in such a child failed to connect, or hung, in two runs of three here.
    not_after_fork: ClassVar[str | None] = (
        "librdkafka (under confluent-kafka) is not fork-safe, and a child of a process "
        "with a Kafka client cannot rely on a new client either; connect in each process "
        "after forking (gunicorn's post_fork hook, a multiprocessing 'spawn' context)")

    def __init__(self, settings: Settings, clients: Clients, admin: Admin,
                 producer: ProducerClient) -> None:
        self.settings = settings
        self._clients = clients
        self._admin = admin
        self._producer = producer
        self._topics: set[str] = set()  # known to exist: no metadata request per send
        self._declare_lock = threading.Lock()
        self._senders_lock = threading.Lock()
        self._senders = 0  # send_batch calls in progress (see _await)
        self._closed = False
        acks = str(settings.kafka_config.get("acks", "all")).lower()
        self._capabilities = Capabilities(
            ordering="per_key",
            fan_out=True,
            replay=True,
            max_delay=MAX_DELAY,
            priority=0,
            dead_letter="emulated",
            dedup=False,
            max_message_bytes=settings.max_message_bytes,
            max_headers=None,
            visibility_timeout=False,
            extend=False,
            durable=acks in ("all", "-1"),
            dedup_window=None,
            max_batch=MAX_BATCH,
            emulated=frozenset({"delay", "dead_letter"}),
        )

    @classmethod
    def open(cls, url: BrokerURL, options: Mapping[str, object],
             clients: Clients | None = None) -> KafkaDriver:
        settings = Settings.parse(url, options)
        made = clients or ConfluentClients()
        auth = _FirstAuthError()
        admin = made.admin(settings.admin(LIBRARY_LOG, auth), settings.request_timeout)
        try:
            admin.probe(settings.connect_timeout)
        except KafkaException as error:
            if auth.error is not None:
                raise KafkaException(auth.error) from error
            native = _errors.kafka_error(error)
            if native is not None and native.code() in _AUTH_CODES:
                raise
            raise Unreachable(
                f"no Kafka broker of {settings.bootstrap} answered within "
                f"{settings.connect_timeout:g} s") from error
        producer = made.producer(settings.producer(LIBRARY_LOG, None))
        return cls(settings, made, admin, producer)

    def capabilities(self, destination: str | None = None) -> Capabilities:
        return self._capabilities

    # -- sending ------------------------------------------------------------------------
    def send_batch(self, destination: str, messages: Sequence[OutgoingMessage]
                   ) -> list[SendResult]:
        self._check_open()
        self._require_topic(destination)
        batch = _Batch(destination, len(messages))
        producer = self._producer
        produce = producer.produce
        delivered = batch.delivered
        partial = functools.partial
        encode_headers, encode_key = _wire.encode_headers, _wire.encode_key
        now = time.time()
        # The portable layer hands one headers mapping to every plain value of a batch:
        # encode it once (the client only reads the list).
        last_headers: Mapping[str, str] | None = None
        encoded: list[tuple[str, bytes]] | None = None
        refused: InvalidRequest | None = None  # of last_headers
        with self._senders_lock:
            self._senders += 1
        try:
            # One unpacking per message: cheaper than reading the fields by name.
            for index, (body, key, headers, delay, priority, dedup_id) in enumerate(messages):
                if priority is not None or dedup_id is not None:
                    batch.fail(index, InvalidRequest("Kafka has no priority or dedup_id"))
                    continue
                if headers is not last_headers:
                    last_headers = headers
                    refused = _wire.check_headers(headers)
                    encoded = None if refused else encode_headers(headers) or None
                if refused is not None:
                    batch.fail(index, refused)
                    continue
                native = encode_headers(headers, now + delay) or None if delay else encoded
                on_delivery = partial(delivered, index)
                try:
                    produce(destination, body, None if key is None else encode_key(key),
                            headers=native, on_delivery=on_delivery)
                except BufferError:
                    # The client's local queue is full: wait for room (rarely taken).
                    try:
                        self._produce_when_room(producer, destination, body,
                                                key=_wire.encode_key(key), headers=native,
                                                on_delivery=on_delivery)
                    except (KafkaException, BufferError, ValueError, TypeError) as error:
                        batch.fail(index, error)
                except (KafkaException, ValueError, TypeError) as error:
                    batch.fail(index, error)
            self._await(batch)
        finally:
            with self._senders_lock:
                self._senders -= 1
        return batch.results

    def _await(self, batch: _Batch) -> None:
        """Wait for the batch's delivery reports. A lone sender flushes: librdkafka then
        sends at once instead of waiting ``linger`` for more records, as a plain
        client's ``flush`` does. With other senders at work, a flush would also wait
        for their records (and might never see the queue empty): poll instead, which
        lets ``linger`` gather everyone's records into shared batches."""
        producer = self._producer
        while not batch.done.is_set():
            with self._senders_lock:
                alone = self._senders == 1
            if alone:
                producer.flush(self.settings.request_timeout)
            else:
                producer.poll(_SHARED_POLL)

    def _produce_when_room(self, producer: ProducerClient, topic: str, body: bytes, *,
                           key: bytes | None, headers: list[tuple[str, bytes]] | None,
                           on_delivery: functools.partial[None]) -> None:
        """Produce after a ``BufferError``: the client's local queue was full, nothing
        of this message left yet. Serving delivery reports makes room; give up after
        ``request_timeout``."""
        deadline = time.monotonic() + self.settings.request_timeout
        while True:
            producer.poll(_POLL)
            try:
                producer.produce(topic, value=body, key=key, headers=headers,
                                 on_delivery=on_delivery)
                return
            except BufferError:
                if time.monotonic() > deadline:
                    raise

    def _require_topic(self, topic: str) -> None:
        """Fail a send to a missing topic at once (DestinationNotFound) instead of after
        librdkafka's metadata timeout; the answer is cached per topic."""
        if topic not in self._topics:
            self._admin.partitions(topic)
            self._topics.add(topic)

    # -- consuming ----------------------------------------------------------------------
    def subscribe(self, destination: str, group: str, options: SubscriptionOptions
                  ) -> Subscription:
        self._check_open()
        if options.visibility_timeout is not None:
            raise InvalidRequest("Kafka has no per-message visibility timeout")
        starts = self._declare(destination, group, self._admin.partitions(destination))
        self._topics.add(destination)
        settings = self.settings
        admin = self._admin

        def make_consumer(on_commit: Any, on_error: Any) -> ConsumerClient:
            return self._clients.consumer(settings.consumer(
                group, LIBRARY_LOG, on_error, on_commit))

        def started() -> None:
            admin.forget_group(_declarations.side_group(destination, group))

        def offsets(partitions: Sequence[int] | None, which: Which) -> dict[int, int]:
            if partitions is None:
                partitions = admin.partitions(destination)
            return admin.offsets(destination, partitions, which)

        return KafkaSubscription(destination, group, make_consumer, settings.request_timeout,
                                 offsets, starts=starts, started=started,
                                 acked_unsent=options.acked_unsent,
                                 finish_running=options.finish_running,
                                 revoke_wait=settings.revoke_wait)

    def _declare(self, topic: str, group: str, partitions: Sequence[int]) -> dict[int, int]:
        """Give ``group`` a start (the current end) on every partition of ``topic`` that
        has none, so it receives everything sent from now on (contract 11); the starts
        its member must commit itself, where Kafka would not take them from outside
        (see :mod:`messaging_kafka._declarations`)."""
        with self._declare_lock:
            return _declarations.declare(self._admin, topic, group, partitions)

    # -- administration -----------------------------------------------------------------
    def create(self, destination: str, partitions: int, groups: Sequence[str],
               options: Mapping[str, object]) -> None:
        self._check_open()
        unknown = sorted(set(options) - CREATE_OPTIONS)
        if unknown:
            raise InvalidRequest(f"unknown Kafka create options {unknown}; known: "
                                 f"{sorted(CREATE_OPTIONS)}")
        replication = options.get("replication_factor", -1)
        if isinstance(replication, bool) or not isinstance(replication, int) or (
                replication < 1 and replication != -1):
            raise InvalidRequest(f"replication_factor must be an int >= 1, got {replication!r}")
        config = options.get("config", {})
        if not isinstance(config, Mapping):
            raise InvalidRequest("config must be a mapping of topic settings, e.g. "
                                 "{'retention.ms': '604800000'}")
        existing = self._admin.create_topic(destination, partitions, replication,
                                            {str(k): str(v) for k, v in config.items()})
        self._topics.add(destination)
        if len(existing) < partitions:
            # create is idempotent and never adds partitions (that moves keys to other
            # partitions), but fewer than asked is less parallelism than the caller
            # plans for: said, not silently kept.
            log.warning("kafka: topic %r exists with %d partition(s), fewer than the %d "
                        "asked for; it is kept as it is (to add partitions, which moves "
                        "keys to other partitions: kafka-topics.sh --alter --partitions %d)",
                        destination, len(existing), partitions, partitions)
        for group in groups:
            self._declare(destination, group, existing)

    def delete(self, destination: str) -> None:
        """Delete the topic; Kafka drops every group's committed offsets of it."""
        self._check_open()
        self._topics.discard(destination)
        self._admin.delete_topic(destination)

    def depth(self, destination: str, group: str) -> int:
        self._check_open()
        partitions = self._admin.partitions(destination)
        positions = _declarations.positions(self._admin, destination, group, partitions)
        if all(offset < 0 for offset, _ in positions.values()):
            raise KafkaException(KafkaError(
                KafkaError.GROUP_ID_NOT_FOUND,
                f"group {group!r} has no position on {destination!r}"))
        ends = self._admin.offsets(destination, partitions, "latest")
        starts = self._admin.offsets(
            destination, [p for p, (offset, _) in positions.items() if offset < 0], "earliest")
        total = 0
        for partition, (offset, metadata) in positions.items():
            if offset < 0:  # a partition added after the group: read from its start
                total += ends[partition] - starts[partition]
                continue
            record = decode(offset, metadata)
            total += max(0, ends[partition] - max(offset, record.end)) + len(record.unsettled)
        return total

    def destinations(self) -> list[str]:
        return [topic for topic in self._admin.topics() if not topic.startswith("__")]

    def groups(self, destination: str) -> list[str]:
        partitions = self._admin.partitions(destination)
        names = self._admin.groups()
        found = {group for group in names if not _declarations.is_side(group) and any(
            offset >= 0 for offset, _ in
            self._admin.group_offsets(group, destination, partitions).values())}
        return sorted(found.union(_declarations.declared_on(destination, names)))

    # -- the rest -----------------------------------------------------------------------
    def error_code(self, error: BaseException) -> ErrorCode:
        return _errors.error_code(error)

    def as_native(self) -> ProducerClient:
        """The ``confluent_kafka.Producer``; ``admin_client`` is the ``AdminClient``."""
        return self._producer

    @property
    def admin_client(self) -> object:
        return self._admin.native()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            # Every send already waited for its reports; this serves stray callbacks.
            self._producer.flush(self.settings.request_timeout)
        finally:
            self._admin.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this Kafka connection is closed")

