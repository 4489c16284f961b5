"""Tests for agentkit.tools.json_schema (jsonschema-rs underneath): keyword semantics, the short
path-carrying messages a model reads, refs, check_schema, and hostile schemas and instances."""

from __future__ import annotations

import copy
import enum
import json
import re
import time
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field, TypeAdapter

from agentkit.tools.json_schema import SchemaError, SchemaValidator, check_schema, validate


class Level(enum.IntEnum):
    LOW = 1


class Flavor(enum.StrEnum):
    SWEET = "sweet"


# (schema, instance, expected errors). Each schema also goes through check_schema.
Case = tuple[Any, Any, list[str]]

TYPE_CASES: list[Case] = [
    ({"type": "string"}, "a", []),
    ({"type": "string"}, 1, ["$: expected string, got integer"]),
    ({"type": "integer"}, 3, []),
    ({"type": "integer"}, 3.0, []),
    ({"type": "integer"}, 1e20, []),
    ({"type": "integer"}, 3.5, ["$: expected integer, got number"]),
    ({"type": "integer"}, True, ["$: expected integer, got boolean"]),
    ({"type": "integer"}, False, ["$: expected integer, got boolean"]),
    ({"type": "number"}, 3, []),
    ({"type": "number"}, 3.5, []),
    ({"type": "number"}, True, ["$: expected number, got boolean"]),
    ({"type": "number"}, "3", ["$: expected number, got string"]),
    ({"type": "boolean"}, False, []),
    ({"type": "boolean"}, 0, ["$: expected boolean, got integer"]),
    ({"type": "boolean"}, 1.0, ["$: expected boolean, got number"]),
    ({"type": "null"}, None, []),
    ({"type": "null"}, 0, ["$: expected null, got integer"]),
    ({"type": "null"}, "", ["$: expected null, got string"]),
    ({"type": "array"}, [1], []),
    ({"type": "array"}, (1, 2), []),
    ({"type": "array"}, {"a": 1}, ["$: expected array, got object"]),
    ({"type": "object"}, {}, []),
    ({"type": "object"}, [], ["$: expected object, got array"]),
    ({"type": ["string", "null"]}, None, []),
    # jsonschema-rs names the types in alphabetical order.
    ({"type": ["string", "null"]}, 3, ["$: expected null or string, got integer"]),
    ({"type": ["integer", "boolean"]}, True, []),
    ({"type": ["number"]}, False, ["$: expected number, got boolean"]),
    # A type mismatch is reported alone, not restated by the other keywords.
    (
        {"type": "string", "minLength": 5, "enum": ["abcdef"]},
        3,
        ["$: expected string, got integer"],
    ),
    # Subclasses of JSON types count as those types; bool is not an integer even though it
    # subclasses int.
    ({"type": "integer"}, Level.LOW, []),
    ({"type": "string"}, Flavor.SWEET, []),
]

BOOLEAN_SCHEMA_CASES: list[Case] = [
    (True, {"anything": [1, None]}, []),
    (False, None, ["$: no value is allowed here"]),
    ({"properties": {"a": False}}, {"a": 1}, ["$.a: no value is allowed here"]),
    ({"properties": {"a": True}}, {"a": 1}, []),
    ({}, "anything", []),
]

ENUM_CONST_CASES: list[Case] = [
    ({"enum": ["fast", "slow"]}, "fast", []),
    (
        {"properties": {"mode": {"enum": ["fast", "slow"]}}},
        {"mode": "medium"},
        ["$.mode: must be one of ['fast', 'slow'], got 'medium'"],
    ),
    ({"enum": [1, 2]}, 1.0, []),
    ({"enum": [1.0]}, 1, []),
    ({"enum": [1, "a"]}, True, ["$: must be one of [1, 'a'], got true"]),
    ({"enum": [True]}, 1, ["$: must be one of [true], got 1"]),
    ({"enum": [0]}, False, ["$: must be one of [0], got false"]),
    ({"enum": [None, "x"]}, None, []),
    ({"enum": ["1"]}, 1, ["$: must be one of ['1'], got 1"]),
    ({"enum": [[1, 2]]}, [1.0, 2], []),
    ({"enum": [[1, 2]]}, [True, 2], ["$: must be one of [[1, 2]], got [true, 2]"]),
    ({"enum": [{"a": 1}]}, {"a": 1.0}, []),
    ({"enum": [{"a": 1}]}, {"a": True}, ["$: must be one of [{'a': 1}], got {'a': true}"]),
    (
        {"enum": [{"a": 1}]},
        {"a": 1, "b": 2},
        ["$: must be one of [{'a': 1}], got {'a': 1, 'b': 2}"],
    ),
    ({"const": "x"}, "x", []),
    ({"const": "x"}, "y", ["$: must be 'x', got 'y'"]),
    ({"const": None}, None, []),
    ({"const": None}, False, ["$: must be null, got false"]),
    ({"const": 0}, False, ["$: must be 0, got false"]),
    ({"const": False}, 0, ["$: must be false, got 0"]),
    ({"const": 2}, 2.0, []),
    ({"const": {"a": [1, {"b": None}]}}, {"a": [1.0, {"b": None}]}, []),
    ({"const": [1, 2]}, [2, 1], ["$: must be [1, 2], got [2, 1]"]),
    ({"const": [1]}, (1,), []),
]

