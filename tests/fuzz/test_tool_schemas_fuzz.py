"""Properties of tools defined from foreign JSON Schemas (define_tool, MCP next).

Whatever the schema, define_tool succeeds or raises ToolDefinitionError; whatever the model
sends to a tool that was defined, validation gives a short, bounded list of problems and never
raises anything else.
"""

from __future__ import annotations

import time
from typing import Any

from fuzzing import fuzz
from hypothesis import given
from hypothesis import strategies as st

from agentkit.errors import (
    MAX_PROBLEM_CHARS,
    MAX_PROBLEMS,
    ToolArgumentsError,
    ToolDefinitionError,
)
from agentkit.tools import Tool, define_tool
from agentkit.tools.json_schema import SchemaError, SchemaValidator

KEYWORDS = [
    "type", "properties", "required", "additionalProperties", "patternProperties", "items",
    "prefixItems", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "multipleOf",
    "minLength", "maxLength", "pattern", "minItems", "maxItems", "uniqueItems", "anyOf", "oneOf",
    "allOf", "not", "$ref", "$defs", "definitions", "if", "then", "else", "propertyNames",
    "contains", "dependentSchemas", "unevaluatedProperties", "format", "$id", "$anchor",
    "$schema", "title", "x-vendor",
]  # fmt: skip
TYPES = ["string", "integer", "number", "boolean", "null", "array", "object", "int", "str"]
REFS = [
    "#", "#/properties/x", "#/properties/x/items", "#/$defs/a", "#/$defs/b", "#/definitions/a",
    "#/$defs/a/properties/x", "#/anyOf/0", "#a", "#/nope", "other.json", "http://127.0.0.1:9/s",
    "#/$defs/a~1b", "#/$defs/%61", "urn:x", "",
]  # fmt: skip
REGEXES = st.one_of(
    st.sampled_from(
        ["(", "[", "(?=a)", "(a)\\1", "^(a+)+$", "\\p{L}+", "a{100000}{100000}", "^x", "\\d"]
    ),
    st.text(st.sampled_from("()[]{}*+?|^$\\.ab0-,dw"), max_size=12),
)


class Huge(int):
    """An integer too long for str(), with a repr hypothesis can print."""

    def __repr__(self) -> str:
        return f"Huge(<{self.bit_length()} bits>)"


HUGE_INTS = st.sampled_from([10**400, -(10**400), Huge(10**5000), Huge(-(10**5000)), 2**63])
ODD_FLOATS = st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e308, 5e-324, -0.0])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    HUGE_INTS,
    st.floats(allow_nan=False, allow_infinity=False),
    ODD_FLOATS,
    st.text(max_size=8),
    st.sampled_from(TYPES),
    REGEXES,
    st.sampled_from(REFS),
)


def _deep(depth: int, key: str, leaf: Any) -> Any:
    for _ in range(depth):
        leaf = {key: leaf} if key else [leaf]
    return leaf


@st.composite
def schemas(draw: st.DrawFn) -> Any:
    """Random JSON leaning on schema keywords, with bad types, regexes and refs anywhere."""
    kind = draw(st.sampled_from(["keywords", "keywords", "keywords", "deep", "chain", "junk"]))
    if kind == "deep":
        key = draw(st.sampled_from(["not", "items", "additionalProperties", ""]))
        return _deep(draw(st.integers(50, 3_000)), key, draw(st.booleans()))
    if kind == "chain":
        length = draw(st.integers(1, 2_000))
        defs: dict[str, Any] = {f"d{i}": {"$ref": f"#/$defs/d{i + 1}"} for i in range(length)}
        defs[f"d{length}"] = draw(st.sampled_from([{"type": "integer"}, {"$ref": "#/$defs/d0"}]))
        return {"$defs": defs, "properties": {"x": {"$ref": "#/$defs/d0"}}}
    if kind == "junk":
        return draw(st.one_of(scalars, st.lists(scalars, max_size=3)))
    subschemas = st.recursive(
        st.booleans() | st.fixed_dictionaries({}, optional={"type": st.sampled_from(TYPES)}),
        lambda inner: st.dictionaries(
            st.sampled_from(KEYWORDS),
            st.one_of(
                scalars,
                inner,
                st.lists(inner | scalars, max_size=3),
                st.dictionaries(st.sampled_from(["x", "a", "b", "(", "a/b"]), inner, max_size=3),
            ),
            max_size=5,
        ),
        max_leaves=25,
    )
    return draw(subschemas)


json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["x", "a", "b", "", "a/b", "\ud800"]), inner, max_size=4)
    ),
    max_leaves=30,
)


@st.composite
def instances(draw: st.DrawFn) -> Any:
    """What a model (or a careless caller) might send: deep, huge, non-JSON, surrogates."""
    kind = draw(st.sampled_from(["json", "json", "deep", "odd"]))
    if kind == "deep":
        return _deep(draw(st.integers(100, 10_000)), draw(st.sampled_from(["x", ""])), 1)
    if kind == "odd":
        return draw(
            st.sampled_from(
                [{1, 2}, (1, 2), {1: 2}, object(), b"bytes", "a\ud800", ["x"] * 5_000, 1j]
            )
        )
    return draw(json_values)


def _defined(schema: Any) -> Tool[..., Any] | None:
    started = time.perf_counter()
    made: Tool[..., Any] | None = None
    refusal = ""
    try:
        made = define_tool("t", "d", schema, lambda **kwargs: None)
    except ToolDefinitionError as error:
        refusal = str(error)
    assert time.perf_counter() - started < 5.0
    assert made is not None or refusal.startswith("tool 't': ")
    return made


def _check_problems(problems: Any) -> None:
    assert isinstance(problems, list | tuple)
    assert problems
    assert len(problems) <= MAX_PROBLEMS + 1
    for problem in problems:
        assert isinstance(problem, str)
        assert len(problem) <= MAX_PROBLEM_CHARS


@fuzz(200)
@given(schema=schemas(), wrap=st.booleans())
def test_define_tool_succeeds_or_raises_tool_definition_error(schema: Any, wrap: bool) -> None:
    if wrap:  # most tool schemas are objects with the interesting part one level down
        schema = {"type": "object", "properties": {"x": schema}}
    _defined(schema)


@fuzz(200)
@given(schema=schemas(), arguments=st.lists(instances(), min_size=1, max_size=3))
def test_defined_tools_validate_any_arguments_with_short_problems(
    schema: Any, arguments: list[Any]
) -> None:
    made = _defined({"type": "object", "properties": {"x": schema, "y": schema}})
    if made is None:
        return
    for value in arguments:
        for sent in ({"x": value}, {"x": value, "y": value, "z": value}):
            invalid: ToolArgumentsError | None = None
            try:
                bound = made.bind(sent)
            except ToolArgumentsError as error:
                invalid = error
            if invalid is None:
                assert bound.kwargs == sent
            else:
                _check_problems(invalid.problems)
                assert len(str(invalid)) < 5_000


@fuzz(200)
@given(schema=schemas(), value=instances())
def test_a_compiled_schema_never_raises_on_any_instance(schema: Any, value: Any) -> None:
    try:
        validator = SchemaValidator(schema)
    except SchemaError:
        return
    started = time.perf_counter()
    problems = validator.errors(value)
    assert time.perf_counter() - started < 2.0
    if problems:
        _check_problems(problems)
