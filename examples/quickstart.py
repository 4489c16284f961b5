"""Quickstart: a tool-using agent, a chat you own, and the run's result.

Runs on a scripted model (no inference) so it works anywhere; replace `model` with
`agentkit.Client().llm.model()` to run it on the local engine once that is installed.
"""

from __future__ import annotations

import agentkit as ak
from agentkit.testing import ScriptedModel, ToolCall


def multiply(a: float, b: float) -> float:
    """Given two numbers a and b, returns their product."""
    return a * b


def scripted(chat: ak.Chat, round_index: int) -> str | list[ToolCall]:
    if round_index == 0:
        return [ToolCall("multiply", {"a": 12345, "b": 54321})]
    return f"12345 times 54321 is {float(chat[-1].content):.0f}."


def main() -> None:
    model = ScriptedModel(scripted)
    chat = ak.Chat("You are a helpful assistant.")
    chat.add_user_message("What is 12345 times 54321?")
    result = model.act(chat, [multiply], on_message=chat.append)
    assert result.final is not None
    print(result.final.text)
    print(f"{result.rounds} rounds, {result.usage.total_tokens} tokens, stop: {result.stop_reason}")
    print(chat.to_json(indent=2))


if __name__ == "__main__":
    main()
