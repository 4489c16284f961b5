"""Function-calling accuracy: agentkit's JSON mode against bare llama-cpp-python, on BFCL.

Run it from the repository root (the first run fetches `bfcl-eval` from PyPI, no dependencies,
into ~/.cache/agentkit/bench/bfcl; nothing fetched is committed):

    python bench/tool_accuracy.py                      # 40 cases per category, seed 0
    python bench/tool_accuracy.py --limit 3            # a quick look
    python bench/tool_accuracy.py --json out.json      # also save every case's output
    python bench/tool_accuracy.py --analyze out.json   # failure kinds of a saved run, no model
    python bench/tool_accuracy.py --tool-choice required   # agentkit must call (default auto)
    python bench/tool_accuracy.py --bare-names enum        # bare grammar: offered names only
    python bench/tool_accuracy.py --call-syntax trained    # the model family's own call format

Cases: a seeded sample of BFCL's `simple_python`, `multiple` and `parallel` categories (the
first turn of each). Each case runs two ways on the same model, greedy, max_tokens 128 by
default, one after the other (which goes first alternates per case, so load on the shared
machine hits both alike):

(1) agentkit  the local llama.cpp engine in JSON mode: BFCL's function docs become agentkit
              tools (`define_tool`, with the JSON Schema BFCL's OpenAI handler sends), and one
              act() round runs (the run is cancelled once round 0 is committed, so exactly one
              prediction is made with the tools offered and its calls run as act() runs them).
              The engine prompts and constrains in the model family's call syntax (SmolLM2:
              its trained prompt and `<tool_call>[...]`, see llama_cpp/call_syntax.py).
(2) bare      llama-cpp-python alone (`create_chat_completion` with a grammar) on the same chat
              with agentkit's JSON-object tool instructions (JSON_OBJECT, the prompt agentkit
              used for every model before per-family syntaxes; token counts compared per case)
              and user message, constrained by a plain schema:
              {"tool_calls": [{"name": <string>, "arguments": <any object>}, ...]}
              (with --bare-names enum, a name must be one of the offered tools).

Both outputs are read with agentkit's JSON-mode call reader and scored with BFCL's own AST
checker (imported from the fetched wheel). A cut or text-only output is an invalid case, as
BFCL's decoder rejects it. Printed: parse-valid %, accuracy per category and overall, decode
tokens/s (generated tokens after the first over the time from the first sample to the end),
their ratio, and a breakdown of failure kinds (see bfcl_scoring.FAILURE_KINDS) with two
diagnostics: how many outputs repeat an identical call, and how many would pass with identical
repeats removed. `--analyze` also shows a few outputs of each kind (--examples N).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import anyio.lowlevel
from bfcl_data import (
    CATEGORIES,
    DEFAULT_CACHE,
    Case,
    Checker,
    fetch,
    load_cases,
    load_checker,
    openai_tool,
    sample,
)
from bfcl_scoring import FAILURE_KINDS, Output, Score, kind_counts, score

import agentkit as ak
from agentkit.engines.base import MalformedToolCall, ToolCallRequested, ToolDefinition
from agentkit.engines.llama_cpp.call_syntax import JSON_OBJECT
from agentkit.engines.llama_cpp.json_mode import parse_tool_calls, tool_instructions
from agentkit.messages import UserMessage

PATHS = ("agentkit", "bare")
ToolChoice = Literal["auto", "required"]
FALLBACK_MODEL = Path("/tmp/smol/SmolLM2-135M-Instruct.Q4_1.gguf")


def plain_schema(names: list[str] | None = None) -> dict[str, Any]:
    """The bare path's schema: a list of calls, any name (or one of `names`), any arguments."""
    name: dict[str, Any] = {"type": "string"} if names is None else {"enum": names}
    return {
        "type": "object",
        "properties": {
            "tool_calls": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {"name": name, "arguments": {"type": "object"}},
                    "required": ["name", "arguments"],
                },
            }
        },
        "required": ["tool_calls"],
    }


