"""JSON-mode tool calling: grammars, instructions, and splitting output into calls and text."""

from __future__ import annotations

import json

import pytest

from agentkit.engines.base import (
    MalformedToolCall,
    ResponseFormatSpec,
    TextDelta,
    ToolCallRequested,
    ToolDefinition,
)
from agentkit.engines.llama_cpp.json_mode import (
    OutputSplitter,
    grammar_for,
    parse_tool_calls,
    tool_call_schema,
    tool_instructions,
)
from agentkit.tools import calculator
from agentkit.tools.json_schema import validate

MULTIPLY = ToolDefinition(
    "multiply",
    "Multiply.",
    {
        "type": "object",
        "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
        "required": ["a", "b"],
    },
)
ANSWER = ResponseFormatSpec(
    "Answer", {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
)


def test_tool_call_schema_accepts_only_offered_tools_with_valid_arguments() -> None:
    schema = tool_call_schema([calculator.definition, MULTIPLY])
    good = {"tool_calls": [{"name": "multiply", "arguments": {"a": 1, "b": 2}}]}
    assert validate(good, schema) == []
    assert validate({"tool_calls": [{"name": "divide", "arguments": {}}]}, schema)
    assert validate({"tool_calls": [{"name": "multiply", "arguments": {"a": 1}}]}, schema)
    assert validate({"tool_calls": []}, schema)
    assert validate({"tool_calls": [good["tool_calls"][0]] * 9}, schema)  # bounded list


@pytest.mark.parametrize(
    ("tools", "response_format", "alternatives"),
    [
        ((), None, None),
        ((), ANSWER, []),
        ((MULTIPLY,), None, ["calls-root", "answer-root"]),
        ((MULTIPLY, calculator.definition), ANSWER, ["calls-root", "answer-root"]),
    ],
)
def test_grammar_shapes_and_compiles(
    tools: tuple[ToolDefinition, ...],
    response_format: ResponseFormatSpec | None,
    alternatives: list[str] | None,
) -> None:
    from llama_cpp import LlamaGrammar

    grammar = grammar_for(tools, response_format)
    if alternatives is None:
        assert grammar is None
        return
    assert grammar is not None
    LlamaGrammar.from_string(grammar, verbose=False)  # raises on invalid GBNF
    root = next(line for line in grammar.splitlines() if line.startswith("root ::="))
    assert all(name in root for name in alternatives)


def test_required_tool_choice_leaves_only_the_calls_branch() -> None:
    grammar = grammar_for([MULTIPLY], ANSWER, require_call=True)
    assert grammar is not None and grammar.startswith("root ::= calls-root\n")
    assert "answer-" not in grammar


def test_instructions_list_tools_and_the_answer_format() -> None:
    text = tool_instructions([MULTIPLY], ANSWER)
    assert "- multiply: Multiply." in text and '"tool_calls"' in text
    assert json.dumps(ANSWER.schema, separators=(",", ":")) in text
    assert tool_instructions([], None) == ""


def test_splitter_buffers_tool_calls_and_parses_them() -> None:
    splitter = OutputSplitter(tools_offered=True)
    out = '{"tool_calls": [{"name": "multiply", "arguments": {"a": 2, "b": 3}}]}'
    streamed = [event for piece in out for event in splitter.feed(piece)]
    assert streamed == []
    [event] = splitter.finish()
    assert isinstance(event, ToolCallRequested)
    assert event.call.name == "multiply" and event.call.arguments == {"a": 2, "b": 3}


def test_splitter_streams_answer_text_once_it_cannot_be_a_call() -> None:
    splitter = OutputSplitter(tools_offered=True)
    assert splitter.feed(" ") == []
    assert splitter.feed("The") == [TextDelta(" The")]
    assert splitter.feed(" answer") == [TextDelta(" answer")]
    assert splitter.finish() == []


def test_splitter_without_tools_streams_everything() -> None:
    splitter = OutputSplitter(tools_offered=False)
    assert splitter.feed('{"n"') == [TextDelta('{"n"')]


def test_complete_calls_before_a_cut_are_kept() -> None:
    text = '{"tool_calls": [{"name": "a", "arguments": {"x": 1}}, {"name": "b", "argu'
    first, second = parse_tool_calls(text)
    assert isinstance(first, ToolCallRequested) and first.call.arguments == {"x": 1}
    assert isinstance(second, MalformedToolCall) and second.raw == '{"name": "b", "argu'


def test_truncated_tool_call_is_reported_not_dropped() -> None:
    splitter = OutputSplitter(tools_offered=True)
    splitter.feed('{"tool_calls": [{"name": "multi')
    [event] = splitter.finish()
    assert isinstance(event, MalformedToolCall)
    assert event.raw == '{"tool_calls": [{"name": "multi' and "invalid JSON" in event.reason


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"tool_calls": []}', "non-empty list"),
        ('{"tool_calls": [{"arguments": {}}]}', "string name"),
    ],
)
def test_parse_tool_calls_rejects_bad_shapes(text: str, reason: str) -> None:
    [event] = parse_tool_calls(text)
    assert isinstance(event, MalformedToolCall) and reason in event.reason


