"""Tools from typed functions and from explicit schemas: schemas, validation, running, rendering."""

import dataclasses
import datetime
import enum
import functools
import gc
import sys
import threading
import time
import types
import typing
import weakref
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal, Optional, Union

import anyio
import anyio.lowlevel
import pytest
import typing_extensions
from pydantic import BaseModel, Field

from agentkit.engines.base import ToolDefinition
from agentkit.errors import (
    MAX_PROBLEM_CHARS,
    MAX_PROBLEMS,
    ToolArgumentsError,
    ToolDefinitionError,
    cap_problems,
)
from agentkit.tools import (
    DEFAULT_RETRIES,
    Tool,
    Toolset,
    as_tool,
    define_tool,
    render_result,
    tool,
)

# --- types used as parameter annotations (module level, so string annotations resolve) -------


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Size(enum.IntEnum):
    SMALL = 1
    LARGE = 2


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0


class Movie(typing.TypedDict):
    """A film."""

    title: str
    year: int


class Draft(typing_extensions.TypedDict, total=False):
    title: typing_extensions.Required[str]
    year: int


class LegacyDraft(typing.TypedDict, total=False):
    title: typing.Required[str]
    tags: list[Movie]


class Inner(BaseModel):
    a: int


class Outer(BaseModel):
    """An outer model."""

    inner: Inner
    items: list[Inner] = []


class Opaque:
    """Not a type pydantic can describe."""


@dataclasses.dataclass
class HoldsOpaque:
    thing: Opaque


def _tool_for(annotation: Any, *default: Any) -> Tool[..., Any]:
    """A tool with one parameter `x` of the given annotation (and optional default)."""

    def fn(x):  # type: ignore[no-untyped-def]  # annotated just below
        return x

    fn.__annotations__ = {"x": annotation}
    if default:
        fn.__defaults__ = default
    return tool(fn)


def _wrap(properties: dict[str, Any], required: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
        **extra,
    }


# --- JSON Schema of each supported type ----------------------------------------------------

POINT_DEF = {
    "type": "object",
    "title": "Point",
    "properties": {
        "x": {"title": "X", "type": "integer"},
        "y": {"default": 0, "title": "Y", "type": "integer"},
    },
    "required": ["x"],
    "additionalProperties": False,
}
COLOR_DEF = {"enum": ["red", "blue"], "title": "Color", "type": "string"}

SCHEMAS: list[tuple[Any, dict[str, Any], dict[str, Any] | None]] = [
    (str, {"type": "string"}, None),
    (int, {"type": "integer"}, None),
    (float, {"type": "number"}, None),
    (bool, {"type": "boolean"}, None),
    (None, {"type": "null"}, None),
    (type(None), {"type": "null"}, None),
    (list, {"type": "array", "items": {}}, None),
    (list[int], {"type": "array", "items": {"type": "integer"}}, None),
    (typing.List[int], {"type": "array", "items": {"type": "integer"}}, None),  # noqa: UP006
    (
        tuple[int, str],
        {
            "type": "array",
            "prefixItems": [{"type": "integer"}, {"type": "string"}],
            "minItems": 2,
            "maxItems": 2,
        },
        None,
    ),
    (tuple[int, ...], {"type": "array", "items": {"type": "integer"}}, None),
    (set[str], {"type": "array", "items": {"type": "string"}, "uniqueItems": True}, None),
    (frozenset[int], {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}, None),
    (dict, {"type": "object", "additionalProperties": True}, None),
    (dict[str, int], {"type": "object", "additionalProperties": {"type": "integer"}}, None),
    (Optional[int], {"anyOf": [{"type": "integer"}, {"type": "null"}]}, None),  # noqa: UP045
    (int | None, {"anyOf": [{"type": "integer"}, {"type": "null"}]}, None),
    (Union[int, str], {"anyOf": [{"type": "integer"}, {"type": "string"}]}, None),  # noqa: UP007
    (Literal["a", "b"], {"type": "string", "enum": ["a", "b"]}, None),
    (Literal["only"], {"type": "string", "const": "only"}, None),
    (Literal[1, 2], {"type": "integer", "enum": [1, 2]}, None),
    (datetime.datetime, {"type": "string", "format": "date-time"}, None),
    (datetime.date, {"type": "string", "format": "date"}, None),
    (datetime.time, {"type": "string", "format": "time"}, None),
    (Any, {}, None),
    (Color, {"$ref": "#/$defs/Color"}, {"Color": COLOR_DEF}),
    (
        Size,
        {"$ref": "#/$defs/Size"},
        {"Size": {"enum": [1, 2], "title": "Size", "type": "integer"}},
    ),
    (
        Color | None,
        {"anyOf": [{"$ref": "#/$defs/Color"}, {"type": "null"}]},
        {"Color": COLOR_DEF},
    ),
    (Point, {"$ref": "#/$defs/Point"}, {"Point": POINT_DEF}),
    (list[Point], {"type": "array", "items": {"$ref": "#/$defs/Point"}}, {"Point": POINT_DEF}),
    (
        Annotated[int, Field(ge=0, description="How many.")],
        {"type": "integer", "minimum": 0, "description": "How many."},
        None,
    ),
]


@pytest.mark.parametrize(
    ("annotation", "expected", "defs"), SCHEMAS, ids=[repr(case[0]) for case in SCHEMAS]
)
def test_schema_of_each_supported_type(
    annotation: Any, expected: dict[str, Any], defs: dict[str, Any] | None
) -> None:
    extra = {} if defs is None else {"$defs": defs}
    assert _tool_for(annotation).parameters == _wrap({"x": expected}, ["x"], **extra)


def test_optional_int_defaulting_to_none_is_nullable_and_not_required() -> None:
    def search(query: str, limit: Optional[int] = None) -> str:  # noqa: UP045
        return query

    assert tool(search).parameters == _wrap(
        {
            "query": {"type": "string"},
            "limit": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None},
        },
        ["query"],
    )


