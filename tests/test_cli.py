"""The `agentkit` command."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
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
    assert "\nact() " in out and " s, 2 rounds, " in out and "prompt +" in out


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
    assert re.match(r"agentkit run: \S+ on the llama_cpp engine\n", out)  # the default model
    assert 'tool call   calculator({"expression":"12345 * 54321"})' in out
    assert "tool result 670592745" in out
    assert re.search(r"model loaded in \d+\.\d\d s\n", out)
    assert re.search(r"\nact\(\) \d+\.\d\d s, 2 rounds, \d+ prompt \+ \d+ completion tokens", out)


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


def test_run_on_a_scripted_model_prints_act_time_and_no_load_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", "--model", "scripted:agentkit.cli:demo_responder", "3 times 4"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("agentkit run: demo_responder on the agentkit.testing engine\n\n")
    assert "model loaded" not in out  # nothing was loaded
    assert "answer      The answer is 12." in out
    assert re.search(r"\nact\(\) \d+\.\d\d s, 2 rounds, \d+ prompt \+ \d+ completion tokens", out)


@pytest.fixture
def agent_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], str]:
    """Writes a module of agents under a fresh importable name; returns the name."""

    def write(source: str) -> str:
        name = f"agents_{time.monotonic_ns()}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        return name

    monkeypatch.syspath_prepend(str(tmp_path))
    return write


AGENTS = """
    import agentkit as ak
    from agentkit.cli import demo_responder
    from agentkit.testing import ScriptedModel
    from agentkit.tools import calculator

    model = ScriptedModel(demo_responder)

    def shout(prompt):
        return prompt.upper() + "!"

    def count(chat: ak.Chat) -> str:
        return f"{len(chat)} message(s), last: {chat[-1].content}"

    def acting(prompt: str) -> ak.ActResult:
        return model.act(prompt, [calculator])

    async def later(prompt):
        return model.act(prompt, [calculator]).final.text

    def numeric(prompt):
        return 42

    def failing(prompt):
        raise ak.ConfigurationError("the agent is not configured")

    not_callable = 3
"""


def test_run_agent_with_a_prompt_or_a_chat(
    agent_module: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    name = agent_module(AGENTS)
    assert main(["run", "--agent", f"{name}:shout", "hello"]) == 0
    out = capsys.readouterr().out
    assert f"agentkit run: {name}:shout" in out
    assert "  answer      HELLO!\n" in out and re.search(r"\nagent \d+\.\d\d s", out)
    assert main(["run", "--agent", f"{name}:count", "hi there"]) == 0
    assert "answer      1 message(s), last: hi there" in capsys.readouterr().out


def test_run_agent_returning_an_act_result_shows_the_run(
    agent_module: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    name = agent_module(AGENTS)
    assert main(["run", "--agent", f"{name}:acting", "6 times 7"]) == 0
    out = capsys.readouterr().out
    assert 'tool call   calculator({"expression":"6 * 7"})' in out
    assert "tool result 42" in out and "answer      The answer is 42." in out
    assert re.search(r"\nact\(\) \d+\.\d\d s, 2 rounds", out)
    assert main(["run", "--agent", f"{name}:later", "2 plus 2"]) == 0  # async agents too
    assert "answer      The answer is 4." in capsys.readouterr().out


@pytest.mark.parametrize(
    ("attribute", "message"),
    [
        ("numeric", "returned int; return an ActResult, a PredictionResult or a str"),
        ("failing", "the agent is not configured"),
        ("not_callable", "int is not callable"),
        ("missing", "has no attribute 'missing'"),
    ],
)
def test_run_agent_errors_exit_2_with_a_message(
    agent_module: Callable[[str], str],
    capsys: pytest.CaptureFixture[str],
    attribute: str,
    message: str,
) -> None:
    name = agent_module(AGENTS)
    assert main(["run", "--agent", f"{name}:{attribute}", "hi"]) == 2
    assert message in capsys.readouterr().err
