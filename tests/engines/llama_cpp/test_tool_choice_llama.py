"""tool_choice by grammar, and prediction stats, on the local engine with the real default model.

Predictions are greedy and a few tokens long.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import agentkit as ak
from agentkit.config import PredictionConfig
from agentkit.engines.base import PredictionRequest, ToolDefinition
from agentkit.engines.llama_cpp.engine import LlamaCppEngine
from agentkit.engines.llama_cpp.json_mode import OutputSplitter
from agentkit.engines.llama_cpp.native_tools import HERMES
from agentkit.engines.llama_cpp.prompting.formats import GemmaFormat
from agentkit.engines.llama_cpp.prompting.jinja import JinjaPromptFormat
from agentkit.engines.llama_cpp.tool_modes import NativeTemplate, plan_round
from agentkit.tools import calculator

GREEDY: dict[str, Any] = {"temperature": 0, "seed": 7}
LOOKUP = ToolDefinition(
    "lookup",
    "Look a word up.",
    {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]},
)
ADD = ToolDefinition(
    "add",
    "Add two numbers.",
    {
        "type": "object",
        "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
        "required": ["a", "b"],
    },
)
MESSAGES = ak.Chat.from_history("What is 2 plus 3?").messages
TEMPLATE = (
    "{% if tools %}TOOLS:{% for t in tools %}{{ t.function.name }} {% endfor %}{% endif %}"
    "{% for m in messages %}[{{ m.role }}]{{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant]{% endif %}"
)


def weather(city: str) -> str:
    """The current weather in a city."""
    return f"It is sunny in {city}."


def _plan(choice: Any, native: NativeTemplate | None = None) -> Any:
    config = PredictionConfig(tool_choice=choice)
    request = PredictionRequest(MESSAGES, (ADD, LOOKUP), config=config)
    return plan_round(request, config, GemmaFormat(), native)


def _prompt(plan: Any) -> str:
    return "".join(segment.text for segment in plan.segments)


# -- the round plan ---------------------------------------------------------------------------


def test_none_offers_no_tools_to_prompt_or_grammar() -> None:
    auto, none = _plan("auto"), _plan("none")
    assert auto.grammar is not None and "lookup" in _prompt(auto)
    assert none.grammar is None  # free text: nothing to constrain
    assert "lookup" not in _prompt(none) and "add" not in _prompt(none)
    splitter = none.router()
    assert isinstance(splitter, OutputSplitter)
    assert splitter.feed('{"tool_calls": []}')  # streamed as text, never read as a call


def test_a_named_tool_is_the_only_one_in_the_grammar_and_a_call_is_required() -> None:
    required, named = _plan("required"), _plan({"name": "lookup"})
    assert '\\"add\\"' in required.grammar and '\\"lookup\\"' in required.grammar
    assert '\\"lookup\\"' in named.grammar and '\\"add\\"' not in named.grammar
    assert named.grammar.startswith("root ::= calls-root\n")  # no answer branch
    assert "lookup" in _prompt(named) and "Add two numbers" not in _prompt(named)


def test_native_mode_takes_a_named_tool_through_json_mode() -> None:
    native = NativeTemplate(JinjaPromptFormat(TEMPLATE), HERMES)
    named = _plan({"name": "lookup"}, native)
    assert named.grammar is not None and '\\"add\\"' not in named.grammar
    assert not _prompt(named).startswith("TOOLS:")  # JSON-mode instructions instead
    none = _plan("none", native)
    assert none.grammar is None and not _prompt(none).startswith("TOOLS:")


# -- the real model ---------------------------------------------------------------------------


def test_a_named_tool_forces_that_tool(model: ak.LLM) -> None:
    config = {**GREEDY, "max_tokens": 40, "tool_choice": {"name": "weather"}}
    result = model.act(
        "What is 12345 times 54321?", [calculator, weather], config=config, max_prediction_rounds=2
    )
    calls = result.round_records[0].tool_calls
    assert calls and {record.call.name for record in calls} == {"weather"}
    assert all(isinstance(record.call.arguments, dict) for record in calls)


def test_none_answers_in_text_with_tools_offered(model: ak.LLM) -> None:
    question = "What is 12345 times 54321?"
    answered = model.act(
        question,
        [calculator],
        config={**GREEDY, "max_tokens": 16, "tool_choice": "none"},
        max_prediction_rounds=2,
    )
    assert answered.rounds == 1 and answered.stop_reason == "answered"
    assert not answered.round_records[0].tool_calls and answered.final is not None
    assert answered.final.content.strip()
    # The same round with "auto" has the tool instructions in its prompt; "none" has none.
    auto = model.act(
        question,
        [calculator],
        config={**GREEDY, "max_tokens": 1, "tool_choice": "auto"},
        max_prediction_rounds=2,
    )
    assert answered.usage.prompt_tokens < auto.round_records[0].usage.prompt_tokens


# -- stats ------------------------------------------------------------------------------------


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_stats_of_a_local_prediction(client: ak.Client, model: ak.LLM) -> None:
    engine = client.async_client.engine
    assert isinstance(engine, LlamaCppEngine)
    config = {**GREEDY, "max_tokens": 24}
    short = model.respond("Tell me a story.", config=config)
    long = model.respond("Tell me a story about a dragon. " * 12, config=config)
    for result in (short, long):
        stats = result.stats
        assert (stats.prompt_tokens, stats.generated_tokens) == (
            result.usage.prompt_tokens,
            result.usage.completion_tokens,
        )
        assert stats.generated_tokens is not None and stats.generated_tokens >= 2
        assert stats.tokens_per_second is not None and stats.generation_seconds is not None
        assert stats.tokens_per_second * stats.generation_seconds == pytest.approx(
            stats.generated_tokens
        )
        assert result.time_to_first_token_seconds is not None
        assert stats.time_to_first_token_seconds == result.time_to_first_token_seconds
        assert stats.generation_seconds <= result.duration_seconds
        assert stats.tokens_per_second > 1  # a 135M-270M model decodes far faster than that
    weights = engine._instance(model.identifier).llama._model.size()
    peaks = [r.stats.peak_memory_bytes for r in (short, long)]
    assert all(peak is not None and peak > weights for peak in peaks)
    short_peak, long_peak = peaks[0] or 0, peaks[1] or 0
    # The KV part grows with the tokens held: a plausible size per token for a small model.
    tokens = [(r.stats.prompt_tokens or 0) + (r.stats.generated_tokens or 0) for r in (short, long)]
    per_token = (long_peak - short_peak) / (tokens[1] - tokens[0])
    assert 1_000 < per_token < 1_000_000
    # Everything counted is in memory: it cannot exceed what the process has resident.
    assert long_peak <= _rss_bytes()