OBJECT_CASES: list[Case] = [
    ({"required": ["a", "b"]}, {"a": 1, "b": 2}, []),
    ({"required": ["a", "b"]}, {"a": 1}, ["$: missing required property 'b'"]),
    (
        {"required": ["a", "b"]},
        {},
        ["$: missing required property 'a'", "$: missing required property 'b'"],
    ),
    ({"required": ["a"]}, "not an object", []),
    ({"properties": {"a": {"type": "integer"}}}, {"a": "1"}, ["$.a: expected integer, got string"]),
    ({"properties": {"a": {"type": "integer"}}}, {}, []),
    ({"properties": {"a": {"type": "integer"}}}, ["a"], []),
    (
        {"properties": {"first name": {"type": "string"}, "2nd": {"type": "string"}}},
        {"first name": 1, "2nd": 2},
        ["$['first name']: expected string, got integer", "$['2nd']: expected string, got integer"],
    ),
    (
        {"properties": {"a": {}}, "additionalProperties": False},
        {"a": 1, "c": 2},
        ["$: unexpected property 'c'"],
    ),
    ({"additionalProperties": False}, {}, []),
    ({"additionalProperties": True}, {"x": 1}, []),
    (
        {"properties": {"a": {}}, "additionalProperties": {"type": "integer"}},
        {"a": "ok", "x": 1, "y": "2"},
        ["$.y: expected integer, got string"],
    ),
    (
        {"patternProperties": {"^s_": {"type": "string"}}, "additionalProperties": False},
        {"s_a": "x", "n": 1},
        ["$: unexpected property 'n'"],
    ),
    (
        {"patternProperties": {"^s_": {"type": "string"}, "_id$": {"type": "integer"}}},
        {"s_a": 1, "user_id": "7", "s_x_id": "3"},
        [
            "$.s_a: expected string, got integer",
            "$.user_id: expected integer, got string",
            "$.s_x_id: expected integer, got string",
        ],
    ),
    # patternProperties use search, not match.
    (
        {"patternProperties": {"x": {"type": "null"}}},
        {"axb": 1},
        ["$.axb: expected null, got integer"],
    ),
    ({"minProperties": 1}, {"a": 1}, []),
    ({"minProperties": 1}, {}, ["$: must have at least 1 property, got 0"]),
    ({"minProperties": 2}, {"a": 1}, ["$: must have at least 2 properties, got 1"]),
    ({"maxProperties": 1}, {"a": 1, "b": 2}, ["$: must have at most 1 property, got 2"]),
    ({"maxProperties": 1}, [1, 2], []),
]

ARRAY_CASES: list[Case] = [
    ({"items": {"type": "integer"}}, [1, 2], []),
    (
        {"items": {"type": "integer"}},
        [1, "a", 3, None],
        [
            "$[1]: expected integer, got string",
            "$[3]: expected integer, got null",
        ],
    ),
    ({"items": {"type": "integer"}}, "not an array", []),
    ({"prefixItems": [{"type": "integer"}, {"type": "string"}]}, [1, "a"], []),
    ({"prefixItems": [{"type": "integer"}, {"type": "string"}]}, [1], []),
    ({"prefixItems": [{"type": "integer"}, {"type": "string"}]}, [1, "a", None], []),
    (
        {"prefixItems": [{"type": "integer"}, {"type": "string"}]},
        [1, 2],
        ["$[1]: expected string, got integer"],
    ),
    (
        {"prefixItems": [{"type": "integer"}], "items": False},
        [1, 2, 3],
        ["$: must have at most 1 item, got 3"],
    ),
    ({"prefixItems": [{"type": "integer"}], "items": False}, [1], []),
    ({"items": False}, [], []),
    ({"items": False}, [1], ["$: must have at most 0 items, got 1"]),
    (
        {"prefixItems": [{"type": "integer"}], "items": {"type": "string"}},
        [1, "a", 2],
        ["$[2]: expected string, got integer"],
    ),
    ({"minItems": 1}, [], ["$: must have at least 1 item, got 0"]),
    ({"minItems": 2}, [1, 2], []),
    ({"maxItems": 2}, [1, 2, 3], ["$: must have at most 2 items, got 3"]),
    ({"maxItems": 2}, "abc", []),
    ({"uniqueItems": True}, [1, 2, "1", True, None, [1], {"a": 1}], []),
    ({"uniqueItems": True}, [1, 2, 1.0], ["$: items must be unique, but [0] and [2] are equal"]),
    ({"uniqueItems": True}, [[1], [True]], []),
    (
        {"uniqueItems": True},
        [[1, [2]], [1.0, [2.0]]],
        ["$: items must be unique, but [0] and [1] are equal"],
    ),
    (
        {"uniqueItems": True},
        [{"a": 1, "b": 2}, {"b": 2, "a": 1.0}],
        ["$: items must be unique, but [0] and [1] are equal"],
    ),
    ({"uniqueItems": True}, [0, False], []),
    (
        {"uniqueItems": True},
        ["a", "a", "a"],
        ["$: items must be unique, but [0] and [1] are equal"],
    ),
    ({"uniqueItems": False}, [1, 1], []),
]

