"""`DurableEvaluation`: an evaluation's cases on a DBOS queue, run by any number of workers.

Each run of a case (one per repeat) is a workflow on the evaluation's queue: a worker runs the
agent on it inside the case's own trace, scores it and records the `CaseResult` as the
workflow's output. The process that calls `evaluate()` enqueues the cases and merges the
recorded results into one `EvalReport`, as `agentkit.tracing.evaluation.evaluate` does. A
worker that dies mid-case leaves the case PENDING; a live worker takes it over and runs it
again from the start (a case is one step: the agent is user code, not recorded), and its one
recorded result is what the report counts.
"""

from __future__ import annotations

import functools
import os
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import anyio
from dbos import DBOS, SetWorkflowID
from opentelemetry import trace

from agentkit.progress import progress as progress_bar
from agentkit.tracing.evaluation.evaluate import (
    TRACER_NAME,
    Agent,
    Case,
    CaseLike,
    CaseRunner,
    as_cases,
    load_cases,
)
from agentkit.tracing.evaluation.report import CaseResult, EvalReport
from agentkit.tracing.evaluation.scorers import Scorer, scorer_name

from . import registry

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = ["DurableEvaluation"]


class DurableEvaluation:
    """An agent and its scorers, registered under a name in every worker (`Runtime.evaluation`)."""

    def __init__(
        self, runtime: Runtime, name: str, agent: Agent, scorers: Sequence[Scorer]
    ) -> None:
        self.runtime = runtime
        self.name = name
        self.scorers = list(scorers)
        self.runner = CaseRunner(
            agent,
            self.scorers,
            name,
            trace.get_tracer(TRACER_NAME),
            anyio.CapacityLimiter(1),  # unused: the queue limits runs per worker
        )

    def evaluate(
        self,
        cases: Iterable[CaseLike] | str | os.PathLike[str],
        *,
        repeats: int = 1,
        run_id: str | None = None,
        progress: bool | None = None,
    ) -> EvalReport:
        """Enqueue every case `repeats` times, wait for the workers, and merge the report.

        `run_id` names this evaluation run (default: a new one); calling again with the same
        id, after a crash of this process say, collects the same runs instead of new ones.
        Blocking: runs `aevaluate` on an event loop of its own.
        """
        run = functools.partial(
            self.aevaluate, cases, repeats=repeats, run_id=run_id, progress=progress
        )
        return anyio.run(run)

    async def aevaluate(
        self,
        cases: Iterable[CaseLike] | str | os.PathLike[str],
        *,
        repeats: int = 1,
        run_id: str | None = None,
        progress: bool | None = None,
    ) -> EvalReport:
        """`evaluate`, on the event loop."""
        self.runtime._check_launched()
        dataset = load_cases(cases) if isinstance(cases, str | os.PathLike) else as_cases(cases)
        key = run_id or uuid.uuid4().hex[:12]
        created = datetime.now(UTC).isoformat(timespec="seconds")
        started = time.perf_counter()
        queue = self.runtime._queue(self.name)
        handles = []
        for case in dataset:
            assert case.id is not None  # as_cases numbers the cases without one
            for repeat in range(repeats):
                with SetWorkflowID(f"agentkit:eval:{self.name}:{key}:{case.id}:{repeat}"):
                    handles.append(await queue.enqueue_async(eval_case, self.name, case, repeat))
        results: list[CaseResult] = []
        with progress_bar(f"eval {self.name}", len(handles), enabled=progress, unit="runs") as bar:
            for handle in handles:
                results.append(
                    await handle.get_result(polling_interval_sec=self.runtime.poll_interval)
                )
                bar.advance()
        return EvalReport(
            name=self.name,
            created_at=created,
            duration_seconds=time.perf_counter() - started,
            concurrency=self.runtime.concurrency(self.name),
            repeats=repeats,
            scorers=[scorer_name(scorer) for scorer in self.scorers],
            results=results,
        )


@DBOS.workflow(name="agentkit.eval.case")
async def eval_case(name: str, case: Case, repeat: int) -> CaseResult:
    """One run of one case, in its own trace, scored."""
    return await registry.evaluation(name).runner.run(case, repeat)