def test_defaults_make_parameters_optional_and_appear_in_the_schema() -> None:
    def f(
        a: int,
        b: str = "x",
        c: list[int] | None = None,
        d: Color = Color.BLUE,
        e: datetime.date = datetime.date(2024, 2, 29),
        *,
        f: bool,
        g: float = 1.5,
    ) -> None:
        pass

    schema = tool(f).parameters
    assert schema["required"] == ["a", "f"]
    props = schema["properties"]
    assert list(props) == ["a", "b", "c", "d", "e", "f", "g"]
    assert props["b"] == {"type": "string", "default": "x"}
    assert props["d"] == {"$ref": "#/$defs/Color", "default": "blue"}
    assert props["e"] == {"type": "string", "format": "date", "default": "2024-02-29"}
    assert props["g"] == {"type": "number", "default": 1.5}


def test_no_parameters_gives_an_empty_object_schema() -> None:
    def now() -> str:
        """The time."""
        return "noon"

    assert tool(now).parameters == {
        "type": "object",
        "properties": {},
        "additionalProperties": False,
    }


def test_nested_pydantic_models_keep_defs_and_refs() -> None:
    def save(doc: Outer, backup: Outer | None = None) -> None:
        pass

    assert tool(save).parameters == _wrap(
        {
            "doc": {"$ref": "#/$defs/Outer"},
            "backup": {"anyOf": [{"$ref": "#/$defs/Outer"}, {"type": "null"}], "default": None},
        },
        ["doc"],
        **{
            "$defs": {
                "Inner": {
                    "type": "object",
                    "title": "Inner",
                    "properties": {"a": {"title": "A", "type": "integer"}},
                    "required": ["a"],
                },
                "Outer": {
                    "type": "object",
                    "title": "Outer",
                    "description": "An outer model.",
                    "properties": {
                        "inner": {"$ref": "#/$defs/Inner"},
                        "items": {
                            "type": "array",
                            "items": {"$ref": "#/$defs/Inner"},
                            "default": [],
                            "title": "Items",
                        },
                    },
                    "required": ["inner"],
                },
            }
        },
    )


class ExtensionsMovie(typing_extensions.TypedDict):
    title: str
    year: int


@pytest.mark.parametrize("cls", [Movie, ExtensionsMovie])
def test_typeddict_is_an_object_schema(cls: Any) -> None:
    name = cls.__name__
    schema = _tool_for(cls).parameters
    assert schema["properties"] == {"x": {"$ref": f"#/$defs/{name}"}}
    definition = schema["$defs"][name]
    assert definition["type"] == "object"
    assert definition["title"] == name
    assert definition["additionalProperties"] is False
    assert definition["properties"] == {
        "title": {"type": "string", "title": "Title"},
        "year": {"type": "integer", "title": "Year"},
    }
    assert definition["required"] == ["title", "year"]


def test_typing_typeddict_keeps_docstring_and_totality() -> None:
    # typing.TypedDict (not typing_extensions) is what most code uses on Python 3.11.
    def f(movie: Movie, draft: LegacyDraft, other: Draft) -> None:
        pass

    defs = tool(f).parameters["$defs"]
    assert defs["Movie"]["description"] == "A film."
    assert defs["Movie"]["required"] == ["title", "year"]
    assert defs["LegacyDraft"]["required"] == ["title"]
    assert defs["LegacyDraft"]["properties"]["tags"] == {
        "type": "array",
        "items": {"$ref": "#/$defs/Movie"},
        "title": "Tags",
    }
    assert defs["Draft"]["required"] == ["title"]
    assert set(defs["Draft"]["properties"]) == {"title", "year"}


def test_typing_typeddict_binds_to_plain_dicts() -> None:
    def f(draft: LegacyDraft, movies: list[Movie] | None = None) -> None:
        pass

    bound = tool(f).bind(
        {"draft": {"title": "T", "tags": [{"title": "A", "year": "1999"}]}, "movies": []}
    )
    assert bound.kwargs == {
        "draft": {"title": "T", "tags": [{"title": "A", "year": 1999}]},
        "movies": [],
    }
    with pytest.raises(ToolArgumentsError) as caught:
        tool(f).bind({"draft": {"tags": []}})
    assert caught.value.problems == ("draft.title: Field required",)


# --- descriptions ----------------------------------------------------------------------


def google(city: str, days: int = 1) -> str:
    """Get the weather forecast.

    Longer explanation that is part of the description.

    Args:
        city: The city name.
        days (int): How many days ahead.

    Returns:
        The forecast.
    """
    return city


def numpy(city: str, days: int = 1) -> str:
    """Get the weather forecast.

    Longer explanation that is part of the description.

    Parameters
    ----------
    city : str
        The city name.
    days : int
        How many days ahead.

    Returns
    -------
    str
        The forecast.
    """
    return city


def sphinx(city: str, days: int = 1) -> str:
    """Get the weather forecast.

    Longer explanation that is part of the description.

    :param city: The city name.
    :param days: How many days ahead.
    :returns: The forecast.
    """
    return city


@pytest.mark.parametrize("function", [google, numpy, sphinx])
def test_descriptions_come_from_the_docstring(function: Callable[..., str]) -> None:
    made = tool(function)
    assert made.description == (
        "Get the weather forecast.\n\nLonger explanation that is part of the description."
    )
    assert made.parameters["properties"] == {
        "city": {"type": "string", "description": "The city name."},
        "days": {"type": "integer", "default": 1, "description": "How many days ahead."},
    }
    assert made.definition == ToolDefinition(made.name, made.description, made.parameters)


def test_annotated_field_description_wins_over_the_docstring() -> None:
    def f(
        a: Annotated[int, Field(description="From Annotated.")],
        b: Annotated[int, Field(ge=1)],
        c: Annotated[str, "plain metadata"] = "",
    ) -> None:
        """Do it.

        Args:
            a: From the docstring.
            b: B from the docstring.
            c: C from the docstring.
        """

    props = tool(f).parameters["properties"]
    assert props["a"] == {"type": "integer", "description": "From Annotated."}
    assert props["b"] == {"type": "integer", "minimum": 1, "description": "B from the docstring."}
    assert props["c"] == {"type": "string", "default": "", "description": "C from the docstring."}


