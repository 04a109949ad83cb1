"""Per-key ordering inside a group, and priority among ready messages."""

from __future__ import annotations

from engine_support import ack_all, bodies, send, subscribe, take

from messaging.driver import OutgoingMessage
from messaging.engine.clock import ManualClock
from messaging.engine.driver import EngineDriver


def _interleaved(engine: EngineDriver, keys: list[str], per_key: int) -> None:
    engine.send_batch("orders", [
        OutgoingMessage(body=f"{key}:{n}".encode(), key=key)
        for n in range(per_key) for key in keys
    ])


def test_one_consumer_gets_a_run_of_one_key_in_order(engine: EngineDriver) -> None:
    engine.create("orders", 3, ["g"], {})
    _interleaved(engine, ["a", "b"], 3)

    got = take(subscribe(engine, "orders", "g"))

    assert bodies(got) == [b"a:0", b"b:0", b"a:1", b"b:1", b"a:2", b"b:2"]


def test_a_key_held_by_one_member_is_blocked_for_the_others(engine: EngineDriver) -> None:
    engine.create("orders", 1, ["g"], {})
    first, second = subscribe(engine, "orders", "g"), subscribe(engine, "orders", "g")
    send(engine, "orders", b"k1", b"k2", key="k")
    send(engine, "orders", b"free")

    held = take(first, 1)
    assert bodies(held) == [b"k1"]
    assert bodies(take(second)) == [b"free"], "k2 went past k1, which is still in flight"

    ack_all(first, held)
    assert bodies(take(second)) == [b"k2"]


def test_the_holder_may_take_the_next_message_of_its_key(engine: EngineDriver) -> None:
    engine.create("orders", 1, ["g"], {})
    holder = subscribe(engine, "orders", "g")
    send(engine, "orders", b"k1", b"k2", b"k3", key="k")

    first = take(holder, 1)
    rest = take(holder)

    assert bodies(first) + bodies(rest) == [b"k1", b"k2", b"k3"]


def test_a_nacked_message_blocks_its_key_until_redelivered(engine: EngineDriver) -> None:
    engine.create("orders", 1, ["g"], {})
    first, second = subscribe(engine, "orders", "g"), subscribe(engine, "orders", "g")
    send(engine, "orders", b"k1", b"k2", key="k")
    held = take(first, 1)

    first.send_nacks([held[0].ack_id], 30.0)

    assert take(second) == [], "k2 overtook the nacked k1 waiting for its retry"
    assert take(first) == []


def test_redelivery_after_the_visibility_timeout_keeps_the_order(
    engine: EngineDriver, clock: ManualClock,
) -> None:
    engine.create("orders", 1, ["g"], {})
    crashed = subscribe(engine, "orders", "g", visibility_timeout=10.0)
    survivor = subscribe(engine, "orders", "g", visibility_timeout=10.0)
    send(engine, "orders", b"k1", b"k2", b"k3", key="k")
    assert bodies(take(crashed, 2)) == [b"k1", b"k2"]
    assert take(survivor) == []

    clock.advance(10.0)
    again = take(survivor)

    assert bodies(again) == [b"k1", b"k2", b"k3"]
    assert [d.attempt for d in again] == [2, 2, 1]


def test_messages_without_a_key_are_unconstrained(engine: EngineDriver) -> None:
    engine.create("orders", 1, ["g"], {})
    first, second = subscribe(engine, "orders", "g"), subscribe(engine, "orders", "g")
    send(engine, "orders", b"1", b"2", b"3")

    assert bodies(take(first, 1)) == [b"1"]
    assert bodies(take(second, 1)) == [b"2"]
    assert bodies(take(second, 1)) == [b"3"]


def test_higher_priority_first_then_send_order(engine: EngineDriver) -> None:
    engine.create("orders", 1, ["g"], {})
    for level in (0, 5, 9):
        send(engine, "orders", f"p{level}-a".encode(), f"p{level}-b".encode(),
             priority=level)
    send(engine, "orders", b"none")

    got = take(subscribe(engine, "orders", "g"))

    assert bodies(got) == [b"p9-a", b"p9-b", b"p5-a", b"p5-b", b"p0-a", b"p0-b", b"none"]


def test_priority_never_reorders_one_key(engine: EngineDriver) -> None:
    engine.create("orders", 1, ["g"], {})
    send(engine, "orders", b"low-first", key="k", priority=0)
    send(engine, "orders", b"high-second", key="k", priority=9)
    send(engine, "orders", b"high-free", priority=9)

    subscription = subscribe(engine, "orders", "g")
    got = take(subscription, 2)

    assert bodies(got) == [b"high-free", b"low-first"]
    assert bodies(take(subscription)) == [b"high-second"]


def test_a_nacked_message_keeps_its_place(engine: EngineDriver) -> None:
    engine.create("orders", 1, ["g"], {})
    subscription = subscribe(engine, "orders", "g")
    send(engine, "orders", b"1", b"2", b"3")
    first = take(subscription, 1)

    subscription.send_nacks([first[0].ack_id], None)

    again = take(subscription)
    assert bodies(again) == [b"1", b"2", b"3"]
    assert [d.attempt for d in again] == [2, 1, 1]
