"""Per-family JSON-mode call syntax: SmolLM2's `<tool_call>[...]` next to agentkit's object.

Grammar, instructions, splitter and reader work on plain text; the last tests run the default
model (SmolLM2-135M-Instruct), which gets its trained format when loaded with
`tool_call_syntax="trained"`."""

from __future__ import annotations

import json

import pytest
from llama_cpp.llama_grammar import LlamaGrammar

import agentkit as ak
from agentkit.engines.base import MalformedToolCall, ToolCallRequested, ToolDefinition
from agentkit.engines.llama_cpp.call_syntax import JSON_OBJECT, SMOLLM2, CallSyntax, for_model
from agentkit.engines.llama_cpp.engine import LlamaCppEngine
from agentkit.engines.llama_cpp.json_mode import (
    OutputSplitter,
    grammar_for,
    parse_tool_calls,
    tool_instructions,
)
from agentkit.tools import calculator

LOOKUP = ToolDefinition(
    "lookup",
    "Look a word up.",
    {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]},
)
CALLS = [
    {"name": "lookup", "arguments": {"word": "a"}},
    {"name": "lookup", "arguments": {"word": "b, [c]"}},
]


def _calls(events: list[ToolCallRequested | MalformedToolCall]) -> list[object]:
    assert not [e for e in events if isinstance(e, MalformedToolCall)], events
    return [
        {"name": e.call.name, "arguments": e.call.arguments}
        for e in events
        if isinstance(e, ToolCallRequested)
    ]


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"general.basename": "smollm2", "general.name": "Smollm2 135M 8k"}, SMOLLM2),
        ({"general.name": "SmolLM2-360M-Instruct"}, SMOLLM2),
        ({"general.basename": "gemma-3", "general.name": "Gemma 3 270m"}, JSON_OBJECT),
        ({"general.name": "smollm2ish"}, JSON_OBJECT),  # a word, not a substring
        ({}, JSON_OBJECT),
    ],
)
def test_the_syntax_is_chosen_from_the_model_s_name(
    metadata: dict[str, object], expected: CallSyntax
) -> None:
    assert for_model(metadata) is expected


def test_smollm2_is_taught_in_its_trained_wording_with_the_tools_in_a_tools_tag() -> None:
    text = tool_instructions([LOOKUP], None, SMOLLM2)
    assert text.startswith("You are an expert in composing functions.")
    assert '<tools>[{"type": "function", "function": {"name": "lookup"' in text
    assert text.endswith(
        '<tool_call>[\n{"name": "func_name1", "arguments": {"argument1": "value1", '
        '"argument2": "value2"}},\n... (more tool calls as required)\n]</tool_call>'
    )
    assert "plain text" not in text  # said before any call, the model answered without one
    assert tool_instructions([LOOKUP], None, SMOLLM2, after_results=True).endswith(
        "When you have what you need, answer in plain text."
    )
    assert tool_instructions([], None, SMOLLM2) == ""  # no tools: nothing about calls


@pytest.mark.parametrize("syntax", [JSON_OBJECT, SMOLLM2], ids=lambda s: s.name)
def test_the_history_s_calls_read_back_as_the_same_calls(syntax: CallSyntax) -> None:
    assert _calls(parse_tool_calls(syntax.calls_text(CALLS), syntax)) == CALLS


def test_smollm2_s_calls_read_with_or_without_the_closing_tag() -> None:
    listed = '<tool_call>[\n{"name": "lookup", "arguments": {"word": "a"}}\n]'
    assert _calls(parse_tool_calls(listed, SMOLLM2)) == CALLS[:1]
    assert _calls(parse_tool_calls(listed + "</tool_call>", SMOLLM2)) == CALLS[:1]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"tool_calls": [{"name": "lookup", "arguments": {}}]}', "must start with <tool_call>"),
        ("<tool_call>[]", "the call list must be a non-empty list"),
        ('<tool_call>{"name": "lookup"}', "the call list must be a non-empty list"),
    ],
)
def test_smollm2_s_reader_reports_other_shapes(text: str, reason: str) -> None:
    [event] = parse_tool_calls(text, SMOLLM2)
    assert isinstance(event, MalformedToolCall) and reason in event.reason


