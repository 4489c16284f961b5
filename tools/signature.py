"""Turning a typed Python function into a parameters schema and an argument validator.

The parameters become fields of a generated pydantic model, so validation, coercion and JSON
Schema generation are pydantic's. Fields get positional internal names with the parameter name
as alias: a parameter called `json`, `copy` or `model_config` cannot collide with BaseModel.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import functools
import inspect
import re
import sys
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import pydantic_core
import typing_extensions
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model
from pydantic.errors import PydanticSchemaGenerationError, PydanticUserError
from pydantic.fields import FieldInfo
from typing_extensions import is_typeddict

from agentkit.errors import ToolArgumentsError, ToolDefinitionError, describe_validation_errors
from agentkit.tools import json_schema
from agentkit.tools.docstrings import parse_docstring

__all__ = ["FunctionSignature", "analyse_function"]

_SCALARS: frozenset[object] = frozenset(
    {
        str,
        int,
        float,
        bool,
        bytes,
        type(None),
        None,
        Any,
        datetime.datetime,
        datetime.date,
        datetime.time,
        datetime.timedelta,
        decimal.Decimal,
        uuid.UUID,
    }
)
_CONTAINERS: frozenset[object] = frozenset(
    {list, tuple, set, frozenset, dict}
    | {typing.List, typing.Tuple, typing.Set, typing.FrozenSet, typing.Dict}  # noqa: UP006
    | {typing.Sequence, typing.Mapping}
    | {
        __import__("collections.abc").abc.Sequence,
        __import__("collections.abc").abc.Mapping,
    }
)
_SUPPORTED = (
    "str, int, float, bool, None, list, tuple, set, dict, Optional/Union, Literal, Enum, "
    "datetime/date/time, dataclasses, TypedDict and pydantic models"
)


class BoundArguments(NamedTuple):
    """Validated arguments, split the way the function must be called."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]


class FunctionSignature:
    """A function's parameters as a JSON Schema plus a validator producing call arguments."""

    __slots__ = ("_keyword", "_model", "_positional", "description", "parameters_schema")

    def __init__(
        self,
        model: type[BaseModel],
        positional: tuple[str, ...],
        keyword: tuple[tuple[str, str], ...],
        description: str,
    ) -> None:
        self._model = model
        self._positional = positional
        self._keyword = keyword
        self.description = description
        self.parameters_schema = _tidy_schema(model.model_json_schema())

    def bind(self, tool_name: str, arguments: Mapping[str, Any]) -> BoundArguments:
        """Validate the model's arguments; raises `ToolArgumentsError` listing every problem."""
        try:
            values = self._model.model_validate(arguments)
        except ValidationError as error:
            raise ToolArgumentsError(tool_name, _describe(error)) from error
        state = values.__dict__
        return BoundArguments(
            tuple(state[field] for field in self._positional),
            {name: state[field] for field, name in self._keyword},
        )


def analyse_function(function: Callable[..., Any], tool_name: str) -> FunctionSignature:
    """Build the signature of a function, or raise `ToolDefinitionError` naming what is wrong."""
    label = getattr(function, "__qualname__", tool_name)
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as error:
        raise ToolDefinitionError(f"tool {label!r}: cannot read its signature: {error}") from error
    source, doc = _definition(function)
    docs = parse_docstring(doc)
    global_names: dict[str, Any] = getattr(source, "__globals__", {})
    fields: dict[str, Any] = {}
    positional: list[str] = []
    keyword: list[tuple[str, str]] = []
    for index, (name, parameter) in enumerate(signature.parameters.items()):
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            star = "*" if parameter.kind is parameter.VAR_POSITIONAL else "**"
            raise ToolDefinitionError(
                f"tool {label!r}: parameter {star}{name} is not supported; "
                "tools need named, annotated parameters"
            )
        if parameter.annotation is parameter.empty:
            raise ToolDefinitionError(
                f"tool {label!r}: parameter {name!r} has no type annotation; "
                "annotate it so the model knows what to send"
            )
        annotation = _resolve(parameter.annotation, global_names, label, name)
        _check_supported(annotation, label, name)
        field_name = f"p{index}"
        default = ... if parameter.default is parameter.empty else parameter.default
        info = Field(default, alias=name)
        if name in docs.params and not _has_description(annotation):
            info = Field(default, alias=name, description=docs.params[name])
        fields[field_name] = (annotation, info)
        if parameter.kind is parameter.POSITIONAL_ONLY:
            positional.append(field_name)
        else:
            keyword.append((field_name, name))
    try:
        model = create_model(
            f"{tool_name}_arguments",
            __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=False),
            **fields,
        )
        result = FunctionSignature(model, tuple(positional), tuple(keyword), docs.description)
    except (
        PydanticSchemaGenerationError,
        PydanticUserError,
        pydantic_core.SchemaError,  # a bad constraint: Field(pattern="("), Field(gt="abc")
        TypeError,
        ValueError,
        OverflowError,
    ) as error:
        where = _culprit(error, fields)
        culprit = f"parameter {where!r}" if where else "its parameters"
        raise ToolDefinitionError(
            f"tool {label!r}: {culprit} cannot be described as JSON Schema: {_reason(error)}"
        ) from error
    try:
        # pydantic writes some constraints it does not check into the schema as given
        # (Field(max_length="abc") on an int); the model and its server must not get those.
        json_schema.check_schema(result.parameters_schema)
    except json_schema.SchemaError as error:
        raise ToolDefinitionError(
            f"tool {label!r}: its parameters schema is not valid JSON Schema: {error}"
        ) from error
    return result


