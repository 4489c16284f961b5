"""The `agentkit` command.

    agentkit demo "What is 12345 times 54321?"   # the calculator agent on a scripted model
    agentkit run "What is 12345 times 54321?"    # the same agent on the local engine
    agentkit install-engine                      # build llama-cpp-python for this CPU

Both agent commands print each round, the tool calls and their results, the final answer, and
time and token counts.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

import agentkit as ak
from agentkit.errors import AgentkitError
from agentkit.tools import calculator
from agentkit.tools.tool import render_result

INSTRUCTIONS = (
    "You are a careful assistant. Use the calculator tool for any arithmetic, "
    "then answer in one short sentence."
)

_EXPRESSION = re.compile(r"[-+*/().\d\s^]{3,}")
_WORDS = {" times ": " * ", " plus ": " + ", " minus ": " - ", " divided by ": " / "}


def demo_responder(chat: ak.Chat, round_index: int) -> str | list[ak.ToolCall]:
    """A scripted stand-in for a model: calls the calculator on the question, then answers."""
    if round_index == 0:
        question = chat[-1].content
        for word, symbol in _WORDS.items():
            question = question.replace(word, symbol)
        found = max(_EXPRESSION.findall(question), key=len, default="").strip(" ?.")
        if found:
            return [ak.ToolCall("calculator", {"expression": found})]
        return "I can only work out arithmetic questions in this demo."
    return f"The answer is {chat[-1].content}."


def run_agent(
    model: ak.LLM,
    question: str,
    *,
    max_rounds: int = 4,
    config: ak.PredictionConfig | None = None,
) -> ak.ActResult:
    """Run the calculator agent on a question, printing the run as it goes."""
    chat = ak.Chat(INSTRUCTIONS)
    chat.add_user_message(question)

    def show(message: ak.Message) -> None:
        if isinstance(message, ak.AssistantMessage):
            for call in message.tool_calls:
                print(f"  tool call   {call.name}({render_result(call.arguments)})")
            if message.content and not message.tool_calls:
                print(f"  answer      {message.content}")
        elif isinstance(message, ak.ToolResultMessage):
            marker = "error" if message.is_error else "result"
            print(f"  tool {marker:<6} {message.content}")
        elif isinstance(message, ak.UserMessage):  # feedback on output that did not parse
            print(f"  feedback    {message.content}")

    result = model.act(
        chat,
        [calculator],
        max_prediction_rounds=max_rounds,
        config=config,
        on_round_start=lambda index: print(f"round {index + 1}"),
        on_message=show,
    )
    usage = result.usage
    print(
        f"\n{result.rounds} rounds in {result.total_time_seconds:.3f} s; "
        f"{usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens"
    )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `agentkit` command."""
    parser = argparse.ArgumentParser(prog="agentkit", description="agentkit command line")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the calculator agent on a scripted model")
    demo.add_argument("question", nargs="?", default="What is 12345 times 54321?")
    run = commands.add_parser("run", help="run the calculator agent on a model")
    run.add_argument("question")
    run.add_argument(
        "--model", default=None, help="model key or GGUF path (default model if omitted)"
    )
    run.add_argument("--url", default=None, help="lmstudio://host:port or http://host:port/v1")
    run.add_argument(
        "--tool-choice",
        choices=["auto", "required"],
        default="required",
        help="required (default): the first rounds must call a tool, which a small base "
        "model needs; the last round answers",
    )
    run.add_argument("--max-rounds", type=int, default=2, help="prediction rounds (default 2)")
    run.add_argument("--max-tokens", type=int, default=64, help="tokens per round (default 64)")
    commands.add_parser("install-engine", help="build and install llama-cpp-python for this CPU")
    options = parser.parse_args(argv)

    if options.command == "install-engine":
        from agentkit.engines import llama_build

        return llama_build.main([])
    try:
        if options.command == "demo":
            from agentkit.testing import ScriptedModel

            print("agentkit demo: a scripted model stands in for an LLM (no inference runs)\n")
            run_agent(ScriptedModel(demo_responder, model_key="demo-script"), options.question)
            return 0
        config = ak.PredictionConfig(
            temperature=0, seed=0, max_tokens=options.max_tokens, tool_choice=options.tool_choice
        )
        with ak.Client(options.url) as client:
            model = client.llm.model(options.model)
            engine = client.async_client.engine.provider_name
            print(f"agentkit run: {model.model_key} on the {engine} engine\n")
            run_agent(model, options.question, max_rounds=options.max_rounds, config=config)
        return 0
    except AgentkitError as error:
        print(f"agentkit: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