def test_a_cut_smollm2_list_keeps_its_complete_calls() -> None:
    text = '<tool_call>[\n{"name": "lookup", "arguments": {"word": "a"}},\n{"name": "lo'
    first, second = parse_tool_calls(text, SMOLLM2)
    assert isinstance(first, ToolCallRequested) and first.call.arguments == {"word": "a"}
    assert isinstance(second, MalformedToolCall)


def test_the_splitter_buffers_a_smollm2_list_and_stops_at_a_repeated_call() -> None:
    splitter = OutputSplitter(tools_offered=True, syntax=SMOLLM2)
    call = '{"name": "lookup", "arguments": {"word": "a"}}'
    for piece in ["<", "tool", "_call", ">[\n", call, ",\n", call]:
        assert splitter.feed(piece) == []  # nothing streams: it is a call list
    assert splitter.complete
    assert _calls(splitter.finish()) == CALLS[:1]


def test_smollm2_answer_text_streams_once_it_cannot_be_a_call() -> None:
    splitter = OutputSplitter(tools_offered=True, syntax=SMOLLM2)
    assert splitter.feed("<tool") == []
    assert [d.text for d in splitter.feed("s> are")] == ["<tools> are"]


@pytest.mark.parametrize("syntax", [JSON_OBJECT, SMOLLM2], ids=lambda s: s.name)
def test_a_list_that_stopped_after_a_comma_ends_before_it(syntax: CallSyntax) -> None:
    splitter = OutputSplitter(tools_offered=True, syntax=syntax)
    # As the worker stops it when no other call fits after the model's `},` (see forced()).
    splitter.feed(f"{syntax.prefix}[{syntax.first_gap}{json.dumps(CALLS[0])},")
    assert _calls(splitter.finish()) == CALLS[:1]


def test_smollm2_s_grammar_opens_calls_with_its_tag_and_answers_cannot_look_like_calls() -> None:
    grammar = grammar_for([LOOKUP, calculator.definition], None, syntax=SMOLLM2)
    assert grammar is not None
    assert 'calls-root ::= "<tool_call>" calls-list-root' in grammar
    assert "answer-root ::= [^<{" in grammar
    LlamaGrammar.from_string(grammar, verbose=False)  # llama.cpp parses it
    required = grammar_for([LOOKUP], None, require_call=True, syntax=SMOLLM2)
    assert required is not None and required.startswith("root ::= calls-root\n")
    assert grammar_for([], None, text_answer=True, syntax=SMOLLM2) == (
        "root ::= [^<{ \\t\\n] [^\\x00]*\n"
    )


# -- the real engine on the default model -------------------------------------------------------


def test_the_default_model_calls_in_its_trained_format_when_loaded_for_it(
    client: ak.Client, model: ak.LLM, trained: ak.LLM
) -> None:
    engine = client.async_client.engine
    assert isinstance(engine, LlamaCppEngine)
    assert engine._instance(model.identifier).format.call_syntax is JSON_OBJECT  # the default
    assert engine._instance(trained.identifier).format.call_syntax is SMOLLM2
    config = {"temperature": 0, "max_tokens": 48, "tool_choice": "required"}
    result = trained.act(
        "What does 'apple' mean?", [LOOKUP_TOOL], config=config, max_prediction_rounds=2
    )
    record = result.round_records[0]
    assert [call.call.name for call in record.tool_calls] == ["lookup"]
    assert not [m for m in result.messages[1:] if isinstance(m, ak.UserMessage)]  # all parsed


def lookup(word: str) -> str:
    """Look a word up."""
    return f"{word}: a kind of fruit."


LOOKUP_TOOL = lookup


def test_the_main_job_calls_the_calculator_and_states_its_result(model: ak.LLM) -> None:
    from agentkit.cli import INSTRUCTIONS

    chat = ak.Chat(INSTRUCTIONS)
    chat.add_user_message("What is 12345 times 54321?")
    config = ak.PredictionConfig(temperature=0, seed=0, max_tokens=64, tool_choice="required")
    result = model.act(chat, [calculator], config=config, max_prediction_rounds=2)
    [first, second] = result.round_records
    assert [c.call.name for c in first.tool_calls] == ["calculator"]
    assert "670592745" in (result.final.content if result.final else "")
    assert not second.tool_calls
