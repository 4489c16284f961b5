"""The tools of one act() run: looked up by name, each converted from a function only once."""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable
from typing import Any, TypeAlias

from agentkit.engines.base import ToolDefinition
from agentkit.errors import ToolDefinitionError
from agentkit.tools.tool import Tool, tool_from_function

__all__ = ["ToolLike", "Toolset", "as_tool"]

ToolLike: TypeAlias = "Tool[..., Any] | Callable[..., Any]"

# Building a schema costs about a millisecond and act() is called with the same functions over
# and over, so a plain function keeps its Tool in its own __dict__. A global cache would keep
# every function (and whatever its closure holds) alive for ever: the Tool refers to it.
_CACHE_ATTRIBUTE = "__agentkit_tool__"


def as_tool(obj: ToolLike) -> Tool[..., Any]:
    """The `Tool` for a tool or a plain function."""
    if isinstance(obj, Tool):
        return obj
    if not callable(obj):
        raise ToolDefinitionError(f"{obj!r} is not a tool: pass a function or an agentkit.Tool")
    if not isinstance(obj, types.FunctionType):  # bound methods, partials, callable objects
        return tool_from_function(obj)
    cached = obj.__dict__.get(_CACHE_ATTRIBUTE)
    # functools.wraps copies __dict__, so a wrapper may carry the Tool of the function it wraps.
    if isinstance(cached, Tool) and cached.function is obj:
        return cached
    converted = tool_from_function(obj)
    obj.__dict__[_CACHE_ATTRIBUTE] = converted
    return converted


class Toolset:
    """Tools by name; duplicate names are an error (the model could not tell them apart)."""

    __slots__ = ("_by_name", "definitions")

    def __init__(self, tools: Iterable[ToolLike] | None) -> None:
        self._by_name: dict[str, Tool[..., Any]] = {}
        for item in tools or ():
            converted = as_tool(item)
            if converted.name in self._by_name:
                raise ToolDefinitionError(
                    f"two tools are named {converted.name!r}; give one another name "
                    "with agentkit.tool(fn, name=...)"
                )
            self._by_name[converted.name] = converted
        self.definitions: tuple[ToolDefinition, ...] = tuple(
            t.definition for t in self._by_name.values()
        )

    def get(self, name: str) -> Tool[..., Any] | None:
        """The tool with that name, if offered."""
        return self._by_name.get(name)

    @property
    def names(self) -> tuple[str, ...]:
        """The offered tool names, in the order given."""
        return tuple(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)