@dataclass(slots=True)
class Run:
    """One path's result on one case."""

    path: str
    case_id: str
    category: str
    text: str  # the raw output (agentkit: the calls as JSON, then any unparsed text)
    calls: list[tuple[str, Any]]
    complete: bool
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    decode_seconds: float  # from the first sampled token to the end
    seconds: float  # the whole prediction (agentkit: the act() call)
    tool_errors: list[str]  # agentkit: calls act() rejected (arguments, unknown tool)
    score: Score | None = None

    @property
    def decode_tokens(self) -> int:
        """Tokens generated after the first, i.e. in `decode_seconds`."""
        return max(0, self.completion_tokens - 1)


def default_model() -> Path:
    """agentkit's default model once it is SmolLM2, else the SmolLM2 copy in /tmp/smol."""
    from agentkit.engines.llama_cpp.models import default_model_path

    try:
        path = default_model_path(progress=False)
    except ak.AgentkitError:
        path = None
    if path is not None and "smollm2" in path.name.lower():
        return path
    if FALLBACK_MODEL.exists():
        return FALLBACK_MODEL
    raise SystemExit(
        f"agentkit's default model is not SmolLM2 yet and {FALLBACK_MODEL} is missing; "
        "pass --model PATH"
    )


def agentkit_tools(case: Case) -> list[ak.Tool[..., Any]]:
    """BFCL's function docs as agentkit tools; calling one returns "ok"."""

    def ok(**_: Any) -> str:
        return "ok"

    return [ak.define_tool(*openai_tool(function), ok) for function in case.functions]


def system_text(case: Case) -> str:
    """The system text agentkit's JSON-object syntax puts before a chat with these tools."""
    definitions = [ToolDefinition(*openai_tool(function)) for function in case.functions]
    return tool_instructions(definitions, None, JSON_OBJECT)


def read_calls(text: str) -> tuple[list[tuple[str, Any]], bool]:
    """(complete calls, whether all the text parsed) with agentkit's JSON-mode reader."""
    calls: list[tuple[str, Any]] = []
    complete = True
    for event in parse_tool_calls(text):
        if isinstance(event, ToolCallRequested):
            calls.append((event.call.name, event.call.arguments))
        elif isinstance(event, MalformedToolCall):
            complete = False
    return calls, complete


class AgentkitPath:
    """One act() round on the local engine in JSON mode."""

    def __init__(
        self,
        client: ak.Client,
        model_path: Path,
        max_tokens: int,
        tool_choice: ToolChoice,
        call_syntax: Literal["agentkit", "trained"],
    ) -> None:
        load = ak.LoadConfig(tool_call_syntax=call_syntax)
        self.model = client.llm.model(str(model_path), config=load)
        self.config = ak.PredictionConfig(
            temperature=0.0, max_tokens=max_tokens, tool_choice=tool_choice
        )

    def run(self, case: Case) -> Run:
        chat = ak.Chat.from_dict(case.messages)
        token = ak.CancelToken()

        async def end_after_first_round(_: int) -> None:
            token.cancel()  # scheduled on this loop: the checkpoint below delivers it
            await anyio.lowlevel.checkpoint()

        started = time.perf_counter()
        try:
            result = self.model.act(
                chat,
                agentkit_tools(case),
                config=self.config,
                on_round_end=end_after_first_round,
                cancel_token=token,
            )
        except ak.ActCancelled as cancelled:
            if cancelled.result is None:
                raise
            result = cancelled.result
        seconds = time.perf_counter() - started
        record = result.round_records[0]
        prediction = record.prediction
        calls = [(call.name, call.arguments) for call in prediction.tool_calls]
        # act() answers each unparseable part of a call list with a user message.
        malformed = any(isinstance(m, UserMessage) for m in result.messages)
        shown = json.dumps({"tool_calls": [{"name": n, "arguments": a} for n, a in calls]})
        text = prediction.content if not calls else f"{shown}\n{prediction.content}".strip()
        ttft = prediction.time_to_first_token_seconds or 0.0
        return Run(
            path="agentkit",
            case_id=case.id,
            category=case.category,
            text=text,
            calls=calls,
            complete=not malformed,
            finish_reason=prediction.finish_reason,
            prompt_tokens=prediction.usage.prompt_tokens,
            completion_tokens=prediction.usage.completion_tokens,
            decode_seconds=max(0.0, prediction.duration_seconds - ttft),
            seconds=seconds,
            tool_errors=[c.error for c in record.tool_calls if c.error is not None],
        )


