"""One group member: a confluent-kafka ``Consumer`` subscribed to one topic.

Delivery semantics
------------------
* The member joins the group on its first ``receive_batch`` (the driver has already
  committed the group's starting offsets, so nothing sent after ``subscribe`` is missed).
  Partitions are assigned with the cooperative-sticky assignor: a rebalance revokes only
  the partitions that move.
* ``receive_batch`` hands out fetched records in offset order per partition, rotating
  over partitions. After handing out, it commits asynchronously the group's delivery
  record (see :mod:`messaging_kafka._offsets`), so a member that dies holding messages
  leaves ``attempt`` counts behind for the next owner.
* Read-ahead (decision 0108): an ack that follows a receive which came back full, and
  leaves nothing handed out unsettled (a loop that acked its whole batch), takes the
  next batch (as many as that receive asked for) from what the client fetched, before
  its commit, so the commit records that batch's delivery too and the next receive
  hands it out without a commit of its own. A nack, seek or revocation (and so
  ``close``) first gives a read-ahead back uncounted; a member killed while it holds
  one leaves it counted (``attempt`` 2 for the next owner, like a dead RabbitMQ
  consumer's prefetched messages).
* ``send_acks`` settles records and commits the contiguous prefix of each partition plus
  the record of what lies above it, synchronously: an ack has reached the broker when
  it returns. Acks from several threads that wait for the same commit share it.
  The exception: while the group rebalances the coordinator refuses commits
  (``REBALANCE_IN_PROGRESS``, ``ILLEGAL_GENERATION``, ...); the acks then stay recorded
  and go with the member's next commit (the next receive, ack, revocation or close),
  and if the partition moves first, its unacked and not-yet-committed messages are
  delivered again to the next owner with ``attempt`` + 1.
* ``send_nacks`` puts records back at their place in their partition's order, in this
  member (Kafka has no per-message requeue); they are handed out again first. With a
  delay the partition waits (it is paused at the client) until the delay has passed:
  nothing behind the nacked message overtakes it (seek-back semantics).
* A record carrying ``x-deliver-at`` (a delayed send) waits until then without holding
  up the records behind it.
* On revocation the member first stops holding the revoked partitions' records (the
  worker then starts none of them) and waits, at most ``revoke_wait`` seconds, for the
  worker's handlers still running on them (``SubscriptionOptions.finish_running``).
  Then it commits what it settled of them, the acks the portable layer has not sent
  yet included (``SubscriptionOptions.acked_unsent``: a worker's batch waiting for
  this commit's turn); what it held unsettled goes to the next owner. ``close``
  commits, then leaves the group.
* ``seek`` moves the partitions this member is assigned; called before the member has
  any, it applies to the partitions of its first assignment. Records held from before
  the seek are dropped (their acks are ignored) and the new position is committed.

Threads
-------
confluent-kafka lets only one call into a ``Consumer`` run at a time: a commit from
another thread waits until ``consume`` returns. So ``receive_batch`` waits for records
in short slices (``SLICE``) and, between slices, lets waiting threads (acks, seek,
close) in first. Every call into the consumer goes through one gate.

Errors
------
Native errors propagate (``KafkaException``, classified by ``error_code``). A fetch
error, a lost broker (``_ALL_BROKERS_DOWN``), a refused authentication or a failed
background commit is raised from the next ``receive_batch``. A commit that fails while
partitions are revoked (the group moved on) is logged with its consequence (the next
owner redelivers), because the revocation happens inside the client, not in a call of
the user's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any, cast

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from messaging.driver import AckId, Delivery, SeekTarget, Subscription, no_running_handlers
from messaging_kafka import _wire
from messaging_kafka._client import ConsumerClient, Which, topic_partitions
from messaging_kafka._errors import InvalidRequest, rebalancing
from messaging_kafka._offsets import PartitionState, Taken, decode

log = logging.getLogger("messaging.kafka")

MAX_CONSUME = 1_000_000  # confluent-kafka's bound on consume(num_messages)

SLICE = 0.02
"""Longest single wait inside the client while other threads may need it (seconds)."""
_YIELD_LIMIT = 0.2
_SURFACED = frozenset({KafkaError._ALL_BROKERS_DOWN, KafkaError._AUTHENTICATION,
                       KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError._SSL})
_TOPIC_GONE = frozenset({KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC,
                         KafkaError.UNKNOWN_TOPIC_ID})
_OFFSET_BEGINNING = -2
_USE_COMMITTED = -1001

Offsets = Callable[[Sequence[int] | None, Which], Mapping[int, int]]
"""offsets(partitions, which): the first (``earliest``) or end (``latest``) offset of
each of ``partitions`` (None: every partition of the topic)."""
ConsumerFactory = Callable[[Callable[..., None], Callable[[KafkaError], None]], ConsumerClient]


class KafkaSubscription(Subscription):
    """One member of ``group`` on ``topic`` (see the module documentation)."""

    def __init__(self, topic: str, group: str, make_consumer: ConsumerFactory,
                 request_timeout: float, offsets: Offsets, *,
                 starts: Mapping[int, int] | None = None,
                 started: Callable[[], None] = lambda: None,
                 acked_unsent: Callable[[], list[AckId]] = list,
                 finish_running: Callable[[Callable[[AckId], bool], float], None] = (
                     no_running_handlers),
                 revoke_wait: float = 10.0) -> None:
        """``offsets``: the first or end offsets of partitions of the topic now, read
        by the driver's admin client in one request (a consumer's watermark query would
        take one per partition). ``starts``: where the group begins on partitions it has
        no committed offset for yet (the driver could not commit them because the group
        had members); ``started`` is called once they are all committed as the group's
        own (the driver then deletes the side group that kept them). ``acked_unsent``:
        ``SubscriptionOptions.acked_unsent``, settled with a revocation's commit;
        ``finish_running``: its wait for running handlers, at most ``revoke_wait``
        seconds, before that."""
        self.topic = topic
        self.group = group
        self._timeout = request_timeout
        self._offsets = offsets
        self._starts = dict(starts or {})
        self._started = started
        self._acked_unsent = acked_unsent
        self._finish_running = finish_running
        self._revoke_wait = revoke_wait
        # Partitions a revocation is giving away: no longer held, though their states
        # stay until the revocation's commit (read without the lock: a rebinding).
        self._leaving: frozenset[int] = frozenset()
        self._state = threading.Lock()  # partition states and flags
        self._gate = threading.Lock()  # one call into the consumer at a time
        self._waiting = threading.Condition()
        self._waiters = 0
        self._commit_lock = threading.Lock()  # one synchronous ack commit at a time
        self._parts: dict[int, PartitionState] = {}
        self._epochs = itertools.count(1)
        # A seek made before the first assignment: its target, or for "end" the offsets
        # that were the end when it was made.
        self._pending_seek: SeekTarget | Mapping[int, int] | None = None
        self._unloaded: set[int] = set()
        self._paused_unloaded: set[int] = set()
        self._deferred = False
        self._error: BaseException | None = None
        self._gone: KafkaException | None = None  # the topic was deleted
        # When the member began rejoining after a cooperative revocation, until the
        # assignment that ends that rebalance (monotonic; None: none under way).
        self._rebalance_started: float | None = None
        self._revoked = False
        self._ack_seq = 0
        self._committed_seq = 0
        self._rotation = 0
        # Read-ahead (decision 0108): records an ack took for the next receive, so that
        # the ack's commit records their delivery.
        self._ahead: list[Taken] = []
        self._ahead_recorded = False  # the group's record on Kafka counts them
        self._ahead_count = 0  # what the last receive asked for, if it came back full
        self._closed = False
        self._consumer = make_consumer(self._on_commit, self._on_error)
        self._consumer.subscribe([topic], on_assign=self._on_assign,
                                 on_revoke=self._on_revoke, on_lost=self._on_lost)

    # -- receiving ----------------------------------------------------------------------
    def receive_batch(self, max_messages: int, timeout: float) -> list[Delivery]:
        self._check_open()
        # confluent-kafka refuses to consume more than MAX_CONSUME a call; a receive
        # returns "up to" what was asked, so a larger ask (and its read-ahead) takes that.
        max_messages = min(max_messages, MAX_CONSUME)
        deadline = time.monotonic() + max(0.0, timeout)
        polled = False
        while True:
            self._raise_error()
            if self._gone is not None and not self._parts:
                raise self._gone
            if self._unloaded:
                self._load_unloaded()
            with self._state:
                taken, recorded = self._next_batch(max_messages)
                self._ahead_count = max_messages if len(taken) >= max_messages else 0
            if taken:
                if not recorded:
                    # The record goes out first: the broker stores it while the Delivery
                    # objects are built, and an ack's commit (which the broker handles
                    # after it) waits less for it.
                    self._record_deliveries()
                return self._deliveries(taken)
            remaining = deadline - time.monotonic()
            if polled and remaining <= 0:
                return []
            wait = max(0.0, min(remaining, SLICE, self._until_due(time.time())))
            self._poll(max_messages, wait)
            polled = True

    def _poll(self, max_messages: int, wait: float) -> None:
        error: BaseException | None = None
        with self._gate:
            if self._ahead:
                return  # an ack took the next batch while this thread waited for the gate
            consumer = self._consumer
            messages = consumer.consume(max_messages, 0)
            if not messages and wait > 0:
                messages = consumer.consume(1, wait)
                if messages and max_messages > 1:
                    messages.extend(consumer.consume(max_messages - 1, 0))
            error = self._absorb(messages)
            self._maintain(consumer)
        self._yield_to_waiters()
        if error is not None:
            raise error

    def _absorb(self, messages: list[Any]) -> BaseException | None:
        """Hand fetched records to their partitions' states. A fetch error is returned,
        to be raised after every good record of the batch is safely held. (The hot path:
        one pass per record fetched, so locals are bound and records carrying the same
        headers as the one before share its ``x-deliver-at`` reading.)"""
        error: BaseException | None = None
        deliver_at = _wire.deliver_at
        last_headers: object = None
        last_due = 0.0
        with self._state:
            parts = self._parts
            for message in messages:
                failure = message.error()
                if failure is not None:
                    if failure.code() in _TOPIC_GONE:
                        # The topic was deleted (its partitions were lost just before):
                        # every receive says so, as on every backend, until it returns.
                        self._gone = KafkaException(failure)
                    if failure.code() != KafkaError._PARTITION_EOF and error is None:
                        error = KafkaException(failure)
                    continue
                state = parts.get(message.partition())
                if state is None:
                    continue  # no longer ours (or not loaded): its owner reads it
                headers = message.headers()  # read once: confluent-kafka copies them
                if not headers:
                    due = 0.0
                elif headers == last_headers:
                    due = last_due
                else:
                    due = last_due = deliver_at(headers)
                    last_headers = headers
                state.admit(message.offset(), (message, headers), due)
        return error

    def _next_batch(self, limit: int) -> tuple[list[Taken], bool]:
        """What a receive hands out: what an ack read ahead, else ready records; and
        whether the group's record counts their delivery already. Call with the state
        lock held."""
        ahead = self._ahead
        if ahead:
            self._ahead = ahead[limit:]
            return ahead[:limit], self._ahead_recorded
        return self._take(limit, time.time()), False

    def _take(self, limit: int, now: float) -> list[Taken]:
        """Ready records, rotating over partitions. Call with the state lock held."""
        out: list[Taken] = []
        states = list(self._parts.values())
        if not states:
            return out
        start = self._rotation % len(states)
        self._rotation += 1
        for state in states[start:] + states[:start]:
            state.take(now, limit, out)
            if len(out) >= limit:
                break
        return out

    def _read_ahead(self, consumer: ConsumerClient) -> None:
        """After a receive that came back full, once everything handed out is settled
        (a loop that acked its whole batch), take the next batch now, so that the ack's
        commit about to be made records its delivery and the next receive needs no
        commit of its own (decision 0108). The gate is held."""
        with self._state:
            count = self._ahead_count
            if not count or self._ahead or any(
                    state.holds_out() for state in self._parts.values()):
                return
        try:
            messages = consumer.consume(count, 0)  # what the client holds: no waiting
        except KafkaException as failure:
            self._error = failure  # the next receive raises it: this ack goes on
            return
        error = self._absorb(messages)
        if error is not None:
            self._error = error
        with self._state:
            if not self._ahead:
                self._ahead = self._take(count, time.time())
                self._ahead_recorded = False

    def _give_back_ahead(self, partitions: Collection[int] | None) -> None:
        """Put the read-ahead records of ``partitions`` (all when None) back at their
        place, their delivery uncounted, before anything that would hand out, record or
        drop them out of order (a nack, a seek, a revocation, close). Call with the state
        lock held."""
        kept: list[Taken] = []
        for taken in self._ahead:
            partition, epoch, offset = taken[0], taken[1], taken[2]
            if partitions is not None and partition not in partitions:
                kept.append(taken)
            elif (state := self._parts.get(partition)) is not None and state.epoch == epoch:
                state.give_back(offset)
        self._ahead = kept

    def _deliveries(self, taken: list[Taken]) -> list[Delivery]:
        """Delivery objects for what ``_next_batch`` handed out (the hot path: locals bound,
        helpers inlined). Records of one batch mostly share their headers and often
        their timestamp: those are decoded once per batch, and every Delivery gets its
        own copy of the headers dict, which its receiver may change."""
        topic = self.topic
        prefix = topic + ":"
        utc = dt.UTC
        from_ms = dt.datetime.fromtimestamp
        decode_headers = _wire.decode_headers
        last_raw: object = None
        last_headers: dict[str, str] = {}
        last_millis = -1
        last_stamp: dt.datetime | None = None
        out: list[Delivery] = []
        append = out.append
        for partition, epoch, offset, (record, raw), attempt in taken:
            key = record.key()
            kind, millis = record.timestamp()
            if not kind or millis < 0:
                stamp = None
            elif millis == last_millis:
                stamp = last_stamp
            else:
                try:
                    stamp = from_ms(millis / 1000.0, utc)
                except (OverflowError, ValueError, OSError):
                    # Any CreateTime a plain producer chose, past year 9999 say: the
                    # record is still delivered, without a timestamp, rather than raising
                    # after the batch was taken (which would strand it as in flight).
                    stamp = None
                last_stamp, last_millis = stamp, millis
            if not raw:
                headers = {}
            elif raw == last_raw:
                headers = last_headers.copy()
            else:
                last_headers = decode_headers(raw)
                last_raw = raw
                headers = last_headers.copy()
            position = f"{partition}:{offset}"
            # Positional: keywords cost twice as much here. The field order is pinned by
            # a unit test (test_delivery_fields_are_in_the_order_the_adapter_passes).
            append(Delivery((partition, offset, epoch), record.value() or b"",
                            prefix + position, attempt, topic,
                            None if key is None else key.decode("utf-8", "surrogateescape"),
                            headers, stamp, position))
        return out

    def _until_due(self, now: float) -> float:
        with self._state:
            dues = [due for state in self._parts.values()
                    if (due := state.next_due(now)) is not None]
        return min(dues) - now if dues else math.inf

    # -- settlement ---------------------------------------------------------------------
    def send_acks(self, ack_ids: Sequence[AckId]) -> None:
        self._check_open()
        settled = False
        with self._state:
            parts = self._parts
            for ack_id in ack_ids:
                if not (isinstance(ack_id, tuple) and len(ack_id) == 3):
                    raise InvalidRequest(f"{ack_id!r} is not an ack id of this adapter")
                partition, offset, epoch = ack_id
                state = parts.get(partition)
                if state is not None and state.epoch == epoch and state.ack(offset):
                    settled = True
                else:
                    log.debug("kafka: ack of %s:%d:%d ignored: the partition moved or was "
                              "sought since", self.topic, partition, offset)
            self._ack_seq += 1
            mine = self._ack_seq
        if settled:
            self._commit_acks(mine)

    def _commit_acks(self, mine: int) -> None:
        with self._commit_lock:
            if self._committed_seq >= mine:
                return  # a commit that began after this ack already carried it
            self._wait_out_rejoin()
            with self._using_consumer() as consumer:
                self._read_ahead(consumer)
                with self._state:
                    target = self._ack_seq
                    offsets = self._snapshot(None)
                    # This commit records the read-ahead: a receive may hand it out
                    # without one of its own, as soon as now (like a receive's own
                    # asynchronous commit, it is then on its way).
                    self._ahead_recorded = True
                if offsets and not self._commit(consumer, offsets):
                    with self._state:
                        # Not on Kafka yet: the next receive records the read-ahead.
                        self._ahead_recorded = False
                    return
            self._committed_seq = target

    def _wait_out_rejoin(self) -> None:
        """While the member rejoins (see ``_commit``), an ack's commit waits for the
        rebalance to end, so that it returns with its acks on Kafka, but without holding
        the gate for it: the receiving thread goes on meanwhile. The rebalance ends
        inside a consume call; where no other thread is receiving, this one makes those
        calls, in slices, keeping what they fetch for the next receive."""
        while self._rejoining():
            with self._using_consumer() as consumer:
                if not self._rejoining():
                    return
                error = self._absorb(consumer.consume(1, SLICE))
                if error is not None:
                    self._error = error  # the next receive raises it
            time.sleep(SLICE / 4)  # the receiving thread's turn at the gate

    def _rejoining(self) -> bool:
        """Inside the rejoin window (see ``_commit``), which a missed assignment cannot
        keep open for longer than ``request_timeout``."""
        started = self._rebalance_started
        return started is not None and time.monotonic() - started < self._timeout

    def holds(self, ack_id: AckId) -> bool:
        # Revocation, loss and seek each replace or drop the partition's state (a new
        # epoch): a record handed out before is then its next owner's (or sought past).
        partition, _offset, epoch = cast(tuple[int, int, int], ack_id)  # one of ours
        state = self._parts.get(partition)  # one dict read: no lock needed
        return state is not None and state.epoch == epoch and partition not in self._leaving

    def send_nacks(self, ack_ids: Sequence[AckId], delay: float | None) -> None:
        self._check_open()
        now = time.time()
        ids = list(_ack_ids(ack_ids))
        with self._state:
            self._give_back_ahead({partition for partition, _, _ in ids})
            for partition, offset, epoch in ids:
                state = self._parts.get(partition)
                if state is None or state.epoch != epoch or not state.nack(offset, now, delay):
                    log.debug("kafka: nack of %s:%d:%d ignored: the partition moved or was "
                              "sought since (its next owner delivers it again)", self.topic,
                              partition, offset)

    # -- seeking ------------------------------------------------------------------------
    def seek(self, target: SeekTarget) -> None:
        self._check_open()
        # A malformed position is refused at once, before waiting for the consumer.
        position = (_wire.parse_position(target, self.topic)
                    if isinstance(target, str) and target not in ("beginning", "end")
                    else None)
        with self._using_consumer() as consumer:
            with self._state:
                assigned = sorted(self._parts)
            if not assigned:
                if position is not None:
                    self._check_partition(position[0])
                # Assignments arrive only through the consumer, whose gate this holds.
                # "end" is the end now: what is sent once seek returns must be read,
                # however late the first assignment comes. The other targets name
                # offsets that do not move as messages arrive; they resolve then.
                pending = self._offsets(None, "latest") if target == "end" else target
                with self._state:
                    self._pending_seek = pending
                return
            targets = self._resolve(consumer, target, assigned, strict=True)
            with self._state:
                self._give_back_ahead(None)
                for partition, offset in targets.items():
                    state = self._parts.get(partition)
                    if state is not None:
                        state.reset(offset, next(self._epochs))
            for partition, offset in targets.items():
                consumer.seek(TopicPartition(self.topic, partition, offset))
            with self._state:
                offsets = self._snapshot(list(targets))
            if offsets:
                self._commit(consumer, offsets)

    def _check_partition(self, partition: int) -> None:
        """Refuse a position on a partition the topic does not have: kept for the first
        assignment, it would be dropped then without a word, like one on a partition
        another member is given."""
        count = len(self._offsets(None, "latest"))  # Kafka numbers them 0 to count - 1
        if partition >= count:
            raise InvalidRequest(f"{self.topic!r} has no partition {partition} (it has "
                                 f"{count}, from 0)")

    def _resolve(self, consumer: ConsumerClient, target: SeekTarget,
                 partitions: list[int], *, strict: bool) -> dict[int, int]:
        """Offsets of ``partitions`` for ``target``. A position names one partition;
        with ``strict`` it must be one of ``partitions``."""
        if isinstance(target, dt.datetime):
            # A time before 1970 is before every record: the broker refuses a negative
            # timestamp (UNSUPPORTED_VERSION), and 0 finds the first record.
            millis = max(0, round(target.timestamp() * 1000))
            found = consumer.offsets_for_times(
                [TopicPartition(self.topic, p, millis) for p in partitions], self._timeout)
            result = {tp.partition: tp.offset for tp in found}
            past = [partition for partition, offset in result.items() if offset < 0]
            if past:  # nothing at or after that time: the end
                result.update(self._offsets(past, "latest"))
            return result
        if target in ("beginning", "end"):
            return dict(self._offsets(partitions,
                                      "earliest" if target == "beginning" else "latest"))
        partition, offset = _wire.parse_position(str(target), self.topic)
        if partition not in partitions:
            if strict:
                raise InvalidRequest(
                    f"partition {partition} of {self.topic!r} is not assigned to this "
                    f"consumer (it has {partitions}); seek moves its own partitions")
            return {}
        # Kept within what the partition holds. Past its end (a hand-made position, or
        # one of a topic since made again) librdkafka would reset the fetch to the
        # beginning, and the partition's state would skip every record before the
        # position as seen already: the group would receive nothing until then. Before
        # its start (records gone with retention) the first kept record is next.
        first = self._offsets([partition], "earliest")[partition]
        end = self._offsets([partition], "latest")[partition]
        return {partition: min(max(offset, first), end)}

    # -- committing -----------------------------------------------------------------------
    def _snapshot(self, partitions: list[int] | None) -> list[TopicPartition]:
        """Offsets to commit for ``partitions`` (all when None) whose point changed;
        marks them sent. Call with the state lock held."""
        offsets: list[TopicPartition] = []
        for partition, state in self._parts.items():
            if partitions is not None and partition not in partitions:
                continue
            point = state.changed()
            if point is None:
                continue
            offsets.append(TopicPartition(self.topic, partition, point[0], point[1]))
            state.last_commit = point
        return offsets

    def _forget_sent(self, offsets: list[TopicPartition]) -> None:
        with self._state:
            for tp in offsets:
                state = self._parts.get(tp.partition)
                if state is not None:
                    state.last_commit = None

    def _commit(self, consumer: ConsumerClient, offsets: list[TopicPartition], *,
                mid_rebalance: bool = False) -> bool:
        """Commit synchronously (the gate held). False when the group is rebalancing:
        the state stays and goes with the next commit. Other failures raise.

        While the member rejoins after a cooperative revocation (the second rebalance
        KIP-429 makes), librdkafka holds a synchronous commit until that rebalance is
        over (seconds: a heartbeat interval and more) and then fails it, and the gate
        this holds stops the member's receiving meanwhile. So there it is not made at
        all, unless ``mid_rebalance`` (closing), and goes with the next commit after."""
        if not mid_rebalance and self._rejoining():
            self._forget_sent(offsets)
            self._deferred = True
            return False
        try:
            result = consumer.commit(offsets=offsets, asynchronous=False)
            failed = [tp.error for tp in result or [] if tp.error is not None]
            if failed:
                raise KafkaException(failed[0])
        except KafkaException as error:
            self._forget_sent(offsets)
            if rebalancing(error):
                log.info("kafka: commit on %r deferred, the group is rebalancing: %s",
                         self.topic, error)
                self._deferred = True
                return False
            raise
        return True

    def _record_deliveries(self) -> None:
        """Commit the delivery record asynchronously (never fails the receive: a
        failure is raised by the next one)."""
        with self._gate:
            with self._state:
                offsets = self._snapshot(None)
            if offsets:
                try:
                    self._consumer.commit(offsets=offsets, asynchronous=True)
                except KafkaException as error:
                    self._forget_sent(offsets)
                    if not rebalancing(error):
                        self._error = error
        self._yield_to_waiters()

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if error is None:
            return
        log.debug("kafka: background commit on %r failed: %s", self.topic, error)
        self._forget_sent([tp for tp in partitions or [] if tp.topic == self.topic])

    def _maintain(self, consumer: ConsumerClient) -> None:
        """Pause partitions a delayed nack blocks, resume them when it has passed, and
        send a deferred commit. The gate is held."""
        now = time.time()
        with self._state:
            pause = [p for p, s in self._parts.items() if s.blocked_until > now and not s.paused]
            resume = [p for p, s in self._parts.items() if s.paused and s.blocked_until <= now]
            pause += [p for p in self._unloaded if p not in self._paused_unloaded]
            for partition in pause:
                if partition in self._parts:
                    self._parts[partition].paused = True
                else:
                    self._paused_unloaded.add(partition)
            for partition in resume:
                self._parts[partition].paused = False
            offsets = self._snapshot(None) if self._deferred else []
            self._deferred = False
        if pause:
            consumer.pause(topic_partitions(self.topic, pause))
        if resume:
            consumer.resume(topic_partitions(self.topic, resume))
        if offsets:
            self._commit(consumer, offsets)

    # -- rebalancing (called by the client inside consume/close, the gate held) ---------
    def _on_assign(self, consumer: ConsumerClient, partitions: list[TopicPartition]) -> None:
        # Every rebalance ends with an assignment, maybe empty. One that follows a
        # revocation ends the first half of a cooperative rebalance: the member then
        # rejoins, and the second half ends with the next assignment (see _commit).
        self._rebalance_started = time.monotonic() if self._revoked else None
        self._revoked = False
        if not partitions or self._closed:
            # Nothing new (a cooperative rebalance tells every member, also those that
            # gain nothing), or a member leaving: the client serves a rebalance it had
            # queued inside close(), and would wait out the request timeout there
            # reading committed offsets of a consumer that is shutting down.
            return
        try:
            committed = consumer.committed(partitions, self._timeout)
        except KafkaException as error:
            log.warning("kafka: could not read the committed offsets of %s: %s (retried "
                        "on the next receive)", [tp.partition for tp in partitions], error)
            with self._state:
                self._unloaded.update(tp.partition for tp in partitions)
            self._error = error
            return
        states = {tp.partition: self._state_for(tp) for tp in committed}
        self._gone = None  # the topic is back (created again)
        with self._state:
            self._parts.update(states)
            seek, self._pending_seek = self._pending_seek, None
        targets = {p: self._starts.pop(p) for p, state in states.items()
                   if state.position is None and p in self._starts}
        declared = bool(targets)  # so far only starts: their side group goes once committed
        if seek is None and not targets:
            return
        try:
            if isinstance(seek, Mapping):
                targets.update({p: offset for p, offset in seek.items() if p in states})
            elif seek is not None:
                targets.update(self._resolve(consumer, seek, sorted(states), strict=False))
            with self._state:
                for partition, offset in targets.items():
                    states[partition].reset(offset, next(self._epochs))
            consumer.incremental_assign([
                TopicPartition(self.topic, tp.partition, targets.get(tp.partition,
                                                                     _USE_COMMITTED))
                for tp in partitions])
            with self._state:
                offsets = self._snapshot(list(targets))
            if offsets and self._commit(consumer, offsets) and declared and not self._starts:
                self._started()
        except Exception as error:  # raised by the next receive: not inside the client
            self._error = error

    def _state_for(self, tp: TopicPartition) -> PartitionState:
        offset = tp.offset if tp.offset >= 0 else None
        record = decode(offset, tp.metadata) if offset is not None else None
        return PartitionState(tp.partition, next(self._epochs), offset, record)

    def _on_revoke(self, consumer: ConsumerClient, partitions: list[TopicPartition]) -> None:
        revoked = [tp.partition for tp in partitions]
        self._revoked = True  # the member rejoins after this rebalance: see _on_assign
        # Handlers still running on these partitions finish first (bounded), and the
        # worker starts no more of them (holds is false from now): their acks then go
        # with this commit instead of the next owner doing that work again.
        leaving = self._leaving = frozenset(revoked)
        try:
            self._finish_running(
                lambda ack_id: isinstance(ack_id, tuple) and ack_id[0] in leaving,
                self._revoke_wait)
        except Exception:  # the hand-over goes on: inside the client, nobody to raise to
            log.exception("kafka: waiting for the handlers of revoked partitions %s of %r "
                          "failed", revoked, self.topic)
        # Acks the portable layer holds back (the worker's batch, waiting for the gate
        # this thread holds) go with this commit: else the next owner would do that
        # work again. Their send_acks comes later and finds the partition gone.
        acked = self._acked_unsent()
        with self._state:
            for partition, offset, epoch in _ack_ids(acked):
                state = self._parts.get(partition)
                if partition in revoked and state is not None and state.epoch == epoch:
                    state.ack(offset)
            self._give_back_ahead(revoked)
            offsets = self._snapshot(revoked)
            for partition in revoked:
                self._parts.pop(partition, None)
                self._unloaded.discard(partition)
                self._paused_unloaded.discard(partition)
            self._leaving = frozenset()  # gone from _parts: holds is false without it
        if not offsets:
            return
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as error:
            log.warning("kafka: commit of revoked partitions %s of %r failed (%s): their "
                        "next owner delivers again what was acked since the last commit",
                        revoked, self.topic, error)

    def _on_lost(self, consumer: ConsumerClient, partitions: list[TopicPartition]) -> None:
        lost = [tp.partition for tp in partitions]
        log.warning("kafka: partitions %s of %r were lost (this member was out of the group "
                    "too long, or the topic was deleted); their next owner delivers again "
                    "what was not committed", lost, self.topic)
        with self._state:
            self._give_back_ahead(lost)
            for partition in lost:
                self._parts.pop(partition, None)
                self._unloaded.discard(partition)
                self._paused_unloaded.discard(partition)

    def _load_unloaded(self) -> None:
        """Read the committed offsets the last assignment could not, and rewind."""
        with self._using_consumer() as consumer:
            with self._state:
                partitions = sorted(self._unloaded)
            if not partitions:
                return
            committed = consumer.committed(topic_partitions(self.topic, partitions),
                                           self._timeout)
            states = {tp.partition: self._state_for(tp) for tp in committed}
            with self._state:
                self._parts.update(states)
                self._unloaded.difference_update(states)
                self._paused_unloaded.difference_update(states)
            for partition, state in states.items():
                start = _OFFSET_BEGINNING if state.position is None else state.position
                consumer.seek(TopicPartition(self.topic, partition, start))
            consumer.resume(topic_partitions(self.topic, sorted(states)))

    def _on_error(self, error: KafkaError) -> None:
        """librdkafka's error callback (served inside consume)."""
        if error.code() in _SURFACED or error.fatal():
            self._error = KafkaException(error)
        else:
            log.debug("kafka consumer of %r: %s", self.topic, error)

    def _raise_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    # -- threads --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _using_consumer(self) -> Iterator[ConsumerClient]:
        """The gate, for any thread but the receiving one (which gives way to it)."""
        with self._waiting:
            self._waiters += 1
        try:
            with self._gate:
                yield self._consumer
        finally:
            with self._waiting:
                self._waiters -= 1
                self._waiting.notify_all()

    def _yield_to_waiters(self) -> None:
        with self._waiting:
            if self._waiters:
                self._waiting.wait_for(lambda: self._waiters == 0, _YIELD_LIMIT)

    # -- lifetime -------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        failure: BaseException | None = None
        with self._using_consumer() as consumer:
            with self._state:
                offsets = self._snapshot(None)
            try:
                if offsets and not self._commit(consumer, offsets, mid_rebalance=True):
                    log.warning("kafka: the closing member of %r could not commit, the group "
                                "is rebalancing: its partitions' next owners deliver again "
                                "what was settled since its last commit", self.topic)
            except KafkaException as error:
                failure = error
            finally:
                # Leaves the group: the client revokes every partition first, and the
                # revocation gives a read-ahead back; unsettled messages go to others.
                consumer.close()
        if failure is not None:
            raise failure

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"the consumer of {self.topic!r} is closed")

    def as_native(self) -> ConsumerClient:
        """The ``confluent_kafka.Consumer``. Calls on it must not run while this
        subscription receives (confluent-kafka serialises them)."""
        return self._consumer


def _ack_ids(ack_ids: Sequence[AckId]) -> Iterator[tuple[int, int, int]]:
    for ack_id in ack_ids:
        if not (isinstance(ack_id, tuple) and len(ack_id) == 3):
            raise InvalidRequest(f"{ack_id!r} is not an ack id of this adapter")
        yield ack_id
