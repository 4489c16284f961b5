"""The `agentkit` command.

    agentkit demo "What is 12345 times 54321?"   # the calculator agent on a scripted model
    agentkit run "What is 12345 times 54321?"    # the same agent on the local engine
    agentkit run --agent my_app:agent "Hello"     # your agent: (prompt or chat) -> answer
    agentkit chat --tools my_app:tools           # an interactive chat (see agentkit.cli_chat)
    agentkit install-engine                      # build llama-cpp-python for this CPU
    agentkit eval cases.jsonl --json after.json  # evaluate the calculator agent on a dataset
    agentkit eval --compare before.json after.json
    agentkit eval cases.jsonl --workers 4           # cases spread over 4 worker processes

The agent commands print each round, the tool calls and their results, the final answer, and
time and token counts (`run` also the model's load time, apart from act()'s).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

import agentkit as ak
from agentkit.callbacks import first_parameter_is
from agentkit.errors import AgentkitError
from agentkit.observe import set_observer
from agentkit.tools import calculator
from agentkit.tools.tool import render_result
from agentkit.tools.toolset import ToolLike, Toolset

if TYPE_CHECKING:
    from agentkit.tracing.evaluation.evaluate import Agent, Case

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
    started = time.perf_counter()
    result = model.act(
        chat,
        [calculator],
        max_prediction_rounds=max_rounds,
        config=config,
        on_round_start=lambda index: print(f"round {index + 1}"),
        on_message=show_message,
    )
    print_act_summary(result, time.perf_counter() - started)
    return result


def show_message(message: ak.Message) -> None:
    """Print a message of a run as `agentkit run` shows it."""
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


def print_act_summary(result: ak.ActResult, wall_seconds: float) -> None:
    """The closing line: act()'s wall time, rounds and tokens."""
    usage = result.usage
    rounds = f"{result.rounds} round{'' if result.rounds == 1 else 's'}"
    print(
        f"\nact() {wall_seconds:.2f} s, {rounds}, "
        f"{usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens"
    )


def calculator_agent(
    model: ak.LLM, *, max_rounds: int = 2, config: ak.PredictionConfig | None = None
) -> Callable[[Case], ak.ActResult]:
    """The calculator agent of `run_agent` as an evaluation agent: the same act(), no printing."""

    def agent(case: Case) -> ak.ActResult:
        chat = case.chat()
        if not len(chat) or not isinstance(chat[0], ak.SystemMessage):
            chat.insert(0, ak.SystemMessage(content=INSTRUCTIONS))
        return model.act(chat, [calculator], max_prediction_rounds=max_rounds, config=config)

    return agent