def test_non_object_arguments_are_kept_as_text() -> None:
    [event] = parse_tool_calls('{"tool_calls": [{"name": "f", "arguments": [1, 2]}]}')
    assert isinstance(event, ToolCallRequested) and event.call.arguments == "[1, 2]"


# Hostile model output: past agentkit.untrusted's limits it is a MalformedToolCall (the
# invalid-request path), never RecursionError, ValueError or a float infinity.
HOSTILE_ARGUMENTS = {
    "deep": "[" * 5000 + "]" * 5000,
    "past-the-stack": "[" * 100_000 + "]" * 100_000,
    "just-past-the-limit": "[" * 150 + "]" * 150,
    "long-integer": "1" * 5000,
    "float-overflow": "1e400",
    "nan": "NaN",
    "infinity": "-Infinity",
}


@pytest.mark.parametrize("arguments", HOSTILE_ARGUMENTS.values(), ids=HOSTILE_ARGUMENTS.keys())
def test_hostile_arguments_are_malformed_calls(arguments: str) -> None:
    text = '{"tool_calls": [{"name": "f", "arguments": {"x": ' + arguments + "}}]}"
    [event] = parse_tool_calls(text)
    assert isinstance(event, MalformedToolCall)
    assert event.raw == text and event.reason


@pytest.mark.parametrize("arguments", HOSTILE_ARGUMENTS.values(), ids=HOSTILE_ARGUMENTS.keys())
def test_hostile_arguments_after_a_cut_keep_the_complete_calls(arguments: str) -> None:
    good = '{"name": "a", "arguments": {"x": 1}}'
    text = '{"tool_calls": [' + good + ', {"name": "f", "arguments": {"x": ' + arguments
    first, second = parse_tool_calls(text)
    assert isinstance(first, ToolCallRequested) and first.call.arguments == {"x": 1}
    assert isinstance(second, MalformedToolCall)


def test_hostile_output_through_the_splitter() -> None:
    splitter = OutputSplitter(tools_offered=True)
    splitter.feed('{"tool_calls": [{"name": "f", "arguments": {"x": ' + "[" * 100_000)
    splitter.feed("]" * 100_000 + "}}]}")
    [event] = splitter.finish()
    assert isinstance(event, MalformedToolCall)


def test_limits_leave_ordinary_numbers_alone() -> None:
    text = '{"tool_calls": [{"name": "f", "arguments": {"x": 1e300, "y": ' + "9" * 300 + "}}]}"
    [event] = parse_tool_calls(text)
    assert isinstance(event, ToolCallRequested)
    assert event.call.arguments == {"x": 1e300, "y": int("9" * 300)}
