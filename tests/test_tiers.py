"""The default run leaves the slow tier out; asking for it (``--slow``, ``-m slow``, a file) runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _collected(*args: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return [line for line in out.stdout.splitlines() if "::" in line]


@pytest.mark.parametrize(
    "args, soak_runs, others_run",
    [
        (("tests/behaviour",), False, True),
        (("tests/behaviour", "--slow"), True, True),
        (("tests/behaviour", "-m", "slow"), True, False),
        (("tests/behaviour/test_soak.py",), True, False),
    ],
)
def test_slow_tier_runs_only_when_asked_for(args, soak_runs, others_run):
    ids = _collected(*args)
    assert any("test_soak.py" in i for i in ids) == soak_runs
    assert any("test_interruptions.py" in i for i in ids) == others_run