def test_no_docstring_gives_empty_description_and_no_parameter_descriptions() -> None:
    def bare(x: int) -> int:
        return x

    made = tool(bare)
    assert made.description == ""
    assert made.parameters["properties"] == {"x": {"type": "integer"}}


def test_docstring_entries_for_unknown_parameters_are_ignored() -> None:
    def f(x: int) -> None:
        """Summary.

        Args:
            x: The x.
            ghost: Not a parameter.
        """

    assert tool(f).parameters["properties"] == {"x": {"type": "integer", "description": "The x."}}


# --- definition errors -----------------------------------------------------------------


def test_unannotated_parameter_is_rejected_naming_function_and_parameter() -> None:
    def area(width: float, height) -> float:  # type: ignore[no-untyped-def]
        return width * height  # type: ignore[no-any-return]

    with pytest.raises(ToolDefinitionError, match=r"tool '.*area': parameter 'height' has no type"):
        tool(area)


def test_var_positional_is_rejected() -> None:
    def total(*numbers: int) -> int:
        return sum(numbers)

    with pytest.raises(ToolDefinitionError, match=r"'.*total': parameter \*numbers is not"):
        tool(total)


def test_var_keyword_is_rejected() -> None:
    def configure(name: str, **options: str) -> None:
        pass

    with pytest.raises(ToolDefinitionError, match=r"'.*configure': parameter \*\*options is not"):
        tool(configure)


@pytest.mark.parametrize(
    "annotation",
    [object, Opaque, list[Opaque], dict[str, Opaque], Opaque | None, Callable[[int], int]],
    ids=repr,
)
def test_unsupported_type_is_rejected_naming_function_and_parameter(annotation: Any) -> None:
    def handle(ok: int, bad: Any) -> None:
        pass

    handle.__annotations__["bad"] = annotation
    with pytest.raises(
        ToolDefinitionError, match=r"tool '.*handle': parameter 'bad' has unsupported type"
    ):
        tool(handle)


def test_unsupported_type_inside_a_dataclass_names_the_parameter() -> None:
    def handle(ok: int, holder: HoldsOpaque) -> None:
        pass

    with pytest.raises(
        ToolDefinitionError, match=r"tool '.*handle': parameter 'holder' cannot be described"
    ):
        tool(handle)


def test_isinstance_of_toolDefinitionError_is_a_type_error() -> None:
    # Callers that treat a bad annotation as a TypeError keep working.
    with pytest.raises(TypeError):
        _tool_for(Opaque)


def test_lambda_is_rejected_unless_named() -> None:
    with pytest.raises(ToolDefinitionError, match="lambda has no name"):
        tool(lambda: 1)
    with pytest.raises(ToolDefinitionError, match="lambda has no name"):
        as_tool(lambda: 1)
    named = tool(lambda: 42, name="answer")
    assert named.name == "answer"
    assert named() == 42


@pytest.mark.parametrize("name", ["", "has space", "dotted.name", "x" * 65, "ünï", "a/b"])
def test_invalid_tool_names_are_rejected(name: str) -> None:
    def f(x: int) -> int:
        return x

    with pytest.raises(ToolDefinitionError, match="is not valid"):
        tool(f, name=name)
    with pytest.raises(ToolDefinitionError, match="is not valid"):
        define_tool(name, "d", {"type": "object"}, f)


@pytest.mark.parametrize("name", ["a", "get_weather", "get-weather", "A1", "x" * 64])
def test_valid_tool_names_are_accepted(name: str) -> None:
    def f(x: int) -> int:
        return x

    assert tool(name=name)(f).name == name


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": 0}, "timeout must be positive"),
        ({"timeout": -1.0}, "timeout must be positive"),
        ({"retries": -1}, "retries must be >= 0"),
    ],
)
def test_invalid_options_are_rejected(options: dict[str, Any], message: str) -> None:
    def f(x: int) -> int:
        return x

    with pytest.raises(ToolDefinitionError, match=f"tool 'f': {message}"):
        tool(f, **options)
    with pytest.raises(ToolDefinitionError, match=message):
        tool(f).with_options(**options)


def test_duplicate_names_in_a_toolset_are_rejected() -> None:
    def lookup(q: str) -> str:
        return q

    def other(q: str) -> str:
        return q

    def lookup_copy(q: str) -> str:
        return q

    lookup_copy.__name__ = "lookup"
    with pytest.raises(ToolDefinitionError, match="two tools are named 'lookup'"):
        Toolset([lookup, lookup_copy])
    with pytest.raises(ToolDefinitionError, match="two tools are named 'lookup'"):
        Toolset([lookup, tool(other, name="lookup")])
    with pytest.raises(ToolDefinitionError, match="two tools are named 'lookup'"):
        Toolset([lookup, lookup])
    assert Toolset([lookup, tool(lookup, name="lookup2")]).names == ("lookup", "lookup2")


def test_toolset_rejects_non_callables() -> None:
    with pytest.raises(ToolDefinitionError, match="is not a tool"):
        Toolset(["not a function"])  # type: ignore[list-item]


def test_toolset_lookup_and_definitions() -> None:
    def a(x: int) -> int:
        return x

    async def b(y: str) -> str:
        return y

    toolset = Toolset([a, tool(b, name="bee")])
    assert len(toolset) == 2
    assert toolset.names == ("a", "bee")
    assert toolset.get("bee") is not None
    assert toolset.get("b") is None
    assert [d.name for d in toolset.definitions] == ["a", "bee"]
    assert toolset.definitions[0].parameters == _wrap({"x": {"type": "integer"}}, ["x"])
    assert len(Toolset(None)) == 0


# --- the decorator, options and with_options ---------------------------------------------


@tool
def multiply(a: float, b: float) -> float:
    """Multiply two numbers."""
    return a * b


