"""A tool-using agent on any OpenAI-compatible server: llama.cpp's server, vLLM, Ollama, LM Studio.

    python examples/openai_server_agent.py [BASE_URL] [MODEL]

BASE_URL defaults to $OPENAI_BASE_URL or http://127.0.0.1:8080/v1, MODEL to the first model the
server lists. An API key is read from $OPENAI_API_KEY when the server needs one.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import agentkit as ak


def multiply(a: float, b: float) -> float:
    """Given two numbers a and b, returns their product."""
    return a * b


def show(message: ak.Message) -> None:
    """Print each message as the run commits it."""
    if isinstance(message, ak.AssistantMessage):
        for call in message.tool_calls:
            print(f"tool call: {call.name}({call.arguments})")
        if message.content:
            print(f"assistant: {message.content}")
    elif isinstance(message, ak.ToolResultMessage):
        print(f"tool result: {message.content}")


def main(argv: Sequence[str]) -> int:
    base_url = argv[0] if argv else os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8080/v1")
    model_key = argv[1] if len(argv) > 1 else None
    try:
        with ak.Client(base_url) as client:
            model = client.llm.model(model_key)
            chat = ak.Chat("You are a helpful assistant. Use tools for arithmetic.")
            chat.add_user_message("What is 12345 multiplied by 54321?")
            result = model.act(
                chat,
                [multiply],
                max_prediction_rounds=3,
                config={"temperature": 0, "max_tokens": 64},
                on_message=show,
            )
    except ak.AgentkitError as error:
        print(f"could not run the agent on {base_url}: {error}", file=sys.stderr)
        return 2
    usage = result.usage
    print(
        f"{result.rounds} rounds, {usage.prompt_tokens} prompt + {usage.completion_tokens} tokens"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
