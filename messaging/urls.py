"""Broker URLs: parsing, validation and secret redaction.

A password given in a URL must never appear in a repr, a log line or an error message.
:class:`BrokerURL` keeps the original text private and shows only its redacted form;
every error raised while parsing quotes the redacted form too.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Mapping

from messaging.errors import ConfigurationError

_REDACTED = "***"


@dataclasses.dataclass(frozen=True, repr=False)
class BrokerURL:
    """A parsed broker URL. ``str()`` and ``repr()`` show it with the password hidden."""

    scheme: str
    hosts: tuple[tuple[str, int | None], ...]
    path: str
    query: Mapping[str, str]
    username: str | None = None
    password: str | None = dataclasses.field(default=None, compare=False)

    @property
    def redacted(self) -> str:
        """The URL as it may be shown to a person or a log."""
        return self._render(_REDACTED if self.password is not None else None)

    def secret(self) -> str:
        """The full URL, password included, for handing to a client library only."""
        return self._render(self.password)

    def _render(self, password: str | None) -> str:
        userinfo = ""
        if self.username is not None:
            userinfo = urllib.parse.quote(self.username, safe="")
            if password is not None:
                shown = password if password == _REDACTED else urllib.parse.quote(password, safe="")
                userinfo += ":" + shown
            userinfo += "@"
        netloc = ",".join(host if port is None else f"{host}:{port}" for host, port in self.hosts)
        query = urllib.parse.urlencode(dict(self.query))
        return f"{self.scheme}://{userinfo}{netloc}{self.path}" + (f"?{query}" if query else "")

    def __str__(self) -> str:
        return self.redacted

    def __repr__(self) -> str:
        return f"BrokerURL({self.redacted!r})"


def parse_url(text: str) -> BrokerURL:
    """Parse ``text`` or raise :class:`ConfigurationError` quoting the redacted form."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigurationError("the broker URL is empty")
    scheme, sep, rest = text.partition("://")
    if not sep or not scheme:
        raise ConfigurationError(
            f"malformed broker URL {_redact_raw(text)!r}: expected scheme://..."
        )
    if not scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
        raise ConfigurationError(f"malformed broker URL {_redact_raw(text)!r}: bad scheme")
    authority, path, query_text = _split_rest(rest)
    username, password, hostlist = _split_authority(authority, text)
    hosts = tuple(_parse_host(item, text) for item in hostlist.split(",")) if hostlist else ()
    try:
        query = dict(urllib.parse.parse_qsl(query_text, keep_blank_values=True))
    except ValueError as error:
        raise ConfigurationError(f"malformed query in {_redact_raw(text)!r}") from error
    return BrokerURL(scheme.lower(), hosts, path, query, username, password)


def _split_rest(rest: str) -> tuple[str, str, str]:
    before_query, _, query_text = rest.partition("?")
    slash = before_query.find("/")
    if slash < 0:
        return before_query, "", query_text
    return before_query[:slash], before_query[slash:], query_text


def _split_authority(authority: str, text: str) -> tuple[str | None, str | None, str]:
    if "@" not in authority:
        return None, None, authority
    userinfo, _, hostlist = authority.rpartition("@")
    user, has_password, password = userinfo.partition(":")
    return (
        urllib.parse.unquote(user),
        urllib.parse.unquote(password) if has_password else None,
        hostlist,
    )


def _parse_host(item: str, text: str) -> tuple[str, int | None]:
    host, colon, port_text = item.rpartition(":") if not item.endswith("]") else (item, "", "")
    if not colon:
        host, port_text = item, ""
    if not host:
        raise ConfigurationError(f"malformed broker URL {_redact_raw(text)!r}: empty host")
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigurationError(
            f"malformed broker URL {_redact_raw(text)!r}: bad port {port_text!r}"
        )
    return host, int(port_text)


def _redact_raw(text: str) -> str:
    """Hide a password in a URL we could not parse, for use in the error itself."""
    scheme, sep, rest = text.partition("://")
    authority = rest.split("/", 1)[0].split("?", 1)[0]
    if sep and "@" in authority:
        userinfo, _, hosts = authority.rpartition("@")
        if ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            return f"{scheme}://{user}:{_REDACTED}@{hosts}" + rest[len(authority):]
    return text
