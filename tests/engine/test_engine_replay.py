"""Replay: ``seek`` to the beginning, the end, a time or a position."""

from __future__ import annotations

import datetime as dt

import pytest
from engine_support import ack_all, bodies, send, subscribe, take

from messaging.engine.clock import ManualClock
from messaging.engine.driver import EngineDriver
from messaging.engine.errors import EngineError
from messaging.errors import ErrorCode


def test_a_new_group_can_start_at_the_beginning(engine: EngineDriver) -> None:
    engine.create("events", 1, [], {})
    send(engine, "events", b"e1", b"e2", key="k")
    late = subscribe(engine, "events", "late")
    assert take(late) == []

    late.seek("beginning")

    got = take(late)
    assert bodies(got) == [b"e1", b"e2"]
    assert [d.attempt for d in got] == [1, 1]


def test_seek_to_the_beginning_replays_acked_messages(engine: EngineDriver) -> None:
    engine.create("events", 1, ["g"], {})
    subscription = subscribe(engine, "events", "g")
    send(engine, "events", b"e1", b"e2")
    ack_all(subscription, take(subscription))
    assert engine.depth("events", "g") == 0

    subscription.seek("beginning")

    assert engine.depth("events", "g") == 2
    assert bodies(take(subscription)) == [b"e1", b"e2"]


def test_seek_to_the_end_skips_the_backlog(engine: EngineDriver) -> None:
    engine.create("events", 1, ["g"], {})
    subscription = subscribe(engine, "events", "g")
    send(engine, "events", b"old1", b"old2")

    subscription.seek("end")
    assert engine.depth("events", "g") == 0
    assert take(subscription) == []
    send(engine, "events", b"new")

    assert bodies(take(subscription)) == [b"new"]


def test_seek_to_a_position_is_inclusive(engine: EngineDriver) -> None:
    engine.create("events", 1, ["g"], {})
    subscription = subscribe(engine, "events", "g")
    send(engine, "events", *[f"e{n}".encode() for n in range(5)])
    got = take(subscription)
    ack_all(subscription, got)

    position = got[2].position
    assert position is not None
    subscription.seek(position)

    again = take(subscription)
    assert bodies(again) == [b"e2", b"e3", b"e4"]
    assert [d.id for d in again] == [d.id for d in got[2:]]


def test_seek_to_a_time_replays_what_came_after(engine: EngineDriver, clock: ManualClock
                                              ) -> None:
    engine.create("events", 1, ["g"], {})
    subscription = subscribe(engine, "events", "g")
    send(engine, "events", b"before")
    clock.advance(10.0)
    moment = dt.datetime.fromtimestamp(clock.time(), dt.UTC)
    send(engine, "events", b"at")
    clock.advance(10.0)
    send(engine, "events", b"after")
    ack_all(subscription, take(subscription))

    subscription.seek(moment)

    assert bodies(take(subscription)) == [b"at", b"after"]


def test_seek_drops_in_flight_leases(engine: EngineDriver) -> None:
    engine.create("events", 1, ["g"], {})
    subscription = subscribe(engine, "events", "g")
    send(engine, "events", b"e1")
    in_flight = take(subscription)

    subscription.seek("beginning")
    ack_all(subscription, in_flight)  # the lease ended with the seek: ignored

    assert engine.depth("events", "g") == 1
    assert [(d.body, d.attempt) for d in take(subscription)] == [(b"e1", 1)]


def test_seek_touches_only_its_own_group(engine: EngineDriver) -> None:
    engine.create("events", 1, ["a", "b"], {})
    send(engine, "events", b"e1")
    first, second = subscribe(engine, "events", "a"), subscribe(engine, "events", "b")

    first.seek("end")

    assert engine.depth("events", "a") == 0
    assert bodies(take(second)) == [b"e1"]


def test_a_delayed_message_keeps_its_delay_on_replay(
    engine: EngineDriver, clock: ManualClock,
) -> None:
    engine.create("events", 1, ["g"], {})
    subscription = subscribe(engine, "events", "g")
    send(engine, "events", b"later", delay=60.0)

    subscription.seek("beginning")
    assert take(subscription) == []
    clock.advance(60.0)
    assert bodies(take(subscription)) == [b"later"]


@pytest.mark.parametrize("position", ["", "abc", "-1", "1.5"])
def test_a_foreign_position_is_a_configuration_error(engine: EngineDriver, position: str
                                                     ) -> None:
    engine.create("events", 1, ["g"], {})
    subscription = subscribe(engine, "events", "g")
    send(engine, "events", b"kept")

    with pytest.raises(EngineError) as caught:
        subscription.seek(position)

    assert engine.error_code(caught.value) is ErrorCode.CONFIGURATION
    assert engine.depth("events", "g") == 1
