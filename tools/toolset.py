"""The tools of one act() run: looked up by name, each converted from a function only once."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import Any, TypeAlias

from agentkit.engines.base import ToolDefinition
from agentkit.errors import ToolDefinitionError
from agentkit.tools.tool import Tool, tool_from_function

__all__ = ["ToolLike", "Toolset", "as_tool"]

ToolLike: TypeAlias = "Tool[..., Any] | Callable[..., Any]"

# Building a schema costs about a millisecond; act() is called with the same functions over and
# over, so plain functions are converted once. Weak keys let the cache die with the function.
_converted: weakref.WeakKeyDictionary[Callable[..., Any], Tool[..., Any]] = (
    weakref.WeakKeyDictionary()
)


def as_tool(obj: ToolLike) -> Tool[..., Any]:
    """The `Tool` for a tool or a plain function."""
    if isinstance(obj, Tool):
        return obj
    if not callable(obj):
        raise ToolDefinitionError(f"{obj!r} is not a tool: pass a function or an agentkit.Tool")
    try:
        return _converted[obj]
    except (KeyError, TypeError):
        pass
    converted = tool_from_function(obj)
    try:
        _converted[obj] = converted
    except TypeError:  # not weak-referenceable (some builtins); convert each time
        pass
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
