"""The contract suite's summary is the same whether the tests run in one process or in
pytest-xdist workers (users run the suite in their own CI, often with ``-n``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("xdist", reason="pytest-xdist is not installed (it is in the dev extra)")

# A few fast tests, the soak (it reports a line) and one test per outcome kind on memory://.
SELECTION = "soak or bad_input or honesty"
_RESULT = re.compile(r"\d+ passed.* in [\d.]+s( \(.*\))?")  # pytest's own last line


def _summary(tmp_path: Path, *options: str) -> list[str]:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("MESSAGING_")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "messaging_contracts", "--messaging-url",
         "memory://", "-k", SELECTION, "-p", "no:cacheprovider", "-q", *options],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    section = result.stdout.split(" messaging contracts ", 1)
    assert len(section) == 2, f"no contract summary in:\n{result.stdout}"
    lines = [line for line in section[1].splitlines()[1:] if line
             and not line.startswith("=") and not _RESULT.fullmatch(line)]
    # The soak's figures and timing vary from run to run; its line must be there.
    return [re.sub(r"(soak \S+):.*", r"\1", line) for line in lines]


def test_the_summary_is_whole_under_xdist(tmp_path: Path) -> None:
    alone = _summary(tmp_path)
    assert any(line.startswith("memory://: ") for line in alone), alone
    assert "soak memory://" in alone, alone
    assert _summary(tmp_path, "-n", "2") == alone
