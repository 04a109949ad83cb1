"""Time-driven behaviour on a manual clock: delay, the dedup window and retention."""

from __future__ import annotations

from conftest import OpenEngine
from engine_support import ack_all, bodies, send, subscribe, take

from messaging.driver import OutgoingMessage
from messaging.engine.clock import ManualClock
from messaging.engine.driver import EngineDriver
from messaging.engine.store import Store


def _log_size(engine: EngineDriver) -> int:
    store = engine.as_native()
    assert isinstance(store, Store)
    with store.transaction() as db:
        return int(db.execute("SELECT count(*) FROM messages").fetchone()[0])


def test_a_delayed_message_waits_for_its_delay(engine: EngineDriver, clock: ManualClock
                                               ) -> None:
    engine.create("orders", 1, ["g"], {})
    subscription = subscribe(engine, "orders", "g")
    send(engine, "orders", b"later", delay=60.0)
    send(engine, "orders", b"now")

    first = take(subscription)
    assert bodies(first) == [b"now"]
    ack_all(subscription, first)
    clock.advance(59.9)
    assert take(subscription) == []
    clock.advance(0.1)
    late = take(subscription)
    assert [(d.body, d.attempt) for d in late] == [(b"later", 1)]


def test_a_delay_of_fourteen_days_is_honoured(engine: EngineDriver, clock: ManualClock
                                             ) -> None:
    engine.create("orders", 1, ["g"], {})
    subscription = subscribe(engine, "orders", "g")
    fortnight = engine.capabilities().max_delay
    assert fortnight == 14 * 24 * 3600
    send(engine, "orders", b"far", delay=fortnight)

    clock.advance(fortnight - 1)
    assert take(subscription) == []
    clock.advance(1)
    assert bodies(take(subscription)) == [b"far"]


def test_a_repeated_dedup_id_is_dropped_within_the_window(
    open_engine: OpenEngine, clock: ManualClock,
) -> None:
    engine = open_engine(dedup_window=60.0)
    engine.create("orders", 1, ["g"], {})
    [original] = send(engine, "orders", b"first", dedup_id="order-7")

    clock.advance(59.0)
    [repeat] = send(engine, "orders", b"second", dedup_id="order-7")
    assert repeat == original
    clock.advance(1.0)
    [after_window] = send(engine, "orders", b"third", dedup_id="order-7")
    assert after_window != original

    assert bodies(take(subscribe(engine, "orders", "g"))) == [b"first", b"third"]


def test_dedup_inside_one_batch_and_per_destination(engine: EngineDriver) -> None:
    engine.create("orders", 1, ["g"], {})
    engine.create("refunds", 1, ["g"], {})
    ids = engine.send_batch("orders", [
        OutgoingMessage(body=b"a", dedup_id="x"),
        OutgoingMessage(body=b"b", dedup_id="x"),
        OutgoingMessage(body=b"c", dedup_id="y"),
        OutgoingMessage(body=b"d"),
    ])
    [other] = send(engine, "refunds", b"e", dedup_id="x")

    assert ids[0] == ids[1]
    assert len(set(ids)) == 3
    assert other not in ids
    assert bodies(take(subscribe(engine, "orders", "g"))) == [b"a", b"c", b"d"]
    assert engine.depth("refunds", "g") == 1


def test_replay_reaches_back_only_as_far_as_retention(
    open_engine: OpenEngine, clock: ManualClock,
) -> None:
    engine = open_engine(retention=3600.0)
    engine.create("events", 1, ["g"], {})
    subscription = subscribe(engine, "events", "g")
    send(engine, "events", b"old")
    clock.advance(1800.0)
    send(engine, "events", b"recent")
    ack_all(subscription, take(subscription))
    clock.advance(1801.0)

    subscription.seek("beginning")

    assert bodies(take(subscription)) == [b"recent"]


def test_trimming_drops_acked_history_but_keeps_unacked_messages(
    open_engine: OpenEngine, clock: ManualClock,
) -> None:
    engine = open_engine(retention=100.0, dedup_window=100.0)
    engine.create("events", 1, ["done", "behind"], {})
    done = subscribe(engine, "events", "done")
    send(engine, "events", b"a", b"b")
    ack_all(done, take(done))
    assert _log_size(engine) == 2

    clock.advance(101.0)
    send(engine, "events", b"c")  # sending trims opportunistically

    assert _log_size(engine) == 3, "trimmed messages group 'behind' has not acked"
    behind = subscribe(engine, "events", "behind")
    ack_all(behind, take(behind))
    ack_all(done, take(done))
    clock.advance(101.0)
    send(engine, "events", b"d")
    assert _log_size(engine) == 1
    done.seek("beginning")
    assert bodies(take(done)) == [b"d"]
