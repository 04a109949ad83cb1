"""Where the URL and options come from, and how bad options are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from messaging import config
from messaging.errors import ConfigurationError

TYPES = {**config.PORTABLE_OPTION_TYPES, "prefetch_hint": int, "fast": bool}


def _typed(settings: config.Settings, query: dict[str, str] | None = None) -> dict[str, object]:
    return config.typed_options(settings.options, settings.text_options, query or {}, TYPES)


def test_url_precedence_argument_then_env_then_file_then_default(tmp_path: Path) -> None:
    file = tmp_path / "m.toml"
    file.write_text('url = "sqlite:///from-file.db"\n')
    env = {"MESSAGING_URL": "redis://from-env"}
    assert config.gather("kafka://arg", file, {}, env).url == "kafka://arg"
    assert config.gather(None, file, {}, env).url == "redis://from-env"
    assert config.gather(None, file, {}, {}).url == "sqlite:///from-file.db"
    assert config.gather(None, None, {}, {}).url == "memory://"


def test_option_precedence_file_query_env_kwargs(tmp_path: Path) -> None:
    file = tmp_path / "m.toml"
    file.write_text("[messaging]\nurl = 'memory://'\nconnect_timeout = 1\nprefetch_hint = 1\n")
    settings = config.gather(None, file, {"fast": True},
                             {"MESSAGING_CONNECT_TIMEOUT": "3", "MESSAGING_OTHER_TOOL": "x"})
    typed = _typed(settings, {"prefetch_hint": "2", "connect_timeout": "2"})
    assert typed["connect_timeout"] == 3.0  # env beats query and file
    assert typed["prefetch_hint"] == 2  # query beats file, converted to int
    assert typed["fast"] is True


def test_unknown_option_is_refused_but_unrelated_env_is_ignored() -> None:
    settings = config.gather(None, None, {"bogus": 1}, {"MESSAGING_TEST_KAFKA_URL": "x"})
    with pytest.raises(ConfigurationError, match="bogus"):
        _typed(settings)
    assert "test_kafka_url" not in _typed(config.gather(None, None, {}, {
        "MESSAGING_TEST_KAFKA_URL": "x"}))


@pytest.mark.parametrize(("name", "value"), [("connect_timeout", "soon"), ("fast", "maybe")])
def test_unconvertible_text_values_are_refused(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        _typed(config.gather(None, None, {}, {}), {name: value})


def test_wrong_python_type_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="connect_timeout"):
        _typed(config.gather(None, None, {"connect_timeout": [1]}, {}))


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("url = ")
    with pytest.raises(ConfigurationError, match="TOML"):
        config.gather(None, bad, {}, {})
    with pytest.raises(ConfigurationError, match="not found"):
        config.gather(None, tmp_path / "nope.toml", {}, {})