STRING_CASES: list[Case] = [
    ({"minLength": 2}, "ab", []),
    ({"minLength": 2}, "a", ["$: must have at least 2 characters, got 1"]),
    ({"minLength": 1}, "", ["$: must have at least 1 character, got 0"]),
    ({"maxLength": 3}, "abcd", ["$: must have at most 3 characters, got 4"]),
    # Lengths are in code points: one emoji is one character, not 2 UTF-16 units or 4 bytes.
    ({"maxLength": 1}, "😀", []),
    ({"minLength": 2}, "😀", ["$: must have at least 2 characters, got 1"]),
    ({"maxLength": 1}, 12345, []),
    ({"pattern": "^[a-z]+$"}, "abc", []),
    ({"pattern": "^[a-z]+$"}, "ab1", ["$: must match pattern '^[a-z]+$', got 'ab1'"]),
    ({"pattern": "b"}, "abc", []),  # search, not match
    ({"pattern": "^b"}, "abc", ["$: must match pattern '^b', got 'abc'"]),
    ({"pattern": "^[a-z]+$"}, 3, []),
]

NUMBER_CASES: list[Case] = [
    ({"minimum": 0}, 0, []),
    ({"minimum": 0}, -1, ["$: must be >= 0, got -1"]),
    ({"minimum": 0.5}, 0.25, ["$: must be >= 0.5, got 0.25"]),
    ({"maximum": 10}, 10.0, []),
    ({"maximum": 10}, 11, ["$: must be <= 10, got 11"]),
    ({"exclusiveMinimum": 0}, 0.001, []),
    ({"exclusiveMinimum": 0}, 0, ["$: must be > 0, got 0"]),
    ({"exclusiveMaximum": 1}, 0.999, []),
    ({"exclusiveMaximum": 1}, 1.0, ["$: must be < 1, got 1.0"]),
    ({"multipleOf": 3}, 9, []),
    ({"multipleOf": 3}, -9, []),
    ({"multipleOf": 3}, 10, ["$: must be a multiple of 3, got 10"]),
    ({"multipleOf": 2}, 4.0, []),
    ({"multipleOf": 2}, 4.5, ["$: must be a multiple of 2, got 4.5"]),
    # Decimal, not binary-float, arithmetic: 0.3 is a multiple of 0.1, 0.35 is not.
    ({"multipleOf": 0.1}, 0.3, []),
    ({"multipleOf": 0.01}, 19.99, []),
    ({"multipleOf": 0.1}, 0.35, ["$: must be a multiple of 0.1, got 0.35"]),
    ({"multipleOf": 0.5}, 3, []),
    # Not JSON at all (the model's output never holds one: agentkit.untrusted rejects it).
    ({"multipleOf": 1}, float("inf"), ["$: inf is not a JSON number"]),
    # Numeric keywords ignore non-numbers, booleans included.
    ({"minimum": 5}, "1", []),
    ({"minimum": 5}, True, []),
    ({"maximum": 0, "multipleOf": 7}, False, []),
]

