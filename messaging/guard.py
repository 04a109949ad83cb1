"""The single place where native exceptions become ``messaging`` errors.

Every call from the portable layer into a driver goes through :func:`native_errors`, so a
broker failure surfaces as exactly one ``MessagingError`` subclass chosen by the driver's
``error_code`` table, with the native exception as ``__cause__``.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Literal, Protocol

from messaging.errors import (
    DestinationNotFound,
    ErrorCode,
    MessagingError,
    UnsupportedFeature,
    translate,
)

log = logging.getLogger("messaging.consumer")


class _Classifies(Protocol):
    def error_code(self, error: BaseException) -> ErrorCode: ...


class native_errors:  # a context manager used like a function: lower case
    """Translate whatever the driver raises inside the block; ``doing`` names the call.

    A class rather than a ``@contextmanager`` generator: the portable layer enters one
    around every receive and every ack, and a generator costs several times as much.
    """

    __slots__ = ("_args", "_doing_format", "_driver")

    def __init__(self, driver: _Classifies, doing: str, *args: object) -> None:
        """``args``: values for ``%`` fields of ``doing``, filled in only if there is an
        error to name (a hot call need not format its description every time)."""
        self._driver = driver
        self._doing_format = doing
        self._args = args

    @property
    def _doing(self) -> str:
        return self._doing_format % self._args if self._args else self._doing_format

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> Literal[False]:
        if error is None or isinstance(error, MessagingError) or not isinstance(error,
                                                                                Exception):
            return False
        if isinstance(error, NotImplementedError):
            # An optional driver method the backend does not provide.
            raise UnsupportedFeature(f"{self._doing}: not supported by this backend") from error
        raise translate(self._driver.error_code(error), error, self._doing) from error


class settlement_errors:  # a context manager used like a function: lower case
    """``native_errors`` around an ack, a give-back or a consumer's close, where
    ``DestinationNotFound`` is no error: a destination (or group) deleted meanwhile took
    its messages along, so none of them can be delivered to the group again, which is
    all that settling them could have achieved. Kafka and SQS report the deletion on an
    ack, Redis on a give-back, the others not at all; handlers that finish during a
    teardown or a migration settle without error on every backend."""

    __slots__ = ("_translate",)

    def __init__(self, driver: _Classifies, doing: str, *args: object) -> None:
        self._translate = native_errors(driver, doing, *args)

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> bool:
        try:
            self._translate.__exit__(kind, error, traceback)
        except DestinationNotFound as gone:
            error = gone
        if isinstance(error, DestinationNotFound):
            log.debug("the destination is gone, and its messages with it: %s", error)
            return True
        return False


def translated(driver: _Classifies, error: BaseException, doing: str) -> MessagingError:
    """The portable error for one native error reported per message (batch results)."""
    if isinstance(error, MessagingError):
        return error
    return translate(driver.error_code(error), error, doing)
