"""Where a connection's URL and options come from, and how they are checked.

URL: the ``url`` argument, else ``$MESSAGING_URL``, else the config file's ``url``, else
``memory://``.

Options, later sources winning: the config file's keys (other than ``url``), the config
file's table for the URL's scheme, the URL's query string, ``$MESSAGING_<OPTION>``
environment variables, then keyword arguments. Every option name must be known
(portable, or declared by the driver in ``option_types``); strings from text sources are
converted to the declared type. An unknown name or a value that does not convert raises
``ConfigurationError`` before any connection is attempted.

A config file may hold the options of several backends, each in a table named after its
URL scheme, so that one file serves every environment whatever ``$MESSAGING_URL`` picks
(decision 0015); only the table of the scheme in use applies, and a TLS scheme
(``amqps``, ``rediss``) reads its plain scheme's table, then its own::

    [messaging]
    url = "kafka://kafka.internal:9092"
    connect_timeout = 5

    [messaging.kafka]
    linger = 0.01

    [messaging.redis]
    maxlen = 1000000
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path

from messaging import registry
from messaging.checks import check_seconds
from messaging.errors import ConfigurationError

DEFAULT_URL = "memory://"

PORTABLE_OPTION_TYPES: Mapping[str, type] = {
    "connect_timeout": float,
    "auto_create": bool,
}
PORTABLE_DEFAULTS: Mapping[str, object] = {"connect_timeout": 10.0, "auto_create": True}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclasses.dataclass(frozen=True)
class Settings:
    """The raw URL text and every option with its source merged, not yet typed."""

    url: str
    options: dict[str, object]
    text_options: frozenset[str]  # names whose value came from text and needs converting


def gather(url: str | None, config: str | os.PathLike[str] | None, kwargs: Mapping[str, object],
           environ: Mapping[str, str] | None = None) -> Settings:
    """Merge the sources in their order of precedence (see the module doc)."""
    env = os.environ if environ is None else environ
    file_values = _read_config(config) if config is not None else {}
    file_url = file_values.pop("url", None)
    if file_url is not None and not isinstance(file_url, str):
        raise ConfigurationError(f"'url' in {config} must be a string")
    chosen = url or env.get("MESSAGING_URL") or file_url or DEFAULT_URL
    options = _file_options(file_values, chosen, config)
    text: set[str] = set()
    for name, value in env.items():
        if name.startswith("MESSAGING_") and name != "MESSAGING_URL":
            option = name[len("MESSAGING_"):].lower()
            options[option] = value
            text.add(option)
    options.update(kwargs)
    text -= set(kwargs)
    return Settings(chosen, options, frozenset(text))


def _file_options(values: Mapping[str, object], url: str,
                  path: str | os.PathLike[str] | None) -> dict[str, object]:
    """The file's options for ``url``: its top-level keys, then the table of the URL's
    scheme. The tables of other schemes (any registered adapter's) are left out."""
    schemes = set(registry.known_schemes())
    scheme = url.partition("://")[0].lower()
    tables = [name for name in (registry.plain_scheme(scheme), scheme) if name]
    options: dict[str, object] = {}
    own: dict[str, object] = {}
    for name, value in values.items():
        if name not in schemes or not isinstance(value, dict):
            options[name] = value
        elif name in tables:
            if "url" in value:
                raise ConfigurationError(
                    f"[messaging.{name}] in {path}: 'url' goes at the top of the file "
                    "(a table holds the options of its scheme's backend)")
            own = {**own, **value} if name == scheme else {**value, **own}
    return {**options, **own}


def _read_config(path: str | os.PathLike[str]) -> dict[str, object]:
    try:
        with Path(path).open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError as error:
        raise ConfigurationError(f"config file not found: {path}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"config file {path} is not valid TOML: {error}") from error
    # Accept both a flat file and one with a [messaging] table, the usual pyproject style.
    section = data.get("messaging", data)
    if not isinstance(section, dict):
        raise ConfigurationError(f"[messaging] in {path} must be a table")
    return dict(section)


def typed_options(
    options: Mapping[str, object],
    text_options: frozenset[str],
    query: Mapping[str, str],
    option_types: Mapping[str, type],
    ignore_env: bool = True,
) -> dict[str, object]:
    """Check names and convert values. Environment variables naming no known option
    are ignored (``MESSAGING_*`` may hold unrelated settings); any other unknown name
    is an error."""
    merged: dict[str, object] = dict(PORTABLE_DEFAULTS)
    sources: list[tuple[Mapping[str, object], bool]] = [
        ({k: v for k, v in options.items() if k not in text_options}, False),
        (dict(query), True),
        ({k: v for k, v in options.items() if k in text_options}, True),
    ]
    for values, from_text in sources:
        for name, value in values.items():
            expected = option_types.get(name)
            if expected is None:
                if from_text and ignore_env and name in text_options:
                    continue
                known = ", ".join(sorted(option_types))
                raise ConfigurationError(f"unknown option {name!r}; known options: {known}")
            merged[name] = _convert(name, value, expected) if from_text else _check(
                name, value, expected
            )
    # The portable options are checked here, once, for every driver.
    merged["connect_timeout"] = check_seconds("option 'connect_timeout'",
                                              merged["connect_timeout"])
    return merged


def _convert(name: str, value: object, expected: type) -> object:
    if not isinstance(value, str) or expected is object or expected is str:
        return value
    text = value.strip()
    try:
        if expected is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError(text)
        return expected(text)
    except ValueError as error:
        raise ConfigurationError(
            f"option {name!r}: {value!r} is not a valid {expected.__name__}"
        ) from error


def _check(name: str, value: object, expected: type) -> object:
    if expected is object or value is None:
        return value
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is not bool and isinstance(value, bool):
        raise ConfigurationError(f"option {name!r}: expected {expected.__name__}, got bool")
    if not isinstance(value, expected):
        return _convert(name, value, expected) if isinstance(value, str) else _fail(
            name, value, expected
        )
    return value


def _fail(name: str, value: object, expected: type) -> object:
    raise ConfigurationError(
        f"option {name!r}: expected {expected.__name__}, got {type(value).__name__}"
    )