@tool(name="divide_numbers", description="Divide a by b.", timeout=2.5, retries=1, sequential=True)
def divide(a: float, b: float) -> float:
    """Original docstring."""
    return a / b


@tool()
def negate(a: int) -> int:
    return -a


def test_decorator_without_parentheses_keeps_the_function_callable() -> None:
    assert isinstance(multiply, Tool)
    assert multiply(2, 3) == 6
    assert multiply.name == "multiply"
    assert multiply.description == "Multiply two numbers."
    assert (multiply.timeout, multiply.retries, multiply.sequential) == (
        None,
        DEFAULT_RETRIES,
        False,
    )
    assert multiply.__wrapped__ is multiply.function
    assert repr(multiply) == "Tool('multiply')"


def test_decorator_with_options_sets_them_on_the_tool() -> None:
    assert divide(6, 3) == 2
    assert divide.name == "divide_numbers"
    assert divide.description == "Divide a by b."
    assert divide.timeout == 2.5
    assert divide.retries == 1
    assert divide.sequential is True
    assert divide.definition == ToolDefinition(
        "divide_numbers", "Divide a by b.", divide.parameters
    )


def test_decorator_with_empty_parentheses() -> None:
    assert negate(3) == -3
    assert negate.name == "negate"


def test_with_options_copies_and_overrides() -> None:
    changed = multiply.with_options(name="times", timeout=1, retries=0, sequential=True)
    assert changed is not multiply
    assert (changed.name, changed.timeout, changed.retries, changed.sequential) == (
        "times",
        1,
        0,
        True,
    )
    assert changed.description == multiply.description
    assert changed.parameters == multiply.parameters
    assert changed(4, 5) == 20
    assert changed.bind({"a": 1, "b": "2"}).kwargs == {"a": 1.0, "b": 2.0}
    # the original is untouched
    assert (multiply.name, multiply.timeout, multiply.retries, multiply.sequential) == (
        "multiply",
        None,
        DEFAULT_RETRIES,
        False,
    )
    assert multiply.with_options(description="New.").description == "New."
    with pytest.raises(ToolDefinitionError, match="is not valid"):
        multiply.with_options(name="bad name")


# --- sync vs async -----------------------------------------------------------------------


async def async_add(x: int, y: int = 2) -> int:
    """Add asynchronously."""
    return x + y


def sync_add(x: int, y: int = 2) -> int:
    """Add synchronously."""
    return x + y


class AsyncAdder:
    async def __call__(self, x: int) -> int:
        """Add one, asynchronously."""
        return x + 1


class SyncAdder:
    """Adds one."""

    def __call__(self, x: int) -> int:
        return x + 1


class Methods:
    def __init__(self, base: int) -> None:
        self.base = base

    def add(self, x: int) -> int:
        """Add to the base."""
        return self.base + x

    async def aadd(self, x: int) -> int:
        return self.base + x


ASYNC_CASES: list[tuple[str, Callable[..., Any], bool]] = [
    ("async def", async_add, True),
    ("def", sync_add, False),
    ("async callable object", AsyncAdder(), True),
    ("sync callable object", SyncAdder(), False),
    ("partial of async", functools.partial(async_add, y=5), True),
    ("partial of partial of async", functools.partial(functools.partial(async_add), y=1), True),
    ("partial of sync", functools.partial(sync_add, y=5), False),
    ("bound async method", Methods(1).aadd, True),
    ("bound sync method", Methods(1).add, False),
]


@pytest.mark.parametrize(
    ("function", "expected"),
    [case[1:] for case in ASYNC_CASES],
    ids=[case[0] for case in ASYNC_CASES],
)
def test_sync_and_async_detection(function: Callable[..., Any], expected: bool) -> None:
    assert tool(function).is_async is expected


def test_partials_and_callable_objects_become_tools() -> None:
    partial = tool(functools.partial(async_add, y=5))
    assert partial.name == "async_add"
    assert partial.description == "Add asynchronously."
    assert partial.parameters == _wrap(
        {"x": {"type": "integer"}, "y": {"type": "integer", "default": 5}}, ["x"]
    )
    obj = tool(AsyncAdder())
    assert obj.name == "AsyncAdder"
    assert obj.description == "Add one, asynchronously."
    assert obj.parameters == _wrap({"x": {"type": "integer"}}, ["x"])
    # the class docstring wins, and an undocumented __call__ is not described by type.__call__
    assert tool(SyncAdder()).description == "Adds one."

    class Undocumented:
        def __call__(self, x: int) -> int:
            return x

    assert tool(Undocumented()).description == ""


# --- binding arguments -------------------------------------------------------------------


def typed(
    model: Outer,
    point: Point,
    color: Color,
    when: datetime.datetime,
    day: datetime.date,
    tags: set[str],
    pair: tuple[int, str],
    maybe: int | None = None,
) -> None:
    pass


def test_bind_produces_typed_values() -> None:
    bound = tool(typed).bind(
        {
            "model": {"inner": {"a": 1}, "items": [{"a": "2"}]},
            "point": {"x": 3},
            "color": "blue",
            "when": "2024-05-06T07:08:09Z",
            "day": "2024-05-06",
            "tags": ["a", "b", "a"],
            "pair": [1, "one"],
        }
    )
    assert bound.args == ()
    values = bound.kwargs
    assert values["model"] == Outer(inner=Inner(a=1), items=[Inner(a=2)])
    assert isinstance(values["model"], Outer)
    assert isinstance(values["model"].items[0], Inner)
    assert values["point"] == Point(3, 0)
    assert type(values["point"]) is Point
    assert values["color"] is Color.BLUE
    assert values["when"] == datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)
    assert values["day"] == datetime.date(2024, 5, 6)
    assert values["tags"] == {"a", "b"}
    assert values["pair"] == (1, "one")
    assert values["maybe"] is None


def test_positional_only_parameters_are_passed_positionally() -> None:
    def f(a: int, b: str, /, c: float, *, d: bool = False) -> tuple[Any, ...]:
        return (a, b, c, d)

    made = tool(f)
    bound = made.bind({"a": "1", "b": "x", "c": 2, "d": True})
    assert bound.args == (1, "x")
    assert bound.kwargs == {"c": 2.0, "d": True}
    assert made(*bound.args, **bound.kwargs) == (1, "x", 2.0, True)