class BarePath:
    """llama-cpp-python's chat completion with a plain JSON grammar."""

    def __init__(self, model_path: Path, context_length: int, max_tokens: int, names: str) -> None:
        from llama_cpp import Llama

        # As agentkit's engine loads it (engine._new_llama), so only the decoding differs.
        self.llama = Llama(
            model_path=str(model_path),
            n_ctx=context_length,
            n_threads=os.cpu_count() or 1,
            seed=0,
            verbose=False,
        )
        self.grammars: dict[tuple[str, ...], Any] = {}
        self.names = names
        self.max_tokens = max_tokens

    def grammar(self, case: Case) -> Any:
        """The plain grammar; with names="enum", call names limited to the offered tools."""
        from llama_cpp.llama_grammar import LlamaGrammar

        key = tuple(openai_tool(f)[0] for f in case.functions) if self.names == "enum" else ()
        if key not in self.grammars:
            schema = plain_schema(list(key) if key else None)
            self.grammars[key] = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
        return self.grammars[key]

    def run(self, case: Case) -> Run:
        from llama_cpp import LogitsProcessorList

        messages = [{"role": "system", "content": system_text(case)}, *case.messages]
        samples: list[float] = []

        def clock(_: Any, scores: Any) -> Any:  # called once per sampled token
            samples.append(time.perf_counter())
            return scores

        started = time.perf_counter()
        response: Any = self.llama.create_chat_completion(
            messages=messages,  # type: ignore[arg-type]
            grammar=self.grammar(case),
            temperature=0.0,
            repeat_penalty=1.0,
            max_tokens=self.max_tokens,
            logits_processor=LogitsProcessorList([clock]),
        )
        seconds = time.perf_counter() - started
        choice = response["choices"][0]
        text = choice["message"]["content"] or ""
        calls, complete = read_calls(text)
        return Run(
            path="bare",
            case_id=case.id,
            category=case.category,
            text=text,
            calls=calls,
            complete=complete,
            finish_reason=choice["finish_reason"] or "",
            prompt_tokens=response["usage"]["prompt_tokens"],
            completion_tokens=response["usage"]["completion_tokens"],
            decode_seconds=samples[-1] - samples[0] if len(samples) > 1 else 0.0,
            seconds=seconds,
            tool_errors=[],
        )


def run_all(
    cases: Sequence[Case],
    runners: dict[str, Callable[[Case], Run]],
    checker: Checker,
) -> list[Run]:
    runs: list[Run] = []
    for index, case in enumerate(cases):
        order = list(runners) if index % 2 == 0 else list(reversed(runners))
        line = []
        for path in order:
            run = runners[path](case)
            run.score = score(checker, case, Output(run.calls, run.complete, run.finish_reason))
            runs.append(run)
            line.append(f"{path} {run.score.kind} ({run.completion_tokens} tok)")
        print(f"[{index + 1}/{len(cases)}] {case.id}: " + "; ".join(sorted(line)), flush=True)
    return runs


