"""Fixtures for the engine's unit tests: every test runs against ``memory://`` and
``sqlite:///file`` through the driver interface, on a manual clock."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from messaging.engine import registry
from messaging.engine.clock import ManualClock
from messaging.engine.driver import EngineDriver
from messaging.urls import parse_url

OpenEngine = Callable[..., EngineDriver]


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh broker: a new memory store name, or a new database file."""
    if request.param == "memory":
        name = f"engine-test-{uuid.uuid4().hex[:12]}"
        yield f"memory://{name}"
        registry.forget(name)
    else:
        yield f"sqlite:///{tmp_path / 'engine.db'}"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def open_engine(url: str, clock: ManualClock) -> Iterator[OpenEngine]:
    """Open another connection to the same broker (options as keywords; the manual
    clock unless one is given). All are closed after the test."""
    opened: list[EngineDriver] = []

    def open_(**options: object) -> EngineDriver:
        options.setdefault("clock", clock)
        driver = EngineDriver.open(parse_url(url), options)
        opened.append(driver)
        return driver

    yield open_
    for driver in opened:
        driver.close()


@pytest.fixture
def engine(open_engine: OpenEngine) -> EngineDriver:
    return open_engine()
