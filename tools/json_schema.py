"""Validate LLM-produced JSON (tool-call arguments, structured outputs) against a JSON Schema.

Validation is jsonschema-rs's (Draft 2020-12 unless the schema's ``$schema`` names another
draft; ``format`` is an annotation; patterns run on a linear-time regex engine, so no pattern
can make validation hang; remote ``$ref`` are never fetched). This module adds what agentkit
needs around it:

- :class:`SchemaValidator` compiles a schema once (hold one per tool or response format); its
  :meth:`~SchemaValidator.errors` are short, carry a JSON path (``"$.items[2].name: expected
  string, got integer"``) and are capped by `agentkit.errors.cap_problems`, because they are
  fed back to the model so it can fix its call;
- :func:`check_schema` raises :class:`SchemaError` on anything unusable, at definition time:
  malformed keywords (checked against the draft's meta-schema), regexes the engine rejects,
  ``$ref`` that do not resolve or loop without descending into the value, schemas nested too
  deeply or whose ``$ref`` expand too far, and values that are not JSON;
- hostile instances (nested thousands deep, integers with thousands of digits, NaN, values that
  are not JSON at all) give a problem list, never an exception.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any, Final, TypeAlias
from urllib.parse import unquote

import jsonschema_rs
from jsonschema_rs import ValidationError
from jsonschema_rs import ValidationErrorKind as Kind

from agentkit.errors import cap_problems

__all__ = ["SchemaError", "SchemaValidator", "check_schema", "validate"]

_Path: TypeAlias = Sequence[str | int]
# A problem before rendering: where, and either its text or the error to describe lazily.
_Entry: TypeAlias = tuple[_Path, "str | ValidationError"]

MAX_EXPANSION: Final = 20_000
"""Most subschemas a schema may expand to through ``$ref`` (each use of a definition counts
its subschemas again); beyond it a hostile schema could make one validation take minutes."""

_MAX_ERRORS: Final = 1_000  # raw errors looked at per validation
_MAX_INT_BITS: Final = 14_000  # about 4,200 digits: Python's limit for str(int) is 4,300
_CONVERSION_ERRORS: Final = (ValueError, TypeError, OverflowError, RecursionError)
_DATA_KEYWORDS: Final = frozenset({"enum", "const", "default", "examples"})
_SCHEMA_MAPS: Final = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
)
_DEFINITIONS: Final = frozenset({"$defs", "definitions"})
_IN_PLACE: Final = frozenset(
    {"$ref", "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas"}
)


class SchemaError(ValueError):
    """The schema itself is malformed."""


class SchemaValidator:
    """A schema checked and compiled once; `errors` validates an instance against it."""

    __slots__ = ("_validator", "schema")

    def __init__(self, schema: Mapping[str, Any] | bool) -> None:
        """Raise `SchemaError` if `schema` is unusable (see `check_schema`)."""
        self.schema: Any = dict(schema) if isinstance(schema, Mapping) else schema
        self._validator = _compile(self.schema)

    def errors(self, instance: object) -> list[str]:
        """The problems with `instance` (empty when valid), capped for a model to read.

        Each is like ``"$.items[2].name: expected string, got integer"``,
        ``"$: missing required property 'b'"`` or
        ``"$.mode: must be one of ['fast', 'slow'], got 'medium'"``.
        """
        if _has_unfit(instance):
            path, problem = _locate(instance)
            return [f"{_format_path(path)}: {problem}"]
        try:
            if self._validator.is_valid(instance):
                return []
            raw = list(islice(self._validator.iter_errors(instance), _MAX_ERRORS + 1))
        except _CONVERSION_ERRORS as error:
            return [f"$: {_unconvertible(error)}"]
        try:
            entries = _entries(raw[:_MAX_ERRORS])
        except RecursionError:  # unions nested hundreds deep
            entries = [(e.instance_path, _first_line(e.message)) for e in raw[:_MAX_ERRORS]]
        return cap_problems(entries, _render_entry, at_least=len(raw) > _MAX_ERRORS)


def validate(instance: object, schema: Mapping[str, Any] | bool) -> list[str]:
    """`SchemaValidator(schema).errors(instance)`: compiles the schema on every call.

    Hold a `SchemaValidator` to validate against the same schema repeatedly. Raises
    `SchemaError` if the schema is unusable.
    """
    return SchemaValidator(schema).errors(instance)


def check_schema(schema: Mapping[str, Any] | bool) -> None:
    """Raise :class:`SchemaError` if ``schema`` cannot be used to validate.

    The message names the problem and where it is, as a JSON pointer into the schema, e.g.
    ``"#/properties/age/type: ..."``.
    """
    SchemaValidator(schema)


# --- compiling -------------------------------------------------------------------------------


def _compile(schema: dict[str, Any] | bool) -> jsonschema_rs.Validator:
    if not isinstance(schema, bool | dict):
        raise SchemaError(f"#: expected a schema (object or boolean), got {_json_type(schema)}")
    if _has_unfit(schema):
        path, problem = _locate(schema)
        raise SchemaError(f"{_format_pointer(path)}: {problem}")
    try:
        validator = jsonschema_rs.validator_for(
            schema,
            validate_formats=False,
            pattern_options=jsonschema_rs.RegexOptions(),
            offline=True,
        )
    except ValidationError as error:
        raise SchemaError(_schema_problem(schema, error)) from None
    except jsonschema_rs.ReferencingError as error:
        raise SchemaError(f"#: {_first_line(str(error))}") from None
    except _CONVERSION_ERRORS as error:
        raise SchemaError(f"#: {_unconvertible(error)}") from None
    if isinstance(schema, dict):
        _check_graph(schema)
    return validator


def _schema_problem(schema: dict[str, Any] | bool, error: ValidationError) -> str:
    """A meta-schema or reference error, located by a JSON pointer into the schema."""
    if isinstance(error.kind, Kind.Format) and error.kind.format == "regex":
        return (
            f"{_format_pointer(error.instance_path)}: invalid regular expression "
            f"{_show(error.instance)} (patterns use a linear-time engine: no look-around "
            "or backreferences)"
        )
    if error.instance_path[-1:] == ["type"] and isinstance(error.kind, Kind.AnyOf):
        names = error.instance if isinstance(error.instance, list) else [error.instance]
        wrong = [name for name in names if not (isinstance(name, str) and name in _JSON_TYPES)]
        if wrong:
            return (
                f"{_format_pointer(error.instance_path)}: {_show(wrong[0])} is not a JSON type "
                f"(one of {', '.join(sorted(_JSON_TYPES))})"
            )
    if error.schema_path or error.instance_path:  # the schema broke its meta-schema
        entries = _entries([error]) or [(error.instance_path, error)]
        at, text = entries[0]
        return f"{_format_pointer(at)}: {text if isinstance(text, str) else _message(text)}"
    # A $ref that does not resolve: jsonschema-rs does not say where; find it.
    message = _first_line(error.message)
    where = _find_ref(schema, message) if isinstance(schema, dict) else None
    return f"{where or '#'}: {message}"


def _find_ref(schema: dict[str, Any], message: str) -> str | None:
    for node, pointer in _nodes(schema):
        for key in ("$ref", "$dynamicRef"):
            ref = node.get(key)
            if isinstance(ref, str) and (ref in message or ref.partition("#")[2] in message):
                return f"{pointer}/{_escape(key)}"
    return None


def _nodes(schema: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
    """Every schema object in `schema` with its JSON pointer, breadth first."""
    queue: list[tuple[dict[str, Any], str]] = [(schema, "#")]
    seen = {id(schema)}
    for node, pointer in queue:
        yield node, pointer
        for key, value in node.items():
            if key in _DATA_KEYWORDS:
                continue
            at = f"{pointer}/{_escape(key)}"
            for child, where in _children(key, value, at):
                if id(child) not in seen and ("$id" not in child or child is schema):
                    seen.add(id(child))
                    queue.append((child, where))


def _children(key: str, value: Any, at: str) -> Iterator[tuple[dict[str, Any], str]]:
    if isinstance(value, dict):
        if key in _SCHEMA_MAPS:
            for name, sub in value.items():
                if isinstance(sub, dict):
                    yield sub, f"{at}/{_escape(name)}"
        else:
            yield value, at
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            if isinstance(sub, dict):
                yield sub, f"{at}/{index}"


def _check_graph(schema: dict[str, Any]) -> None:
    """Reject local ``$ref`` loops that never descend into the value, and ``$ref`` graphs that
    expand to more than `MAX_EXPANSION` subschemas.

    jsonschema-rs accepts both: a loop validates as if it were ``true``, an expansion costs
    time exponential in the schema's size.
    """
    pointers = {id(node): pointer for node, pointer in _nodes(schema)}
    nodes = {id(node): node for node, _ in _nodes(schema)}
    edges: dict[int, list[tuple[int, bool]]] = {}
    for key_id, node in nodes.items():
        out: list[tuple[int, bool]] = []
        for key, value in node.items():
            if key in _DATA_KEYWORDS:
                continue
            if key == "$ref" and isinstance(value, str):
                target = _resolve_local(schema, value)
                if target is not None and id(target) in nodes:
                    out.append((id(target), True))
                continue
            if key in _DEFINITIONS:
                continue  # applied only where referenced: reached through $ref, if at all
            for child, _ in _children(key, value, ""):
                if id(child) in nodes:
                    out.append((id(child), key in _IN_PLACE))
        edges[key_id] = out
    _check_loops(edges, pointers)  # every node is a start: definitions included
    _check_expansion(id(schema), edges)


def _check_loops(edges: dict[int, list[tuple[int, bool]]], pointers: dict[int, str]) -> None:
    state: dict[int, int] = {}  # 1: on the current path, 2: done
    for start in edges:
        if start in state:
            continue
        stack: list[tuple[int, Iterator[tuple[int, bool]]]] = [(start, iter(edges[start]))]
        state[start] = 1
        while stack:
            node, pending = stack[-1]
            for child, in_place in pending:
                if not in_place:
                    continue
                if state.get(child) == 1:
                    raise SchemaError(
                        f"{pointers[child]}: $ref loop that never descends into the value"
                    )
                if child not in state:
                    state[child] = 1
                    stack.append((child, iter(edges[child])))
                    break
            else:
                state[node] = 2
                stack.pop()


def _check_expansion(root: int, edges: dict[int, list[tuple[int, bool]]]) -> None:
    # Subschemas counted with multiplicity over the graph less its back edges (recursion is
    # bounded by the instance, not by the schema).
    size: dict[int, int] = {}
    on_path: set[int] = {root}
    stack: list[tuple[int, Iterator[tuple[int, bool]]]] = [(root, iter(edges[root]))]
    while stack:
        node, pending = stack[-1]
        for child, _ in pending:
            if child not in size and child not in on_path:
                on_path.add(child)
                stack.append((child, iter(edges[child])))
                break
        else:
            total = 1 + sum(size.get(child, 0) for child, _ in edges[node])
            if total > MAX_EXPANSION:
                raise SchemaError(
                    f"#: the schema expands to more than {MAX_EXPANSION} subschemas through "
                    "$ref; define shared parts once instead of nesting references to them"
                )
            size[node] = total
            on_path.discard(node)
            stack.pop()


def _resolve_local(root: dict[str, Any], ref: str) -> Any:
    """The node a local JSON-pointer ``$ref`` names, else None (anchors, other documents)."""
    if not ref.startswith("#"):
        return None
    fragment = unquote(ref[1:])
    if fragment and not fragment.startswith("/"):
        return None
    node: Any = root
    for token in fragment.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node if isinstance(node, dict) else None


# --- values that are not JSON ----------------------------------------------------------------


def _has_unfit(value: object) -> bool:
    """Whether `value` holds a number JSON cannot carry: NaN, an infinity, or an integer too
    long to convert. (jsonschema-rs would read those as null.)"""
    stack: list[Any] = [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is dict:
            extend(item.values())
        elif kind is list or kind is tuple:
            extend(item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, int):
            if item.bit_length() > _MAX_INT_BITS:
                return True
        elif isinstance(item, dict):
            extend(item.values())
        elif isinstance(item, list | tuple):
            extend(item)
    return False


def _locate(value: object) -> tuple[list[str | int], str]:
    """Where the first unfit number is, and what is wrong with it (the slow, rare path)."""
    stack: list[tuple[list[str | int], object]] = [([], value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, dict):
            stack.extend(([*path, str(k)], v) for k, v in reversed(item.items()))
        elif isinstance(item, list | tuple):
            stack.extend(([*path, i], v) for i, v in reversed(list(enumerate(item))))
        elif isinstance(item, float) and not math.isfinite(item):
            return path, f"{item} is not a JSON number"
        elif isinstance(item, int) and item.bit_length() > _MAX_INT_BITS:
            return path, f"an integer of about {_digits(item)} digits is too long to check"
    return [], "a value is not JSON"


def _unconvertible(error: BaseException) -> str:
    text = _first_line(str(error))
    if isinstance(error, RecursionError) or "Recursion limit" in text:
        return "the value is nested too deeply to validate"
    if isinstance(error, UnicodeError) or "UTF-8" in text or "surrogate" in text:
        return "a string is not valid Unicode (it holds a lone surrogate)"
    return f"the value is not JSON data ({text[:120]})"


# --- rendering errors ------------------------------------------------------------------------


def _entries(errors: Sequence[ValidationError]) -> list[_Entry]:
    """The problems to report for `errors`: a type mismatch stands alone for its value (the
    schema's other keywords would only restate it), ``items: false`` past a tuple's end is one
    problem, and a failed union is explained in one problem where possible."""
    mismatched = {
        (tuple(e.instance_path), tuple(e.evaluation_path[:-1]))
        for e in errors
        if isinstance(e.kind, Kind.Type)
    }
    entries: list[_Entry] = []
    closed: dict[tuple[Any, ...], tuple[int, int]] = {}  # tuple end -> (its entry, allowed)
    for error in errors:
        kind, path = error.kind, error.instance_path
        if (
            mismatched
            and not isinstance(kind, Kind.Type)
            and (tuple(path), tuple(error.evaluation_path[:-1])) in mismatched
        ):
            continue
        if (
            isinstance(kind, Kind.FalseSchema)
            and error.evaluation_path[-1:] == ["items"]
            and path
            and isinstance(path[-1], int)
        ):
            key = (tuple(path[:-1]), tuple(error.evaluation_path))
            index, allowed = closed.setdefault(key, (len(entries), path[-1]))
            if index == len(entries):
                entries.append((path[:-1], ""))
            entries[index] = (path[:-1], _too_many(allowed, path[-1] + 1))
            continue
        if isinstance(kind, Kind.AnyOf | Kind.OneOfNotValid):
            entries.extend(_union(error))
            continue
        entries.append((path, error))
    return entries


def _too_many(allowed: int, got: int) -> str:
    return f"must have at most {_count(allowed, 'item')}, got {got}"


def _union(error: ValidationError) -> list[_Entry]:
    """Why no anyOf/oneOf branch matched. Branches ruled out by the value's type or tag
    (``null`` in ``Optional[Model]`` given an object, the other members of a discriminated
    union) are beside the point: if one branch is left, its own problems are what the model
    needs; else it gets the first reason each remaining branch failed."""
    depth = len(error.instance_path)
    branches: list[list[ValidationError]] = error.kind.context  # type: ignore[attr-defined]
    viable = [b for b in branches if not any(_rules_out(e, depth) for e in b)]
    if len(viable) == 1:
        return _entries(viable[0])
    reasons: dict[str, None] = {}  # ordered and deduplicated
    for branch in (viable or branches)[:5]:
        # A branch ruled out is best explained by what ruled it out.
        described: list[_Entry] = [(e.instance_path, e) for e in branch if _rules_out(e, depth)]
        described = described[:1] or _entries(branch)
        if described:
            at, text = described[0]
            message = text if isinstance(text, str) else _message(text)
            relative = _format_path(at[depth:], "")
            reasons[f"{relative}: {message}" if relative else message] = None
    more = "; ..." if len(viable or branches) > 5 else ""
    summary = f"does not match any of the allowed schemas ({'; '.join(reasons)}{more})"
    return [(error.instance_path, summary)]


def _rules_out(error: ValidationError, depth: int) -> bool:
    """Whether `error` rules a whole union branch out for the value at `depth`."""
    below = len(error.instance_path) - depth
    kind = error.kind
    if isinstance(kind, Kind.Type):
        return below == 0
    if isinstance(kind, Kind.Constant | Kind.Enum):
        return below <= 1
    if isinstance(kind, Kind.AnyOf | Kind.OneOfNotValid):
        return below == 0 and all(any(_rules_out(e, depth) for e in b) for b in kind.context)
    return False


def _render_entry(entry: _Entry) -> str:
    path, text = entry
    return f"{_format_path(path)}: {text if isinstance(text, str) else _message(text)}"


def _message(error: ValidationError) -> str:
    """A short description of one error (without its path)."""
    describe = _DESCRIBE.get(type(error.kind))
    if describe is None:
        return _first_line(error.message)
    try:
        return describe(error.kind, error.instance)
    except (RecursionError, ValueError, TypeError):
        return _first_line(error.message)


def _limit(relation: str, unit: str = "") -> Callable[[Any, Any], str]:
    def describe(kind: Any, instance: Any) -> str:
        if unit:
            return f"must have {relation} {_count(kind.limit, unit)}, got {len(instance)}"
        return f"must be {relation} {_show(kind.limit)}, got {_show(instance)}"

    return describe


def _unique(kind: Any, instance: Any) -> str:
    first_seen: dict[Hashable, int] = {}
    for index, value in enumerate(instance):
        first = first_seen.setdefault(_json_key(value), index)
        if first != index:
            return f"items must be unique, but [{first}] and [{index}] are equal"
    return "items must be unique"


def _format(kind: Any, instance: Any) -> str:
    return f"must be a valid {kind.format}, got {_show(instance)}"


def _property_names(kind: Any, instance: Any) -> str:
    inner: ValidationError = kind.error
    return f"property name {_show(inner.instance)}: {_message(inner)}"


def _one_of_many(kind: Any, instance: Any) -> str:
    matches = [str(i) for i, branch in enumerate(kind.context) if not branch]
    return (
        "must match exactly one of the allowed schemas, but matches "
        f"{len(matches)} (oneOf indexes {', '.join(matches)})"
    )


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(_show(name) for name in names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


_DESCRIBE: Final[dict[type[Any], Callable[[Any, Any], str]]] = {
    Kind.Type: lambda k, i: f"expected {' or '.join(k.types)}, got {_json_type(i)}",
    Kind.Enum: lambda k, i: f"must be one of {_show(k.options, 200)}, got {_show(i)}",
    Kind.Constant: lambda k, i: f"must be {_show(k.expected_value)}, got {_show(i)}",
    Kind.Required: lambda k, i: f"missing required property {_show(k.property)}",
    Kind.AdditionalProperties: lambda k, i: (
        f"unexpected propert{'y' if len(k.unexpected) == 1 else 'ies'} {_names(k.unexpected)}"
    ),
    Kind.UnevaluatedProperties: lambda k, i: (
        f"unexpected propert{'y' if len(k.unexpected) == 1 else 'ies'} {_names(k.unexpected)}"
    ),
    Kind.UnevaluatedItems: lambda k, i: f"unexpected items at {_show(k.unexpected)}",
    Kind.AdditionalItems: lambda k, i: _too_many(k.limit, len(i)),
    Kind.FalseSchema: lambda k, i: "no value is allowed here",
    Kind.MinProperties: _limit("at least", "property"),
    Kind.MaxProperties: _limit("at most", "property"),
    Kind.MinItems: _limit("at least", "item"),
    Kind.MaxItems: _limit("at most", "item"),
    Kind.MinLength: _limit("at least", "character"),
    Kind.MaxLength: _limit("at most", "character"),
    Kind.Minimum: _limit(">="),
    Kind.Maximum: _limit("<="),
    Kind.ExclusiveMinimum: _limit(">"),
    Kind.ExclusiveMaximum: _limit("<"),
    Kind.MultipleOf: lambda k, i: f"must be a multiple of {_show(k.multiple_of)}, got {_show(i)}",
    Kind.Pattern: lambda k, i: f"must match pattern {_show(k.pattern, 100)}, got {_show(i)}",
    Kind.UniqueItems: _unique,
    Kind.Not: lambda k, i: f"must not match {_show(k.schema)}",
    Kind.Contains: lambda k, i: "must contain at least one item that matches the schema",
    Kind.Format: _format,
    Kind.PropertyNames: _property_names,
    Kind.OneOfMultipleValid: _one_of_many,
    Kind.BacktrackLimitExceeded: lambda k, i: "the pattern could not be checked",
    Kind.RegexEngineFailure: lambda k, i: "the pattern could not be checked",
}


# --- helpers ---------------------------------------------------------------------------------

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
    if isinstance(value, bool):  # before int: bool subclasses it
        return "boolean"
    for cls, cls_name in _TYPE_NAMES.items():
        if isinstance(value, cls):
            return cls_name
    return type(value).__name__


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
    if len(path) > 20:  # the middle of a path thousands of levels deep says nothing
        return (
            f"{_format_path(path[:8], start)}…{len(path) - 16:,} levels…"
            f"{_format_path(path[-8:], '')}"
        )
    parts = [start]
    for part in path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif part.isidentifier():
            parts.append(f".{part}")
        else:
            parts.append(f"[{_show(part)}]")
    return "".join(parts)


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _format_pointer(path: _Path) -> str:
    return "".join(["#", *(f"/{_escape(str(part))}" for part in path)])


def _show(value: Any, limit: int = 60) -> str:
    """A value as the reader writes it (null/true/false as JSON does), cut at about `limit`
    characters: built piece by piece, so a 100,000-value enum costs no more than a short one."""
    pieces: list[str] = []
    budget = [limit]

    def emit(text: str) -> bool:
        pieces.append(text)
        budget[0] -= len(text)
        return budget[0] > 0

    def render(item: Any, depth: int) -> bool:
        if item is None:
            return emit("null")
        if isinstance(item, bool):
            return emit("true" if item else "false")
        if isinstance(item, int) and item.bit_length() > 200:
            return emit(f"<integer of {_digits(item)} digits>")
        if isinstance(item, str):
            return emit(repr(item[: budget[0] + 2]))
        if isinstance(item, list | tuple | dict) and depth > 20:
            return emit("...")
        if isinstance(item, list | tuple):
            if not emit("["):
                return False
            for index, member in enumerate(item):
                if (index and not emit(", ")) or not render(member, depth + 1):
                    return False
            return emit("]")
        if isinstance(item, dict):
            if not emit("{"):
                return False
            for index, (key, member) in enumerate(item.items()):
                if index and not emit(", "):
                    return False
                if not render(key, depth + 1) or not emit(": ") or not render(member, depth + 1):
                    return False
            return emit("}")
        return emit(repr(item))

    render(value, 0)
    text = "".join(pieces)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _digits(value: int) -> int:
    return int(value.bit_length() * 0.30103) + 1


def _count(n: int, noun: str) -> str:
    if n == 1:
        return f"1 {noun}"
    return f"{n} {noun[:-1]}ies" if noun.endswith("y") else f"{n} {noun}s"


def _first_line(text: str) -> str:
    return text.split("\n", 1)[0][:300]
