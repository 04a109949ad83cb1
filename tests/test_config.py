"""Where the URL and options come from, and how bad options are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

import messaging
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


SERVICE_CONFIG = """
[messaging]
url = "kafka://kafka.internal:9092"
connect_timeout = 5

[messaging.kafka]
linger = 0.01
connect_timeout = 7

[messaging.redis]
maxlen = 1000

[messaging.rediss]
maxlen = 2000
"""


def test_one_file_holds_each_backends_options_in_its_schemes_table(tmp_path: Path) -> None:
    # The environment picks the backend; the file's other backends' options stay out of
    # the way (before, the Kafka option made every other backend refuse the file).
    file = tmp_path / "service.toml"
    file.write_text(SERVICE_CONFIG)
    kafka = config.gather(None, file, {}, {})
    assert kafka.options == {"connect_timeout": 7, "linger": 0.01}
    redis = config.gather(None, file, {}, {"MESSAGING_URL": "redis://cache:6379/0"})
    assert redis.options == {"connect_timeout": 5, "maxlen": 1000}
    tls = config.gather("rediss://cache:6380/0", file, {}, {})
    assert tls.options == {"connect_timeout": 5, "maxlen": 2000}  # its own table wins
    memory = config.gather("memory://", file, {}, {})
    assert memory.options == {"connect_timeout": 5}
    # Later sources still win over the scheme's table.
    assert config.gather(None, file, {"linger": 0.5}, {}).options["linger"] == 0.5


def test_a_schemes_table_with_a_url_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "service.toml"
    file.write_text('[messaging.kafka]\nurl = "kafka://h:9092"\n')
    with pytest.raises(ConfigurationError, match="'url' goes at the top"):
        config.gather("kafka://h:9092", file, {}, {})


def test_a_table_named_after_no_scheme_is_an_unknown_option(tmp_path: Path) -> None:
    file = tmp_path / "service.toml"
    file.write_text("[messaging.kafak]\nlinger = 0.01\n")
    with pytest.raises(ConfigurationError, match="unknown option 'kafak'"):
        _typed(config.gather("memory://", file, {}, {}))


def test_a_service_config_connects_to_the_engine_it_is_pointed_at(tmp_path: Path) -> None:
    file = tmp_path / "service.toml"
    file.write_text(SERVICE_CONFIG)
    with messaging.connect(f"sqlite:///{tmp_path / 'local.db'}", config=file) as client:
        client.producer().send("orders", b"local")
