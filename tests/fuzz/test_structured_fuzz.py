"""Property: OutputFormat.parse on any model text returns an answer or raises OutputInvalid."""

from __future__ import annotations

import json
from typing import Any

from fuzzing import fuzz
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from agentkit.structured import OutputFormat, OutputInvalid


class Answer(BaseModel):
    name: str
    score: float
    tags: list[str] = []
    extra: dict[str, Any] = {}


FORMATS = [
    OutputFormat(Answer),
    OutputFormat(
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 20},
                "score": {"type": "number", "minimum": 0, "maximum": 1, "multipleOf": 0.25},
                "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            },
            "required": ["name", "score"],
        }
    ),
    OutputFormat({"type": "array", "items": {"type": "integer", "maximum": 10}}),
]

# Characters with lone surrogates in: raw ones reach parse() when a text was built badly.
CHARACTERS = st.characters(codec=None, exclude_categories=())
NUMBER_TOKENS = st.sampled_from(
    ["1e400", "-1e400", "NaN", "Infinity", "-Infinity", "9" * 450, "-" + "9" * 401,
     "1" + "0" * 399, "0.1e-400", "1e308", "\\ud800", "\\udfff", "\\ud83d\\ude00"]
)  # fmt: skip

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(CHARACTERS),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["name", "score", "tags", "extra", "x"]), inner, max_size=4
        )
    ),
    max_leaves=20,
)


@st.composite
def model_texts(draw: st.DrawFn) -> str:
    """JSON answers, hostile ones among them: deep, huge numbers, NaN, surrogates, fences."""
    kind = draw(st.sampled_from(["json", "deep", "token", "garbage"]))
    if kind == "json":
        text = json.dumps(draw(json_values), ensure_ascii=draw(st.booleans()))
    elif kind == "deep":
        depth = draw(st.integers(90, 5000))
        opener = draw(st.sampled_from(["[", '{"extra": ', '{"tags": [']))
        closer = {"[": "]", '{"extra": ': "}", '{"tags": [': "]}"}[opener]
        text = opener * depth + draw(st.sampled_from(["1", "", "NaN"])) + closer * depth
    elif kind == "token":
        token = draw(NUMBER_TOKENS)
        value = f'"{token}"' if token.startswith("\\") else token
        text = f'{{"name": "a", "score": {value}, "tags": [{value}]}}'
    else:
        text = draw(st.text(CHARACTERS, max_size=200))
    if draw(st.booleans()):
        text = f"```json\n{text}\n```"
    return text


@fuzz(300)
@given(text=model_texts(), which=st.integers(0, len(FORMATS) - 1))
def test_only_output_invalid_escapes_parse(text: str, which: int) -> None:
    problems: list[str] | None = None
    try:
        parsed = FORMATS[which].parse(text)
    except OutputInvalid as invalid:
        problems = invalid.problems
    if problems is not None:
        assert problems and all(isinstance(problem, str) for problem in problems)
        return
    data = parsed.model_dump(mode="json") if isinstance(parsed, BaseModel) else parsed
    json.dumps(data, ensure_ascii=False).encode("utf-8")  # a parsed answer can be sent on
