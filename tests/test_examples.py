"""The examples run and print what they promise."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parent.parent / "examples"


def run_example(name: str, *args: str, timeout: float = 60) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
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


def test_rag_docs(tmp_path: Path) -> None:
    """Indexes a folder on the local default model, answers with citations, re-syncs."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "garden.md").write_text("# Garden\n\nPlant tomatoes in May, after the last frost.\n")
    (docs / "bikes.md").write_text("# Bikes\n\nOil the chain once a month, a drop per link.\n")
    args = (str(docs), "--index", str(tmp_path / "docs.db"), "-q", "When do I plant tomatoes?")
    out = run_example("rag_docs.py", *args, timeout=600)
    assert "Indexed files: 2, chunks: 2, embedded now: 2, removed: 0" in out
    assert "\nQ: When do I plant tomatoes?\nsearched for: '" in out
    answer = re.search(r"^A: (.+)$", out, re.MULTILINE)
    assert answer is not None and answer.group(1) != "(no answer)"
    sources = re.search(r"^Sources: (.+)$", out, re.MULTILINE)
    assert sources is not None  # k=3 over two chunks: both are cited
    assert sorted(re.findall(r"\[(\w+\.md)#0\]", sources.group(1))) == ["bikes.md", "garden.md"]

    (docs / "bikes.md").unlink()
    out = run_example("rag_docs.py", *args, timeout=600)
    assert "Indexed files: 1, chunks: 1, embedded now: 0, removed: 1" in out
    assert re.search(r"^Sources: \[garden\.md#0\]$", out, re.MULTILINE)
