"""LM Studio's tool-use example, done with agentkit: an agent that multiplies with a tool.

Mirrors the `act()` example of the lmstudio-python docs: the model gets a `multiply` tool,
is asked "What is 12345 multiplied by 54321?", and every message of the run is printed as it
arrives. Inference runs in LM Studio; agentkit drives the loop and runs the tool.

    python examples/lmstudio_agent.py [URL] [MODEL_KEY]

URL defaults to $LMSTUDIO_URL, else lmstudio://127.0.0.1:1234 (LM Studio's server must be
running); MODEL_KEY defaults to qwen2.5-7b-instruct (it is loaded if it is not already).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import agentkit as ak
from agentkit.errors import ModelNotFoundError

DEFAULT_URL = "lmstudio://127.0.0.1:1234"
DEFAULT_MODEL = "qwen2.5-7b-instruct"


def multiply(a: float, b: float) -> float:
    """Given two numbers a and b, returns their product."""
    return a * b


def print_message(message: ak.Message) -> None:
    """Show one message of the run: tool calls, tool results and answers."""
    if isinstance(message, ak.AssistantMessage):
        if message.content:
            print(f"assistant: {message.content}")
        for call in message.tool_calls:
            print(f"tool call: {call.name}({call.arguments})")
    elif isinstance(message, ak.ToolResultMessage):
        print(f"tool result ({message.name}): {message.content}")


def main(argv: Sequence[str]) -> int:
    """Run the agent: 0 on success, 1 for an unknown model, 2 when LM Studio is unreachable."""
    url = argv[1] if len(argv) > 1 else os.environ.get("LMSTUDIO_URL", DEFAULT_URL)
    model_key = argv[2] if len(argv) > 2 else DEFAULT_MODEL
    try:
        with ak.Client(url) as client:
            model = client.llm.model(model_key)
            chat = ak.Chat("You are a helpful assistant. Use the tools you are given.")
            chat.add_user_message("What is 12345 multiplied by 54321?")

            def on_message(message: ak.Message) -> None:
                # Called with each message as its round completes: keep it and show it.
                chat.append(message)
                print_message(message)

            result = model.act(chat, [multiply], on_message=on_message)
    except ModelNotFoundError as error:
        print(f"LM Studio has no model {model_key!r}; download it first ({error})")
        return 1
    except ak.AgentkitError as error:
        # The engine explains what went wrong, e.g. "LM Studio is not running at host:port: ...".
        print(f"Could not use LM Studio at {url}: {error}")
        return 2
    print(f"{result.rounds} rounds, {result.usage.total_tokens} tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
