"""The engine's own errors and the one table mapping them (and sqlite3's) to
:class:`~messaging.errors.ErrorCode`.

Errors
------
* :class:`EngineError` carries its code: ``NOT_FOUND`` for an unknown destination or
  group, ``CONFIGURATION`` for a bad option, URL, position or create option.
* ``sqlite3.OperationalError`` "database is locked/busy" (another process held the write
  lock past the busy timeout) is ``TIMEOUT``; "unable to open database file" and use of a
  closed connection are ``CONNECTION``; a file that is not an engine database is
  ``CONFIGURATION``. Anything else is ``UNKNOWN``.
"""

from __future__ import annotations

import sqlite3

from messaging.errors import ErrorCode


class EngineError(Exception):
    """A failure the engine detects itself; ``code`` says what it means."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def not_found(message: str) -> EngineError:
    return EngineError(ErrorCode.NOT_FOUND, message)


def bad_configuration(message: str) -> EngineError:
    return EngineError(ErrorCode.CONFIGURATION, message)


def classify(error: BaseException) -> ErrorCode:
    """Map a native error to a code; depends on nothing but the error."""
    if isinstance(error, EngineError):
        return error.code
    if isinstance(error, sqlite3.Error):
        return _classify_sqlite(error)
    if isinstance(error, TimeoutError):
        return ErrorCode.TIMEOUT
    return ErrorCode.UNKNOWN


def _classify_sqlite(error: sqlite3.Error) -> ErrorCode:
    text = str(error).lower()
    if isinstance(error, sqlite3.ProgrammingError) and "closed" in text:
        return ErrorCode.CONNECTION
    if isinstance(error, sqlite3.OperationalError):
        if "locked" in text or "busy" in text:
            return ErrorCode.TIMEOUT
        if "unable to open" in text or "disk i/o" in text or "readonly" in text:
            return ErrorCode.CONNECTION
        return ErrorCode.UNKNOWN
    if isinstance(error, sqlite3.DatabaseError) and "not a database" in text:
        return ErrorCode.CONFIGURATION
    return ErrorCode.UNKNOWN
