"""Tools: typed Python functions turned into schemas the model sees and validators it must pass.

@agentkit.tool(timeout=5)
def multiply(a: float, b: float) -> float:
    \"\"\"Multiply two numbers.\"\"\"
    return a * b
"""

from typing import TYPE_CHECKING

from agentkit.tools.tool import DEFAULT_RETRIES, Tool, define_tool, render_result, tool
from agentkit.tools.toolset import ToolLike, Toolset, as_tool

if TYPE_CHECKING:
    from agentkit.tools.builtin import calculator

__all__ = [
    "DEFAULT_RETRIES",
    "Tool",
    "ToolLike",
    "Toolset",
    "as_tool",
    "calculator",
    "define_tool",
    "render_result",
    "tool",
]


def __getattr__(name: str) -> object:
    # The built-in tools are defined (their validators built) on first use, not on import.
    if name == "calculator":
        from agentkit.tools.builtin import calculator

        return calculator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
