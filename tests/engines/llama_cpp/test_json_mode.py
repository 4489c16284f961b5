"""JSON-mode tool calling: grammars, instructions, and splitting output into calls and text."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# A repeated call ends the list: small models repeat the right call until a bound stops them.


def _feed_in_pieces(splitter: OutputSplitter, text: str, cuts: list[int]) -> int:
    """Feed `text` cut at `cuts`; how many characters were fed before `complete` was set."""
    position = 0
    for cut in [*sorted(set(cuts)), len(text)]:
        if cut <= position:
            continue
        splitter.feed(text[position:cut])
        position = cut
        if splitter.complete:
            return position
    return position


def test_a_repeated_call_closes_the_list_and_completes_the_output() -> None:
    call = '{"name": "multiply", "arguments": {"a": 2, "b": 3}}'
    other = '{"name": "multiply", "arguments": {"a": 4, "b": 5}}'
    text = '{"tool_calls": [' + ", ".join([call, other, call, call, call]) + "]}"
    splitter = OutputSplitter(tools_offered=True)
    fed = _feed_in_pieces(splitter, text, list(range(0, len(text), 7)))
    assert splitter.complete
    assert fed < len(text)  # generation would stop here, not at the list bound
    events = splitter.finish()
    assert [e.call.arguments for e in events if isinstance(e, ToolCallRequested)] == [
        {"a": 2, "b": 3},
        {"a": 4, "b": 5},
    ]
    assert not any(isinstance(e, MalformedToolCall) for e in events)


def test_a_repeat_with_other_spacing_and_key_order_is_still_a_repeat() -> None:
    text = (
        '{"tool_calls":[{"name":"f","arguments":{"x":1,"y":"a"}},'
        '{ "arguments": {"y": "a", "x": 1}, "name": "f" }]}'
    )
    splitter = OutputSplitter(tools_offered=True)
    splitter.feed(text)
    assert splitter.complete
    assert len(splitter.finish()) == 1


def test_braces_and_quotes_inside_strings_do_not_confuse_the_scanner() -> None:
    first = r'{"name": "f", "arguments": {"s": "}]} \" {[ \\"}}'
    second = r'{"name": "f", "arguments": {"s": "}]} \" {[ \\ "}}'
    splitter = OutputSplitter(tools_offered=True)
    splitter.feed('{"tool_calls": [' + first + ", " + second + "]}")
    assert not splitter.complete
    events = splitter.finish()
    assert [e.call.arguments for e in events if isinstance(e, ToolCallRequested)] == [
        {"s": '}]} " {[ \\'},
        {"s": '}]} " {[ \\ '},
    ]


_ARGUMENT_VALUES = st.one_of(
    st.integers(-1000, 1000), st.text(alphabet='ab{}[]"\\ ,:', max_size=6), st.booleans()
)
_CALLS = st.lists(
    st.tuples(
        st.sampled_from(["f", "g"]), st.dictionaries(st.sampled_from("xy"), _ARGUMENT_VALUES)
    ),
    min_size=1,
    max_size=6,
)


@given(calls=_CALLS, cuts=st.lists(st.integers(0, 400), max_size=12), compact=st.booleans())
@settings(max_examples=300, deadline=None)
def test_the_calls_kept_are_those_before_the_first_repeat(
    calls: list[tuple[str, dict[str, object]]], cuts: list[int], compact: bool
) -> None:
    separators = (",", ":") if compact else (", ", ": ")
    objects = [{"name": name, "arguments": arguments} for name, arguments in calls]
    text = json.dumps({"tool_calls": objects}, separators=separators)
    splitter = OutputSplitter(tools_offered=True)
    _feed_in_pieces(splitter, text, cuts)
    expected: list[dict[str, object]] = []
    seen: set[str] = set()
    for item in objects:
        key = json.dumps(item, sort_keys=True)  # JSON equality: 0 and false differ
        if key in seen:
            break
        seen.add(key)
        expected.append(item)
    assert splitter.complete == (len(expected) < len(objects))
    events = splitter.finish()
    assert all(isinstance(e, ToolCallRequested) for e in events)
    assert [
        {"name": e.call.name, "arguments": e.call.arguments}
        for e in events
        if isinstance(e, ToolCallRequested)
    ] == expected


def test_a_repeat_cut_short_by_max_tokens_is_dropped_not_malformed() -> None:
    call = '{"name": "calculator", "arguments": {"expression": "12345 * 54321"}}'
    splitter = OutputSplitter(tools_offered=True)
    splitter.feed('{"tool_calls": [' + call + ', {"name": "calculator", "arguments": {"expr')
    assert not splitter.complete
    [event] = splitter.finish()
    assert isinstance(event, ToolCallRequested)
    assert event.call.arguments == {"expression": "12345 * 54321"}


def test_a_new_call_cut_short_is_still_reported_malformed() -> None:
    call = '{"name": "calculator", "arguments": {"expression": "1 + 1"}}'
    splitter = OutputSplitter(tools_offered=True)
    splitter.feed(
        '{"tool_calls": [' + call + ', {"name": "calculator", "arguments": {"expression": "2'
    )
    first, second = splitter.finish()
    assert isinstance(first, ToolCallRequested)
    assert isinstance(second, MalformedToolCall)


@pytest.mark.parametrize(
    "parameters",
    [
        {},
        {"properties": "not a dict"},
        {"properties": {"x": "not a schema", "y": {"type": 5}}, "required": "x"},
        {"properties": {"x": {"type": "array"}}, "required": ["x", 7]},
    ],
)
def test_instructions_survive_odd_schemas(parameters: dict[str, object]) -> None:
    text = tool_instructions([ToolDefinition("odd", "", parameters)], None)
    assert text.splitlines()[1].startswith("- odd: no description")