def test_bind_reports_every_problem_by_real_parameter_name() -> None:
    with pytest.raises(ToolArgumentsError) as caught:
        tool(typed).bind(
            {
                "model": {"inner": {}},
                "point": {"x": "three"},
                "color": "green",
                "when": "yesterday",
                "tags": 5,
                "pair": [1],
                "surplus": True,
            }
        )
    error = caught.value
    assert error.tool_name == "typed"
    assert error.problems == (
        "model.inner.a: Field required",
        "point.x: Input should be a valid integer, unable to parse string as an integer",
        "color: Input should be 'red' or 'blue'",
        "when: Input should be a valid datetime or date, input is too short",
        "day: Field required",
        "tags: Input should be a valid set",
        "pair.1: Field required",
        "surplus: Extra inputs are not permitted",
    )
    assert "Invalid arguments for tool 'typed'" in str(error)
    assert not any(problem.startswith("p") and problem[1].isdigit() for problem in error.problems)


def test_missing_and_wrong_type_arguments() -> None:
    with pytest.raises(ToolArgumentsError) as caught:
        multiply.bind({"a": "not a number"})
    assert caught.value.problems == (
        "a: Input should be a valid number, unable to parse string as a number",
        "b: Field required",
    )


def test_non_object_arguments_are_rejected() -> None:
    with pytest.raises(ToolArgumentsError, match="arguments: Input should be a valid dictionary"):
        multiply.bind([1, 2])  # type: ignore[arg-type]


def test_parameter_names_that_collide_with_basemodel_attributes() -> None:
    def f(
        json: str,
        copy: int,
        schema: bool,
        model_config: str,
        validate: list[int],
        model_fields: int = 0,
        dict: float = 0.5,
    ) -> str:
        return f"{json}{copy}{schema}{model_config}{validate}{model_fields}{dict}"

    made = tool(f)
    assert list(made.parameters["properties"]) == [
        "json",
        "copy",
        "schema",
        "model_config",
        "validate",
        "model_fields",
        "dict",
    ]
    assert made.parameters["required"] == ["json", "copy", "schema", "model_config", "validate"]
    arguments = {"json": "j", "copy": 1, "schema": True, "model_config": "m", "validate": [2]}
    bound = made.bind(arguments)
    assert bound.kwargs == {**arguments, "model_fields": 0, "dict": 0.5}
    assert made(**bound.kwargs) == "j1Truem[2]00.5"
    with pytest.raises(ToolArgumentsError) as caught:
        made.bind({**arguments, "copy": "x"})
    assert caught.value.problems == (
        "copy: Input should be a valid integer, unable to parse string as an integer",
    )


def test_parameter_names_like_internal_field_names_are_reported_correctly() -> None:
    # Parameters become fields p0, p1, ...; a parameter *called* p1 must not be confused
    # with the field of the second parameter.
    def f(p1: int, x: int) -> int:
        return p1 + x

    made = tool(f)
    assert made.bind({"p1": 1, "x": 2}).kwargs == {"p1": 1, "x": 2}
    with pytest.raises(ToolArgumentsError) as caught:
        made.bind({"p1": "no", "x": 1})
    assert caught.value.problems == (
        "p1: Input should be a valid integer, unable to parse string as an integer",
    )
    with pytest.raises(ToolArgumentsError) as caught:
        made.bind({"p0": 1, "p1": 1, "x": 2})
    assert caught.value.problems == ("p0: Extra inputs are not permitted",)


# --- string annotations ------------------------------------------------------------------

FUTURE_MODULE = '''
from __future__ import annotations

import dataclasses
import enum


class Unit(enum.Enum):
    C = "celsius"
    F = "fahrenheit"


@dataclasses.dataclass
class Place:
    city: str
    country: str | None = None


def forecast(place: Place, unit: Unit = Unit.C, days: list[int] | None = None) -> Forecast:
    """Get a forecast.

    Args:
        place: Where.
    """
    return (place, unit, days)
'''


def test_future_annotations_are_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("future_module")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(FUTURE_MODULE, "future_module.py", "exec"), module.__dict__)
    namespace = module.__dict__
    made = tool(namespace["forecast"])  # the return annotation `Forecast` is never defined
    assert made.parameters == _wrap(
        {
            "place": {"$ref": "#/$defs/Place", "description": "Where."},
            "unit": {"$ref": "#/$defs/Unit", "default": "celsius"},
            "days": {
                "anyOf": [{"type": "array", "items": {"type": "integer"}}, {"type": "null"}],
                "default": None,
            },
        },
        ["place"],
        **{
            "$defs": {
                "Place": {
                    "type": "object",
                    "title": "Place",
                    "properties": {
                        "city": {"type": "string", "title": "City"},
                        "country": {
                            "anyOf": [{"type": "string"}, {"type": "null"}],
                            "default": None,
                            "title": "Country",
                        },
                    },
                    "required": ["city"],
                    "additionalProperties": False,
                },
                "Unit": {"enum": ["celsius", "fahrenheit"], "title": "Unit", "type": "string"},
            }
        },
    )
    bound = made.bind({"place": {"city": "Oslo"}, "unit": "fahrenheit"})
    place, unit, days = made(**bound.kwargs)
    assert place == namespace["Place"]("Oslo")
    assert unit is namespace["Unit"].F
    assert days is None


def test_string_annotation_naming_an_undefined_type_is_a_definition_error() -> None:
    def f(ok: "int", bad: "Undefined") -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    with pytest.raises(ToolDefinitionError, match=r"tool '.*f': parameter 'bad'.*Undefined") as e:
        tool(f)
    assert isinstance(e.value.__cause__, NameError)


@pytest.mark.parametrize("annotation", ["list[int", "int +", "typing.NotThere"])
def test_malformed_string_annotation_is_a_definition_error(annotation: str) -> None:
    with pytest.raises(ToolDefinitionError, match=r"parameter 'x' has an annotation that cannot"):
        _tool_for(annotation)