def import_spec(spec: str, option: str) -> object:
    """The object `module:attr` names (attr may be dotted); errors name the option."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ak.ConfigurationError(f"{option} takes module:attribute, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` would, so local modules import
    try:
        found: object = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as error:
        raise ak.ConfigurationError(f"{option} {spec}: {error}") from error
    return found


def _import_agent(spec: str) -> Agent:
    found = import_spec(spec, "--agent")
    if not callable(found):
        raise ak.ConfigurationError(f"--agent {spec}: {type(found).__name__} is not callable")
    agent: Agent = found
    return agent


def load_tools(specs: Sequence[str]) -> list[ToolLike]:
    """The tools `--tools module:attr` options name: each a tool, a list of tools or a Toolset."""
    tools: list[ToolLike] = []
    for spec in specs:
        found = import_spec(spec, "--tools")
        if isinstance(found, Toolset):
            items: list[object] = [found.get(name) for name in found.names]
        elif isinstance(found, list | tuple | set | frozenset):
            items = list(found)
        else:
            items = [found]
        for item in items:
            if not callable(item):
                raise ak.ConfigurationError(
                    f"--tools {spec}: {type(item).__name__} is not a tool; name a function, "
                    "an agentkit.Tool, a list of them or a Toolset"
                )
            tools.append(item)
    try:
        Toolset(tools)  # every schema built now, so a bad tool fails before the chat starts
    except ak.ToolDefinitionError as error:
        raise ak.ConfigurationError(f"--tools: {error}") from error
    return tools


def _run_user_agent(spec: str, prompt: str) -> None:
    """`agentkit run --agent`: call the agent with the prompt (or a chat) and print its answer."""
    agent = _import_agent(spec)
    print(f"agentkit run: {spec}\n")
    wants_chat = first_parameter_is(agent, "chat", ak.Chat)
    argument: str | ak.Chat = ak.Chat.from_history(prompt) if wants_chat else prompt
    started = time.perf_counter()
    output: object = agent(argument)
    if inspect.isawaitable(output):
        output = anyio.run(_awaited, output)
    wall = time.perf_counter() - started
    if isinstance(output, ak.ActResult):
        for message in output.messages:
            show_message(message)
        print_act_summary(output, wall)
    elif isinstance(output, ak.PredictionResult | str):
        text = output if isinstance(output, str) else output.content
        print(f"  answer      {text}\n\nagent {wall:.2f} s")
    else:
        raise ak.ConfigurationError(
            f"--agent {spec} returned {type(output).__name__}; return an ActResult, a "
            "PredictionResult or a str"
        )


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _eval_command(options: argparse.Namespace) -> int:
    from agentkit.tracing.evaluation.compare import compare
    from agentkit.tracing.evaluation.evaluate import evaluate, load_cases
    from agentkit.tracing.evaluation.report import EvalReport
    from agentkit.tracing.evaluation.scorers import scorer_from_spec

    if options.compare:
        before, after = (EvalReport.from_json(path) for path in options.compare)
        comparison = compare(before, after)
        comparison.print()
        return 1 if comparison.has_regressions else 0
    cases = load_cases(options.dataset)
    scorers = [scorer_from_spec(spec) for spec in options.scorer or ["contains"]]
    config = ak.PredictionConfig(temperature=0, seed=0, max_tokens=48, tool_choice="required")
    name = Path(options.dataset).stem

    def run(agent: Agent) -> EvalReport | None:
        if options.serve or options.workers:
            from agentkit.durable import eval_workers

            if options.serve:
                eval_workers.serve_eval(options.serve, name, agent, scorers, options.concurrency)
                return None
            return eval_workers.distributed_eval(
                cases,
                options.workers,
                eval_workers.worker_command(sys.argv[1:]),
                name,
                agent,
                scorers,
                concurrency=options.concurrency,
                repeats=options.repeats,
            )
        return evaluate(
            cases,
            agent,
            scorers,
            concurrency=options.concurrency,
            repeats=options.repeats,
            name=name,
        )

    if options.agent:
        report = run(_import_agent(options.agent))
    elif options.scripted:
        from agentkit.testing import ScriptedModel

        scripted = ScriptedModel(demo_responder, model_key="demo-script")
        report = run(calculator_agent(scripted, config=config))
    else:
        with ak.Client(options.url) as client:
            model = client.llm.model(options.model)
            engine = client.async_client.engine.provider_name
            print(f"agentkit eval: {model.model_key} on the {engine} engine", file=sys.stderr)
            report = run(calculator_agent(model, config=config))
    if report is None:  # a worker, stopped
        return 0
    report.print_table()
    if options.json:
        report.to_json(options.json)
        print(f"wrote {options.json}")
    if options.html:
        report.to_html(options.html)
        print(f"wrote {options.html}")
    return 0


def _parser() -> argparse.ArgumentParser:
    """The `agentkit` parser: a sub-parser per command, each filled in by its own function."""
    parser = argparse.ArgumentParser(prog="agentkit", description="agentkit command line")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the calculator agent on a scripted model")
    demo.add_argument("question", nargs="?", default="What is 12345 times 54321?")
    run = commands.add_parser("run", help="run the calculator agent (or --agent) on a model")
    _run_arguments(run)
    chat = commands.add_parser(
        "chat",
        help="chat with a model in the terminal, with tools",
        description="An interactive chat: replies stream, tool calls and results show as they "
        "happen, /help lists the commands. Ctrl-C stops a reply; Ctrl-D exits.",
    )
    _chat_arguments(chat)
    commands.add_parser("install-engine", help="build and install llama-cpp-python for this CPU")
    evaluate = commands.add_parser(
        "eval",
        help="evaluate an agent on a JSONL dataset, or compare two reports",
        description="Run an agent on every case of a JSONL dataset (one "
        '{"input": ..., "expected": ...} object a line), score the runs and print a table; '
        "or compare two JSON reports (exit code 1 when a case regressed).",
    )
    _eval_arguments(evaluate)
    _mcp_arguments(commands.add_parser("mcp", help="MCP: serve agentkit tools to MCP clients"))
    for traced in (run, demo, evaluate, chat):
        _add_tracing_options(traced)
    return parser


def _tool_choice(value: str) -> str | dict[str, str]:
    return value if value in ("auto", "required", "none") else {"name": value}


def _run_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument("question")
    run.add_argument(
        "--agent",
        metavar="MODULE:FUNCTION",
        help="run your agent instead: a (prompt: str) or (chat: Chat) callable returning an "
        "ActResult, a PredictionResult or a str, sync or async",
    )
    run.add_argument(
        "--model", default=None, help="model key or GGUF path (default model if omitted)"
    )
    run.add_argument("--url", default=None, help="lmstudio://host:port or http://host:port/v1")
    run.add_argument(
        "--tool-choice",
        type=_tool_choice,
        default="required",
        metavar="auto|required|none|TOOL",
        help="required (default): rounds that offer tools must call one (left to choose, the "
        "135M default model answers arithmetic from memory, wrongly); the last round answers. "
        "A tool name forces that tool",
    )
    run.add_argument(
        "--max-rounds", type=_positive_int, default=2, help="prediction rounds (default 2)"
    )
    run.add_argument(
        "--max-tokens", type=_positive_int, default=64, help="tokens per round (default 64)"
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _chat_arguments(chat: argparse.ArgumentParser) -> None:
    chat.add_argument(
        "--model",
        default=None,
        help="a model key or GGUF path (local engine, or the --url engine), an engine URL, or "
        "scripted:MODULE:ATTR for a scripted responder (agentkit.testing); default model if "
        "omitted",
    )
    chat.add_argument("--url", default=None, help="engine of --model KEY, as for `run`")
    chat.add_argument(
        "--tools",
        nargs="+",
        action="extend",
        metavar="MODULE:ATTR",
        help="a tool, a list of tools or a Toolset to offer (default: the calculator)",
    )
    chat.add_argument("--system", default=None, metavar="TEXT", help="the system prompt")
    chat.add_argument(
        "--max-rounds",
        type=_positive_int,
        default=6,
        help="prediction rounds per reply (default 6)",
    )
    chat.add_argument(
        "--max-tokens", type=_positive_int, default=512, help="tokens per round (default 512)"
    )


def _chat_command(options: argparse.Namespace) -> int:
    from agentkit.cli_chat import ChatSession, open_model, terminal_io

    tools = load_tools(options.tools) if options.tools else [calculator]
    config = ak.PredictionConfig(max_tokens=options.max_tokens)
    model = open_model(options.model, options.url)
    session = ChatSession(
        model,
        tools,
        terminal_io(),
        system=options.system,
        config=config,
        max_rounds=options.max_rounds,
    )
    return session.run()


def _eval_arguments(evaluate: argparse.ArgumentParser) -> None:
    from agentkit.tracing.evaluation.scorers import SCORER_SPECS

    spellings = "; ".join(f"{spec.usage} ({spec.help})" for spec in SCORER_SPECS)
    evaluate.add_argument("dataset", nargs="?", help="the JSONL dataset")
    evaluate.add_argument(
        "--agent",
        metavar="MODULE:FUNCTION",
        help="a (case) or (input) -> ActResult | str callable (default: the calculator agent "
        "on the local engine, as `agentkit run`)",
    )
    evaluate.add_argument(
        "--scorer",
        action="append",
        metavar="SPEC",
        help=f"{spellings}; repeat for more (default: contains)",
    )
    evaluate.add_argument(
        "--concurrency", type=int, default=4, help="runs at once (per worker; default 4)"
    )
    evaluate.add_argument(
        "--workers",
        metavar="N|URL",
        help="spread the cases over N local worker processes, or over the workers serving a "
        "postgresql:// database (agentkit.durable; needs agentkit[durable])",
    )
    evaluate.add_argument(
        "--serve",
        metavar="DATABASE",
        help="be a worker: run the cases queued on DATABASE (a postgresql:// URL or a SQLite "
        "path) with this agent and these scorers, until stopped",
    )
    evaluate.add_argument("--repeats", type=int, default=1, help="runs per case (default 1)")
    evaluate.add_argument("--json", metavar="OUT.json", help="write the report as JSON")
    evaluate.add_argument("--html", metavar="OUT.html", help="write the report as an HTML page")
    evaluate.add_argument(
        "--scripted",
        action="store_true",
        help="run the default agent on the demo scripted model (no inference)",
    )
    evaluate.add_argument("--model", default=None, help="model key or GGUF path (default agent)")
    evaluate.add_argument("--url", default=None, help="engine URL, as for `run` (default agent)")
    evaluate.add_argument(
        "--compare",
        nargs=2,
        metavar=("A.json", "B.json"),
        help="print regressions and improvements from report A to report B instead",
    )


def _mcp_arguments(mcp: argparse.ArgumentParser) -> None:
    serve = mcp.add_subparsers(dest="mcp_command", required=True).add_parser(
        "serve",
        help="serve tools (or an Agent, as one `ask` tool) over MCP",
        description="Serve a list of agentkit tools, a Toolset, a tool or an Agent over MCP: "
        "stdio by default, streamable HTTP at http://HOST:PORT/mcp with --http.",
    )
    serve.add_argument("target", metavar="MODULE:ATTR")
    serve.add_argument(
        "--http", metavar="HOST:PORT", help="serve streamable HTTP (host 127.0.0.1 if omitted)"
    )
    serve.add_argument(
        "--token",
        default=os.environ.get("AGENTKIT_MCP_TOKEN"),
        help="bearer token clients must send (required off loopback; env AGENTKIT_MCP_TOKEN)",
    )
    serve.add_argument("--name", default="agentkit", help="the server name clients see")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `agentkit` command."""
    parser = _parser()
    options = parser.parse_args(argv)
    if options.command == "eval" and (options.dataset is None) == (options.compare is None):
        parser.error("eval takes a DATASET or --compare A.json B.json")

    if options.command == "install-engine":
        from agentkit.engines.llama_cpp import build as llama_build

        return llama_build.main([])
    with _tracing(options):
        return _run_command(options)