COMBINATOR_CASES: list[Case] = [
    ({"anyOf": [{"type": "integer"}, {"type": "null"}]}, None, []),
    ({"anyOf": [{"type": "integer"}, {"type": "null"}]}, 1, []),
    (
        {"properties": {"x": {"anyOf": [{"type": "integer"}, {"type": "null"}]}}},
        {"x": "1"},
        [
            "$.x: does not match any of the allowed schemas "
            "(expected integer, got string; expected null, got string)"
        ],
    ),
    # Identical reasons are given once.
    (
        {"anyOf": [{"type": "object", "required": ["a"]}, {"type": "object", "required": ["b"]}]},
        [],
        ["$: does not match any of the allowed schemas (expected object, got array)"],
    ),
    # Branches that fail deeper are reported with the path relative to the union.
    (
        {
            "anyOf": [
                {"properties": {"a": {"type": "integer"}}, "required": ["b"]},
                {"properties": {"a": {"type": "string"}}},
            ]
        },
        {"a": None, "b": 1},
        [
            "$: does not match any of the allowed schemas "
            "(.a: expected integer, got null; .a: expected string, got null)"
        ],
    ),
    # Branches ruled out by type are left out of the reasons.
    (
        {
            "anyOf": [
                {"type": "object", "properties": {"a": {"type": "integer"}}},
                {"type": "object", "properties": {"a": {"type": "string"}}},
                {"type": "null"},
            ]
        },
        {"a": None},
        [
            "$: does not match any of the allowed schemas "
            "(.a: expected integer, got null; .a: expected string, got null)"
        ],
    ),
    # Only one branch admits an object, so its own errors are the useful ones.
    (
        {"anyOf": [{"type": "object", "properties": {"a": {"type": "integer"}}}, {"type": "null"}]},
        {"a": "x"},
        ["$.a: expected integer, got string"],
    ),
    # Likewise when the other branches are ruled out by a const tag.
    (
        {
            "oneOf": [
                {"properties": {"kind": {"const": "a"}, "n": {"type": "integer"}}},
                {"properties": {"kind": {"const": "b"}, "s": {"type": "string"}}},
            ]
        },
        {"kind": "b", "s": 1},
        ["$.s: expected string, got integer"],
    ),
    # A union ruled out by type rules out the branch of an enclosing union.
    (
        {
            "anyOf": [
                {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                {"type": "array", "items": {"type": "integer"}},
            ]
        },
        ["x"],
        ["$[0]: expected integer, got string"],
    ),
    ({"oneOf": [{"type": "integer"}, {"minimum": 0}]}, -1, []),
    ({"oneOf": [{"type": "integer"}, {"minimum": 0}]}, 0.5, []),
    (
        {"oneOf": [{"type": "integer"}, {"minimum": 0}]},
        5,
        ["$: must match exactly one of the allowed schemas, but matches 2 (oneOf indexes 0, 1)"],
    ),
    (
        {"oneOf": [{"type": "integer"}, {"type": "boolean"}]},
        "x",
        [
            "$: does not match any of the allowed schemas "
            "(expected integer, got string; expected boolean, got string)"
        ],
    ),
    ({"allOf": [{"minimum": 0}, {"multipleOf": 2}]}, 4, []),
    (
        {"allOf": [{"minimum": 0}, {"multipleOf": 2}]},
        -3,
        ["$: must be >= 0, got -3", "$: must be a multiple of 2, got -3"],
    ),
    ({"not": {"type": "null"}}, 0, []),
    ({"not": {"type": "null"}}, None, ["$: must not match {'type': 'null'}"]),
    ({"not": True}, 1, ["$: must not match true"]),
    ({"not": False}, 1, []),
]

REF_CASES: list[Case] = [
    ({"$defs": {"Name": {"type": "string"}}, "$ref": "#/$defs/Name"}, "ok", []),
    (
        {"$defs": {"Name": {"type": "string"}}, "properties": {"n": {"$ref": "#/$defs/Name"}}},
        {"n": 1},
        ["$.n: expected string, got integer"],
    ),
    (
        {
            "definitions": {"Age": {"type": "integer", "minimum": 0}},
            "items": {"$ref": "#/definitions/Age"},
        },
        [1, -1],
        ["$[1]: must be >= 0, got -1"],
    ),
    # Any pointer into the root works, array indexes included.
    (
        {"properties": {"a": {"type": "integer"}, "b": {"$ref": "#/properties/a"}}},
        {"b": "x"},
        ["$.b: expected integer, got string"],
    ),
    (
        {"prefixItems": [{"type": "boolean"}], "items": {"$ref": "#/prefixItems/0"}},
        [True, False, 0],
        ["$[2]: expected boolean, got integer"],
    ),
    # ~1 is "/", ~0 is "~"; percent-encoding is a URI-fragment matter and is decoded first.
    (
        {"$defs": {"a/b": {"type": "null"}}, "$ref": "#/$defs/a~1b"},
        0,
        ["$: expected null, got integer"],
    ),
    (
        {"$defs": {"a~b": {"type": "null"}}, "$ref": "#/$defs/a~0b"},
        0,
        ["$: expected null, got integer"],
    ),
    (
        {"$defs": {"a b": {"type": "null"}}, "$ref": "#/$defs/a%20b"},
        0,
        ["$: expected null, got integer"],
    ),
    (
        {"$defs": {"~1": {"type": "null"}}, "$ref": "#/$defs/~01"},
        0,
        ["$: expected null, got integer"],
    ),
    # 2020-12: keywords beside $ref apply too.
    (
        {"$defs": {"S": {"type": "string"}}, "$ref": "#/$defs/S", "maxLength": 2},
        "abc",
        ["$: must have at most 2 characters, got 3"],
    ),
    (
        {"$defs": {"S": {"type": "string"}}, "$ref": "#/$defs/S", "maxLength": 2},
        5,
        ["$: expected string, got integer"],
    ),
    ({"$defs": {"No": False}, "$ref": "#/$defs/No"}, 1, ["$: no value is allowed here"]),
]

TREE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "value": {"type": "integer"},
        "children": {"type": "array", "items": {"$ref": "#"}},
    },
    "required": ["value"],
    "additionalProperties": False,
}

LINKED_LIST: dict[str, Any] = {
    "$ref": "#/$defs/Node",
    "$defs": {
        "Node": {
            "type": "object",
            "properties": {
                "value": {"type": "string"},
                "next": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]},
            },
            "required": ["value", "next"],
        }
    },
}

RECURSIVE_CASES: list[Case] = [
    (TREE, {"value": 1}, []),
    (TREE, {"value": 1, "children": [{"value": 2, "children": [{"value": 3}]}, {"value": 4}]}, []),
    (
        TREE,
        {"value": 1, "children": [{"value": 2, "children": [{"value": 3}, {"value": "4"}]}]},
        ["$.children[0].children[1].value: expected integer, got string"],
    ),
    (
        TREE,
        {"value": 1, "children": [{"children": [], "extra": 1}]},
        [
            "$.children[0]: missing required property 'value'",
            "$.children[0]: unexpected property 'extra'",
        ],
    ),
    (LINKED_LIST, {"value": "a", "next": {"value": "b", "next": None}}, []),
    (
        LINKED_LIST,
        {"value": "a", "next": {"value": "b", "next": {"value": 3, "next": None}}},
        ["$.next.next.value: expected string, got integer"],
    ),
    (
        LINKED_LIST,
        {"value": "a", "next": 7},
        [
            "$.next: does not match any of the allowed schemas "
            "(expected object, got integer; expected null, got integer)"
        ],
    ),
]