def test_string_annotations_resolve_in_the_functions_module() -> None:
    def f(color: "Color", when: "datetime.date | None" = None) -> None:
        pass

    props = tool(f).parameters["properties"]
    assert props["color"] == {"$ref": "#/$defs/Color"}
    assert props["when"]["anyOf"] == [{"type": "string", "format": "date"}, {"type": "null"}]


# --- running -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_sync_tool_runs_in_a_worker_thread() -> None:
    def where(x: int) -> tuple[int, int]:
        return x, threading.get_ident()

    made = tool(where)
    value, thread = await made.run(made.bind({"x": "7"}))
    assert value == 7
    assert thread != threading.get_ident()


@pytest.mark.anyio
async def test_async_tool_runs_on_the_event_loop_thread() -> None:
    async def where(x: int) -> tuple[int, int]:
        await anyio.lowlevel.checkpoint()
        return x, threading.get_ident()

    made = tool(where)
    value, thread = await made.run(made.bind({"x": 7}))
    assert value == 7
    assert thread == threading.get_ident()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("function", "expected"),
    [
        (functools.partial(async_add, y=5), 6),
        (functools.partial(sync_add, y=5), 6),
        (AsyncAdder(), 2),
        (SyncAdder(), 2),
        (Methods(10).add, 11),
        (Methods(10).aadd, 11),
    ],
    ids=["async partial", "sync partial", "async object", "sync object", "method", "async method"],
)
async def test_run_partials_objects_and_methods(
    function: Callable[..., Any], expected: int
) -> None:
    made = tool(function)
    assert await made.run(made.bind({"x": 1})) == expected


@pytest.mark.anyio
async def test_run_passes_positional_only_arguments() -> None:
    def f(a: int, /, b: int) -> list[int]:
        return [a, b]

    made = tool(f)
    assert await made.run(made.bind({"a": 1, "b": 2})) == [1, 2]


@pytest.mark.anyio
async def test_sync_wrapper_returning_a_coroutine_is_awaited() -> None:
    def logged(fn: Callable[..., Coroutine[Any, Any, int]]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Coroutine[Any, Any, int]:
            return fn(*args, **kwargs)

        return wrapper

    made = tool(logged(async_add))
    assert made.is_async is False
    assert made.parameters == tool(async_add).parameters
    assert await made.run(made.bind({"x": 1})) == 3


@pytest.mark.anyio
async def test_run_propagates_the_tools_exception() -> None:
    def broken(x: int) -> int:
        raise RuntimeError(f"broken {x}")

    made = tool(broken)
    with pytest.raises(RuntimeError, match="broken 3"):
        await made.run(made.bind({"x": 3}))


def test_run_with_anyio_run() -> None:
    bound = multiply.bind({"a": 6, "b": 7})
    assert anyio.run(multiply.run, bound) == 42


# --- define_tool -------------------------------------------------------------------------

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 1},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city"],
    "additionalProperties": False,
}


def test_define_tool_validates_arguments_and_passes_keywords() -> None:
    received: list[dict[str, Any]] = []

    def implementation(**kwargs: Any) -> str:
        received.append(kwargs)
        return "sunny"

    made = define_tool("weather", "Get the weather.", WEATHER_SCHEMA, implementation)
    assert made.name == "weather"
    assert made.description == "Get the weather."
    assert made.parameters == WEATHER_SCHEMA
    assert made.definition == ToolDefinition("weather", "Get the weather.", WEATHER_SCHEMA)
    assert made.is_async is False
    bound = made.bind({"city": "Oslo", "days": 3})
    assert bound.args == ()
    assert bound.kwargs == {"city": "Oslo", "days": 3}
    assert anyio.run(made.run, bound) == "sunny"
    assert received == [{"city": "Oslo", "days": 3}]

    with pytest.raises(ToolArgumentsError) as caught:
        made.bind({"days": 9, "extra": 1})
    problems = " ".join(caught.value.problems)
    assert "city" in problems
    assert "days" in problems
    assert "extra" in problems
    with pytest.raises(ToolArgumentsError, match="city"):
        made.bind({"city": 5})


def test_define_tool_with_async_implementation_and_options() -> None:
    async def implementation(city: str) -> str:
        return city.upper()

    made = define_tool(
        "shout",
        "Shout.",
        {"properties": {"city": {"type": "string"}}},
        implementation,
        timeout=3,
        retries=0,
        sequential=True,
    )
    assert made.parameters == {"type": "object", "properties": {"city": {"type": "string"}}}
    assert (made.is_async, made.timeout, made.retries, made.sequential) == (True, 3, 0, True)
    assert anyio.run(made.run, made.bind({"city": "oslo"})) == "OSLO"


def test_define_tool_does_not_mutate_the_given_schema() -> None:
    schema: dict[str, Any] = {"properties": {}}
    define_tool("t", "d", schema, lambda: None)
    assert schema == {"properties": {}}


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"x": {"type": "integr"}}},
        {"type": "object", "required": "x"},
        {"type": "object", "properties": {"x": {"$ref": "#/$defs/Missing"}}},
        {"type": "object", "properties": {"x": {"pattern": "("}}},
    ],
)
def test_define_tool_rejects_invalid_schemas(schema: dict[str, Any]) -> None:
    with pytest.raises(ToolDefinitionError, match="tool 'bad': invalid parameters schema"):
        define_tool("bad", "d", schema, lambda **kwargs: None)


@pytest.mark.parametrize("kind", ["string", "array", "integer", "null"])
def test_define_tool_rejects_non_object_schemas(kind: str) -> None:
    with pytest.raises(ToolDefinitionError, match="must describe an object"):
        define_tool("bad", "d", {"type": kind}, lambda **kwargs: None)


def test_define_tool_rejects_non_callable_implementation() -> None:
    with pytest.raises(ToolDefinitionError, match="implementation must be callable"):
        define_tool("bad", "d", {"type": "object"}, "nope")  # type: ignore[arg-type]


