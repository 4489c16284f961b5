"""`agentkit eval --workers N`: the same report as a local run, from worker processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

AGENTKIT = [sys.executable, "-c", "import sys; from agentkit.cli import main; sys.exit(main())"]


def _eval(dataset: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AGENTKIT, "eval", str(dataset), "--scripted", *options],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_workers_give_the_local_report(tmp_path: Path) -> None:
    dataset = tmp_path / "cases.jsonl"
    cases = [{"input": f"What is {i} times 3?", "expected": str(i * 3)} for i in range(10)]
    cases.append({"input": "What is 2 times 2?", "expected": "five"})  # fails in both
    dataset.write_text("".join(json.dumps(case) + "\n" for case in cases))
    local = _eval(dataset, "--json", str(tmp_path / "local.json"))
    spread = _eval(dataset, "--workers", "2", "--json", str(tmp_path / "spread.json"))
    assert local.returncode == 0, local.stderr
    assert spread.returncode == 0, spread.stderr

    def rows(name: str) -> dict[str, tuple[str, bool]]:
        report = json.loads((tmp_path / name).read_text())
        return {r["case_id"]: (r["output"], r["passed"]) for r in report["results"]}

    assert rows("spread.json") == rows("local.json")
    assert sum(passed for _, passed in rows("spread.json").values()) == 10


def test_workers_must_be_a_count_or_a_url(tmp_path: Path) -> None:
    dataset = tmp_path / "cases.jsonl"
    dataset.write_text('{"input": "hi", "expected": "hi"}\n')
    done = _eval(dataset, "--workers", "zero")
    assert done.returncode != 0
    assert "--workers is a number of local workers" in done.stderr
