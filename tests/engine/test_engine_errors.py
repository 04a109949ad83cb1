"""Errors: the engine's own, sqlite3's, and how ``error_code`` classifies them; bad
options and URLs; and the same through the portable layer."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from engine_support import send, subscribe

import messaging
from messaging.driver import SubscriptionOptions
from messaging.engine.driver import EngineDriver
from messaging.engine.errors import EngineError
from messaging.errors import ErrorCode
from messaging.urls import parse_url


def _code(engine: EngineDriver, error: BaseException) -> ErrorCode:
    return engine.error_code(error)


def test_unknown_destinations_and_groups_are_not_found(engine: EngineDriver) -> None:
    engine.create("orders", 1, ["g"], {})
    calls: list[Callable[[], object]] = [
        lambda: engine.depth("missing", "g"),
        lambda: engine.depth("orders", "missing"),
        lambda: engine.groups("missing"),
        lambda: send(engine, "missing", b"x"),
        lambda: engine.subscribe("missing", "g", SubscriptionOptions()),
    ]
    for call in calls:
        with pytest.raises(EngineError) as caught:
            call()
        assert _code(engine, caught.value) is ErrorCode.NOT_FOUND
    assert engine.destinations() == ["orders"], "a failed call created something"


def test_error_code_needs_no_opened_instance() -> None:
    blank = EngineDriver.__new__(EngineDriver)
    assert blank.error_code(EngineError(ErrorCode.NOT_FOUND, "x")) is ErrorCode.NOT_FOUND
    cases = {
        sqlite3.OperationalError("database is locked"): ErrorCode.TIMEOUT,
        sqlite3.OperationalError("unable to open database file"): ErrorCode.CONNECTION,
        sqlite3.ProgrammingError("Cannot operate on a closed database."): ErrorCode.CONNECTION,
        sqlite3.DatabaseError("file is not a database"): ErrorCode.CONFIGURATION,
        sqlite3.OperationalError("no such table: x"): ErrorCode.UNKNOWN,
        ValueError("something else"): ErrorCode.UNKNOWN,
    }
    for error, code in cases.items():
        assert blank.error_code(error) is code, error


@pytest.mark.parametrize("options", [
    {"retention": 0.0},
    {"dedup_window": -1.0},
    {"visibility_timeout": float("nan")},
    {"max_message_bytes": 1.5},
    {"clock": "not a clock"},
    {"unknown_option": 1},
])
def test_bad_options_are_configuration_errors(options: dict[str, object]) -> None:
    with pytest.raises(EngineError) as caught:
        EngineDriver.open(parse_url("memory://bad-options"), options)
    assert caught.value.code is ErrorCode.CONFIGURATION


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite://host/x.db",
                                 "sqlite:///:memory:", "kafka://h:1"])
def test_bad_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(EngineError) as caught:
        EngineDriver.open(parse_url(url), {})
    assert caught.value.code is ErrorCode.CONFIGURATION


def test_a_missing_directory_is_a_configuration_error_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(messaging.ConfigurationError, match=r"no directory .*no-such-dir"):
        messaging.connect(f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}")
    # Three slashes make a relative path: the message says so, and what four would mean.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(messaging.ConfigurationError) as caught:
        messaging.connect("sqlite:///var/lib/app/q.db")
    assert f"no directory {str(tmp_path / 'var/lib/app')!r}" in str(caught.value)
    assert "relative to the working directory (sqlite:////var/lib/app/q.db would be " \
           "/var/lib/app/q.db)" in str(caught.value)


def test_an_unopenable_file_is_a_connection_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}"  # a directory, not a file
    with pytest.raises(sqlite3.Error) as caught:
        EngineDriver.open(parse_url(url), {})
    assert EngineDriver.__new__(EngineDriver).error_code(caught.value) is ErrorCode.CONNECTION
    with pytest.raises(messaging.ConnectionFailed) as portable:
        messaging.connect(url)
    assert isinstance(portable.value.__cause__, sqlite3.Error)


def test_a_foreign_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (id INTEGER)")
    with pytest.raises(messaging.ConfigurationError):
        messaging.connect(f"sqlite:///{path}")
    with sqlite3.connect(path) as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master")]
    assert tables == ["users"]


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(messaging.ConfigurationError):
        messaging.connect(f"sqlite:///{path}")


def test_a_closed_driver_refuses_work(engine: EngineDriver) -> None:
    engine.create("orders", 1, ["g"], {})
    subscription = subscribe(engine, "orders", "g")
    engine.close()
    engine.close()  # idempotent

    with pytest.raises(EngineError) as caught:
        send(engine, "orders", b"x")
    assert engine.error_code(caught.value) is ErrorCode.CONNECTION
    subscription.close()  # after the driver: no error, the leases just run out


def test_a_stranger_ack_id_is_refused(engine: EngineDriver) -> None:
    engine.create("orders", 1, ["g"], {})
    subscription = subscribe(engine, "orders", "g")
    with pytest.raises(EngineError) as caught:
        subscription.send_acks([("not", "ours")])
    assert engine.error_code(caught.value) is ErrorCode.CONFIGURATION


def test_the_portable_layer_maps_and_auto_creates(url: str) -> None:
    with messaging.connect(url, auto_create=False) as client:
        with pytest.raises(messaging.DestinationNotFound) as caught:
            client.producer().send("missing", b"x")
        assert isinstance(caught.value.__cause__, EngineError)
        with pytest.raises(messaging.DestinationNotFound):
            client.admin.depth("missing", "g")
    with messaging.connect(url) as client:
        with client.consumer("created", "g") as consumer:
            client.producer().send("created", b"x")
            [message] = consumer.receive(1, timeout=5.0)
            assert message.body == b"x"
            message.ack()
        assert client.admin.destinations() == ["created"]