class _Huge(int):
    def __repr__(self) -> str:  # str() of 5,000 digits raises
        return "10**5000"


HUGE = _Huge(10**5000)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"x": {"pattern": "("}}},  # invalid regex
        {"type": "object", "properties": {"x": {"pattern": "(?<=a)b"}}},  # needs backtracking
        {"type": "object", "properties": {"x": {"$ref": "#/properties/x"}}},  # $ref loop
        {"type": "object", "$ref": "#"},
        {"type": "object", "properties": {"x": {"minimum": float("nan")}}},
        {"type": "object", "properties": {"x": {"maximum": HUGE}}},
        {"type": "object", "properties": {"x": {"enum": {1, 2}}}},  # not JSON
        {"type": "object", "properties": {1: {}}},
        {"type": "object", "properties": {"x": {"$ref": "https://example.com/s.json"}}},
    ],
    ids=lambda schema: str(schema.get("properties", schema))[:40],
)
def test_define_tool_rejects_hostile_schemas(schema: dict[str, Any]) -> None:
    with pytest.raises(ToolDefinitionError, match="tool 'bad': invalid parameters schema: #"):
        define_tool("bad", "d", schema, lambda **kwargs: None)


def _nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"x": schema}}
    return schema


def _ref_chain(length: int) -> dict[str, Any]:
    defs: dict[str, Any] = {f"d{i}": {"$ref": f"#/$defs/d{i + 1}"} for i in range(length)}
    defs[f"d{length}"] = {"type": "integer"}
    return {"type": "object", "properties": {"x": {"$ref": "#/$defs/d0"}}, "$defs": defs}


def _ref_doubling(levels: int) -> dict[str, Any]:
    # Each level uses the next twice: 2**levels subschemas once the $ref are followed.
    defs: dict[str, Any] = {
        f"d{i}": {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]}
        for i in range(levels)
    }
    defs[f"d{levels}"] = {"type": "integer"}
    return {"type": "object", "properties": {"x": {"$ref": "#/$defs/d0"}}, "$defs": defs}


def test_define_tool_bounds_deep_and_expanding_schemas() -> None:
    started = time.perf_counter()
    for schema, message in [
        (_nested(5_000), "nested too deeply"),
        (_ref_doubling(40), "expands to more than 20000 subschemas"),
    ]:
        with pytest.raises(ToolDefinitionError, match=message):
            define_tool("bad", "d", schema, lambda **kwargs: None)
    assert time.perf_counter() - started < 2.0


def test_define_tool_accepts_long_ref_chains_and_moderate_nesting() -> None:
    chained = define_tool("chained", "d", _ref_chain(3_000), lambda **kwargs: None)
    assert chained.bind({"x": 1}).kwargs == {"x": 1}
    with pytest.raises(ToolArgumentsError, match=r"\$\.x: expected integer, got string"):
        chained.bind({"x": "1"})
    nested = define_tool("nested", "d", _nested(50), lambda **kwargs: None)
    with pytest.raises(ToolArgumentsError, match="expected object, got integer"):
        nested.bind({"x": 1})


def test_define_tool_compiles_its_schema_once(compiled_schemas: list[Any]) -> None:
    made = define_tool("weather", "Get the weather.", WEATHER_SCHEMA, lambda **kwargs: None)
    renamed = made.with_options(name="forecast")
    for _ in range(3):
        made.bind({"city": "Oslo"})
        renamed.bind({"city": "Oslo"})
        with pytest.raises(ToolArgumentsError):
            made.bind({"city": 1})
    assert len(compiled_schemas) == 1


def test_define_tool_rejects_a_non_mapping_schema() -> None:
    for schema in ([], "object", 3, None):
        with pytest.raises(ToolDefinitionError, match="must be a JSON object"):
            define_tool("bad", "d", schema, lambda **kwargs: None)  # type: ignore[arg-type]


# --- bad pydantic constraints --------------------------------------------------------------


def _constrained(annotation: Any) -> Callable[..., Any]:
    def pick(count: int, value: Any) -> None:
        """Pick."""

    pick.__annotations__["value"] = annotation
    return pick


@pytest.mark.parametrize(
    ("annotation", "reason"),
    [
        (Annotated[str, Field(pattern="(")], "unclosed group"),
        (Annotated[str, Field(pattern="(?=a)")], "look-around"),
        (Annotated[int, Field(gt="abc")], "'gt' must be coercible to an integer"),
        (Annotated[float, Field(multiple_of="x")], "must be real number"),
        (Annotated[str, Field(min_length=-1)], "OverflowError"),
        (Annotated[list[int], Field(min_length="a")], "cannot be interpreted as an integer"),
    ],
    ids=["pattern", "lookahead", "gt", "multiple_of", "min_length", "list_min_length"],
)
def test_bad_field_constraints_are_tool_definition_errors(annotation: Any, reason: str) -> None:
    with pytest.raises(ToolDefinitionError) as caught:
        tool(_constrained(annotation))
    message = str(caught.value)
    assert message.startswith("tool '")
    assert "pick': parameter 'value' cannot be described as JSON Schema" in message
    assert reason in message
    assert "Error building" not in message  # pydantic-core's nesting is cut away
    assert len(message) < 400


def test_constraints_pydantic_ignores_are_caught_in_the_schema() -> None:
    with pytest.raises(
        ToolDefinitionError,
        match=r"pick': its parameters schema is not valid JSON Schema: "
        r"#/properties/value/maxLength: expected integer, got string",
    ):
        tool(_constrained(Annotated[int, Field(max_length="abc")]))


# --- bounded messages ----------------------------------------------------------------------

MANY = [f"value-{i:06d}" for i in range(100_000)]


