"""Validate LLM-produced JSON (tool-call arguments, structured outputs) against a JSON Schema.

Tools defined from an explicit JSON Schema (e.g. MCP servers) and ``response_format`` schemas
are checked with :func:`validate`, whose error messages are fed back to the model so it can fix
its call; they are short and carry a JSON path: ``"$.items[2].name: expected string, got
integer"``. Call :func:`check_schema` once when a schema is registered: :func:`validate` trusts
its schema and does no checking of its own, which keeps the per-call cost to a few microseconds.

Supported subset (draft 2020-12 semantics; unknown keywords and the annotations ``format``,
``title``, ``description``, ``default`` and ``examples`` are ignored):

- boolean schemas, ``type`` (a name or a list of names), ``enum``, ``const``
- objects: ``properties``, ``required``, ``additionalProperties``, ``patternProperties``,
  ``minProperties``, ``maxProperties``
- arrays: ``items``, ``prefixItems``, ``minItems``, ``maxItems``, ``uniqueItems``
- strings: ``minLength``, ``maxLength`` (in code points), ``pattern`` (``re.search``)
- numbers: ``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum`` (numeric form),
  ``multipleOf``
- ``anyOf``, ``oneOf``, ``allOf``, ``not``
- ``$ref`` to any JSON pointer inside the root schema (``#``, ``#/$defs/Name``,
  ``#/definitions/Name``, ...), recursive schemas included; ``$id``, anchors and remote refs
  are not supported.

Values compare with JSON semantics: ``1 == 1.0`` but ``true != 1``; ``"integer"`` accepts
integral floats, and booleans are never numbers.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Hashable, Iterator, Mapping
from fractions import Fraction
from functools import lru_cache
from typing import Any, Final, TypeAlias
from urllib.parse import unquote

__all__ = ["SchemaError", "check_schema", "validate"]

_Schema: TypeAlias = Mapping[str, Any] | bool
_Obj: TypeAlias = Mapping[str, Any]
_Path: TypeAlias = tuple[str | int, ...]
# (path, message, reach). A non-negative reach marks an error that rules a whole anyOf/oneOf
# branch out when it sits at most `reach` levels below the union (a type mismatch on the value
# itself, a wrong tag/const on it or on one of its properties); see _no_match.
_Error: TypeAlias = tuple[_Path, str, int]
_Errs: TypeAlias = list[_Error]
_Check: TypeAlias = Callable[[Any, Any, _Path, _Obj, _Schema, _Errs], None]


class SchemaError(ValueError):
    """The schema itself is malformed."""


def validate(instance: object, schema: Mapping[str, Any] | bool) -> list[str]:
    """Return the list of validation errors (empty when valid).

    Each error is like ``"$.items[2].name: expected string, got integer"``,
    ``"$: missing required property 'b'"`` or
    ``"$.mode: must be one of ['fast', 'slow'], got 'medium'"``.
    Raises :class:`SchemaError` on a ``$ref`` that does not resolve.
    """
    errors: _Errs = []
    try:
        _validate(instance, schema, (), schema, errors)
    except RecursionError:
        # check_schema rejects $ref loops, so only absurdly deep input gets here.
        return ["$: value is nested too deeply to validate"]
    return [f"{_format_path(path)}: {message}" for path, message, _ in errors]


def check_schema(schema: Mapping[str, Any] | bool) -> None:
    """Raise :class:`SchemaError` if ``schema`` is not usable with the supported subset.

    The message names the problem and where it is, as a JSON pointer into the schema, e.g.
    ``"#/properties/age/type: 'int' is not a JSON type"``. Besides malformed keywords it rejects
    ``$ref`` values that do not resolve and ``$ref`` loops that never descend into the instance
    (which would recurse forever).
    """
    nodes: dict[int, tuple[Mapping[str, Any], str]] = {}
    _check(schema, "#", schema, nodes)
    finished: dict[int, bool] = {}
    for node, where in list(nodes.values()):
        _check_loops(node, where, schema, nodes, finished)


# --- validation ------------------------------------------------------------------------------

_TYPE_NAMES: Final[dict[type, str]] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
    list: "array",
    tuple: "array",
    dict: "object",
}
_JSON_TYPES: Final = frozenset(_TYPE_NAMES.values())


def _json_type(value: object) -> str:
    name = _TYPE_NAMES.get(type(value))
    if name is not None:
        return name
    # Subclasses such as str enums or IntEnum; bool must be tested before int.
    if isinstance(value, bool):
        return "boolean"
    for cls, cls_name in _TYPE_NAMES.items():
        if isinstance(value, cls):
            return cls_name
    return type(value).__name__


def _has_type(value: object, actual: str, expected: str) -> bool:
    if actual == expected:
        return True
    if expected == "number":
        return actual == "integer"
    return expected == "integer" and isinstance(value, float) and value.is_integer()


def _validate(inst: Any, schema: _Schema, path: _Path, root: _Schema, errors: _Errs) -> None:
    if isinstance(schema, bool):
        if not schema:
            errors.append((path, "no value is allowed here", -1))
        return
    expected = schema.get("type")
    # The exact-match test first skips the general check in the common case.
    if expected is not None and expected != _TYPE_NAMES.get(type(inst)):
        actual = _json_type(inst)
        if isinstance(expected, str):
            ok = _has_type(inst, actual, expected)
        else:
            ok = any(_has_type(inst, actual, name) for name in expected)
        if not ok:
            wanted = expected if isinstance(expected, str) else " or ".join(expected)
            # The other keywords would only restate the mismatch.
            errors.append((path, f"expected {wanted}, got {actual}", 0))
            return
    for key, value in schema.items():
        check = _KEYWORDS.get(key)
        if check is not None:
            check(value, inst, path, schema, root, errors)


# Keyword checks share one signature: (keyword value, instance, path, the enclosing schema,
# root schema, errors). Each ignores instances of types the keyword does not apply to.


def _ref(ref: str, inst: Any, path: _Path, schema: _Obj, root: _Schema, errors: _Errs) -> None:
    _validate(inst, _resolve(root, ref), path, root, errors)


def _enum(
    allowed: list[Any], inst: Any, path: _Path, schema: _Obj, root: _Schema, errors: _Errs
) -> None:
    if type(inst) is str:
        if inst in allowed:  # a str only ever equals a str, so == is JSON equality here
            return
    else:
        key = _json_key(inst)
        if any(key == _json_key(option) for option in allowed):
            return
    errors.append((path, f"must be one of {_render(allowed)}, got {_show(inst)}", 1))


def _const(
    expected: Any, inst: Any, path: _Path, schema: _Obj, root: _Schema, errors: _Errs
) -> None:
    if _json_key(inst) != _json_key(expected):
        errors.append((path, f"must be {_render(expected)}, got {_show(inst)}", 1))


def _properties(
    props: _Obj, inst: Any, path: _Path, schema: _Obj, root: _Schema, errors: _Errs
) -> None:
    if isinstance(inst, dict):
        for name, sub in props.items():
            if name in inst:
                _validate(inst[name], sub, (*path, name), root, errors)


def _pattern_properties(
    patterns: _Obj, inst: Any, path: _Path, schema: _Obj, root: _Schema, errors: _Errs
) -> None:
    if isinstance(inst, dict):
        for pattern, sub in patterns.items():
            regex = _regex(pattern)
            for name, value in inst.items():
                if regex.search(name):
                    _validate(value, sub, (*path, name), root, errors)


def _additional_properties(
    sub: _Schema, inst: Any, path: _Path, schema: _Obj, root: _Schema, errors: _Errs
) -> None:
    if not isinstance(inst, dict):
        return
    props = schema.get("properties", {})
    regexes = [_regex(pattern) for pattern in schema.get("patternProperties", ())]
    for name, value in inst.items():
        if name in props or (regexes and any(regex.search(name) for regex in regexes)):
            continue
        if sub is False:
            errors.append((path, f"unexpected property {name!r}", -1))
        else:
            _validate(value, sub, (*path, name), root, errors)


def _required(
    names: list[str], inst: Any, path: _Path, schema: _Obj, root: _Schema, errors: _Errs
) -> None:
    if isinstance(inst, dict):
        for name in names:
            if name not in inst:
                errors.append((path, f"missing required property {name!r}", -1))


def _items(
    sub: _Schema, inst: Any, path: _Path, schema: _Obj, root: _Schema, errors: _Errs
) -> None:
    if not isinstance(inst, list | tuple):
        return
    start = len(schema.get("prefixItems", ()))
    if sub is False:
        # The usual closed-tuple idiom; "at most N items" says more than N "not allowed"s.
        if len(inst) > start:
            errors.append((path, f"must have at most {_count(start, 'item')}, got {len(inst)}", -1))
        return
    for index in range(start, len(inst)):
        _validate(inst[index], sub, (*path, index), root, errors)


def _prefix_items(
    subs: list[_Schema], inst: Any, path: _Path, schema: _Obj, root: _Schema, errors: _Errs
) -> None:
    if isinstance(inst, list | tuple):
        for index, (value, sub) in enumerate(zip(inst, subs, strict=False)):
            _validate(value, sub, (*path, index), root, errors)


def _unique_items(
    unique: bool, inst: Any, path: _Path, schema: _Obj, root: _Schema, errors: _Errs
) -> None:
    if not unique or not isinstance(inst, list | tuple):
        return
    first_seen: dict[Hashable, int] = {}
    for index, value in enumerate(inst):
        first = first_seen.setdefault(_json_key(value), index)
        if first != index:
            message = f"items must be unique, but [{first}] and [{index}] are equal"
            errors.append((path, message, -1))
            return


def _pattern(
    pattern: str, inst: Any, path: _Path, schema: _Obj, root: _Schema, errors: _Errs
) -> None:
    if isinstance(inst, str) and not _regex(pattern).search(inst):
        errors.append((path, f"must match pattern {pattern!r}, got {_show(inst)}", -1))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _bound(
    kind: type[Any] | tuple[type[Any], ...],
    fails: Callable[[Any, Any], bool],
    relation: str,
    unit: str = "",
) -> _Check:
    """Make a min/max check for ``kind`` values.

    It bounds the value's size when ``unit`` names what is counted, else the number itself;
    ``fails(measure, limit)`` tells when the bound is broken.
    """

    def check(
        limit: Any, inst: Any, path: _Path, schema: _Obj, root: _Schema, errors: _Errs
    ) -> None:
        if isinstance(inst, kind) and not isinstance(inst, bool):
            measure = len(inst) if unit else inst
            if fails(measure, limit):
                wanted = (
                    f"have {relation} {_count(limit, unit)}" if unit else f"be {relation} {limit}"
                )
                errors.append((path, f"must {wanted}, got {measure}", -1))

    return check


def _multiple_of(
    factor: float, inst: Any, path: _Path, schema: _Obj, root: _Schema, errors: _Errs
) -> None:
    if not _is_number(inst):
        return
    if isinstance(inst, int) and isinstance(factor, int):
        ok = inst % factor == 0
    elif not math.isfinite(inst):
        ok = False
    else:
        # Binary floats make 0.3 % 0.1 != 0; compare the decimal numbers the JSON text spelled.
        ok = Fraction(repr(inst)) % Fraction(repr(factor)) == 0
    if not ok:
        errors.append((path, f"must be a multiple of {factor}, got {inst}", -1))


def _all_of(
    subs: list[_Schema], inst: Any, path: _Path, schema: _Obj, root: _Schema, errors: _Errs
) -> None:
    for sub in subs:
        _validate(inst, sub, path, root, errors)


def _any_of(
    subs: list[_Schema], inst: Any, path: _Path, schema: _Obj, root: _Schema, errors: _Errs
) -> None:
    failures: list[_Errs] = []
    for sub in subs:
        branch: _Errs = []
        _validate(inst, sub, path, root, branch)
        if not branch:
            return
        failures.append(branch)
    errors.extend(_no_match(failures, path))


def _one_of(
    subs: list[_Schema], inst: Any, path: _Path, schema: _Obj, root: _Schema, errors: _Errs
) -> None:
    failures: list[_Errs] = []
    matches: list[int] = []
    for index, sub in enumerate(subs):
        branch: _Errs = []
        _validate(inst, sub, path, root, branch)
        if branch:
            failures.append(branch)
        else:
            matches.append(index)
    if not matches:
        errors.extend(_no_match(failures, path))
    elif len(matches) > 1:
        which = ", ".join(map(str, matches))
        message = f"must match exactly one of the allowed schemas, but matches {len(matches)}"
        errors.append((path, f"{message} (oneOf indexes {which})", -1))


def _not(sub: _Schema, inst: Any, path: _Path, schema: _Obj, root: _Schema, errors: _Errs) -> None:
    branch: _Errs = []
    _validate(inst, sub, path, root, branch)
    if not branch:
        errors.append((path, f"must not match {_show(sub)}", -1))


def _no_match(failures: list[_Errs], path: _Path) -> _Errs:
    """Explain why no anyOf/oneOf branch matched, in one error where possible.

    Branches ruled out by the value's type or tag (``null`` in ``Optional[Model]`` given an
    object, the other members of a discriminated union) are beside the point: if one branch is
    left, its own errors are what the model needs to see; else it gets the first reason each
    remaining branch failed.
    """
    depth = len(path)
    viable = [
        branch
        for branch in failures
        if not any(len(at) - depth <= reach for at, _, reach in branch)
    ]
    if len(viable) == 1:
        return viable[0]
    reasons: dict[str, None] = {}  # ordered and deduplicated
    for at, message, _ in (branch[0] for branch in viable or failures):
        relative = _format_path(at[depth:], "")
        reasons[f"{relative}: {message}" if relative else message] = None
    summary = f"does not match any of the allowed schemas ({'; '.join(reasons)})"
    # Ruled out as a whole, the union can in turn rule out an enclosing union's branch.
    return [(path, summary, -1 if viable else 0)]


_KEYWORDS: Final[dict[str, _Check]] = {
    "$ref": _ref,
    "enum": _enum,
    "const": _const,
    "properties": _properties,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "required": _required,
    "minProperties": _bound(dict, operator.lt, "at least", "property"),
    "maxProperties": _bound(dict, operator.gt, "at most", "property"),
    "items": _items,
    "prefixItems": _prefix_items,
    "minItems": _bound((list, tuple), operator.lt, "at least", "item"),
    "maxItems": _bound((list, tuple), operator.gt, "at most", "item"),
    "uniqueItems": _unique_items,
    "minLength": _bound(str, operator.lt, "at least", "character"),
    "maxLength": _bound(str, operator.gt, "at most", "character"),
    "pattern": _pattern,
    "minimum": _bound((int, float), operator.lt, ">="),
    "maximum": _bound((int, float), operator.gt, "<="),
    "exclusiveMinimum": _bound((int, float), operator.le, ">"),
    "exclusiveMaximum": _bound((int, float), operator.ge, "<"),
    "multipleOf": _multiple_of,
    "allOf": _all_of,
    "anyOf": _any_of,
    "oneOf": _one_of,
    "not": _not,
}


# --- helpers ---------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@lru_cache(maxsize=1024)
def _pointer(ref: str) -> tuple[str, ...] | None:
    """Split a local ``$ref`` into JSON pointer tokens; None if it is not a local pointer."""
    if not ref.startswith("#"):
        return None
    fragment = unquote(ref[1:])
    if not fragment:
        return ()
    if not fragment.startswith("/"):
        return None
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in fragment[1:].split("/"))


def _resolve(root: _Schema, ref: str) -> _Schema:
    tokens = _pointer(ref)
    if tokens is None:
        raise SchemaError(f"unsupported $ref {ref!r}: only JSON pointers into the schema ('#/...')")
    node: Any = root
    for token in tokens:
        if isinstance(node, Mapping) and token in node:
            node = node[token]
        elif (
            isinstance(node, list)
            and token.isascii()
            and token.isdigit()
            and int(token) < len(node)
        ):
            node = node[int(token)]
        else:
            raise SchemaError(f"$ref {ref!r} does not resolve")
    if not isinstance(node, bool | Mapping):
        raise SchemaError(f"$ref {ref!r} points to {_json_type(node)}, not a schema")
    return node


def _json_key(value: Any) -> Hashable:
    """A hashable stand-in for a JSON value: equal exactly when the values are equal in JSON."""
    if isinstance(value, bool):
        return ("boolean", value)
    if isinstance(value, int | float):
        return ("number", value)  # 1 and 1.0 are equal and hash alike, as JSON wants
    if isinstance(value, list | tuple):
        return ("array", tuple(map(_json_key, value)))
    if isinstance(value, dict):
        return ("object", frozenset((k, _json_key(v)) for k, v in value.items()))
    return ("other", value)


def _format_path(path: _Path, start: str = "$") -> str:
    parts = [start]
    for part in path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif part.isidentifier():
            parts.append(f".{part}")
        else:
            parts.append(f"[{part!r}]")
    return "".join(parts)


def _render(value: Any) -> str:
    """Python-ish repr that spells null/true/false as JSON does, since the reader writes JSON."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(map(_render, value)) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k!r}: {_render(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _show(value: Any, limit: int = 60) -> str:
    """Render an offending value, cut short: a long string should not swamp the message."""
    text = _render(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _count(n: int, noun: str) -> str:
    if n == 1:
        return f"1 {noun}"
    return f"{n} {noun[:-1]}ies" if noun.endswith("y") else f"{n} {noun}s"


# --- schema checking -------------------------------------------------------------------------

_SUBSCHEMA: Final = frozenset({"additionalProperties", "items", "not"})
_SUBSCHEMA_MAP: Final = frozenset({"properties", "patternProperties", "$defs", "definitions"})
_SUBSCHEMA_LIST: Final = frozenset({"prefixItems", "allOf", "anyOf", "oneOf"})
_COUNTS: Final = frozenset(
    {"minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"}
)
_NUMBERS: Final = frozenset(
    {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}
)


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _check(
    schema: object, where: str, root: _Schema, nodes: dict[int, tuple[Mapping[str, Any], str]]
) -> None:
    if isinstance(schema, bool):
        return
    if not isinstance(schema, Mapping):
        raise SchemaError(
            f"{where}: expected a schema (object or boolean), got {_json_type(schema)}"
        )
    if id(schema) in nodes:
        return
    nodes[id(schema)] = (schema, where)
    for key, value in schema.items():
        at = f"{where}/{_escape(key)}"
        if key in _SUBSCHEMA:
            if key == "items" and isinstance(value, list):
                raise SchemaError(f"{at}: must be a schema (use prefixItems for tuples)")
            _check(value, at, root, nodes)
        elif key in _SUBSCHEMA_MAP:
            if not isinstance(value, Mapping):
                raise SchemaError(f"{at}: must be an object, got {_json_type(value)}")
            for name, sub in value.items():
                if key == "patternProperties":
                    _check_regex(name, f"{at}/{_escape(name)}")
                _check(sub, f"{at}/{_escape(name)}", root, nodes)
        elif key in _SUBSCHEMA_LIST:
            if not isinstance(value, list) or not value:
                raise SchemaError(f"{at}: must be a non-empty array of schemas")
            for index, sub in enumerate(value):
                _check(sub, f"{at}/{index}", root, nodes)
        elif key in _COUNTS:
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise SchemaError(f"{at}: must be a non-negative integer, got {_show(value)}")
        elif key in _NUMBERS:
            if not _is_number(value):
                raise SchemaError(f"{at}: must be a number, got {_show(value)}")
            if key == "multipleOf" and value <= 0:
                raise SchemaError(f"{at}: must be greater than 0, got {_show(value)}")
        elif key == "type":
            _check_type(value, at)
        elif key == "enum":
            if not isinstance(value, list):
                raise SchemaError(f"{at}: must be an array, got {_json_type(value)}")
        elif key == "required":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise SchemaError(f"{at}: must be an array of strings, got {_show(value)}")
        elif key == "uniqueItems":
            if not isinstance(value, bool):
                raise SchemaError(f"{at}: must be a boolean, got {_show(value)}")
        elif key == "pattern":
            _check_regex(value, at)
        elif key == "$ref":
            if not isinstance(value, str):
                raise SchemaError(f"{at}: must be a string, got {_json_type(value)}")
            try:
                target = _resolve(root, value)
            except SchemaError as exc:
                raise SchemaError(f"{at}: {exc}") from None
            _check(target, value, root, nodes)


def _check_type(value: object, at: str) -> None:
    names = value if isinstance(value, list) else [value]
    if not names:
        raise SchemaError(f"{at}: must not be empty")
    for name in names:
        if not isinstance(name, str) or name not in _JSON_TYPES:
            allowed = ", ".join(sorted(_JSON_TYPES))
            raise SchemaError(f"{at}: {_show(name)} is not a JSON type (one of {allowed})")


def _check_regex(pattern: object, at: str) -> None:
    if not isinstance(pattern, str):
        raise SchemaError(f"{at}: must be a string, got {_json_type(pattern)}")
    try:
        _regex(pattern)
    except re.error as exc:
        raise SchemaError(f"{at}: invalid regular expression {pattern!r}: {exc}") from None


def _in_place(node: Mapping[str, Any], root: _Schema) -> Iterator[_Schema]:
    """Subschemas applied to the same value as ``node`` (rather than to a part of it)."""
    ref = node.get("$ref")
    if ref is not None:
        yield _resolve(root, ref)
    for key in ("allOf", "anyOf", "oneOf"):
        yield from node.get(key, ())
    if "not" in node:
        yield node["not"]


def _check_loops(
    node: _Schema,
    where: str,
    root: _Schema,
    nodes: dict[int, tuple[Mapping[str, Any], str]],
    finished: dict[int, bool],
) -> None:
    # Depth-first search over in-place edges: revisiting an unfinished node closes a loop that
    # validate() would follow forever without consuming any of the instance.
    if isinstance(node, bool):
        return
    state = finished.get(id(node))
    if state is False:
        raise SchemaError(f"{where}: $ref loop that never descends into the value")
    if state is None:
        finished[id(node)] = False
        for sub in _in_place(node, root):
            if not isinstance(sub, bool):
                _check_loops(sub, nodes[id(sub)][1], root, nodes, finished)
        finished[id(node)] = True
