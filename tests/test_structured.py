"""Structured output: OutputFormat parses model text within agentkit.untrusted's limits."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from agentkit.errors import ConfigurationError
from agentkit.structured import OutputFormat, OutputInvalid, strip_code_fence


class City(BaseModel):
    city: str
    population: int


SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
}


@pytest.fixture(params=["model", "schema"])
def answer_format(request: pytest.FixtureRequest) -> OutputFormat:
    return OutputFormat(City if request.param == "model" else SCHEMA)


def test_strip_code_fence() -> None:
    assert strip_code_fence('```json\n{"a": 1}\n```') == '{"a": 1}'
    assert strip_code_fence("  ```\n[1]```  ") == "[1]"
    assert strip_code_fence('{"a": 1}') == '{"a": 1}'
    assert strip_code_fence("see ```json\n{}\n``` here") == "see ```json\n{}\n``` here"


def test_a_valid_answer_parses_fenced_or_not() -> None:
    text = '{"city": "Paris", "population": 2100000}'
    assert OutputFormat(City).parse(text) == City(city="Paris", population=2100000)
    assert OutputFormat(SCHEMA).parse(f"```json\n{text}\n```") == json.loads(text)


def test_an_answer_that_does_not_validate_lists_the_problems() -> None:
    with pytest.raises(OutputInvalid) as caught:
        OutputFormat(SCHEMA).parse('{"city": "Paris", "population": "many"}')
    assert caught.value.problems == ["$.population: expected integer, got string"]
    with pytest.raises(OutputInvalid, match="population"):
        OutputFormat(City).parse('{"city": "Paris"}')


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Paris, about two million", "the answer: not valid JSON (Expecting value at position 0)"),
        ("[" * 5000 + "]" * 5000, "the answer: nested deeper than 100 levels"),
        ('{"population": ' + "9" * 5000 + "}", "the answer: an integer has more than 400 digits"),
        ('{"population": 1e400}', "the answer: the number 1e400 does not fit a float"),
        ('{"population": NaN}', "the answer: NaN is not a JSON number"),
        ('{"population": -Infinity}', "the answer: -Infinity is not a JSON number"),
    ],
)
def test_hostile_answers_are_output_invalid(
    answer_format: OutputFormat, text: str, problem: str
) -> None:
    """Never RecursionError or ValueError: OutputInvalid is what the retry path catches."""
    with pytest.raises(OutputInvalid) as caught:
        answer_format.parse(text)
    assert caught.value.problems == [problem]


def test_lone_surrogates_become_replacement_characters(answer_format: OutputFormat) -> None:
    escaped = '{"city": "Par\\ud800is", "population": 1}'
    raw = '{"city": "Par\ud800is", "population": 1}'
    for text in (escaped, raw):
        parsed = answer_format.parse(text)
        city = parsed.city if isinstance(parsed, City) else parsed["city"]
        assert city == "Par\ufffdis"
        city.encode("utf-8")  # the answer can be sent on


def test_an_answer_just_within_the_limits_parses() -> None:
    deep = "[" * 99 + "]" * 99
    assert OutputFormat({"type": "array"}).parse(deep) is not None
    big = int("9" * 400)
    assert OutputFormat(City).parse(f'{{"city": "x", "population": {big}}}').population == big


def test_a_long_integer_against_a_float_multiple_of_is_checked_exactly() -> None:
    """No OverflowError: jsonschema-rs compares the decimal numbers, not floats."""
    answer_format = OutputFormat({"type": "number", "multipleOf": 0.25})
    assert answer_format.parse("1.5") == 1.5
    assert answer_format.parse("9" * 400) == int("9" * 400)
    with pytest.raises(OutputInvalid) as caught:
        OutputFormat({"multipleOf": 0.3}).parse("1" + "0" * 399)
    assert caught.value.problems == ["$: must be a multiple of 0.3, got <integer of 400 digits>"]


def test_the_schema_is_compiled_once(compiled_schemas: list[Any]) -> None:
    answer_format = OutputFormat(SCHEMA)
    for _ in range(3):
        answer_format.parse('{"city": "Paris", "population": 1}')
        with pytest.raises(OutputInvalid):
            answer_format.parse('{"city": "Paris"}')
    assert len(compiled_schemas) == 1


def test_a_huge_enum_answer_error_is_capped() -> None:
    values = [f"city-{i:06d}" for i in range(100_000)]
    answer_format = OutputFormat({"type": "object", "properties": {"city": {"enum": values}}})
    with pytest.raises(OutputInvalid) as caught:
        answer_format.parse('{"city": "Paris"}')
    assert len(str(caught.value)) < 400
    assert caught.value.problems[0].startswith("$.city: must be one of ['city-000000'")


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"pattern": "("}}},
        {"$ref": "#"},
        {"$defs": {"A": {"$ref": "#/$defs/A"}}, "$ref": "#/$defs/A"},
        {"type": "array", "items": [1]},
        {"properties": {"a": {"minimum": float("nan")}}},
    ],
)
def test_bad_response_format_schemas_are_configuration_errors(schema: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="response_format is not a valid schema: #"):
        OutputFormat(schema)


def test_a_bad_response_format_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="#/type: 'int' is not a JSON type"):
        OutputFormat({"type": "int"})
    with pytest.raises(ConfigurationError, match="pydantic model class or a JSON Schema"):
        OutputFormat(42)  # type: ignore[arg-type]
