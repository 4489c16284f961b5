"""bench/tool_accuracy.py's BFCL helpers: schema conversion, failure kinds, BFCL's verdicts.

Pure and fast (no model). The verdict tests use BFCL's own checker from the wheel the benchmark
fetches into its cache, and skip when it has not been fetched yet (tests never go online).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from bfcl_data import (
    BFCL_VERSION,
    DEFAULT_CACHE,
    Case,
    Checker,
    load_checker,
    openai_tool,
)
from bfcl_scoring import Output, deduplicated, failure_kind, score

import agentkit as ak

# Shaped like BFCL's docs: BFCL's own types, a dotted name, a property without a type.
FUNCTION: dict[str, Any] = {
    "name": "geometry.area",
    "description": "Area of a shape.",
    "parameters": {
        "type": "dict",
        "properties": {
            "shape": {"type": "string", "description": "The shape.", "enum": ["circle", "square"]},
            "size": {"type": "float", "description": "Radius or side."},
            "origin": {"type": "tuple", "items": {"type": "float"}, "description": "x, y."},
            "options": {
                "type": "dict",
                "properties": {"precise": {"type": "boolean"}, "extra": {"type": "any"}},
            },
            "tags": {"type": "array", "items": {"type": "dict", "properties": {"k": {}}}},
            "note": {"description": "Untyped."},
        },
        "required": ["shape", "size"],
    },
}

CASE = Case(
    id="simple_python_x",
    category="simple_python",
    messages=[{"role": "user", "content": "Area of a circle of radius 2?"}],
    functions=[FUNCTION],
    ground_truth=[{"geometry.area": {"shape": ["circle"], "size": [2.0], "origin": [""]}}],
)
PARALLEL = Case(
    id="parallel_x",
    category="parallel",
    messages=[{"role": "user", "content": "Areas of circles of radius 2 and 3?"}],
    functions=[FUNCTION],
    ground_truth=[
        {"geometry.area": {"shape": ["circle"], "size": [2.0]}},
        {"geometry.area": {"shape": ["circle"], "size": [3.0]}},
    ],
)


def test_openai_tool_converts_bfcl_types_like_bfcls_openai_handler() -> None:
    name, description, schema = openai_tool(FUNCTION)
    properties = schema["properties"]
    assert name == "geometry_area"
    assert description == "Area of a shape."
    assert schema["type"] == "object"
    assert schema["required"] == ["shape", "size"]
    assert properties["shape"] == {
        "type": "string",
        "description": "The shape.",
        "enum": ["circle", "square"],
    }
    assert properties["size"] == {
        "type": "number",
        "format": "float",
        "description": "Radius or side. This is a float type value.",
    }
    assert properties["origin"]["type"] == "array"
    assert properties["origin"]["items"] == {"type": "number"}
    assert properties["options"]["type"] == "object"
    assert properties["options"]["properties"]["extra"] == {"type": "string"}
    assert properties["tags"]["items"]["type"] == "object"
    assert properties["tags"]["items"]["properties"]["k"] == {"type": "string"}
    assert properties["note"] == {"description": "Untyped.", "type": "string"}
    assert FUNCTION["parameters"]["type"] == "dict"  # the doc itself is left as it was


def test_converted_schema_is_accepted_by_agentkit() -> None:
    tool = ak.define_tool(*openai_tool(FUNCTION), lambda **_: "ok")
    assert tool.name == "geometry_area"


def test_failure_kinds() -> None:
    right = ("geometry_area", {"shape": "circle", "size": 2.0})
    other = ("geometry_area", {"shape": "circle", "size": 3.0})
    assert failure_kind(CASE, Output([right], True, "stop"), valid=True) == "correct"
    assert failure_kind(CASE, Output([], True, "stop"), valid=False) == "no_call"
    assert failure_kind(CASE, Output([right], False, "length"), False) == "cut_by_max_tokens"
    assert failure_kind(CASE, Output([right], False, "stop"), False) == "unparseable"
    assert failure_kind(CASE, Output([("area", {})], True, "stop"), False) == "wrong_function"
    assert failure_kind(CASE, Output([right, right], True, "stop"), False) == "repeated_call"
    assert failure_kind(CASE, Output([right, other], True, "stop"), False) == "wrong_count"
    assert failure_kind(CASE, Output([other], True, "stop"), False) == "wrong_args"
    assert failure_kind(PARALLEL, Output([right], True, "stop"), False) == "wrong_count"


def test_deduplicated_drops_only_identical_calls() -> None:
    a = ("f", {"x": 1, "y": 2})
    a_reordered = ("f", {"y": 2, "x": 1})
    b = ("f", {"x": 2})
    assert deduplicated([a, b, a_reordered, b]) == [a, b]


def _checker() -> Checker:
    root = DEFAULT_CACHE / f"bfcl_eval-{BFCL_VERSION}"
    if not (root / "bfcl_eval").is_dir():
        pytest.skip("BFCL not fetched yet: run bench/tool_accuracy.py --limit 1 once")
    return load_checker(root)


def test_bfcl_verdicts() -> None:
    checker = _checker()
    right = ("geometry_area", {"shape": "CIRCLE", "size": 2})  # BFCL: case-free, int -> float
    verdict = score(checker, CASE, Output([right], True, "stop"))
    assert verdict.valid
    assert verdict.parse_valid
    assert verdict.kind == "correct"

    wrong = score(
        checker, CASE, Output([("geometry_area", {"shape": "square", "size": 2})], True, "stop")
    )
    assert not wrong.valid
    assert wrong.error_type == "value_error:string"
    assert wrong.kind == "wrong_args"

    cut = score(checker, CASE, Output([right], False, "length"))
    assert not cut.valid  # a cut call list fails BFCL's decoder even if a call was complete
    assert not cut.parse_valid
    assert cut.kind == "cut_by_max_tokens"

    text = score(checker, CASE, Output([], True, "stop"))
    assert (text.valid, text.parse_valid, text.kind) == (False, False, "no_call")


def test_bfcl_parallel_and_repeats() -> None:
    checker = _checker()
    two = ("geometry_area", {"shape": "circle", "size": 2.0})
    three = ("geometry_area", {"shape": "circle", "size": 3.0})
    assert score(checker, PARALLEL, Output([three, two], True, "stop")).valid  # any order

    repeated = score(checker, PARALLEL, Output([two, three, two, two], True, "stop"))
    assert not repeated.valid
    assert repeated.repeated
    assert repeated.kind == "repeated_call"
    assert repeated.valid_deduplicated

    simple_repeat = score(checker, CASE, Output([two, two], True, "stop"))
    assert simple_repeat.error_type == "simple_function_checker:wrong_count"
    assert simple_repeat.valid_deduplicated
