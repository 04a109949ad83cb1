"""The contract suite against the reference engine in memory (``memory://``)."""

import pytest
from messaging_contracts.suite import *  # noqa: F403

# memory:// lives inside this process: the crash test's member is a thread here.
messaging_in_process = True


@pytest.fixture
def messaging_url() -> str:
    return "memory://"
