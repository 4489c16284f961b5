"""The examples run and print what they promise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parent.parent / "examples"


def run_example(name: str) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_quickstart() -> None:
    out = run_example("quickstart.py")
    assert out.startswith("12345 times 54321 is 670592745.\n2 rounds")
    assert '"role": "tool"' in out


def test_support_desk() -> None:
    out = run_example("support_desk.py")
    assert "50 sessions resolved; apologies owed for orders [0, 3, 6," in out