def test_a_huge_enum_error_is_capped_for_a_json_schema_tool() -> None:
    schema = {"type": "object", "properties": {"mode": {"enum": MANY}}, "required": ["mode"]}
    made = define_tool("pick", "Pick a mode.", schema, lambda **kwargs: None)
    with pytest.raises(ToolArgumentsError) as caught:
        made.bind({"mode": "nope"})
    assert len(str(caught.value)) < 4_000
    [problem] = caught.value.problems
    assert problem.startswith("$.mode: must be one of ['value-000000', 'value-000001'")
    assert problem.endswith("got 'nope'")


def test_a_huge_literal_error_is_capped_for_a_typed_tool() -> None:
    def pick(mode: Any) -> None:
        """Pick a mode."""

    pick.__annotations__["mode"] = Literal[tuple(MANY)]
    made = tool(pick)
    with pytest.raises(ToolArgumentsError) as caught:
        made.bind({"mode": "nope"})
    assert len(str(caught.value)) < 4_000
    [problem] = caught.value.problems
    assert problem.startswith("mode: Input should be 'value-000000', 'value-000001'")
    assert len(problem) <= MAX_PROBLEM_CHARS
    assert problem.endswith("…")


def test_many_problems_are_capped_on_both_paths() -> None:
    def add(numbers: list[int]) -> int:
        """Add."""
        return sum(numbers)

    typed = tool(add)
    schema = {
        "type": "object",
        "properties": {"numbers": {"type": "array", "items": {"type": "integer"}}},
    }
    untyped = define_tool("add", "Add.", schema, lambda **kwargs: None)
    for made in (typed, untyped):
        with pytest.raises(ToolArgumentsError) as caught:
            made.bind({"numbers": ["x"] * 5_000})
        problems = caught.value.problems
        assert len(problems) == MAX_PROBLEMS + 1
        assert problems[-1].startswith("… and ")
        assert problems[-1].endswith(" more problems")
        assert len(str(caught.value)) < 4_000


def test_cap_problems() -> None:
    assert cap_problems(["a", "b"], str) == ["a", "b"]
    assert cap_problems(["x" * 1000], str) == ["x" * (MAX_PROBLEM_CHARS - 1) + "…"]
    many = cap_problems(range(25), str)
    assert many == [*map(str, range(10)), "… and 15 more problems"]
    assert cap_problems(range(11), str)[-1] == "… and 1 more problem"
    assert cap_problems(range(3), str, at_least=True)[-1] == "… and at least 1 more problem"
    rendered: list[int] = []
    cap_problems(range(1000), lambda n: rendered.append(n) or str(n))
    assert rendered == list(range(10))  # only what is shown is rendered


# --- as_tool and its cache ---------------------------------------------------------------


def test_as_tool_returns_the_same_tool_for_the_same_function() -> None:
    def lookup(q: str) -> str:
        return q

    first = as_tool(lookup)
    assert as_tool(lookup) is first
    assert Toolset([lookup]).get("lookup") is first
    assert as_tool(first) is first
    assert as_tool(multiply) is multiply


def test_as_tool_cache_does_not_keep_functions_alive() -> None:
    def make() -> Callable[[int], int]:
        def closure(x: int) -> int:
            return x

        return closure

    function = make()
    as_tool(function)
    ref = weakref.ref(function)
    del function
    gc.collect()
    assert ref() is None


def test_as_tool_gives_a_wrapper_its_own_tool() -> None:
    def inner(x: int) -> int:
        return x

    inner_tool = as_tool(inner)

    @functools.wraps(inner)
    def outer(x: int) -> int:
        return inner(x) + 1

    outer_tool = as_tool(outer)
    assert outer_tool is not inner_tool
    assert outer_tool.function is outer
    assert outer_tool(1) == 2


def test_as_tool_with_bound_methods() -> None:
    one, two = Methods(1), Methods(2)
    tool_one, tool_two = as_tool(one.add), as_tool(two.add)
    assert tool_one.name == tool_two.name == "add"
    assert tool_one.description == "Add to the base."
    assert tool_one.parameters == _wrap({"x": {"type": "integer"}}, ["x"])
    assert anyio.run(tool_one.run, tool_one.bind({"x": 5})) == 6
    assert anyio.run(tool_two.run, tool_two.bind({"x": 5})) == 7
    assert as_tool(one.add)(1) == 2


def test_as_tool_rejects_non_callables() -> None:
    with pytest.raises(ToolDefinitionError, match="42 is not a tool"):
        as_tool(42)  # type: ignore[arg-type]


# --- render_result -----------------------------------------------------------------------


class Unserialisable:
    def __repr__(self) -> str:
        return "<Unserialisable>"


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def _cycle() -> dict[str, Any]:
    cycle: dict[str, Any] = {"name": "loop"}
    cycle["self"] = cycle
    return cycle


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain text", "plain text"),
        ("", ""),
        ('{"already": "json"}', '{"already": "json"}'),
        ({"a": 1, "b": [1, 2.5]}, '{"a":1,"b":[1,2.5]}'),
        ([1, "two", None], '[1,"two",null]'),
        (None, "null"),
        (True, "true"),
        (42, "42"),
        (1.5, "1.5"),
        (Inner(a=3), '{"a":3}'),
        (Outer(inner=Inner(a=1)), '{"inner":{"a":1},"items":[]}'),
        (Point(1, 2), '{"x":1,"y":2}'),
        (datetime.datetime(2024, 1, 2, 3, 4, 5), '"2024-01-02T03:04:05"'),
        (datetime.date(2024, 1, 2), '"2024-01-02"'),
        (Color.RED, '"red"'),
        ((1, 2), "[1,2]"),
        (Unserialisable(), '"<Unserialisable>"'),
        ({"nested": Unserialisable()}, '{"nested":"<Unserialisable>"}'),
        (b"\xff\xfe", "b'\\xff\\xfe'"),
        (_cycle(), "{'name': 'loop', 'self': {...}}"),
    ],
    ids=repr,
)
def test_render_result(value: object, expected: str) -> None:
    assert render_result(value) == expected


def test_render_result_survives_a_broken_repr() -> None:
    assert "BadRepr object at 0x" in render_result(BadRepr())
    assert "BadRepr object at 0x" in render_result([BadRepr()])
