"""``Admin``: create, delete and inspect destinations and groups."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from messaging import checks
from messaging.errors import ConfigurationError
from messaging.guard import native_errors

if TYPE_CHECKING:
    from messaging.client import Client


class Admin:
    """Destination management; every call goes straight to the driver."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"<Admin {self._client.url.redacted}>"

    def create(self, destination: str, partitions: int = 1, groups: Iterable[str] = (),
               **options: object) -> None:
        """Create ``destination`` and declare ``groups`` (which then receive every message
        sent from now on, even before their first consumer). Idempotent. ``partitions``
        is the unit of ordered parallelism; brokers whose consumers compete per message
        accept and ignore it. ``options`` are backend-specific (e.g. ``fifo=True`` on
        SQS) and documented in the adapter's mapping document."""
        checks.check_name("destination", destination)
        if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
            raise ConfigurationError(f"partitions must be an int >= 1, got {partitions!r}")
        if isinstance(groups, str):
            raise ConfigurationError("groups must be a list of names, not one string")
        if not isinstance(groups, Iterable):
            raise ConfigurationError(f"groups must be a list of names, got {groups!r}")
        names = [checks.check_name("group", group) for group in groups]
        driver = self._client._live_driver()
        with native_errors(driver, f"create {destination!r}"):
            driver.create(destination, partitions, names, options)

    def delete(self, destination: str) -> None:
        """Delete ``destination`` and its groups; a missing one is no error."""
        checks.check_name("destination", destination)
        driver = self._client._live_driver()
        with native_errors(driver, f"delete {destination!r}"):
            driver.delete(destination)

    def depth(self, destination: str, group: str = "default") -> int:
        """Messages not yet acked by ``group`` (ready, in flight and delayed)."""
        checks.check_name("destination", destination)
        checks.check_name("group", group)
        driver = self._client._live_driver()
        with native_errors(driver, f"depth of {destination!r} for {group!r}"):
            return driver.depth(destination, group)

    def destinations(self) -> list[str]:
        driver = self._client._live_driver()
        with native_errors(driver, "list destinations"):
            return sorted(driver.destinations())

    def groups(self, destination: str) -> list[str]:
        checks.check_name("destination", destination)
        driver = self._client._live_driver()
        with native_errors(driver, f"list groups of {destination!r}"):
            return sorted(driver.groups(destination))