@pytest.mark.parametrize(
    ("schema", "instance", "expected"),
    [
        *TYPE_CASES,
        *BOOLEAN_SCHEMA_CASES,
        *ENUM_CONST_CASES,
        *OBJECT_CASES,
        *ARRAY_CASES,
        *STRING_CASES,
        *NUMBER_CASES,
        *COMBINATOR_CASES,
        *REF_CASES,
        *RECURSIVE_CASES,
    ],
)
def test_validate(schema: Any, instance: Any, expected: list[str]) -> None:
    check_schema(schema)
    # The order of several problems is jsonschema-rs's (keyword order), not part of the contract.
    assert sorted(validate(instance, schema)) == sorted(expected)


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("format", "email"),
        ("title", "T"),
        ("description", "d"),
        ("default", {"weird": ["value"]}),
        ("examples", [{"weird": ["value"]}]),
        ("x-vendor", {"weird": ["value"]}),
        ("contentMediaType", "application/json"),
    ],
)
def test_annotations_and_unknown_keywords_are_ignored(keyword: str, value: Any) -> None:
    schema = {"type": "string", keyword: value}
    check_schema(schema)
    assert validate("not-an-email", {**schema, "format": "email"}) == []
    assert validate(1, schema) == ["$: expected string, got integer"]


def test_annotations_of_the_wrong_type_are_schema_errors() -> None:
    # The draft's meta-schema says what an annotation holds; a foreign schema breaking it is
    # refused when the tool is defined rather than sent to the model.
    with pytest.raises(SchemaError, match="#/title: expected string, got object"):
        check_schema({"type": "string", "title": {"weird": ["value"]}})


def test_errors_are_collected_across_the_instance() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "items": {"type": "array", "items": {"properties": {"name": {"type": "string"}}}},
        },
        "required": ["name", "b"],
    }
    assert sorted(validate({"name": 1, "items": [{}, {"name": "x"}, {"name": 2}]}, schema)) == [
        "$.items[2].name: expected string, got integer",
        "$.name: expected string, got integer",
        "$: missing required property 'b'",
    ]


def test_long_offending_values_are_truncated() -> None:
    [error] = validate("x" * 1000, {"enum": ["a", "b"]})
    assert error.startswith("$: must be one of ['a', 'b'], got 'xxx")
    assert error.endswith("...")
    assert len(error) < 120


def test_validate_does_not_mutate_the_schema() -> None:
    schema = copy.deepcopy(LINKED_LIST)
    validate({"value": "a", "next": {"value": 1, "next": None}}, schema)
    assert schema == LINKED_LIST


def test_a_validator_compiles_its_schema_once(compiled_schemas: list[Any]) -> None:
    validator = SchemaValidator({"pattern": "^unique-pattern-[0-9]+$"})
    for _ in range(5):
        assert validator.errors("unique-pattern-1") == []
        assert validator.errors("nope") != []
    assert len(compiled_schemas) == 1


def test_a_deeply_nested_instance_is_a_problem_not_a_crash() -> None:
    instance: Any = 1
    for _ in range(10_000):
        instance = [instance]
    recursive = {"type": "array", "items": {"$ref": "#"}}
    [problem] = validate(instance, recursive)
    eight = "[0]" * 8
    assert problem == f"${eight}…9,984 levels…{eight}: expected array, got integer"
    assert validate(instance, {"type": "array"}) == []
    assert validate([instance], {"items": {"type": "string"}}) == [
        "$: the value is nested too deeply to validate"
    ]


class Huge(int):
    """An integer too long for str(), with a repr pytest can put in a test id."""

    def __repr__(self) -> str:
        return "10**5000"


HUGE = Huge(10**5000)


@pytest.mark.parametrize(
    ("schema", "instance", "expected"),
    [
        ({"type": "integer", "maximum": 5}, HUGE, "$: an integer of about 5001 digits"),
        ({"items": {}}, [1, {"a": Huge(-HUGE)}], "$[1].a: an integer of about 5001 digits"),
        ({"type": "number"}, float("nan"), "$: nan is not a JSON number"),
        ({}, {"x": [float("-inf")]}, "$.x[0]: -inf is not a JSON number"),
        ({"type": "array"}, {1, 2}, "$: the value is not JSON data"),
        ({"type": "object"}, {1: 2}, "$: the value is not JSON data"),
        ({"type": "string"}, object(), "$: the value is not JSON data"),
        ({"type": "string"}, "\ud800", "$: a string is not valid Unicode"),
    ],
)
def test_hostile_instances_give_problems_not_exceptions(
    schema: Any, instance: Any, expected: str
) -> None:
    [problem] = validate(instance, schema)
    assert problem.startswith(expected)
    assert len(problem) < 300


def test_long_numbers_check_exactly() -> None:
    assert validate(10**400, {"multipleOf": 0.1}) == []
    assert validate(10**400 + 2, {"multipleOf": 3}) == []
    assert validate(10**400, {"multipleOf": 3}) == [
        "$: must be a multiple of 3, got <integer of 401 digits>"
    ]
    assert validate(10**400, {"maximum": 5}) == ["$: must be <= 5, got <integer of 401 digits>"]
    assert validate(1e308, {"type": "number", "multipleOf": 0.1}) == []


def test_a_backtracking_pattern_is_checked_in_linear_time() -> None:
    validator = SchemaValidator({"type": "string", "pattern": "^(a+)+$"})
    started = time.perf_counter()
    [problem] = validator.errors("a" * 26 + "!")
    assert time.perf_counter() - started < 1.0  # Python's re takes seconds, doubling per "a"
    assert problem.startswith("$: must match pattern '^(a+)+$', got 'aaaa")
    assert validator.errors("a" * 100_000) == []


def test_patterns_the_linear_engine_cannot_run_are_schema_errors() -> None:
    for pattern in ("(?=a)", "(a)\\1", "("):
        with pytest.raises(SchemaError, match="#/pattern: invalid regular expression"):
            check_schema({"pattern": pattern})