def report(runs: Sequence[Run], categories: Sequence[str]) -> None:
    paths = [p for p in PATHS if any(r.path == p for r in runs)]
    by_path = {p: [r for r in runs if r.path == p] for p in paths}
    print()
    header = f"{'':24}" + "".join(f"{p:>16}" for p in paths)
    print(header)

    def row(label: str, values: Sequence[str]) -> None:
        print(f"{label:24}" + "".join(f"{v:>16}" for v in values))

    def percent(selected: Sequence[Run], test: Callable[[Run], bool]) -> str:
        if not selected:
            return "-"
        hits = sum(1 for r in selected if test(r))
        return f"{100 * hits / len(selected):.1f}% {hits}/{len(selected)}".rjust(16)

    def valid(run: Run) -> bool:
        return run.score is not None and run.score.valid

    row(
        "parse-valid",
        [percent(by_path[p], lambda r: bool(r.score and r.score.parse_valid)) for p in paths],
    )
    for category in categories:
        row(
            f"accuracy {category}",
            [percent([r for r in by_path[p] if r.category == category], valid) for p in paths],
        )
    row("accuracy overall", [percent(by_path[p], valid) for p in paths])
    row(
        "  if repeats removed",
        [
            percent(by_path[p], lambda r: bool(r.score and r.score.valid_deduplicated))
            for p in paths
        ],
    )
    rates = {p: decode_rate(by_path[p]) for p in paths}
    row("decode tokens/s", [f"{rates[p]:.1f}" for p in paths])
    row(
        "mean tokens per case",
        [
            f"{sum(r.completion_tokens for r in by_path[p]) / max(1, len(by_path[p])):.1f}"
            for p in paths
        ],
    )
    if "agentkit" in rates and "bare" in rates and rates["bare"] > 0:
        print(f"decode rate agentkit/bare: {rates['agentkit'] / rates['bare']:.2f}")
    if "agentkit" in by_path and "bare" in by_path:
        pairs = zip(by_path["agentkit"], by_path["bare"], strict=True)
        same = sum(1 for a, b in pairs if a.prompt_tokens == b.prompt_tokens)
        print(f"same prompt token count on both paths: {same}/{len(by_path['agentkit'])} cases")
    rejected = sum(1 for r in by_path.get("agentkit", []) if r.tool_errors)
    if "agentkit" in by_path:
        print(f"agentkit cases with a call act() rejected: {rejected}")
    print_failure_kinds(runs)


def print_failure_kinds(runs: Sequence[Run]) -> None:
    paths = [p for p in PATHS if any(r.path == p for r in runs)]
    print()
    print(f"{'failure kinds':24}" + "".join(f"{p:>16}" for p in paths))
    counts = {p: kind_counts(r.score.kind for r in runs if r.path == p and r.score) for p in paths}
    for kind in FAILURE_KINDS:
        print(f"  {kind:22}" + "".join(f"{counts[p][kind]:>16}" for p in paths))
    for label, test in (
        ("repeat a call", lambda r: bool(r.score and r.score.repeated)),
        ("hit max_tokens", lambda r: r.finish_reason == "length"),
    ):
        print(
            f"  {label:22}"
            + "".join(f"{sum(1 for r in runs if r.path == p and test(r)):>16}" for p in paths)
        )


def print_examples(runs: Sequence[Run], per_kind: int, width: int = 300) -> None:
    """Up to `per_kind` outputs of each path and failure kind, clipped to `width` characters."""
    for path in PATHS:
        for kind in FAILURE_KINDS[1:]:
            chosen = [r for r in runs if r.path == path and r.score and r.score.kind == kind]
            for run in chosen[:per_kind]:
                assert run.score is not None
                text = run.text.replace("\n", "\\n")
                clipped = text if len(text) <= width else text[:width] + "..."
                print(f"\n[{path} {kind}] {run.case_id} ({run.score.error_type}): {clipped}")


def decode_rate(runs: Sequence[Run]) -> float:
    timed = [r for r in runs if r.decode_tokens > 0 and r.decode_seconds > 0]
    seconds = sum(r.decode_seconds for r in timed)
    return sum(r.decode_tokens for r in timed) / seconds if seconds else 0.0


def save(path: Path, runs: Sequence[Run], settings: dict[str, Any]) -> None:
    cases = [asdict(run) for run in runs]
    path.write_text(json.dumps({"settings": settings, "runs": cases}, indent=1, default=str))


