"""Traced evaluation runs: a dataset of cases, an agent, scorers, and a report.

    from agentkit.tracing.evaluation.evaluate import evaluate, load_cases
    from agentkit.tracing.evaluation.scorers import contains, tool_called

    report = evaluate(
        load_cases("arithmetic.jsonl"),
        lambda case: model.act(case.input, [calculator]),
        [contains(), tool_called("calculator")],
        concurrency=4,
    )
    report.print_table()
    report.to_html("report.html")

Each run of a case (one per repeat) is one OpenTelemetry trace: a root span `eval_case {id}`
started in an empty context, so spans the agent makes (act() runs) become its children. Its
trace id goes into the report; it is "" when no OpenTelemetry SDK is configured.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeAlias, TypeVar

import anyio
import anyio.to_thread
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agentkit.callbacks import first_parameter_is, is_async_callable
from agentkit.chat import Chat
from agentkit.errors import ActError, AgentkitError, ConfigurationError, describe_validation_errors
from agentkit.progress import progress as progress_bar
from agentkit.results import ActResult, PredictionResult, ToolCallRecord, Usage
from agentkit.tracing.evaluation.report import CaseResult, EvalReport
from agentkit.tracing.evaluation.scorers import (
    Score,
    Scorer,
    safe_score,
    safe_score_async,
    scorer_name,
)

__all__ = [
    "Agent",
    "AgentOutput",
    "Case",
    "CaseLike",
    "DatasetError",
    "Outcome",
    "as_cases",
    "evaluate",
    "evaluate_async",
    "load_cases",
]

if TYPE_CHECKING:
    from agentkit.durable import Runtime as DurableRuntime

TRACER_NAME = "agentkit.evaluate"

P = ParamSpec("P")
R = TypeVar("R")


class DatasetError(AgentkitError, ValueError):
    """A dataset cannot be loaded; the message names the file and line at fault."""


class Case(BaseModel):
    """One evaluation case: the input the agent gets and what a good answer looks like.

    `input` is a prompt or a list of OpenAI-style chat messages; `expected` is free-form (the
    scorers that need it say how they read it). `id` defaults to the case's index.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str | None = None
    input: str | list[dict[str, Any]]
    expected: Any = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("input")
    @classmethod
    def _input_is_a_chat(cls, value: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
        if isinstance(value, list):
            Chat.from_dict(value)  # ChatFormatError (a ValueError) names the message at fault
        return value

    def chat(self) -> Chat:
        """The input as a `Chat` (a prompt becomes one user message)."""
        return Chat.from_history(self.input)


CaseLike: TypeAlias = "Case | dict[str, Any] | str"


def load_cases(path: str | os.PathLike[str]) -> list[Case]:
    """Cases from a JSONL file, one JSON object per line (blank lines are skipped).

    Raises `DatasetError` naming the file and line of the first bad line or duplicate id.
    """
    where = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{where}: cannot read the dataset: {error}") from error
    cases: list[Case] = []
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as error:
            raise DatasetError(f"{where}:{number}: invalid JSON: {error}") from None
        case = _validated(data, f"{where}:{number}")
        case = _with_id(case, len(cases))
        assert case.id is not None
        if case.id in lines:
            raise DatasetError(
                f"{where}:{number}: duplicate case id {case.id!r} (first on line {lines[case.id]})"
            )
        lines[case.id] = number
        cases.append(case)
    return cases


def as_cases(items: Iterable[CaseLike]) -> list[Case]:
    """Cases from `Case`s, dicts of their fields, or prompts; each gets an id (its index)."""
    cases: list[Case] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        if isinstance(item, Case):
            case = item
        elif isinstance(item, str):
            case = Case(input=item)
        else:
            case = _validated(item, f"case {index}")
        case = _with_id(case, index)
        assert case.id is not None
        if case.id in seen:
            raise DatasetError(f"case {index}: duplicate case id {case.id!r}")
        seen.add(case.id)
        cases.append(case)
    return cases


def _validated(data: object, where: str) -> Case:
    if not isinstance(data, dict):
        raise DatasetError(f"{where}: a case must be a JSON object, got {type(data).__name__}")
    try:
        return Case.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(describe_validation_errors(error.errors()))
        raise DatasetError(f"{where}: {problems}") from None


def _with_id(case: Case, index: int) -> Case:
    return case if case.id is not None else case.model_copy(update={"id": str(index)})


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one run of the agent produced, as scorers see it.

    `result` is the `ActResult` when the agent returned one; `output` is the final text.
    """

    output: str
    result: ActResult | None = None
    parsed: Any = None
    rounds: int = 0
    usage: Usage = field(default_factory=Usage)
    latency_seconds: float = 0.0
    repeat: int = 0
    trace_id: str = ""

    @property
    def tool_calls(self) -> list[ToolCallRecord]:
        """Every tool call of every round, in order."""
        if self.result is None:
            return []
        return [call for record in self.result.round_records for call in record.tool_calls]


AgentOutput: TypeAlias = ActResult | PredictionResult | str
Agent: TypeAlias = Callable[[Any], AgentOutput | Awaitable[AgentOutput]]
"""`(case) -> ...` when its parameter is named `case` or annotated `Case`, else `(input) -> ...`;
sync (run in a worker thread) or async."""


async def evaluate_async(
    cases: Iterable[CaseLike] | str | os.PathLike[str],
    agent: Agent,
    scorers: Sequence[Scorer] = (),
    *,
    concurrency: int = 4,
    repeats: int = 1,
    name: str | None = None,
    progress: bool | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    workers: DurableRuntime | None = None,
) -> EvalReport:
    """Run the agent on every case `repeats` times, score each run, and report.

    Args:
        cases: `Case`s (or dicts of their fields, or prompts), or the path of a JSONL file.
        agent: `(case)` or `(input)` -> `ActResult` / `PredictionResult` / `str`, sync or
            async (see `Agent`). An agent that raises marks that run as errored.
        scorers: `(case, outcome) -> Score` callables (see `agentkit.tracing.scorers`); a run
            passes when it did not error and every score passed.
        concurrency: at most this many runs at once.
        repeats: runs per case.
        name: the report's name (default "eval").
        progress: a progress bar on stderr (`agentkit.progress`) with the failed and errored
            runs so far; None (default) shows it when stderr is a terminal.
        tracer_provider: where the `eval_case` spans go (default: the global provider).
        workers: an `agentkit.durable.Runtime` whose workers run the cases: the evaluation
            registered there as `name` (`runtime.evaluation(name, agent, scorers)` in every
            worker) gets the cases through its queue; `concurrency` is then its own, per worker.

    `evaluate` is the blocking form, with the same arguments.
    """
    if concurrency < 1 or repeats < 1:
        raise ConfigurationError(
            f"concurrency and repeats must be at least 1, got {concurrency} and {repeats}"
        )
    if workers is not None:
        return await _on_workers(workers, name, agent, scorers, cases, repeats, progress)
    dataset = load_cases(cases) if isinstance(cases, str | os.PathLike) else as_cases(cases)
    names = [scorer_name(scorer) for scorer in scorers]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigurationError(
            f"scorer names must be unique, {duplicates} repeat; pass name=... to tell them apart"
        )
    runner = CaseRunner(
        agent,
        list(scorers),
        name or "eval",
        trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider),
        anyio.CapacityLimiter(concurrency),
    )
    results: list[CaseResult | None] = [None] * (len(dataset) * repeats)
    failed = errors = 0
    created = datetime.now(UTC).isoformat(timespec="seconds")
    started = time.perf_counter()
    label = "eval" if name is None else f"eval {name}"
    with progress_bar(label, len(results), enabled=progress, unit="runs") as bar:

        async def run_one(slot: int, case: Case, repeat: int) -> None:
            nonlocal failed, errors
            async with runner.limiter:
                result = await runner.run(case, repeat)
            results[slot] = result
            errors += result.error is not None
            failed += result.error is None and not result.passed
            bar.advance()
            bar.note(f"failed {failed}, errors {errors}")

        async with anyio.create_task_group() as group:
            for index, case in enumerate(dataset):
                for repeat in range(repeats):
                    group.start_soon(run_one, index * repeats + repeat, case, repeat)
    return EvalReport(
        name=runner.name,
        created_at=created,
        duration_seconds=time.perf_counter() - started,
        concurrency=concurrency,
        repeats=repeats,
        scorers=names,
        results=[result for result in results if result is not None],
    )


async def _on_workers(
    workers: DurableRuntime,
    name: str | None,
    agent: Agent,
    scorers: Sequence[Scorer],
    cases: Iterable[CaseLike] | str | os.PathLike[str],
    repeats: int,
    progress: bool | None,
) -> EvalReport:
    from agentkit.durable import registry

    if name is None:
        raise ConfigurationError("evaluate(workers=...) needs the name the evaluation has there")
    evaluation = registry.evaluation(name)
    if evaluation.runtime is not workers:
        raise ConfigurationError(f"evaluation {name!r} is registered on another Runtime")
    if evaluation.runner.agent is not agent or evaluation.scorers != list(scorers):
        raise ConfigurationError(
            f"evaluation {name!r} is registered with another agent or other scorers; pass the "
            "ones given to runtime.evaluation(...)"
        )
    return await evaluation.aevaluate(cases, repeats=repeats, progress=progress)


def _blocking(function: Callable[P, Awaitable[R]], name: str) -> Callable[P, R]:
    """`function` as a blocking call (`anyio.run`), refused inside an event loop."""

    @functools.wraps(function)
    def blocking(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            anyio.get_current_task()
        except RuntimeError:  # not in an event loop: as it should be
            pass
        else:
            raise ConfigurationError(
                f"{name}() blocks and cannot run inside an event loop; "
                f"use await {function.__name__}()"
            )
        return anyio.run(functools.partial(function, *args, **kwargs))

    blocking.__name__ = blocking.__qualname__ = name
    blocking.__doc__ = (
        f"The blocking `{function.__name__}` (same arguments; see there).\n\n"
        f"From async code use `await {function.__name__}(...)`."
    )
    return blocking


evaluate = _blocking(evaluate_async, "evaluate")


class CaseRunner:
    """Runs one case once, inside its own trace, and scores it."""

    def __init__(
        self,
        agent: Agent,
        scorers: list[Scorer],
        name: str,
        tracer: trace.Tracer,
        limiter: anyio.CapacityLimiter,
    ) -> None:
        self.agent = agent
        self.scorers = scorers
        self.name = name
        self.tracer = tracer
        self.limiter = limiter
        self.wants_case = first_parameter_is(agent, "case", Case)
        self.agent_is_async = is_async_callable(agent)
        self.async_scorers = [is_async_callable(scorer) for scorer in scorers]

    async def run(self, case: Case, repeat: int) -> CaseResult:
        assert case.id is not None
        attributes: dict[str, AttributeValue] = {
            "agentkit.eval.name": self.name,
            "agentkit.eval.case_id": case.id,
            "agentkit.eval.repeat": repeat,
            "agentkit.eval.tags": list(case.tags),
        }
        span_name = f"eval_case {case.id}"
        with self.tracer.start_as_current_span(
            span_name, context=Context(), attributes=attributes
        ) as span:
            trace_id = _trace_id(span)
            started = time.perf_counter()
            try:
                outcome = _outcome_of(await self.call_agent(case))
            except Exception as error:
                latency = time.perf_counter() - started
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
                span.set_attribute("agentkit.eval.passed", False)
                return self.errored(case, repeat, error, latency, trace_id)
            latency = time.perf_counter() - started
            outcome = replace(outcome, latency_seconds=latency, repeat=repeat, trace_id=trace_id)
            scores = await self.score(case, outcome)
            passed = all(score.passed for score in scores)
            span.set_attribute("agentkit.eval.passed", passed)
            for score in scores:
                span.set_attribute(f"agentkit.eval.score.{score.name}", score.value)
        return CaseResult(
            case_id=case.id,
            repeat=repeat,
            input=_jsonable(case.input),
            output=outcome.output,
            expected=_jsonable(case.expected),
            tags=list(case.tags),
            scores=scores,
            passed=passed,
            rounds=outcome.rounds,
            prompt_tokens=outcome.usage.prompt_tokens,
            completion_tokens=outcome.usage.completion_tokens,
            latency_seconds=latency,
            trace_id=trace_id,
        )

    async def call_agent(self, case: Case) -> object:
        argument: object = case if self.wants_case else case.input
        if self.agent_is_async:
            value: object = self.agent(argument)
        else:
            value = await anyio.to_thread.run_sync(self.agent, argument)
        if inspect.isawaitable(value):  # an async agent, or a sync one handing back a coroutine
            value = await value
        return value

    async def score(self, case: Case, outcome: Outcome) -> list[Score]:
        scores: list[Score | None] = [None] * len(self.scorers)
        sync = [i for i, is_async in enumerate(self.async_scorers) if not is_async]
        if sync:  # one worker thread for them all: a sync scorer may block (a judge model)

            def run_sync() -> list[Score]:
                return [safe_score(self.scorers[i], case, outcome) for i in sync]

            for i, score in zip(sync, await anyio.to_thread.run_sync(run_sync), strict=True):
                scores[i] = score
        for i, is_async in enumerate(self.async_scorers):
            if is_async:
                scores[i] = await safe_score_async(self.scorers[i], case, outcome)
        return [score for score in scores if score is not None]

    def errored(
        self, case: Case, repeat: int, error: Exception, latency: float, trace_id: str
    ) -> CaseResult:
        assert case.id is not None
        partial = error.result if isinstance(error, ActError) else None
        usage = partial.usage if partial is not None else Usage()
        note = f"not scored: the agent raised {type(error).__name__}"
        return CaseResult(
            case_id=case.id,
            repeat=repeat,
            input=_jsonable(case.input),
            expected=_jsonable(case.expected),
            tags=list(case.tags),
            scores=[Score(scorer_name(s), 0.0, False, note) for s in self.scorers],
            passed=False,
            error=str(error) or type(error).__name__,
            error_type=type(error).__name__,
            rounds=partial.rounds if partial is not None else 0,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            latency_seconds=latency,
            trace_id=trace_id,
        )


def _outcome_of(value: object) -> Outcome:
    if isinstance(value, ActResult):
        output = value.final.text if value.final is not None else ""
        return Outcome(output, value, value.parsed, value.rounds, value.usage)
    if isinstance(value, PredictionResult):
        return Outcome(value.content, None, value.parsed, 1, value.usage)
    if isinstance(value, str):
        return Outcome(value)
    raise TypeError(
        f"the agent returned {type(value).__name__}; return an ActResult, a PredictionResult "
        "or a str"
    )


def _trace_id(span: Span) -> str:
    context = span.get_span_context()
    return trace.format_trace_id(context.trace_id) if context.is_valid else ""


def _jsonable(value: Any) -> Any:
    """The value as JSON data (anything JSON cannot hold becomes its str())."""
    return json.loads(json.dumps(value, default=str))