def test_a_huge_enum_is_described_briefly() -> None:
    values = [f"value-{i:06d}" for i in range(100_000)]
    validator = SchemaValidator({"properties": {"mode": {"enum": values}}})
    [problem] = validator.errors({"mode": "nope"})
    assert problem.startswith("$.mode: must be one of ['value-000000', 'value-000001'")
    assert problem.endswith("got 'nope'")
    assert len(problem) < 300


def test_many_problems_are_capped() -> None:
    problems = validate(["x"] * 50_000, {"items": {"type": "integer"}})
    assert problems[:2] == [
        "$[0]: expected integer, got string",
        "$[1]: expected integer, got string",
    ]
    assert len(problems) == 11
    assert problems[-1] == "… and at least 991 more problems"
    assert validate(["x"] * 12, {"items": {"type": "integer"}})[-1] == "… and 2 more problems"


def test_five_property_object_is_fast() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "age": {"type": "integer", "minimum": 0},
            "email": {"type": "string"},
            "active": {"type": "boolean"},
            "score": {"type": "number"},
        },
        "required": ["name", "age", "email", "active", "score"],
        "additionalProperties": False,
    }
    instance = {"name": "Ann", "age": 3, "email": "a@b.c", "active": True, "score": 1.5}
    validator = SchemaValidator(schema)
    runs = 2000
    start = time.perf_counter()
    for _ in range(runs):
        validator.errors(instance)
    per_call = (time.perf_counter() - start) / runs
    # Typically ~1 µs; the bound only catches accidental per-call schema processing.
    assert per_call < 100e-6


# --- $ref errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("#/$defs/Missing", "Pointer '/$defs/Missing' does not exist"),
        ("#/$defs/Name/nope", "Pointer '/$defs/Name/nope' does not exist"),
        ("#/prefixItems/5", "Pointer '/prefixItems/5' does not exist"),
        ("other.json#/$defs/Name", "Resource 'other.json#/$defs/Name' is not present"),
        ("#Name", "Anchor 'Name' does not exist"),
        # Never fetched: a foreign schema must not make agentkit open connections.
        ("https://example.com/schema.json", "Resource 'https://example.com/schema.json' is not"),
    ],
)
def test_unresolvable_ref(ref: str, message: str) -> None:
    schema = {
        "$defs": {"Name": {"type": "string"}},
        "prefixItems": [True],
        "properties": {"a": {"$ref": ref}},
    }
    with pytest.raises(SchemaError, match=re.escape(f"#/properties/a/$ref: {message}")):
        check_schema(schema)
    with pytest.raises(SchemaError, match=re.escape(message)):
        validate({"a": 1}, schema)


def test_a_ref_to_something_not_a_schema_is_a_schema_error() -> None:
    schema = {
        "$defs": {"Name": {"type": "string"}},
        "properties": {"a": {"$ref": "#/$defs/Name/type"}},
    }
    with pytest.raises(
        SchemaError, match=re.escape("#/$defs/Name/type: expected boolean or object")
    ):
        check_schema(schema)


def test_an_unresolvable_ref_is_found_even_on_a_branch_no_value_visits() -> None:
    schema = {"properties": {"a": {"$ref": "#/$defs/Missing"}}}
    with pytest.raises(SchemaError):
        check_schema(schema)
    with pytest.raises(SchemaError):
        validate({"b": 1}, schema)


