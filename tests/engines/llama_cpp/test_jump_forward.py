"""Jump-forward for JSON-mode calls: what is inserted, and that it only ever inserts what a
valid call object continues with."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import agentkit as ak
from agentkit.engines.base import ToolDefinition
from agentkit.engines.llama_cpp.call_syntax import JSON_OBJECT, SMOLLM2, CallSyntax
from agentkit.engines.llama_cpp.engine import LlamaCppEngine
from agentkit.engines.llama_cpp.jump_forward import ArgumentOpening, CallJumpForward

LOOKUP = ToolDefinition(
    "lookup",
    "Look a word up.",
    {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]},
)
MATH_ADD = ToolDefinition(
    "math_add",
    "Add two numbers.",
    {
        "type": "object",
        "properties": {
            "a": {"type": "number"},
            "unit": {"type": "string", "enum": ["m", "km"]},
            "b": {"type": "number"},
            "units_extra": {"type": "array", "items": {"type": "string"}},
            "round": {"type": "boolean"},
        },
        "required": ["b", "a"],  # the grammar takes them in properties' order: a, then b
    },
)
MATH_MUL = ToolDefinition(
    "math_mul",
    "Multiply.",
    {"type": "object", "properties": {"x": {"type": "integer"}}},
)
FREE = ToolDefinition("free", "Anything.", {"type": "object"})


def _feed_all(jump: CallJumpForward, text: str) -> None:
    for char in text:
        jump.feed(char)


def _insert(jump: CallJumpForward) -> str:
    """Insert forced text until the model has a choice, as the worker does."""
    inserted = ""
    while forced := jump.forced():
        jump.feed(forced)
        inserted += forced
    return inserted


def test_a_required_call_with_one_tool_is_forced_up_to_the_first_value() -> None:
    jump = CallJumpForward([LOOKUP], at_start=True)
    forced = jump.forced()
    assert forced == '{"tool_calls": [{"name": "'
    jump.feed(forced)
    assert jump.forced() == 'lookup"'  # the only name
    jump.feed('lookup"')
    assert jump.forced() == ',"arguments": {"word": "'  # a string value opens with a quote
    jump.feed(',"arguments": {"word": "')
    assert jump.forced() == ""  # the value is the model's


def test_nothing_is_forced_before_an_auto_round_opens_a_call() -> None:
    jump = CallJumpForward([LOOKUP], at_start=False)
    assert jump.forced() == ""
    jump.feed("{")
    assert jump.forced() == '"tool_calls": [{"name": "'


def test_a_name_is_completed_only_once_its_prefix_fits_one_tool() -> None:
    jump = CallJumpForward([MATH_ADD, MATH_MUL], at_start=True)
    jump.feed(jump.forced())
    assert jump.forced() == ""
    jump.feed("math_")
    assert jump.forced() == ""
    jump.feed("m")
    assert jump.forced() == 'ul"'
    jump.feed('ul"')
    assert jump.forced() == ',"arguments": {'  # no required parameter: the model chooses


def test_name_choices_are_the_rests_of_the_first_call_s_names_while_several_fit() -> None:
    jump = CallJumpForward([MATH_ADD, MATH_MUL, LOOKUP], at_start=True)
    assert jump.name_choices() == ()  # no name started yet
    jump.feed(jump.forced())
    assert jump.name_choices() == ("math_add", "math_mul", "lookup")
    jump.feed("math_")
    assert jump.name_choices() == ("add", "mul")
    jump.feed("a")
    assert jump.name_choices() == ()  # one fits: jump-forward completes it
    assert jump.forced() == 'dd"'
    jump.feed('dd", "arguments": {"a": 1, "b": 2}}, {"name": "')
    assert jump.name_choices() == ()  # a later call's name is the model's (see name_choices)


def test_a_single_tool_leaves_no_name_choice() -> None:
    jump = CallJumpForward([LOOKUP], at_start=True)
    jump.feed(jump.forced())
    assert jump.name_choices() == ()


def test_the_list_is_closed_when_the_budget_cannot_hold_another_call() -> None:
    jump = CallJumpForward([LOOKUP], at_start=True)
    jump.feed(jump.forced())  # one piece: the opening
    call = ["lookup", '"', ", ", '"arguments": {"word": "', "a", '"}', "}"]  # one piece a token
    for piece in call:
        jump.feed(piece)
    # The call took 8 pieces (from the opening's `{` to its `}`); another needs that and the
    # comma and the list's close.
    assert jump.forced(budget=100) == ""  # the model chooses: another call or the end
    assert jump.forced(budget=11) == ""
    assert jump.forced(budget=10) == "]}"
    assert jump.forced() == ""  # no budget given: no limit
    jump.feed("]}")
    assert jump.done


def test_the_budget_is_not_checked_inside_a_call() -> None:
    jump = CallJumpForward([LOOKUP], at_start=True)
    jump.feed(jump.forced())
    assert jump.forced(budget=1) == 'lookup"'  # the first call always starts
    jump.feed('lookup", "arguments": {"word": "a')
    assert jump.forced(budget=1) == ""  # a value: the model's


def test_required_keys_come_in_schema_order_and_optional_ones_when_unambiguous() -> None:
    jump = CallJumpForward([MATH_ADD], at_start=True)
    _feed_all(jump, '{"tool_calls": [{"name": "math_add"')
    assert jump.forced() == ',"arguments": {"a": '  # a number: nothing more is fixed
    jump.feed(',"arguments": {"a": 1')
    assert jump.forced() == ""  # more digits, or the end of the number
    jump.feed(",")
    assert jump.forced() == '"b": '  # no space after the comma (JSON_OBJECT.separator)
    jump.feed('"b": 2, "u')
    assert jump.forced() == ""  # "unit" or "units_extra"
    jump.feed("nits")
    assert _insert(jump) == '_extra": ['
    jump.feed('"x"], "')
    assert _insert(jump) == 'round": '  # "unit" is behind: the grammar keeps schema order


def test_the_list_close_is_the_model_s_and_the_object_close_is_forced() -> None:
    jump = CallJumpForward([LOOKUP], at_start=True)
    _feed_all(jump, '{"tool_calls": [{"name": "lookup", "arguments": {"word": "a"}}')
    assert jump.forced() == ""
    jump.feed(",")
    assert jump.forced() == '{"name": "'  # no space after the comma (JSON_OBJECT.gap)
    _feed_all(jump, '{"name": "lookup","arguments": {"word": "b"}}]')
    assert not jump.done
    assert jump.forced() == "}"
    jump.feed("}")
    assert jump.done
    assert jump.forced() == ""


def test_smollm2_calls_are_forced_in_its_trained_shape() -> None:
    jump = CallJumpForward([LOOKUP], at_start=True, syntax=SMOLLM2)
    assert _insert(jump) == '<tool_call>[{"name": "lookup", "arguments": {"word": "'
    jump.feed('a"}}')
    assert jump.forced() == ""  # another call or the end: the model's choice
    jump.feed(",")
    assert _insert(jump) == ' {"name": "lookup", "arguments": {"word": "'
    jump.feed('b"}}]')
    assert jump.done  # the tag's close is not generated
    assert jump.forced() == ""


def test_an_auto_round_forces_smollm2_s_opening_once_the_output_starts_with_its_tag() -> None:
    jump = CallJumpForward([LOOKUP], at_start=False, syntax=SMOLLM2)
    assert jump.forced() == ""
    jump.feed("<")
    assert jump.forced() == 'tool_call>[{"name": "'


@pytest.mark.parametrize("syntax", [JSON_OBJECT, SMOLLM2], ids=lambda s: s.name)
def test_a_comma_the_model_wrote_with_its_call_ends_the_list_when_no_call_fits(
    syntax: CallSyntax,
) -> None:
    jump = CallJumpForward([LOOKUP], at_start=True, syntax=syntax)
    jump.feed(jump.forced())
    jump.feed('lookup", "arguments": {"word": "a"')
    jump.feed("}},")  # one token: the call's close and the comma
    assert jump.forced(budget=100) == _insert_rest(syntax)
    jump = CallJumpForward([LOOKUP], at_start=True, syntax=syntax)
    jump.feed(jump.forced())
    jump.feed('lookup", "arguments": {"word": "a"')
    jump.feed("}},")
    assert jump.forced(budget=3) == ""
    assert jump.done  # the worker stops; the reader ends the list before the comma


def _insert_rest(syntax: CallSyntax) -> str:
    return syntax.next_call[1:]


def test_spaces_the_grammar_allows_elsewhere_do_not_stop_forcing() -> None:
    jump = CallJumpForward([LOOKUP], at_start=False)
    jump.feed('{ "tool_calls" :')
    assert jump.forced() == ' [{"name": "'
    jump.feed(' [{"name":"lookup",')
    assert jump.forced() == '"arguments": {"word": "'


def test_text_that_went_another_way_forces_nothing() -> None:
    jump = CallJumpForward([FREE], at_start=True)
    _feed_all(jump, '{"tool_calls": [{"name": "free", "arguments": {"k": ')
    assert jump.forced() == ""  # no schema for the keys: nothing to insert


CALLS: list[tuple[list[ToolDefinition], list[dict[str, Any]]]] = [
    ([LOOKUP], [{"name": "lookup", "arguments": {"word": 'say "hi", {ok}'}}]),
    (
        [MATH_ADD, MATH_MUL],
        [
            {"name": "math_mul", "arguments": {}},
            {"name": "math_add", "arguments": {"a": 1.5, "b": -2}},
            {
                "name": "math_add",
                "arguments": {"a": 1, "b": 2, "unit": "km", "units_extra": ["a,b"]},
            },
            {"name": "math_add", "arguments": {"a": 1, "b": 2, "round": True}},
        ],
    ),
    ([FREE, LOOKUP], [{"name": "free", "arguments": {"nested": {"name": "lookup"}}}]),
]


def _generated(syntax: CallSyntax, calls: list[dict[str, Any]], spaced: bool) -> str:
    """A call list as generated: in the syntax's spacing (as jump-forward writes it), or with
    no spaces at all."""
    separators = (syntax.separator, ": ") if spaced else (",", ":")
    items = [json.dumps(call, separators=separators) for call in calls]
    first, gap = (syntax.first_gap, syntax.gap) if spaced else ("", "")
    listed = f"[{first}{f',{gap}'.join(items)}{first}]"
    if syntax.in_object:
        return f'{{"tool_calls":{" " if spaced else ""}{listed}}}'
    return f"{syntax.prefix}{listed}"


@pytest.mark.parametrize(("tools", "calls"), CALLS)
@pytest.mark.parametrize("spaced", [True, False])
@pytest.mark.parametrize("syntax", [JSON_OBJECT, SMOLLM2], ids=lambda s: s.name)
def test_forced_text_is_always_how_a_valid_call_object_goes_on(
    tools: list[ToolDefinition], calls: list[dict[str, Any]], spaced: bool, syntax: CallSyntax
) -> None:
    text = _generated(syntax, calls, spaced)
    jump = CallJumpForward(tools, at_start=True, syntax=syntax)
    position = 0
    inserted = 0
    while position < len(text):
        forced = jump.forced()
        rest = text[position:]
        if forced and (spaced or not any(char.isspace() for char in forced)):
            # The canonical spacing: spaced text must go on exactly as forced.
            assert rest.startswith(forced), (text[:position], forced)
            jump.feed(forced)
            position += len(forced)
            inserted += len(forced)
            continue
        if forced:
            assert rest.startswith("".join(forced.split())[:1])
        jump.feed(text[position])
        position += 1
    assert jump.done
    assert inserted > 0 if spaced else True


# -- the real engine --------------------------------------------------------------------------


def lookup(word: str) -> str:
    """Look a word up."""
    return f"{word}: a word."


def test_the_engine_inserts_what_the_grammar_fixes_and_the_call_is_valid(
    client: ak.Client, trained: ak.LLM
) -> None:
    engine = client.async_client.engine
    assert isinstance(engine, LlamaCppEngine)
    worker = engine._instance(trained.identifier)
    config = {"temperature": 0, "seed": 7, "max_tokens": 40, "tool_choice": "required"}
    before = worker.stats.forced_tokens
    result = trained.act(
        "What does 'apple' mean?", [lookup], config=config, max_prediction_rounds=2
    )
    forced = worker.stats.forced_tokens - before
    record = result.round_records[0]
    assert [call.call.name for call in record.tool_calls] == ["lookup"]
    arguments = record.tool_calls[0].call.arguments
    assert isinstance(arguments, dict) and isinstance(arguments["word"], str)
    assert worker.format.call_syntax is SMOLLM2  # the default model's own, as loaded
    # Inserted piece by piece, as each becomes forced: the opening, the name, its first key.
    pieces = [SMOLLM2.opening, 'lookup"', ',"arguments": {"word": "']
    assert forced >= sum(len(worker.llama.tokenize(p.encode(), add_bos=False)) for p in pieces)
    # The model still wrote the value and chose where the list ends.
    assert record.prediction.usage.completion_tokens > forced


def test_the_engine_closes_the_list_when_another_call_would_be_cut(trained: ak.LLM) -> None:
    # Greedy, the model looks up the words one call each (with 128 tokens: apple, pear, fig,
    # peach). Two calls take 41 tokens; 58 leave no room for a third as long as the second
    # with the list's close, so the list ends there (the model writes `},` as one token: the
    # list ends before that comma); 60 hold the third, and it is whole.
    question = "What do 'apple', 'pear', 'plum' and 'fig' mean?"
    for max_tokens, words in ((58, ["apple", "pear"]), (60, ["apple", "pear", "fig"])):
        config = {"temperature": 0, "max_tokens": max_tokens, "tool_choice": "required"}
        result = trained.act(question, [lookup], config=config, max_prediction_rounds=2)
        record = result.round_records[0]
        assert [call.call.arguments["word"] for call in record.tool_calls] == words
        assert record.prediction.finish_reason == "stop"  # closed, not cut by max_tokens
        assert record.prediction.usage.completion_tokens < max_tokens
        assert not [m for m in result.messages[1:] if isinstance(m, ak.UserMessage)]


def _fed(tool: ToolDefinition, text: str) -> CallJumpForward:
    jump = CallJumpForward([tool], at_start=True)
    _feed_all(jump, text)
    return jump


FINDER = ToolDefinition(
    "restaurant_finder",
    "Locate restaurants.",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "cuisine": {"type": "string"},
            "diet": {"type": "string"},
        },
        "required": ["city", "cuisine"],
    },
)
OPEN = '{"tool_calls": [{"name": "restaurant_finder", "arguments": {"city": "Rome", "cuisine": "'
MEAL = ToolDefinition(
    "meal",
    "Order a meal.",
    {
        "type": "object",
        "properties": {
            "dish": {"type": "object"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "note": {"type": "integer"},
            "spicy": {"type": "boolean"},
            "size": {"enum": ["small", "large"]},
            "count": {"enum": [1, 2, None]},
        },
        "required": ["dish"],
    },
)
CALL = '{"tool_calls": [{"name": "lookup", "arguments": {"word": "apple"}}'


def test_the_token_that_ends_a_value_chooses_once_required_arguments_are_written() -> None:
    jump = _fed(FINDER, OPEN + "Thai")
    assert jump.arguments_end_at('",') == -1  # the model's token adds an argument
    assert jump.arguments_end_at('"}') == 1
    assert jump.arguments_end_at('"}}') == 1
    assert jump.arguments_end_at("i") == -1  # the value goes on
    assert jump.arguments_end_at('i, }"') == -1  # inside the string still
    # Before the last required argument, the arguments are not the model's to end.
    before_cuisine = _fed(FINDER, OPEN[: OPEN.index(', "cuisine"')])
    assert not before_cuisine.argument_choice_open()
    assert before_cuisine.arguments_end_at("}") == -1


def test_where_a_token_ends_the_arguments_and_what_may_be_added_instead() -> None:
    jump = _fed(FINDER, OPEN + "Thai")
    assert jump.arguments_end_at('"}}') == 1  # the value's quote, then the arguments' close
    assert jump.arguments_end_at('",') == -1  # it adds an argument itself
    assert jump.arguments_end_at("i") == -1
    assert jump.argument_openings() == (ArgumentOpening(',"diet": "', ()),)
    nested = CallJumpForward([MEAL], at_start=True)
    _feed_all(nested, '{"tool_calls": [{"name": "meal", "arguments": {"dish": {"kind": 1')
    assert nested.arguments_end_at("}}") == 1  # the first `}` closes the object value
    assert nested.argument_openings() == (
        ArgumentOpening(',"tags": [', ()),
        ArgumentOpening(',"note": ', ()),
        ArgumentOpening(',"spicy": ', ("true", "false")),  # a few values: each is weighed
        ArgumentOpening(',"size": "', ('small"', 'large"')),  # after the opening quote
        ArgumentOpening(',"count": ', ("1", "2", "null")),
    )
    _feed_all(nested, '}, "spicy": true')  # only the keys after the last one written are left
    assert [opening.text for opening in nested.argument_openings()] == [
        ',"size": "',
        ',"count": ',
    ]


def test_no_choice_is_left_once_the_optional_arguments_are_written() -> None:
    assert _fed(FINDER, OPEN + 'Thai", "diet": "vegan').arguments_end_at('"}') == -1


def test_the_list_end_is_open_once_after_each_call() -> None:
    assert not _fed(LOOKUP, CALL[:-1]).list_end_open()  # inside the call
    jump = _fed(LOOKUP, CALL)
    assert jump.list_end_open()
    assert jump.settle_list_end() is False  # no comma written yet
    assert not jump.list_end_open()
    for char in ', {"name": "lookup", "arguments": {"word": "pear"}}':
        jump.feed(char)
    assert jump.list_end_open()  # the second call's end is a choice of its own


def test_a_comma_written_with_the_call_s_close_is_reported() -> None:
    jump = _fed(LOOKUP, CALL[:-1])
    jump.feed("},")
    assert jump.list_end_open()
    assert jump.settle_list_end() is True


def test_room_for_another_call_is_the_last_call_the_comma_and_the_close() -> None:
    jump = _fed(LOOKUP, CALL)  # fed a character at a time: a piece per character
    first = len('{"name": "lookup", "arguments": {"word": "apple"}}')
    assert jump.room_for_another_call(first + 1 + len("]}"))  # the comma, then the close
    assert not jump.room_for_another_call(first + len("]}"))
    _feed_all(jump, ', {"name": "lookup", "arguments": {"word": "fig"}}')
    last = first - 2  # "fig" is two characters shorter than "apple"
    assert jump.room_for_another_call(last + 1 + 2)  # the last call counts, not the longest
    assert not jump.room_for_another_call(last + 2)
    jump.feed(",")  # a comma written already needs no room
    assert jump.room_for_another_call(last + 2)
    assert not jump.room_for_another_call(last + 1)
    jump.close_tokens = 1  # `]}` as one token, as SmolLM2's vocabulary has it
    assert jump.room_for_another_call(last + 1)


_SCALARS = st.one_of(
    st.text(max_size=12), st.integers(), st.floats(allow_nan=False), st.booleans(), st.none()
)


@settings(max_examples=200, deadline=None)
@given(members=st.lists(_SCALARS, max_size=20), key=st.text(min_size=1, max_size=8))
def test_each_weighed_value_completes_its_opening_into_json_that_reads_back(
    members: list[Any], key: str
) -> None:
    # Any enum a tool's schema may hold: each value weighed is the member, as JSON, after
    # the opening (which may have written its opening quote); large or empty enums and
    # non-scalar members are written out by the model instead (no values).
    tool = ToolDefinition(
        "pick",
        "Pick one.",
        {
            "type": "object",
            "properties": {"x": {"type": "integer"}, key: {"enum": members}},
            "required": ["x"] if key != "x" else [],
        },
    )
    jump = CallJumpForward([tool], at_start=True)
    _feed_all(jump, '{"tool_calls": [{"name": "pick","arguments": {"x": 1')
    openings = jump.argument_openings() if key != "x" else ()
    for opening in openings:
        prefix = opening.text[opening.text.rindex(":") + 1 :].lstrip()  # the key may hold ":"
        assert [json.loads(prefix + value) for value in opening.values] == (
            members if 0 < len(members) <= 16 else []
        )
