"""Tools: typed Python functions turned into schemas the model sees and validators it must pass.

@agentkit.tool(timeout=5)
def multiply(a: float, b: float) -> float:
    \"\"\"Multiply two numbers.\"\"\"
    return a * b
"""

from agentkit.tools.builtin import calculator
from agentkit.tools.tool import DEFAULT_RETRIES, Tool, define_tool, render_result, tool
from agentkit.tools.toolset import ToolLike, Toolset, as_tool

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