def _run_command(options: argparse.Namespace) -> int:
    try:
        if options.command == "eval":
            return _eval_command(options)
        if options.command == "chat":
            return _chat_command(options)
        if options.command == "mcp":
            from agentkit.mcp.serve import serve_command

            return serve_command(options.target, options.http, options.token, options.name)
        if options.command == "run" and options.agent:
            _run_user_agent(options.agent, options.question)
            return 0
        if options.command == "demo":
            from agentkit.testing import ScriptedModel

            print("agentkit demo: a scripted model stands in for an LLM (no inference runs)\n")
            run_agent(ScriptedModel(demo_responder, model_key="demo-script"), options.question)
            return 0
        config = ak.PredictionConfig(
            temperature=0, seed=0, max_tokens=options.max_tokens, tool_choice=options.tool_choice
        )
        from agentkit.cli_chat import open_model

        loaded = open_model(options.model, options.url)
        try:
            print(f"agentkit run: {loaded.description}")
            if loaded.client is not None:
                print(f"model loaded in {loaded.load_seconds:.2f} s")
            print()
            run_agent(loaded.llm, options.question, max_rounds=options.max_rounds, config=config)
        finally:
            loaded.close()
        return 0
    except AgentkitError as error:
        print(f"agentkit: {error}", file=sys.stderr)
        return 2


def _add_tracing_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("tracing (OpenTelemetry)")
    group.add_argument("--otlp", metavar="URL", help="export spans over OTLP/HTTP to URL")
    group.add_argument("--trace-jsonl", metavar="PATH", help="append spans to a JSONL file")
    group.add_argument("--trace-console", action="store_true", help="print spans to stdout")
    group.add_argument(
        "--trace-content", action="store_true", help="record prompts and outputs in spans"
    )


@contextlib.contextmanager
def _tracing(options: argparse.Namespace) -> Iterator[None]:
    """Configure the OpenTelemetry SDK for the command when a tracing option asks for it."""
    wanted = any(getattr(options, name, None) for name in ("otlp", "trace_jsonl", "trace_console"))
    if not wanted:
        yield
        return
    from agentkit.tracing import configure

    handle = configure(
        console=options.trace_console,
        otlp_endpoint=options.otlp,
        jsonl_path=options.trace_jsonl,
        capture_content=options.trace_content,
        otlp_metrics=False,
        set_global=False,
    )
    try:
        yield
    finally:
        set_observer(None)
        handle.shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
