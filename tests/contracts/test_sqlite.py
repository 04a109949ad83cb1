"""The contract suite against the durable reference engine (``sqlite:///file``), one
fresh database file per test; the crash test's member is a real child process."""

from pathlib import Path

import pytest
from messaging_contracts.suite import *  # noqa: F403


@pytest.fixture
def messaging_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'contracts.db'}"
