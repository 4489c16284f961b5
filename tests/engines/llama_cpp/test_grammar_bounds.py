"""Large length and item bounds in a tool's schema: left out of the grammar, still enforced."""

from __future__ import annotations

from typing import Any

import pytest

import agentkit as ak
from agentkit.engines.llama_cpp.json_mode import MAX_GRAMMAR_REPEAT, grammar_bounds


def test_only_bounds_over_the_limit_are_dropped_and_the_schema_is_copied() -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "q": {"type": "string", "maxLength": 2000, "minLength": 1},
            "tags": {"type": "array", "maxItems": MAX_GRAMMAR_REPEAT, "minItems": 100},
            "flag": {"type": "boolean", "maxLength": True},
        },
    }
    bounded = grammar_bounds(schema)
    assert bounded["properties"]["q"] == {"type": "string", "minLength": 1}
    assert bounded["properties"]["tags"] == {"type": "array", "maxItems": MAX_GRAMMAR_REPEAT}
    assert bounded["properties"]["flag"] == {"type": "boolean", "maxLength": True}
    assert schema["properties"]["q"]["maxLength"] == 2000  # the tool's own schema is untouched


@pytest.mark.parametrize("bound", [MAX_GRAMMAR_REPEAT, 2000])
def test_a_tool_with_a_large_bound_is_still_called(model: ak.LLM, bound: int) -> None:
    seen: list[str] = []

    def search(q: str) -> str:
        seen.append(q)
        return "no results"

    tool = ak.define_tool(
        "search", "Search the web.",
        {"type": "object", "properties": {"q": {"type": "string", "maxLength": bound}},
         "required": ["q"]},
        search,
    )  # fmt: skip
    result = model.act(
        "Search the web for cats.",
        [tool],
        max_prediction_rounds=2,
        config={"temperature": 0, "max_tokens": 48, "tool_choice": "required"},
    )
    assert result.rounds >= 1
    assert seen and all(len(q) <= bound for q in seen)