# --- check_schema ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schema",
    [
        True,
        False,
        {},
        TREE,
        LINKED_LIST,
        {"type": ["string", "null"], "enum": ["a", None], "const": "a"},
        {
            "properties": {
                "a/b": {"items": {"type": "string"}},
                "c": {"$ref": "#/properties/a~1b/items"},
            }
        },
        {"$defs": {"A": {"$ref": "#/$defs/B"}, "B": {"type": "integer"}}, "$ref": "#/$defs/A"},
        # Recursion through anyOf is fine as long as something in the loop descends.
        {"anyOf": [{"type": "string"}, {"type": "array", "items": {"$ref": "#"}}]},
        {"definitions": {"X": True}, "not": {"$ref": "#/definitions/X"}},
        {"x-unknown": {"type": "not checked"}, "format": "email", "minimum": 1.5},
        {"exclusiveMinimum": 0, "multipleOf": 0.01, "maxItems": 0, "uniqueItems": False},
    ],
)
def test_check_schema_accepts(schema: Any) -> None:
    check_schema(schema)


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (3, "#: expected a schema (object or boolean), got integer"),
        ([], "#: expected a schema (object or boolean), got array"),
        ({"type": "int"}, "#/type: 'int' is not a JSON type (one of array, boolean, integer"),
        ({"type": ["string", 3]}, "#/type: 3 is not a JSON type"),
        ({"type": []}, "#/type: must have at least 1 item, got 0"),
        ({"properties": {"a": {"items": {"type": "strin"}}}}, "#/properties/a/items/type: 'strin'"),
        ({"properties": {"a/b~": {"type": 1}}}, "#/properties/a~1b~0/type: 1 is not a JSON type"),
        ({"properties": []}, "#/properties: expected object, got array"),
        (
            {"properties": {"a": 3}},
            "#/properties/a: expected boolean or object, got integer",
        ),
        ({"properties": {"a": "string"}}, "#/properties/a: expected boolean or object, got string"),
        ({"required": "a"}, "#/required: expected array, got string"),
        ({"required": ["a", 1]}, "#/required/1: expected string, got integer"),
        ({"additionalProperties": "no"}, "#/additionalProperties: expected boolean or object"),
        ({"patternProperties": {"(": {}}}, "#/patternProperties/(: invalid regular expression '('"),
        ({"patternProperties": {"a": 1}}, "#/patternProperties/a: expected boolean or object"),
        ({"items": [{"type": "string"}]}, "#/items: expected boolean or object, got array"),
        (
            {"prefixItems": {"type": "string"}},
            "#/prefixItems: expected array, got object",
        ),
        ({"anyOf": []}, "#/anyOf: must have at least 1 item, got 0"),
        ({"oneOf": [{}, None]}, "#/oneOf/1: expected boolean or object, got null"),
        ({"allOf": {}}, "#/allOf: expected array, got object"),
        ({"not": []}, "#/not: expected boolean or object, got array"),
        ({"$defs": {"A": 3}}, "#/$defs/A: expected boolean or object, got integer"),
        ({"definitions": []}, "#/definitions: expected object, got array"),
        ({"minLength": -1}, "#/minLength: must be >= 0, got -1"),
        ({"maxItems": 1.5}, "#/maxItems: expected integer, got number"),
        ({"minProperties": True}, "#/minProperties: expected integer, got boolean"),
        ({"minimum": "0"}, "#/minimum: expected number, got string"),
        ({"exclusiveMinimum": True}, "#/exclusiveMinimum: expected number, got boolean"),
        ({"multipleOf": 0}, "#/multipleOf: must be > 0, got 0"),
        ({"multipleOf": -2}, "#/multipleOf: must be > 0, got -2"),
        ({"pattern": "("}, "#/pattern: invalid regular expression '('"),
        ({"pattern": 5}, "#/pattern: expected string, got integer"),
        ({"uniqueItems": "yes"}, "#/uniqueItems: expected boolean, got string"),
        ({"enum": "a"}, "#/enum: expected array, got string"),
        ({"$ref": 3}, "#/$ref: expected string, got integer"),
        ({"$ref": "#/$defs/A"}, "#/$ref: Pointer '/$defs/A' does not exist"),
        # A schema reached only through $ref is checked too.
        ({"x-lib": {"S": {"type": "str"}}, "$ref": "#/x-lib/S"}, "#/x-lib/S/type: "),
        # Loops that would make validate() recurse forever.
        ({"$ref": "#"}, "#: $ref loop that never descends into the value"),
        (
            {"properties": {"a": {"$ref": "#/properties/a"}}},
            "#/properties/a: $ref loop that never descends into the value",
        ),
        (
            {"$defs": {"A": {"$ref": "#/$defs/B"}, "B": {"allOf": [{"$ref": "#/$defs/A"}]}}},
            "$ref loop",
        ),
        ({"anyOf": [{"type": "string"}, {"$ref": "#"}]}, "$ref loop"),
        ({"not": {"$ref": "#"}}, "$ref loop"),
    ],
)
def test_check_schema_rejects(schema: Any, message: str) -> None:
    with pytest.raises(SchemaError, match=re.escape(message)):
        check_schema(schema)


def test_schema_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="'text' is not a JSON type"):
        check_schema({"type": "text"})


# --- pydantic-generated schemas ----------------------------------------------------------------


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Address(BaseModel):
    street: str
    zip_code: str = Field(pattern=r"^[0-9]{5}$")


class Person(BaseModel):
    name: str = Field(min_length=1)
    age: int = Field(ge=0)
    address: Address
    backup: Address | None = None
    nickname: str | None = None
    mode: Literal["fast", "slow"]
    color: Color
    pairs: list[tuple[int, str]]
    counts: dict[str, int]


class Node(BaseModel):
    value: int
    children: list[Node] = []


class Cat(BaseModel):
    pet_type: Literal["cat"]
    meows: int


class Dog(BaseModel):
    pet_type: Literal["dog"]
    barks: float


class Owner(BaseModel):
    pet: Annotated[Cat | Dog, Field(discriminator="pet_type")]


PERSON: dict[str, Any] = {
    "name": "Ann",
    "age": 30,
    "address": {"street": "Main St", "zip_code": "12345"},
    "mode": "fast",
    "color": "red",
    "pairs": [[1, "a"], [2, "b"]],
    "counts": {"x": 1},
}


