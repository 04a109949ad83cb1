"""Finding the driver for a URL scheme through the ``messaging.adapters`` entry points.

Third-party adapters plug in the same way as ours: a distribution declares
``[project.entry-points."messaging.adapters"] myscheme = "pkg.module:DriverClass"``.
Adapters are imported lazily, only when their scheme is used, so a missing client
library costs nothing until then and then gives an install hint, not a bare ImportError.
"""

from __future__ import annotations

import functools
from importlib import metadata

from messaging.driver import Driver
from messaging.errors import ConfigurationError

GROUP = "messaging.adapters"

# The extra that installs each scheme's client library, for the install hint.
_EXTRA_FOR_SCHEME = {
    "kafka": "kafka",
    "amqp": "rabbitmq",
    "amqps": "rabbitmq",
    "sqs": "sqs",
    "redis": "redis",
    "rediss": "redis",
}


@functools.cache
def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {entry.name: entry for entry in metadata.entry_points(group=GROUP)}


def known_schemes() -> list[str]:
    return sorted(_entry_points())


def plain_scheme(scheme: str) -> str | None:
    """The scheme whose TLS form ``scheme`` is (``amqps`` -> ``amqp``): the same adapter
    registered under the name without the trailing ``s``; None for any other scheme."""
    points = _entry_points()
    stem = scheme[:-1]
    if (scheme.endswith("s") and stem in points and scheme in points
            and points[stem].value == points[scheme].value):
        return stem
    return None


def driver_class(scheme: str) -> type[Driver]:
    """The driver class for ``scheme``; ConfigurationError for an unknown one."""
    entry = _entry_points().get(scheme)
    if entry is None:
        raise ConfigurationError(
            f"unknown URL scheme {scheme!r}; known: {', '.join(known_schemes())}"
        )
    try:
        loaded = entry.load()
    except (ImportError, AttributeError) as error:
        # ImportError: the client library is missing; AttributeError: the adapter
        # package is installed but does not (yet) provide the class its entry point names.
        extra = _EXTRA_FOR_SCHEME.get(scheme, scheme)
        raise ConfigurationError(
            f"the {scheme!r} adapter needs its client library: "
            f'pip install "messaging[{extra}]" ({error})'
        ) from error
    if not (isinstance(loaded, type) and issubclass(loaded, Driver)):
        raise ConfigurationError(f"entry point {entry.value!r} is not a messaging Driver")
    return loaded