def load(path: Path) -> tuple[list[Run], dict[str, Any]]:
    data = json.loads(path.read_text())
    runs = []
    for item in data["runs"]:
        item["calls"] = [tuple(call) for call in item["calls"]]
        item["score"] = Score(**item["score"]) if item["score"] else None
        runs.append(Run(**item))
    return runs, data["settings"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a GGUF file (default: SmolLM2-135M)")
    parser.add_argument("--limit", type=int, default=40, help="cases per category (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--max-tokens", type=int, default=128, help="default 128")
    parser.add_argument(
        "--tool-choice",
        choices=("auto", "required"),
        default="auto",
        help="agentkit's tool_choice (default auto, as act() runs; the bare grammar always calls)",
    )
    parser.add_argument(
        "--call-syntax",
        choices=("agentkit", "trained"),
        default="agentkit",
        help="the local engine's LoadConfig.tool_call_syntax (default agentkit)",
    )
    parser.add_argument(
        "--bare-names",
        choices=("string", "enum"),
        default="string",
        help="the bare grammar's call names: any string (default) or the offered tools' names",
    )
    parser.add_argument("--categories", default=",".join(CATEGORIES))
    parser.add_argument("--paths", default=",".join(PATHS), help="agentkit,bare (default both)")
    parser.add_argument("--json", type=Path, help="save every case's output here")
    parser.add_argument("--analyze", type=Path, help="report on a saved --json file; no model")
    parser.add_argument(
        "--examples", type=int, default=2, help="with --analyze: outputs shown per failure kind"
    )
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where BFCL goes")
    args = parser.parse_args(argv)

    if args.analyze is not None:
        runs, settings = load(args.analyze)
        print(f"settings: {settings}")
        report(runs, settings["categories"])
        print_examples(runs, args.examples)
        return 0

    categories = [c for c in args.categories.split(",") if c]
    paths = [p for p in args.paths.split(",") if p]
    unknown = set(paths) - set(PATHS)
    if unknown:
        parser.error(f"unknown paths: {sorted(unknown)}")
    tool_choice: ToolChoice = "required" if args.tool_choice == "required" else "auto"
    root = fetch(args.cache)
    checker = load_checker(root)
    cases = [
        case
        for category in categories
        for case in sample(load_cases(root, category), args.limit, args.seed)
    ]
    model_path = args.model or default_model()
    settings = {
        "model": str(model_path),
        "limit": args.limit,
        "seed": args.seed,
        "max_tokens": args.max_tokens,
        "tool_choice": args.tool_choice,
        "bare_names": args.bare_names,
        "call_syntax": args.call_syntax,
        "categories": categories,
        "cases": len(cases),
    }
    print(f"{len(cases)} cases; model {model_path}; max_tokens {args.max_tokens}", flush=True)
    with ak.Client() as client:
        # Loaded for the bare path too: it takes the engine's context length.
        agentkit_path = AgentkitPath(
            client, model_path, args.max_tokens, tool_choice, args.call_syntax
        )
        runners: dict[str, Callable[[Case], Run]] = {}
        if "agentkit" in paths:
            runners["agentkit"] = agentkit_path.run
        if "bare" in paths:
            context_length = agentkit_path.model.get_context_length()
            runners["bare"] = BarePath(
                model_path, context_length, args.max_tokens, args.bare_names
            ).run
        started = time.perf_counter()
        runs = run_all(cases, runners, checker)
        settings["wall_seconds"] = round(time.perf_counter() - started, 1)
    runs.sort(key=lambda r: (PATHS.index(r.path), cases.index(_case(cases, r))))
    report(runs, categories)
    print(f"\nwall time {settings['wall_seconds']} s")
    if args.json is not None:
        save(args.json, runs, settings)
        print(f"saved {args.json}")
    return 0


def _case(cases: Sequence[Case], run: Run) -> Case:
    return next(c for c in cases if c.id == run.case_id)


if __name__ == "__main__":
    sys.exit(main())
