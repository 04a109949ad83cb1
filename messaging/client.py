"""``connect()`` and ``Client``: one connection to one backend, chosen by URL.

Errors
------
``ConfigurationError`` for an unknown scheme, a malformed URL, an unknown option or a
bad option value, raised before any connection attempt; ``ConnectionFailed`` or
``AuthenticationFailed`` (native error chained) when the broker cannot be used, within
``connect_timeout`` seconds. No message or repr ever shows a password from the URL.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import TYPE_CHECKING, TypeVar

from messaging import forks, registry
from messaging.admin import Admin
from messaging.capabilities import Capabilities
from messaging.codecs import Codec, DefaultCodec
from messaging.consumer import Consumer
from messaging.driver import Driver
from messaging.errors import ConfigurationError, DestinationNotFound, MessagingError
from messaging.guard import native_errors
from messaging.producer import Producer
from messaging.urls import BrokerURL, parse_url

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

T = TypeVar("T")

log = logging.getLogger("messaging.client")


def connect(url: str | None = None, *, config: str | os.PathLike[str] | None = None,
            codec: Codec | None = None, **options: object) -> Client:
    """Connect to the backend ``url`` names (see :mod:`messaging.config` for where the URL
    and options come from when not given here)."""
    from messaging import config as config_module

    settings = config_module.gather(url, config, options)
    parsed = parse_url(settings.url)
    driver_class = registry.driver_class(parsed.scheme)
    option_types = {**config_module.PORTABLE_OPTION_TYPES, **driver_class.option_types}
    typed = config_module.typed_options(
        settings.options, settings.text_options, parsed.query, option_types
    )
    return Client(driver_class, parsed, typed, codec or DefaultCodec())


class Client:
    """A connection to one backend. Thread-safe; close it (or use ``with``) when done."""

    def __init__(self, driver_class: type[Driver], url: BrokerURL,
                 options: Mapping[str, object], codec: Codec) -> None:
        self.url = url
        self.codec = codec
        self._auto_create = bool(options.get("auto_create", True))
        self._driver_class = driver_class
        self._driver_options = {k: v for k, v in options.items()
                                if k in driver_class.option_types or k == "connect_timeout"}
        self._driver = self._open()
        self._generation = forks.generation  # the process the connection belongs to
        self._closed = False
        self._consumers: weakref.WeakSet[Consumer] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._producer = Producer(self, codec)
        self.admin = Admin(self)
        forks.track(self)

    @property
    def capabilities(self) -> Capabilities:
        """What this backend guarantees (see :class:`messaging.Capabilities`)."""
        driver = self._live_driver()
        with native_errors(driver, "read capabilities"):
            return driver.capabilities(None)

    def capabilities_for(self, destination: str) -> Capabilities:
        """What holds for one destination, where it differs from the backend's."""
        driver = self._live_driver()
        with native_errors(driver, "read capabilities of %r", destination):
            return driver.capabilities(destination)

    def producer(self, codec: Codec | None = None) -> Producer:
        self._check_open()
        return self._producer if codec is None else Producer(self, codec)

    def consumer(self, destination: str, group: str = "default", *,
                 visibility_timeout: float | None = None, prefetch: int = 100,
                 dead_letter: str | None = None, codec: Codec | None = None) -> Consumer:
        """Join ``group`` on ``destination`` now (the group exists from this call)."""
        self._check_open()
        consumer = Consumer(self, destination, group, visibility_timeout=visibility_timeout,
                            prefetch=prefetch, dead_letter=dead_letter,
                            codec=codec or self.codec)
        with self._lock:
            self._consumers.add(consumer)
        return consumer

    def as_native(self) -> object:
        """The client library's connection object (escape hatch)."""
        return self._live_driver().as_native()

    def close(self) -> None:
        """Close every consumer (giving back unsettled messages), then the connection.
        In a forked child that never used the client, the connection is the parent's:
        it is left alone."""
        if self._closed:
            return
        with self._lock:
            consumers = list(self._consumers)
        try:
            for consumer in consumers:
                consumer.close()
        finally:
            self._closed = True
            if self._generation == forks.generation:
                with native_errors(self._driver, f"close {self.url.redacted}"):
                    self._driver.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<messaging.Client {self.url.redacted}{' closed' if self._closed else ''}>"

    # -- internals used by Producer, Consumer, Admin -----------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise MessagingError(f"client {self.url.redacted} is closed")

    def _live_driver(self) -> Driver:
        self._check_open()
        if self._generation != forks.generation:
            self._reopen_in_child()
        return self._driver

    def _creating(self, destination: str, call: Callable[[], T],
                  groups: Sequence[str] = ()) -> T:
        """``call()``; where it finds ``destination`` missing and ``auto_create`` holds,
        create it (declaring ``groups``) and call again."""
        try:
            return call()
        except DestinationNotFound:
            if not self._auto_create:
                raise
            self.admin.create(destination, groups=groups)
            return call()

    def _open(self) -> Driver:
        url = self.url
        try:
            return self._driver_class.open(url, self._driver_options)
        except MessagingError:
            raise
        except Exception as error:
            raise _classify_open_error(self._driver_class, url, error,
                                       f"connect to {url.redacted}") from error

    def _reopen_in_child(self) -> None:
        """First use in a process forked after the connection opened: open this
        process's own (see :mod:`messaging.forks`). The inherited driver is not closed,
        since closing would act on the parent's connection; consumers made before the
        fork stay the parent's (they refuse to work here)."""
        with forks.reopening:
            if self._generation == forks.generation:
                return  # another thread of this child reopened it meanwhile
            if self._driver_class.not_after_fork is not None:
                raise ConfigurationError(
                    f"{self.url.redacted} was connected before this process was forked: "
                    f"{self._driver_class.not_after_fork}")
            log.info("%s: first use in a forked process, opening its own connection",
                     self.url.redacted)
            self._driver = self._open()  # the inherited one was kept: _inherited()
            self._lock = threading.Lock()  # the parent's may have been held at the fork
            self._consumers = weakref.WeakSet()
            self._generation = forks.generation

    def _inherited(self) -> list[object]:
        """``forks.Holder``: the connection and the consumers' subscriptions, which a
        child forked while they are open must never finalize (they are the parent's)."""
        if self._closed:
            return []
        return [self._driver, *(consumer._subscription for consumer in list(self._consumers))]

    def _forget_consumer(self, consumer: Consumer) -> None:
        with self._lock:
            self._consumers.discard(consumer)


def _classify_open_error(driver_class: type[Driver], url: BrokerURL, error: Exception,
                         doing: str) -> MessagingError:
    """``open`` failed before a driver instance existed: classify with the class's
    table (``error_code`` must not depend on instance state)."""
    from messaging.errors import translate

    try:
        code = driver_class.error_code(driver_class.__new__(driver_class), error)
    except Exception:  # the table itself failed: report the original error
        return ConfigurationError(f"{doing}: {type(error).__name__}: {error}")
    return translate(code, error, doing)
