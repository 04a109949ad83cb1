"""Soak: 10,000 messages through 4 competing members (threads) of one group, with some
messages nacked and some abandoned (held unsettled until the visibility timeout passes
or their member closes and reopens its consumer). In the end every message is acked, and
after de-duplicating redeliveries by ``message.id`` each was processed exactly once.

Bounded in time: the test fails when it has not finished within
``messaging_timing.soak_deadline`` seconds. A one-line summary (sent, delivered,
redeliveries, seconds) goes to the terminal summary and the junit property
``messaging_report``.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

import pytest

import messaging
from messaging_contracts.helpers import MakeDestination, MakeGroup, Timing, redact, wait_for

pytestmark = [pytest.mark.messaging_contract("soak"), pytest.mark.slow]

TOTAL = 10_000
MEMBERS = 4
NACK_EVERY = 53  # on first delivery, messages i % 53 == 0 are nacked ...
ABANDON_EVERY = 97  # ... and i % 97 == 0 abandoned (never settled by that member)
RECYCLE_AFTER = 1_500  # a member closes and reopens its consumer after this many


@dataclasses.dataclass
class _Tally:
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    acked: dict[str, set[int]] = dataclasses.field(default_factory=dict)
    acked_bodies: set[int] = dataclasses.field(default_factory=set)
    delivered: int = 0
    redelivered: int = 0
    nacked: int = 0
    abandoned: int = 0
    recycled: int = 0
    errors: list[BaseException] = dataclasses.field(default_factory=list)


def _member(open_consumer: Callable[[], messaging.Consumer], tally: _Tally,
            done: threading.Event, deadline: float) -> None:
    consumer = open_consumer()
    held: list[messaging.Message] = []
    handled = 0
    try:
        while not done.is_set() and time.monotonic() < deadline:
            batch = consumer.receive(max_messages=50, timeout=0.2)
            if batch:
                handled += len(batch)
                _handle(consumer, batch, held, tally, done)
            if handled >= RECYCLE_AFTER or (held and not batch):
                consumer.close()  # gives back what it abandoned
                consumer = open_consumer()
                with tally.lock:
                    tally.recycled += 1
                held.clear()
                handled = 0
    except BaseException as error:
        with tally.lock:
            tally.errors.append(error)
        done.set()
    finally:
        consumer.close()


def _handle(consumer: messaging.Consumer, batch: list[messaging.Message],
            held: list[messaging.Message], tally: _Tally, done: threading.Event) -> None:
    done_now: list[messaging.Message] = []
    nacked = abandoned = 0
    for message in batch:
        index = int(message.body)
        if message.attempt == 1 and index % ABANDON_EVERY == 0:
            held.append(message)
            abandoned += 1
        elif message.attempt == 1 and index % NACK_EVERY == 0:
            message.nack(requeue=True)
            nacked += 1
        else:
            done_now.append(message)
    consumer.ack_many(done_now)
    with tally.lock:
        tally.delivered += len(batch)
        tally.redelivered += sum(m.attempt > 1 for m in batch)
        tally.nacked += nacked
        tally.abandoned += abandoned
        for message in done_now:
            tally.acked.setdefault(message.id, set()).add(int(message.body))
            tally.acked_bodies.add(int(message.body))
        if len(tally.acked_bodies) >= TOTAL:
            done.set()


def test_soak_every_message_processed_exactly_once_after_dedup(
    *, messaging_client: messaging.Client, messaging_url: str,
    messaging_make_destination: MakeDestination, messaging_group: MakeGroup,
    messaging_timing: Timing, messaging_report: Callable[[str], None],
) -> None:
    group = messaging_group()
    destination = messaging_make_destination(partitions=MEMBERS, groups=[group])
    caps = messaging_client.capabilities_for(destination)
    visibility = max(2.0, messaging_timing.visibility) if caps.visibility_timeout else None
    started = time.monotonic()
    deadline = started + messaging_timing.soak_deadline
    producer = messaging_client.producer()
    sent_ids: list[str] = []
    for start in range(0, TOTAL, 500):
        sent_ids += producer.send_many(
            destination, [str(i).encode() for i in range(start, min(TOTAL, start + 500))])

    def open_consumer() -> messaging.Consumer:
        return messaging_client.consumer(destination, group, visibility_timeout=visibility,
                                         prefetch=50)

    tally, done = _Tally(), threading.Event()
    members = [threading.Thread(target=_member, args=(open_consumer, tally, done, deadline),
                                name=f"contract-soak-{n}", daemon=True)
               for n in range(MEMBERS)]
    for member in members:
        member.start()
    for member in members:
        member.join(timeout=max(1.0, deadline - time.monotonic()) + 30)
    seconds = time.monotonic() - started

    # Named as the outcome table names the backend (the URL as given, redacted).
    summary = (f"soak {redact(messaging_url)}: sent={TOTAL} delivered={tally.delivered} "
               f"redeliveries={tally.redelivered} nacked={tally.nacked} "
               f"abandoned={tally.abandoned} recycled={tally.recycled} "
               f"seconds={seconds:.1f}")
    messaging_report(summary)  # also a junit property of the test

    assert not tally.errors, f"a member failed: {tally.errors[0]!r}"
    assert not any(m.is_alive() for m in members), "a member did not stop"
    missing = set(range(TOTAL)) - tally.acked_bodies
    assert not missing, (f"{len(missing)} messages never acked within "
                         f"{messaging_timing.soak_deadline:.0f} s, e.g. {sorted(missing)[:10]}")
    assert len(tally.acked) == TOTAL, "distinct message ids acked"
    assert {i: b for i, b in tally.acked.items() if len(b) != 1} == {}, "one id, two bodies"
    assert set(tally.acked) == set(sent_ids), "acked ids differ from the ids send returned"
    assert tally.nacked > 0, "the soak nacked nothing"
    assert tally.abandoned > 0, "the soak abandoned nothing"
    assert tally.redelivered >= tally.nacked + tally.abandoned
    assert wait_for(lambda: messaging_client.admin.depth(destination, group) == 0,
                    messaging_timing.deliver), "depth is not 0 after every message was acked"
