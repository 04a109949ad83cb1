"""Destinations and groups: fan-out, competing consumers, group lifetime, depth,
delete and the admin listings."""

from __future__ import annotations

import pytest
from conftest import OpenEngine
from engine_support import ack_all, bodies, send, subscribe, take

from messaging.engine.driver import EngineDriver
from messaging.engine.errors import EngineError
from messaging.errors import ErrorCode


def test_every_group_gets_every_message(engine: EngineDriver) -> None:
    engine.create("orders", 1, ["billing", "shipping"], {})
    send(engine, "orders", b"a", b"b", b"c")

    billing = take(subscribe(engine, "orders", "billing"))
    shipping = take(subscribe(engine, "orders", "shipping"))

    assert bodies(billing) == [b"a", b"b", b"c"]
    assert bodies(shipping) == [b"a", b"b", b"c"]
    assert [d.id for d in billing] == [d.id for d in shipping]


def test_members_of_one_group_compete(engine: EngineDriver) -> None:
    engine.create("orders", 1, ["workers"], {})
    first = subscribe(engine, "orders", "workers")
    second = subscribe(engine, "orders", "workers")
    send(engine, "orders", *[f"m{n}".encode() for n in range(6)])

    got_first = take(first, 4)
    got_second = take(second)

    assert len(got_first) == 4
    assert len(got_second) == 2
    assert set(bodies(got_first)).isdisjoint(bodies(got_second))
    assert take(first) == []


def test_members_on_two_connections_compete(open_engine: OpenEngine) -> None:
    one, two = open_engine(), open_engine()
    one.create("orders", 1, ["workers"], {})
    send(one, "orders", b"a", b"b")

    got_one = take(subscribe(one, "orders", "workers"), 1)
    got_two = take(subscribe(two, "orders", "workers"))

    assert sorted(bodies(got_one) + bodies(got_two)) == [b"a", b"b"]
    assert len(got_one) == len(got_two) == 1


def test_a_declared_group_keeps_its_backlog(engine: EngineDriver) -> None:
    engine.create("orders", 3, ["late"], {})
    send(engine, "orders", b"a", b"b")
    assert engine.depth("orders", "late") == 2

    got = take(subscribe(engine, "orders", "late"))

    assert bodies(got) == [b"a", b"b"]
    assert [d.attempt for d in got] == [1, 1]


def test_a_group_exists_from_its_first_subscribe(engine: EngineDriver) -> None:
    engine.create("orders", 1, [], {})
    send(engine, "orders", b"before")
    subscription = subscribe(engine, "orders", "g")
    subscription.close()
    send(engine, "orders", b"after")

    assert engine.groups("orders") == ["g"]
    assert engine.depth("orders", "g") == 1
    assert bodies(take(subscribe(engine, "orders", "g"))) == [b"after"]


def test_create_is_idempotent_and_keeps_messages(engine: EngineDriver) -> None:
    engine.create("orders", 2, ["g"], {})
    send(engine, "orders", b"kept")
    engine.create("orders", 5, ["g", "h"], {})

    assert engine.depth("orders", "g") == 1
    assert engine.depth("orders", "h") == 0
    assert engine.groups("orders") == ["g", "h"]
    assert engine.destinations() == ["orders"]


def test_create_refuses_options_it_does_not_know(engine: EngineDriver) -> None:
    with pytest.raises(EngineError) as caught:
        engine.create("orders", 1, [], {"fifo": True})
    assert engine.error_code(caught.value) is ErrorCode.CONFIGURATION
    assert engine.destinations() == []


def test_depth_counts_ready_in_flight_and_delayed(engine: EngineDriver) -> None:
    engine.create("orders", 1, ["g"], {})
    subscription = subscribe(engine, "orders", "g")
    send(engine, "orders", b"a", b"b", b"c")
    send(engine, "orders", b"later", delay=60.0)
    assert engine.depth("orders", "g") == 4

    got = take(subscription)
    assert bodies(got) == [b"a", b"b", b"c"]
    assert engine.depth("orders", "g") == 4

    ack_all(subscription, got[:2])
    assert engine.depth("orders", "g") == 2
    ack_all(subscription, got[2:])
    assert engine.depth("orders", "g") == 1


def test_delete_removes_destination_groups_and_messages(engine: EngineDriver) -> None:
    engine.create("orders", 1, ["g"], {})
    engine.create("other", 1, ["g"], {})
    send(engine, "orders", b"gone")
    send(engine, "other", b"stays")

    engine.delete("orders")
    engine.delete("orders")  # a missing one is no error

    assert engine.destinations() == ["other"]
    with pytest.raises(EngineError) as caught:
        engine.depth("orders", "g")
    assert engine.error_code(caught.value) is ErrorCode.NOT_FOUND
    engine.create("orders", 1, ["g"], {})
    assert engine.depth("orders", "g") == 0
    assert take(subscribe(engine, "orders", "g")) == []
    assert engine.depth("other", "g") == 1


def test_a_subscription_of_a_deleted_destination_reports_it(engine: EngineDriver) -> None:
    engine.create("orders", 1, ["g"], {})
    subscription = subscribe(engine, "orders", "g")
    engine.delete("orders")
    engine.create("orders", 1, ["g"], {})  # a new group, not the old one
    send(engine, "orders", b"new")

    with pytest.raises(EngineError) as caught:
        take(subscription)
    assert engine.error_code(caught.value) is ErrorCode.NOT_FOUND


def test_memory_and_sqlite_urls_share_one_broker_per_name(open_engine: OpenEngine) -> None:
    writer, reader = open_engine(), open_engine()
    writer.create("shared", 1, ["g"], {})
    send(writer, "shared", b"hello")
    writer.close()

    assert bodies(take(subscribe(reader, "shared", "g"))) == [b"hello"]
