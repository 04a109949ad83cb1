"""What the engine declares, and the clock it can be given."""

from __future__ import annotations

import pytest
from conftest import OpenEngine

from messaging.engine.clock import ManualClock, SystemClock
from messaging.engine.driver import EngineDriver


def test_capabilities_declare_every_native_feature(url: str, engine: EngineDriver) -> None:
    caps = engine.capabilities()

    assert caps.ordering == "per_key"
    assert (caps.fan_out, caps.replay, caps.dedup) == (True, True, True)
    assert caps.max_delay == 14 * 24 * 3600
    assert caps.priority == 10
    assert caps.dead_letter == "native"
    assert (caps.extend, caps.visibility_timeout) == (True, True)
    assert caps.max_message_bytes == 1024 * 1024
    assert caps.dedup_window == 300.0
    assert caps.emulated == frozenset()
    assert caps.durable is url.startswith("sqlite")
    assert engine.capabilities("orders") == caps


def test_options_show_in_the_capabilities(open_engine: OpenEngine) -> None:
    caps = open_engine(max_message_bytes=2048, dedup_window=60.0).capabilities()
    assert (caps.max_message_bytes, caps.dedup_window) == (2048, 60.0)


def test_option_types_name_every_option() -> None:
    assert dict(EngineDriver.option_types) == {
        "clock": object, "max_message_bytes": int, "retention": float,
        "dedup_window": float, "visibility_timeout": float, "connect_timeout": float,
    }
    assert EngineDriver.schemes == ("memory", "sqlite")


def test_manual_clock_moves_only_forward() -> None:
    clock = ManualClock(100.0)
    clock.advance(2.5)
    assert clock.time() == 102.5
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1.0)
    assert clock.time() == 102.5


def test_system_clock_is_wall_time() -> None:
    import time

    before = time.time()
    now = SystemClock().time()
    assert before <= now <= time.time()
