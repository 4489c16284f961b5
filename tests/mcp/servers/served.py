"""agentkit tools that test_serve.py serves with `agentkit mcp serve served:tools`."""

from __future__ import annotations

import time

from agentkit import tool
from agentkit.agent import Agent
from agentkit.testing import ScriptedModel, ToolCall


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: the first.
        b: the second.
    """
    return a + b


def divide(a: float, b: float) -> float:
    """Divide a by b."""
    return a / b


@tool(timeout=0.3)
def snooze(seconds: float) -> str:
    """Sleep (and time out past 0.3 s)."""
    time.sleep(seconds)
    return "awake"


tools = [add, divide, snooze]


def _answer(chat: object, i: int) -> object:
    return [ToolCall("add", {"a": 2, "b": 3})] if i == 0 else "the agent says 5"


agent = Agent(ScriptedModel(_answer), tools=[add])
