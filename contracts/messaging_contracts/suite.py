"""Every contract test, for an adapter's own test module (SQLAlchemy ``testing.suite``
style)::

    import pytest
    from messaging_contracts.suite import *  # noqa: F403

    @pytest.fixture
    def messaging_url() -> str:
        return "amqp://guest:guest@127.0.0.1:5672/"

The fixtures come from the plugin (``messaging_contracts.plugin``, loaded by pytest
through its entry point). Only the test functions are exported, so the star import
brings nothing else into the adapter's module. A test module that overrides
``messaging_url`` with a URL living in one process (``memory://``) also sets
``messaging_in_process = True`` (see the crash test).
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import messaging_contracts

MODULES: tuple[str, ...] = tuple(sorted(
    info.name for info in pkgutil.iter_modules(messaging_contracts.__path__)
    if info.name.startswith("test_")
))
"""The contract modules, one per semantic (``test_at_least_once``, ...)."""


def _collect() -> dict[str, object]:
    tests: dict[str, object] = {}
    for name in MODULES:
        module: ModuleType = importlib.import_module(f"messaging_contracts.{name}")
        for attribute, value in vars(module).items():
            if attribute.startswith("test_") and callable(value):
                if attribute in tests:
                    raise RuntimeError(f"two contract tests named {attribute}")
                tests[attribute] = value
    return tests


_TESTS = _collect()
globals().update(_TESTS)
__all__ = sorted(_TESTS)  # noqa: PLE0605
