"""examples/lmstudio_agent.py runs against an LM Studio protocol server and when none is running."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from lmstudio_server import Fragment, LMStudioTestServer, ModelSpec, Step, ToolCallGen

EXAMPLE = Path(__file__).parents[3] / "examples" / "lmstudio_agent.py"
MODEL = "qwen2.5-7b-instruct"


def run_example(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, timeout=60
    )


def multiply_then_answer(param: dict[str, Any], index: int) -> list[Step]:
    """Prediction 0 calls multiply (no text, as tool-trained models do); 1 reads its result."""
    if index == 0:
        return [ToolCallGen("multiply", {"a": 12345, "b": 54321}, id="call_mul")]
    last = param["history"]["messages"][-1]
    assert last["role"] == "tool"
    result = last["content"][0]["content"]
    return [Fragment("12345 multiplied by 54321 is "), Fragment(f"{float(result):.0f}.")]


def test_example_against_protocol_server() -> None:
    with LMStudioTestServer(multiply_then_answer, models=[ModelSpec(MODEL)]) as server:
        done = run_example(f"lmstudio://{server.host}", MODEL)
        predictions = len(server.stats.predictions)
    assert done.returncode == 0, done.stdout + done.stderr
    assert predictions == 2
    lines = done.stdout.splitlines()
    assert "tool call: multiply({'a': 12345, 'b': 54321})" in lines
    assert "tool result (multiply): 670592745.0" in lines
    assert "assistant: 12345 multiplied by 54321 is 670592745." in lines
    assert lines[-1].startswith("2 rounds, ")


def test_example_without_lmstudio_exits_2() -> None:
    with socket.socket() as probe:  # a free port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = run_example(f"lmstudio://127.0.0.1:{port}")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"LM Studio is not running at 127.0.0.1:{port}" in done.stdout
