"""URL parsing and secret redaction."""

from __future__ import annotations

import pytest

from messaging.errors import ConfigurationError
from messaging.urls import parse_url


def test_parses_hosts_ports_path_and_query() -> None:
    url = parse_url("kafka://a:9092,b:9093/x?client_id=svc")
    assert url.scheme == "kafka"
    assert url.hosts == (("a", 9092), ("b", 9093))
    assert url.path == "/x"
    assert url.query == {"client_id": "svc"}


def test_password_is_redacted_in_str_and_repr_but_kept_for_the_client() -> None:
    url = parse_url("amqp://user:s3cr%40t@host:5672/%2F")
    assert "s3cr" not in str(url)
    assert "s3cr" not in repr(url)
    assert url.password == "s3cr@t"
    assert url.secret() == "amqp://user:s3cr%40t@host:5672/%2F"
    assert str(url) == "amqp://user:***@host:5672/%2F"


@pytest.mark.parametrize(
    "text",
    ["", "   ", "no-scheme", "://host", "kafka://host:notaport", "kafka://host:99999",
     "redis://:pw@:6379"],
)
def test_malformed_urls_raise_configuration_error(text: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_url(text)


def test_error_for_a_malformed_url_never_shows_its_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_url("amqp://user:hunter2@host:bad/")
    assert "hunter2" not in str(caught.value)


def test_sqlite_path_is_kept() -> None:
    url = parse_url("sqlite:///tmp/x.db")
    assert url.hosts == ()
    assert url.path == "/tmp/x.db"