@pytest.mark.parametrize(
    "instance",
    [
        PERSON,
        {**PERSON, "backup": None, "nickname": None},
        {**PERSON, "backup": {"street": "B", "zip_code": "54321"}, "nickname": "A"},
        {**PERSON, "age": 3.0, "pairs": [], "counts": {}},
    ],
)
def test_pydantic_model_valid(instance: dict[str, Any]) -> None:
    schema = Person.model_json_schema()
    check_schema(schema)
    assert validate(instance, schema) == []
    Person.model_validate_json(json.dumps(instance))  # pydantic agrees


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"name": ""}, ["$.name: must have at least 1 character, got 0"]),
        ({"age": -1}, ["$.age: must be >= 0, got -1"]),
        ({"age": True}, ["$.age: expected integer, got boolean"]),
        ({"age": "30"}, ["$.age: expected integer, got string"]),
        ({"address": None}, ["$.address: expected object, got null"]),
        ({"address": {"street": "x"}}, ["$.address: missing required property 'zip_code'"]),
        (
            {"address": {"street": "x", "zip_code": "123"}},
            ["$.address.zip_code: must match pattern '^[0-9]{5}$', got '123'"],
        ),
        (
            {"backup": {"street": 1, "zip_code": "12345"}},
            ["$.backup.street: expected string, got integer"],
        ),
        (
            {"backup": "Main St"},
            [
                "$.backup: does not match any of the allowed schemas "
                "(expected object, got string; expected null, got string)"
            ],
        ),
        (
            {"nickname": 5},
            [
                "$.nickname: does not match any of the allowed schemas "
                "(expected string, got integer; expected null, got integer)"
            ],
        ),
        ({"mode": "medium"}, ["$.mode: must be one of ['fast', 'slow'], got 'medium'"]),
        ({"color": "blue"}, ["$.color: must be one of ['red', 'green'], got 'blue'"]),
        ({"pairs": [[1, "a"], ["x", "b"]]}, ["$.pairs[1][0]: expected integer, got string"]),
        ({"pairs": [[1]]}, ["$.pairs[0]: must have at least 2 items, got 1"]),
        ({"pairs": [[1, "a", 2]]}, ["$.pairs[0]: must have at most 2 items, got 3"]),
        ({"pairs": {"0": [1, "a"]}}, ["$.pairs: expected array, got object"]),
        ({"counts": {"a": 1, "b": "2"}}, ["$.counts.b: expected integer, got string"]),
        ({"counts": {"a": True}}, ["$.counts.a: expected integer, got boolean"]),
        (
            {"age": 1.5, "mode": None, "counts": {"n": 0.5}},
            [
                "$.age: expected integer, got number",
                "$.mode: expected string, got null",
                "$.counts.n: expected integer, got number",
            ],
        ),
    ],
)
def test_pydantic_model_invalid(changes: dict[str, Any], expected: list[str]) -> None:
    assert validate({**PERSON, **changes}, Person.model_json_schema()) == expected


def test_pydantic_missing_fields() -> None:
    instance = {k: v for k, v in PERSON.items() if k not in ("age", "color")}
    assert validate(instance, Person.model_json_schema()) == [
        "$: missing required property 'age'",
        "$: missing required property 'color'",
    ]


@pytest.mark.parametrize(
    ("instance", "expected"),
    [
        ({"value": 1}, []),
        ({"value": 1, "children": [{"value": 2, "children": [{"value": 3}]}]}, []),
        (
            {"value": 1, "children": [{"value": 2, "children": [{"value": "3"}]}]},
            ["$.children[0].children[0].value: expected integer, got string"],
        ),
        ({"value": 1, "children": [{}]}, ["$.children[0]: missing required property 'value'"]),
    ],
)
def test_pydantic_recursive_model(instance: dict[str, Any], expected: list[str]) -> None:
    schema = Node.model_json_schema()
    check_schema(schema)
    assert validate(instance, schema) == expected


@pytest.mark.parametrize(
    ("instance", "expected"),
    [
        ({"pet": {"pet_type": "cat", "meows": 3}}, []),
        ({"pet": {"pet_type": "dog", "barks": 0.5}}, []),
        (
            {"pet": {"pet_type": "dog", "barks": "loud"}},
            ["$.pet.barks: expected number, got string"],
        ),
        ({"pet": {"pet_type": "cat"}}, ["$.pet: missing required property 'meows'"]),
        (
            {"pet": {"pet_type": "bird"}},
            [
                "$.pet: does not match any of the allowed schemas "
                "(.pet_type: must be 'cat', got 'bird'; .pet_type: must be 'dog', got 'bird')"
            ],
        ),
    ],
)
def test_pydantic_discriminated_union(instance: dict[str, Any], expected: list[str]) -> None:
    schema = Owner.model_json_schema()
    check_schema(schema)
    assert validate(instance, schema) == expected


@pytest.mark.parametrize(
    ("tp", "instance", "expected"),
    [
        (list[tuple[int, str]], [[1, "a"], (2, "b")], []),
        (list[tuple[int, str]], [[1, "a"], [2, 3]], ["$[1][1]: expected string, got integer"]),
        (dict[str, int], {"a": 1, "b": 2.0}, []),
        (dict[str, int], {"a": 1, "b": 2.5}, ["$.b: expected integer, got number"]),
        (int | None, None, []),
        (Literal["a", "b"], "c", ["$: must be one of ['a', 'b'], got 'c'"]),
        (Literal[1], True, ["$: expected integer, got boolean"]),
        (Literal[1], 2, ["$: must be 1, got 2"]),
        (Color, "green", []),
        (
            Annotated[list[int], Field(min_length=1, max_length=2)],
            [],
            ["$: must have at least 1 item, got 0"],
        ),
        (set[int], [1, 1], ["$: items must be unique, but [0] and [1] are equal"]),
        (Annotated[float, Field(gt=0, lt=1, multiple_of=0.25)], 0.5, []),
        (Annotated[float, Field(gt=0, lt=1, multiple_of=0.25)], 1, ["$: must be < 1, got 1"]),
        (
            Annotated[float, Field(gt=0, lt=1, multiple_of=0.25)],
            0.3,
            ["$: must be a multiple of 0.25, got 0.3"],
        ),
    ],
)
def test_pydantic_type_adapter(tp: Any, instance: Any, expected: list[str]) -> None:
    schema = TypeAdapter(tp).json_schema()
    check_schema(schema)
    assert validate(instance, schema) == expected
