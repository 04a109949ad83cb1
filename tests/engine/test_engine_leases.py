"""Leases: visibility timeout, attempt counts, stale settlements, extend, nack, close."""

from __future__ import annotations

from conftest import OpenEngine
from engine_support import ack_all, bodies, send, subscribe, take

from messaging.engine.clock import ManualClock
from messaging.engine.driver import EngineDriver


def test_an_unacked_delivery_returns_after_the_visibility_timeout(
    engine: EngineDriver, clock: ManualClock,
) -> None:
    engine.create("orders", 1, ["g"], {})
    slow = subscribe(engine, "orders", "g", visibility_timeout=10.0)
    other = subscribe(engine, "orders", "g", visibility_timeout=10.0)
    [sent_id] = send(engine, "orders", b"lease")
    first = take(slow)
    assert [(d.id, d.attempt) for d in first] == [(sent_id, 1)]

    clock.advance(9.9)
    assert take(other) == [], "redelivered before the visibility timeout"
    clock.advance(0.1)
    second = take(other)
    assert [(d.id, d.body, d.attempt) for d in second] == [(sent_id, b"lease", 2)]

    clock.advance(10.0)
    third = take(slow)
    assert [d.attempt for d in third] == [3]


def test_the_engine_default_visibility_timeout_applies(
    open_engine: OpenEngine, clock: ManualClock,
) -> None:
    engine = open_engine(visibility_timeout=5.0)
    engine.create("orders", 1, ["g"], {})
    subscription = subscribe(engine, "orders", "g")
    send(engine, "orders", b"x")
    take(subscription)

    clock.advance(4.9)
    assert take(subscription) == []
    clock.advance(0.1)
    assert [d.attempt for d in take(subscription)] == [2]


def test_a_stale_ack_is_ignored(engine: EngineDriver, clock: ManualClock) -> None:
    engine.create("orders", 1, ["g"], {})
    slow = subscribe(engine, "orders", "g", visibility_timeout=10.0)
    other = subscribe(engine, "orders", "g", visibility_timeout=10.0)
    send(engine, "orders", b"x")
    stale = take(slow)
    clock.advance(10.0)
    current = take(other)

    ack_all(slow, stale)  # the lease went to `other`: no effect, no error
    assert engine.depth("orders", "g") == 1
    slow.send_nacks([stale[0].ack_id], None)
    assert take(slow) == [], "a stale nack released another member's lease"

    ack_all(other, current)
    assert engine.depth("orders", "g") == 0


def test_an_ack_after_expiry_counts_while_nobody_took_the_message(
    engine: EngineDriver, clock: ManualClock,
) -> None:
    engine.create("orders", 1, ["g"], {})
    subscription = subscribe(engine, "orders", "g", visibility_timeout=10.0)
    send(engine, "orders", b"x")
    late = take(subscription)
    clock.advance(30.0)

    ack_all(subscription, late)

    assert engine.depth("orders", "g") == 0


def test_extend_keeps_the_delivery_from_other_members(
    engine: EngineDriver, clock: ManualClock,
) -> None:
    engine.create("orders", 1, ["g"], {})
    holder = subscribe(engine, "orders", "g", visibility_timeout=10.0)
    other = subscribe(engine, "orders", "g", visibility_timeout=10.0)
    send(engine, "orders", b"long job")
    held = take(holder)

    clock.advance(8.0)
    holder.extend([held[0].ack_id], 20.0)
    clock.advance(19.0)
    assert take(other) == [], "redelivered although extended"
    clock.advance(1.0)
    assert [d.attempt for d in take(other)] == [2]


def test_extend_after_expiry_takes_the_lease_back_if_still_free(
    engine: EngineDriver, clock: ManualClock,
) -> None:
    engine.create("orders", 1, ["g"], {})
    holder = subscribe(engine, "orders", "g", visibility_timeout=10.0)
    other = subscribe(engine, "orders", "g", visibility_timeout=10.0)
    send(engine, "orders", b"x")
    held = take(holder)
    clock.advance(11.0)

    holder.extend([held[0].ack_id], 10.0)

    assert take(other) == []
    ack_all(holder, held)
    assert engine.depth("orders", "g") == 0


def test_extend_of_a_stale_lease_changes_nothing(
    engine: EngineDriver, clock: ManualClock,
) -> None:
    engine.create("orders", 1, ["g"], {})
    slow = subscribe(engine, "orders", "g", visibility_timeout=10.0)
    other = subscribe(engine, "orders", "g", visibility_timeout=10.0)
    send(engine, "orders", b"x")
    stale = take(slow)
    clock.advance(10.0)
    take(other)

    slow.extend([stale[0].ack_id], 100.0)
    clock.advance(10.0)

    assert [d.attempt for d in take(slow)] == [3], "a stale extend held the message back"


def test_nack_makes_it_deliverable_again_with_attempt_plus_one(engine: EngineDriver) -> None:
    engine.create("orders", 1, ["g"], {})
    subscription = subscribe(engine, "orders", "g")
    send(engine, "orders", b"again", key="k", headers={"h": "v"})
    first = take(subscription)

    subscription.send_nacks([first[0].ack_id], None)
    ack_all(subscription, first)  # the nack ended that lease: a late ack is stale
    assert engine.depth("orders", "g") == 1
    second = take(subscription)

    assert [(d.id, d.body, d.key, d.headers, d.attempt) for d in second] == [
        (first[0].id, b"again", "k", {"h": "v"}, 2)]


def test_nack_with_delay_is_not_redelivered_early(
    engine: EngineDriver, clock: ManualClock,
) -> None:
    engine.create("orders", 1, ["g"], {})
    subscription = subscribe(engine, "orders", "g")
    send(engine, "orders", b"retry me")
    first = take(subscription)

    subscription.send_nacks([first[0].ack_id], 5.0)
    clock.advance(4.9)
    assert take(subscription) == []
    clock.advance(0.1)
    assert [d.attempt for d in take(subscription)] == [2]


def test_closing_a_subscription_gives_back_what_it_holds(engine: EngineDriver) -> None:
    engine.create("orders", 1, ["g"], {})
    leaving = subscribe(engine, "orders", "g", visibility_timeout=600.0)
    staying = subscribe(engine, "orders", "g")
    send(engine, "orders", b"a", b"b")
    held = take(leaving)
    ack_all(leaving, held[:1])

    leaving.close()
    leaving.close()  # idempotent

    again = take(staying)
    assert [(d.body, d.attempt) for d in again] == [(b"b", 2)]


def test_timestamp_and_position_describe_the_message(
    engine: EngineDriver, clock: ManualClock,
) -> None:
    engine.create("orders", 1, ["g"], {})
    ids = send(engine, "orders", b"a", b"b")

    got = take(subscribe(engine, "orders", "g"))

    assert [d.id for d in got] == ids
    assert [d.position for d in got] == ids
    assert int(ids[1]) > int(ids[0])
    assert got[0].timestamp is not None
    assert got[0].timestamp.timestamp() == clock.time()
    assert got[0].destination == "orders"
    assert bodies(got) == [b"a", b"b"]
