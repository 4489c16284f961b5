"""The `agentkit` command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agentkit.cli import main


def test_demo_shows_rounds_tool_calls_answer_and_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "What is 12345 times 54321?"]) == 0
    out = capsys.readouterr().out
    assert "scripted model" in out
    assert 'tool call   calculator({"expression":"12345 * 54321"})' in out
    assert "tool result 670592745" in out
    assert "answer      The answer is 670592745." in out
    assert "2 rounds in" in out and "prompt +" in out


def test_demo_without_arithmetic_answers_directly(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "Tell me a story"]) == 0
    out = capsys.readouterr().out
    assert "tool call" not in out and "only work out arithmetic" in out


def test_run_reports_engine_errors_with_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "hi", "--url", "ftp://nowhere"]) == 2
    assert "cannot tell which engine" in capsys.readouterr().err


def test_run_on_the_local_engine(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "What is 12345 times 54321?", "--max-tokens", "48"]) == 0
    out = capsys.readouterr().out
    assert "gemma-3-270m-q4_k_m on the llama_cpp engine" in out
    assert 'tool call   calculator({"expression":"12345 * 54321"})' in out
    assert "tool result 670592745" in out
    assert "2 rounds in" in out


def test_tracing_options_write_spans(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agentkit.tracing.otel.jsonl_export import read_spans

    spans = tmp_path / "spans.jsonl"
    assert main(["demo", "2 plus 2", "--trace-jsonl", str(spans), "--trace-content"]) == 0
    records = read_spans(spans)
    names = sorted(r["name"] for r in records)
    assert names == sorted(
        ["invoke_agent", "round 0", "round 1", "chat demo-script", "chat demo-script",
         "execute_tool calculator"]
    )  # fmt: skip
    tool = next(r for r in records if r["name"] == "execute_tool calculator")
    assert tool["attributes"]["gen_ai.tool.call.result"] == "4"
    assert "The answer is 4." in capsys.readouterr().out


def test_console_script_entry_point() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agentkit.cli", "demo", "2 plus 2"], capture_output=True, text=True
    )
    assert done.returncode == 0 and "The answer is 4." in done.stdout
