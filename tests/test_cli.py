"""The ``messaging`` command line: demo, send/consume/stats round trip, error paths."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import messaging
from messaging import cli
from messaging.admin import Admin

try:
    from broker_fixtures import sqs_url
except ImportError:  # tests/ is not on sys.path when this file is collected on its own
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from broker_fixtures import sqs_url

__all__ = ["sqs_url"]

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "hunter2-s3cret"


def _env_without_messaging_url() -> dict[str, str]:
    return {name: value for name, value in os.environ.items()
            if not name.startswith("MESSAGING_")}


def _assert_demo_output(out: str, orders: int = 20) -> None:
    poison = orders // 2 + 1
    for number in range(1, orders + 1):
        if number == poison:
            continue
        assert re.search(rf"^order\s+{number}\s+processed\s+attempt \d", out, re.M), (
            f"order {number} not listed as processed:\n{out}")
    assert not re.search(rf"^order\s+{poison}\s+processed", out, re.M)
    dead = re.search(rf"^order\s+{poison}\s+dead-lettered.*$", out, re.M)
    assert dead, out
    assert "reason max_attempts" in dead.group(0)
    assert "ValueError" in dead.group(0)  # the handler's error, from the letter's headers
    assert re.search(rf"summary: sent {orders}, processed {orders - 1}, dead-lettered 1, "
                     r"retries \d+, [\d.]+ s", out), out


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


# -- demo ----------------------------------------------------------------------------------
def test_demo_in_process_lists_every_order_and_the_dead_letter(
        capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["demo", "--url", f"memory://demo-{uuid.uuid4().hex}"])
    out = capsys.readouterr().out
    assert status == 0, out
    _assert_demo_output(out)
    assert "ok: every good order processed once" in out


def test_demo_as_a_module_subprocess_on_the_default_backend() -> None:
    result = subprocess.run([sys.executable, "-m", "messaging", "demo"], cwd=REPO,
                            env=_env_without_messaging_url(), capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "on memory://" in result.stdout
    _assert_demo_output(result.stdout)
    assert "Traceback" not in result.stderr


def test_demo_twice_on_one_sqlite_file(sqlite_url: str, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    for _ in range(2):
        assert cli.main(["demo", "--url", sqlite_url, "--orders", "6"]) == 0
        _assert_demo_output(capsys.readouterr().out, orders=6)


def test_demo_takes_its_backend_from_the_environment(
        sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MESSAGING_URL", sqlite_url)
    assert cli.main(["demo", "--orders", "3"]) == 0
    assert "on sqlite:///" in capsys.readouterr().out


# -- send / consume / stats ------------------------------------------------------------------
def _consume_json(url: str, *extra: str, capsys: pytest.CaptureFixture[str]
                  ) -> list[dict[str, object]]:
    assert cli.main(["consume", url, "orders", "--group", "billing", "--timeout", "0.5",
                     "--json", *extra]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_send_consume_stats_round_trip(sqlite_url: str, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # Joining creates the group; it receives what is sent from now on.
    assert cli.main(["consume", sqlite_url, "orders", "--group", "billing",
                     "--timeout", "0"]) == 0
    assert "did not exist before" in capsys.readouterr().err

    assert cli.main(["send", sqlite_url, "orders", '{"id": 1}', "--json", "--key", "user-1",
                     "--header", "source=cli", '{"id": 2}']) == 0
    captured = capsys.readouterr()
    ids = captured.out.split()
    assert len(ids) == 2
    assert "sent 2 messages" in captured.err

    assert cli.main(["stats", sqlite_url]) == 0
    stats = capsys.readouterr().out
    assert re.search(r"^orders\s+billing\s+2$", stats, re.M), stats
    assert re.search(r"^\s+replay\s+True$", stats, re.M), stats
    assert re.search(r"^\s+ordering\s+per_key$", stats, re.M), stats

    messages = _consume_json(sqlite_url, "--max", "10", capsys=capsys)
    assert [m["value"] for m in messages] == [{"id": 1}, {"id": 2}]
    assert [m["id"] for m in messages] == ids
    assert {m["key"] for m in messages} == {"user-1"}
    assert {m["attempt"] for m in messages} == {1}
    assert all(isinstance(m["headers"], dict) and m["headers"]["source"] == "cli"
               for m in messages)

    assert cli.main(["stats", sqlite_url, "orders"]) == 0
    assert re.search(r"^orders\s+billing\s+0$", capsys.readouterr().out, re.M)


def test_send_to_a_destination_nobody_will_read_says_so(
        sqs_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """On a backend without replay, messages sent before any group exists reach no one
    (group lifetime): the send says so, rather than leave the user to find an empty
    consume. With a group, or on a backend with replay, it says nothing."""
    destination = f"cli-unheard-{uuid.uuid4().hex[:8]}"
    assert cli.main(["send", sqs_url, destination, "lost"]) == 0
    assert "no consumer will receive these messages" in capsys.readouterr().err
    assert cli.main(["consume", sqs_url, destination, "--group", "g", "--timeout", "0"]) == 0
    capsys.readouterr()
    assert cli.main(["send", sqs_url, destination, "heard"]) == 0
    assert "no consumer will receive" not in capsys.readouterr().err
    assert cli.main(["send", "memory://", destination, "kept"]) == 0
    assert "no consumer will receive" not in capsys.readouterr().err
    with messaging.connect(sqs_url) as client:
        client.admin.delete(destination)


def test_a_send_that_went_through_succeeds_when_the_groups_cannot_be_listed(
        sqs_url: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(self: object, destination: str) -> list[str]:
        raise messaging.AuthenticationFailed("not allowed to list subscriptions")

    monkeypatch.setattr(Admin, "groups", refused)
    destination = f"cli-unlisted-{uuid.uuid4().hex[:8]}"
    assert cli.main(["send", sqs_url, destination, "sent"]) == 0
    assert "sent 1 message" in capsys.readouterr().err
    with messaging.connect(sqs_url) as client:
        client.admin.delete(destination)


def test_no_ack_leaves_the_message_for_the_next_consumer(
        sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _consume_json(sqlite_url, "--timeout", "0", capsys=capsys)  # declare the group
    assert cli.main(["send", sqlite_url, "orders", "hello"]) == 0
    capsys.readouterr()
    first = _consume_json(sqlite_url, "--max", "1", "--no-ack", capsys=capsys)
    second = _consume_json(sqlite_url, "--max", "1", capsys=capsys)
    assert [m["value"] for m in first] == [m["value"] for m in second] == ["hello"]
    assert first[0]["attempt"] == 1
    assert second[0]["attempt"] == 2
    assert _consume_json(sqlite_url, "--max", "1", "--timeout", "0", capsys=capsys) == []


def test_send_reads_stdin_lines_and_consume_prints_text(
        sqlite_url: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    _consume_json(sqlite_url, "--timeout", "0", capsys=capsys)
    monkeypatch.setattr(sys, "stdin", io.StringIO("first line\n\nsecond line\n"))
    assert cli.main(["send", sqlite_url, "orders"]) == 0
    assert len(capsys.readouterr().out.split()) == 2
    assert cli.main(["consume", sqlite_url, "orders", "--group", "billing",
                     "--timeout", "0.5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("id=")
    assert "attempt=1" in lines[0]
    assert lines[0].endswith("value=first line")
    assert lines[1].endswith("value=second line")


def test_send_takes_stdin_that_is_not_utf8_as_bytes(
        sqlite_url: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Binary input crashed send with a UnicodeEncodeError traceback (or, under a UTF-8
    # locale, a UnicodeDecodeError reading stdin). Such a line is sent as its bytes.
    _consume_json(sqlite_url, "--timeout", "0", capsys=capsys)
    stdin = io.TextIOWrapper(io.BytesIO(b"\x00\xff binary\ntext\n"), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    assert cli.main(["send", sqlite_url, "orders"]) == 0
    assert len(capsys.readouterr().out.split()) == 2  # the ids sent
    got = _consume_json(sqlite_url, "--timeout", "0.5", capsys=capsys)
    assert [base64.b64decode(m["body_base64"]) if "body_base64" in m else m["value"]
            for m in got] == [b"\x00\xff binary", "text"]


def test_send_count_generates_messages_and_from_beginning_replays(
        sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["send", sqlite_url, "orders", "--count", "250"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""  # no ids for generated messages
    assert "sent 250 messages" in captured.err
    # A group created now did not exist when they were sent: replay reaches them.
    assert cli.main(["consume", sqlite_url, "orders", "--group", "late", "--from-beginning",
                     "--max", "250", "--timeout", "1", "--json"]) == 0
    values = [json.loads(line)["value"] for line in capsys.readouterr().out.splitlines()]
    assert [v["n"] for v in values] == list(range(1, 251))


def test_send_rejects_values_together_with_count(sqlite_url: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["send", sqlite_url, "orders", "a", "--count", "3"]) == 2
    assert "either VALUEs or --count" in capsys.readouterr().err


# -- errors --------------------------------------------------------------------------------
def test_unknown_scheme_exits_2_with_a_message_and_no_traceback(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["send", "nosuch://127.0.0.1:1", "orders", "x"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: unknown URL scheme 'nosuch'")
    assert "Traceback" not in captured.err
    assert captured.out == ""


@pytest.mark.parametrize("argv", [
    ["stats", f"nosuch://admin:{PASSWORD}@127.0.0.1:1"],
    ["consume", f"sqlite://admin:{PASSWORD}@somehost/x.db", "orders"],
    ["send", f"memory://admin:{PASSWORD}@x", "bad name!", "v"],
    ["stats", f"nosuch://admin:{PASSWORD.replace('-', '%2D')}@127.0.0.1:1"],
])
def test_a_password_is_never_printed(argv: list[str], capsys: pytest.CaptureFixture[str]
                                     ) -> None:
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ")
    assert PASSWORD not in captured.out + captured.err
    assert PASSWORD.replace("-", "%2D") not in captured.out + captured.err


def test_a_password_in_the_environment_is_never_printed(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MESSAGING_URL", f"nosuch://admin:{PASSWORD}@127.0.0.1:1")
    assert cli.main(["demo"]) == 2
    captured = capsys.readouterr()
    assert PASSWORD not in captured.out + captured.err


def test_error_scrubbing_covers_native_messages() -> None:
    secrets = cli._Secrets.from_sources(["x", "amqp://u:p%40ss@h:5672/", "demo"])
    assert secrets.scrub("login p@ss refused (p%40ss)") == "login *** refused (***)"


def test_error_scrubbing_leaves_words_that_merely_contain_the_password() -> None:
    secrets = cli._Secrets.from_sources(["amqp://guest:e@h:5672/"])
    assert secrets.scrub("password e refused for user guest") == \
        "password *** refused for user guest"
    secrets = cli._Secrets.from_sources(["amqp://guest:guest@h:5672/"])
    assert secrets.scrub("amqp://guest:***@h:5672/ has no replay; guests welcome") == \
        "amqp://***:***@h:5672/ has no replay; guests welcome"


def test_errors_as_a_subprocess_exit_2_without_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "messaging", "send", f"nosuch://u:{PASSWORD}@h:1", "q", "x"],
        cwd=REPO, env=_env_without_messaging_url(), capture_output=True, text=True,
        timeout=60, check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stdout + result.stderr


def test_bad_json_value_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["send", f"memory://{uuid.uuid4().hex}", "q", "--json", "{nope"]) == 2
    assert "value 1 is not JSON" in capsys.readouterr().err


def test_usage_errors_return_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["send", "memory://", "q", "--header", "novalue", "x"]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err
    assert cli.main(["consume", "memory://", "q", "extra"]) == 2
    assert cli.main([]) == 2
    assert cli.main(["--help"]) == 0
    assert "demo" in capsys.readouterr().out
