"""The single place where native exceptions become ``messaging`` errors.

Every call from the portable layer into a driver goes through :func:`native_errors`, so a
broker failure surfaces as exactly one ``MessagingError`` subclass chosen by the driver's
``error_code`` table, with the native exception as ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from messaging.errors import ErrorCode, MessagingError, UnsupportedFeature, translate


class _Classifies(Protocol):
    def error_code(self, error: BaseException) -> ErrorCode: ...


@contextmanager
def native_errors(driver: _Classifies, doing: str) -> Iterator[None]:
    """Translate whatever the driver raises inside the block; ``doing`` names the call."""
    try:
        yield
    except MessagingError:
        raise
    except NotImplementedError as error:
        # An optional driver method the backend does not provide.
        raise UnsupportedFeature(f"{doing}: not supported by this backend") from error
    except Exception as error:
        raise translate(driver.error_code(error), error, doing) from error


def translated(driver: _Classifies, error: BaseException, doing: str) -> MessagingError:
    """The portable error for one native error reported per message (batch results)."""
    if isinstance(error, MessagingError):
        return error
    return translate(driver.error_code(error), error, doing)
