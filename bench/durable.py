"""Durable runs (agentkit.durable on DBOS) against plain act(), interleaved in one process.

    python bench/durable.py                  # SQLite, Postgres (direct and queued), local engine
    python bench/durable.py --phase sqlite   # one phase
    python bench/durable.py --runs 400       # more scripted runs per phase

Targets (issue 13): a 5-round scripted run durable on SQLite costs <= 2 ms p50 per step more
than plain act(); the main job (the calculator agent on the local engine and the default model)
durable vs plain <= 1.05x wall time. The same figures are printed for Postgres.

A scripted run is 5 rounds: 4 with one tool call, then an answer; 9 steps (5 predictions and 4
tool calls) plus the workflow's own start and end; a 1-round durable run beside it gives a
step's cost without them (the difference over 8 steps). Workflows of 9 no-op steps on DBOS
alone run beside them: DBOS's own floor, through its async step API and in its cheapest form
(a sync workflow of sync steps, no thread hops), which is what agentkit's steps on SQLite use.
Each phase runs in a process of its own (DBOS is process-wide); within a phase plain and
durable runs alternate, so both see the same machine noise. Per step = (durable - plain) / 9,
paired run by run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "servers"))

from dbos import DBOS, SetWorkflowID

import agentkit as ak
from agentkit.durable import DurableLoop, Runtime
from agentkit.testing import AsyncScriptedModel, ScriptedModel, ToolCall

STEPS = 9
PHASES = ("sqlite", "postgres", "postgres-queued", "local")


def lookup(key: str) -> str:
    """Look a key up."""
    return f"value of {key}"


def five_rounds(chat: ak.Chat, index: int) -> object:
    return [ToolCall("lookup", {"key": f"k{index}"})] if index < 4 else "done"


async def _noop() -> int:
    return 0


def _sync_noop() -> int:
    return 0


@DBOS.workflow(name="bench.nine_noop_steps")
async def nine_noop_steps() -> int:
    """DBOS alone: an async workflow of 9 steps that do nothing (DBOS's async step API)."""
    for index in range(STEPS):
        await DBOS.run_step_async({"name": f"noop {index}"}, _noop)
    return STEPS


@DBOS.workflow(name="bench.nine_noop_steps_sync")
def nine_noop_steps_sync() -> int:
    """DBOS alone, its cheapest form: a sync workflow of 9 sync no-op steps (no thread hops)."""
    for index in range(STEPS):
        DBOS.run_step({"name": f"noop {index}"}, _sync_noop)
    return STEPS


def _bare_dbos(run_id: str, workflow: Callable[[], Any]) -> None:
    with SetWorkflowID(run_id):
        DBOS.start_workflow(workflow).get_result()


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def scripted_phase(database: str, queue: bool, runs: int) -> None:
    runtime = Runtime(database, queue=queue, poll_interval=0.05)
    durable = runtime.loop("five", ScriptedModel(five_rounds), [lookup], max_prediction_rounds=6)
    one_round = runtime.loop("one", ScriptedModel(["done"] * (runs + 10)), [lookup])
    async_durable = runtime.loop(
        "five-async", AsyncScriptedModel(five_rounds), [lookup], max_prediction_rounds=6
    )
    runtime.launch()
    plain_model = ScriptedModel(five_rounds)
    plain, recorded, bare, bare_sync, single = [], [], [], [], []
    try:
        for index in range(runs + 5):
            started = time.perf_counter()
            result = plain_model.act("Go", [lookup], max_prediction_rounds=6)
            middle = time.perf_counter()
            again = durable.act("Go", run_id=f"run-{index}")
            ended = time.perf_counter()
            _bare_dbos(f"bare-{index}", nine_noop_steps)
            bared_async = time.perf_counter()
            _bare_dbos(f"bare-sync-{index}", nine_noop_steps_sync)
            bared = time.perf_counter()
            assert one_round.act("Go", run_id=f"one-{index}").rounds == 1
            assert result.rounds == again.rounds == 5
            if index >= 5:  # warm-up
                plain.append(middle - started)
                recorded.append(ended - middle)
                bare.append(bared_async - ended)
                bare_sync.append(bared - bared_async)
                single.append(time.perf_counter() - bared)
        async_plain, async_recorded = asyncio.run(_async_series(async_durable, runs))
    finally:
        runtime.shutdown()
    for label, times in (("async", bare), ("sync", bare_sync)):
        print(
            f"  DBOS alone, {STEPS} no-op steps in a {label} workflow: p50 "
            f"{statistics.median(times) * 1000:.2f} ms "
            f"({statistics.median(times) / STEPS * 1000:.2f} ms a step with its start and end)"
        )
    _report("act()", plain, recorded)
    _report("await act()", async_plain, async_recorded)
    # A step's own cost, without the workflow's start and end: the 5-round run against a
    # 1-round one (1 step), both durable, 8 steps apart.
    marginal = (statistics.median(recorded) - statistics.median(single)) / (STEPS - 1) * 1000
    print(
        f"  durable 1-round run p50 {statistics.median(single) * 1000:.2f} ms: "
        f"a step beyond the first costs {marginal:.2f} ms (p50s)"
    )


async def _async_series(durable: DurableLoop, runs: int) -> tuple[list[float], list[float]]:
    plain_model = AsyncScriptedModel(five_rounds)
    plain, recorded = [], []
    for index in range(runs + 5):
        started = time.perf_counter()
        await plain_model.act("Go", [lookup], max_prediction_rounds=6)
        middle = time.perf_counter()
        await durable.aact("Go", run_id=f"async-{index}")
        if index >= 5:
            plain.append(middle - started)
            recorded.append(time.perf_counter() - middle)
    return plain, recorded


def _report(label: str, plain: list[float], recorded: list[float]) -> None:
    per_step = [(d - p) / STEPS * 1000 for d, p in zip(recorded, plain, strict=True)]
    print(
        f"  {label}: plain p50 {statistics.median(plain) * 1000:.2f} ms, "
        f"durable p50 {statistics.median(recorded) * 1000:.2f} ms "
        f"p99 {_percentile(recorded, 0.99) * 1000:.2f} ms; "
        f"added per step p50 {statistics.median(per_step):.2f} ms "
        f"p99 {_percentile(per_step, 0.99):.2f} ms ({len(plain)} runs, {STEPS} steps each)"
    )


def local_phase(database: str, runs: int) -> None:
    from agentkit.cli import INSTRUCTIONS
    from agentkit.tools import calculator

    model = ak.llm()
    config = ak.PredictionConfig(temperature=0, seed=0, max_tokens=64, tool_choice="required")
    options = {"max_prediction_rounds": 2, "config": config}
    runtime = Runtime(database)
    durable = runtime.loop("calculator", model, [calculator], **options)
    runtime.launch()

    def chat() -> ak.Chat:
        built = ak.Chat(INSTRUCTIONS)
        built.add_user_message("What is 12345 times 54321?")
        return built

    plain, recorded = [], []
    try:
        model.act(chat(), [calculator], **options)  # warm-up
        for index in range(runs):
            # Which goes first alternates: the second of a pair finds the prompt in the KV cache
            # just as the first left it, whichever it is.
            for first in (index % 2 == 0, index % 2 == 1):
                started = time.perf_counter()
                if first:
                    result = model.act(chat(), [calculator], **options)
                    assert result.final is not None
                    plain.append(time.perf_counter() - started)
                else:
                    again = durable.act(chat(), run_id=f"main-{index}")
                    assert again.final is not None
                    assert "670592745" in again.final.content.replace(",", "")
                    recorded.append(time.perf_counter() - started)
    finally:
        runtime.shutdown()
    ratio = statistics.median(recorded) / statistics.median(plain)
    print(
        f"  plain act() p50 {statistics.median(plain):.3f} s  durable p50 "
        f"{statistics.median(recorded):.3f} s  durable/plain {ratio:.3f}x ({runs} pairs)"
    )


def run_phase(phase: str, runs: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        if phase == "sqlite":
            scripted_phase(str(Path(folder, "runs.sqlite")), False, runs)
        elif phase == "local":
            local_phase(str(Path(folder, "runs.sqlite")), max(3, runs // 40))
        else:
            from postgres_server import running_postgres

            with running_postgres() as server:
                scripted_phase(server.dsn(), phase == "postgres-queued", runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=PHASES)
    parser.add_argument("--runs", type=int, default=200)
    options = parser.parse_args()
    if options.phase:
        run_phase(options.phase, options.runs)
        return
    for phase in PHASES:
        print(f"{phase}:", flush=True)
        command = [sys.executable, __file__, "--phase", phase, "--runs", str(options.runs)]
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