def _culprit(error: Exception, fields: dict[str, Any]) -> str | None:
    """The parameter a schema-building error is about: pydantic-core names the field (by its
    internal name, p0, p1, ...); else the first parameter whose type cannot be described."""
    named = _FIELD_NAME.search(str(error))
    if named and named.group(1) in fields:
        info: FieldInfo = fields[named.group(1)][1]
        return info.alias
    return next((info.alias for hint, info in fields.values() if not _fits(hint)), None)


def _reason(error: Exception) -> str:
    """pydantic-core's nested "Error building ... validator" report, cut to its cause."""
    text = str(error)
    if isinstance(error, pydantic_core.SchemaError):
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        cause = [line for line in lines if not _BUILDING.match(line)]
        text = " ".join(cause) or text
    return text if len(text) <= 300 else text[:297] + "..."


_FIELD_NAME = re.compile(r'Field "(p\d+)"')
_BUILDING = re.compile(r'^(SchemaError: )?(Error building ".*" validator:|Field "p\d+":)$')


def _definition(function: Callable[..., Any]) -> tuple[Any, str | None]:
    """The function whose module the annotations are written in, and the docstring to use."""
    target: Any = inspect.unwrap(function)
    while isinstance(target, functools.partial):
        target = inspect.unwrap(target.func)
    if inspect.isroutine(target) or inspect.isclass(target):
        return target, inspect.getdoc(target)
    # A callable object: its class's docstring, else its own __call__'s (inspect.getdoc would
    # fall back to the generic "Call self as a function.").
    call = inspect.unwrap(type(target).__call__)
    doc = type(target).__doc__ or call.__doc__
    return call, inspect.cleandoc(doc) if doc else None


def _resolve(annotation: Any, global_names: dict[str, Any], label: str, parameter: str) -> Any:
    """Evaluate one (possibly string) annotation, as `typing.get_type_hints` does."""
    holder = types.SimpleNamespace(__annotations__={parameter: annotation})
    try:
        return _portable(
            typing.get_type_hints(holder, global_names, include_extras=True)[parameter]
        )
    except Exception as error:  # NameError, SyntaxError, AttributeError, TypeError...
        raise ToolDefinitionError(
            f"tool {label!r}: parameter {parameter!r} has an annotation that cannot be "
            f"resolved ({annotation!r}): {type(error).__name__}: {error}"
        ) from error


def _fits(annotation: Any) -> bool:
    try:
        TypeAdapter(annotation).json_schema()
    except Exception:
        return False
    return True


def _check_supported(annotation: Any, label: str, parameter: str) -> None:
    if _is_supported(annotation):
        return
    raise ToolDefinitionError(
        f"tool {label!r}: parameter {parameter!r} has unsupported type {annotation!r}; "
        f"supported: {_SUPPORTED}"
    )


def _is_supported(annotation: Any) -> bool:
    if annotation in _SCALARS or annotation in _CONTAINERS:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _is_supported(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        return True
    if origin in (typing.Union, types.UnionType) or origin in _CONTAINERS:
        return all(arg is Ellipsis or _is_supported(arg) for arg in typing.get_args(annotation))
    if isinstance(annotation, type):
        return (
            issubclass(annotation, enum.Enum | BaseModel)
            or dataclasses.is_dataclass(annotation)
            or is_typeddict(annotation)
        )
    return False


def _has_description(annotation: Any) -> bool:
    if typing.get_origin(annotation) is not typing.Annotated:
        return False
    return any(isinstance(meta, FieldInfo) and meta.description for meta in annotation.__metadata__)


def _tidy_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop the titles pydantic derives from names: they repeat the name and cost tokens."""
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)
    schema.setdefault("properties", {})
    return schema


def _describe(error: ValidationError) -> list[str]:
    # Fields are validated by alias, so error locations already use the parameter names.
    return describe_validation_errors(error.errors(include_url=False))


_typeddict_copies: dict[type, Any] = {}


def _portable(annotation: Any) -> Any:
    """Replace `typing.TypedDict` classes, which pydantic rejects before Python 3.12, with
    equivalent `typing_extensions.TypedDict` classes; other annotations come back unchanged."""
    if sys.version_info >= (3, 12):
        return annotation
    if is_typeddict(annotation) and type(annotation).__module__ == "typing":
        if annotation not in _typeddict_copies:
            _typeddict_copies[annotation] = annotation  # a recursive TypedDict stays as it is
            _typeddict_copies[annotation] = _typeddict_copy(annotation)
        return _typeddict_copies[annotation]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is None or origin is typing.Literal or not args:
        return annotation
    if origin is typing.Annotated:
        inner = _portable(args[0])
        return annotation if inner is args[0] else typing.Annotated[(inner, *args[1:])]
    portable = tuple(arg if arg is Ellipsis else _portable(arg) for arg in args)
    if all(new is old for new, old in zip(portable, args, strict=True)):
        return annotation
    if origin in (typing.Union, types.UnionType):
        return typing.Union[portable]  # noqa: UP007
    return origin[portable]


def _typeddict_copy(cls: Any) -> Any:
    fields: dict[str, Any] = {}
    for key, hint in typing.get_type_hints(cls, include_extras=True).items():
        while typing.get_origin(hint) in (typing.Required, typing.NotRequired):
            hint = typing.get_args(hint)[0]
        wrapper = typing.Required if key in cls.__required_keys__ else typing.NotRequired
        fields[key] = wrapper[_portable(hint)]
    copy: Any = typing_extensions.TypedDict(cls.__name__, fields)  # type: ignore[misc]
    copy.__module__, copy.__qualname__, copy.__doc__ = cls.__module__, cls.__qualname__, cls.__doc__
    return copy
