"""The ReAct loop behind `act()`.

A round is: predict -> validate calls -> run tools -> commit. The run keeps its own copy of the
history and never mutates the caller's chat; `on_message` receives each message as the round
that produced it is committed. A round is committed in one step, after its tools finish and
shielded from cancellation, so a chat built with `on_message=chat.append` never holds half a
round: an error or a cancel leaves it exactly as it was after the last complete round.

Semantics follow lmstudio-python: with `max_prediction_rounds=N` the N-th round is offered no
tools, and the loop ends after a round without tool calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from agentkit.approval import ApprovalPolicy, needs_approval
from agentkit.callbacks import fire
from agentkit.cancel import CancelToken
from agentkit.config import PredictionConfig
from agentkit.engines.base import Engine, PredictionRequest
from agentkit.errors import (
    ActCancelled,
    ConfigurationError,
    InvalidToolRequest,
    MalformedToolCallError,
    StructuredOutputError,
    ToolRetriesExceededError,
)
from agentkit.messages import AssistantMessage, Message, ToolCall, UserMessage
from agentkit.observe import RunInfo, RunTrace, get_observer
from agentkit.portal import on_portal_loop
from agentkit.prediction import PredictionCallbacks, RoundPrediction, run_prediction
from agentkit.results import ActResult, PredictionResult, RoundRecord, StopReason, Usage
from agentkit.steps import DIRECT, StepRunner
from agentkit.structured import OutputFormat, OutputInvalid
from agentkit.tool_round import (
    InvalidRequestHandler,
    ToolCallOutcome,
    message_for_invalid_request,
    run_tool_calls,
)
from agentkit.tools.tool import DEFAULT_RETRIES
from agentkit.tools.toolset import ToolLike, Toolset
from agentkit.untrusted import clean_text

if TYPE_CHECKING:
    from agentkit.engines.base import ToolDefinition
    from agentkit.memory.context import ContextPolicy

__all__ = ["ActCallbacks", "ActOptions", "run_act"]

# Failure counters are keyed by tool name; these keys cover failures that belong to no tool.
_UNKNOWN_TOOLS = "\0unknown tools"
_MALFORMED_OUTPUT = "\0malformed tool calls"
_FINAL_ANSWER = "\0final answer format"


@dataclass(frozen=True, slots=True)
class ActCallbacks:
    """The round-level callbacks of act(); streaming ones live in `PredictionCallbacks`."""

    on_message: Callable[[Message], Any] | None = None
    on_round_start: Callable[[int], Any] | None = None
    on_round_end: Callable[[int], Any] | None = None
    on_prediction_completed: Callable[[PredictionResult], Any] | None = None
    stream: PredictionCallbacks = field(default_factory=PredictionCallbacks)


@dataclass(frozen=True, slots=True)
class ActOptions:
    """act()'s keyword options, checked once."""

    max_prediction_rounds: int | None = None
    max_parallel_tool_calls: int | None = None
    config: PredictionConfig | None = None
    response_format: OutputFormat | None = None
    handle_invalid_tool_request: InvalidRequestHandler | None = None
    cancel_token: CancelToken | None = None
    context: ContextPolicy | None = None
    approval: ApprovalPolicy | None = None
    steps: StepRunner = DIRECT

    def __post_init__(self) -> None:
        if self.max_prediction_rounds is not None and self.max_prediction_rounds < 1:
            raise ConfigurationError(
                "max_prediction_rounds must be at least 1 (or None), "
                f"got {self.max_prediction_rounds}"
            )
        if self.max_parallel_tool_calls is not None and self.max_parallel_tool_calls < 1:
            raise ConfigurationError(
                "max_parallel_tool_calls must be at least 1 (or None for no limit), "
                f"got {self.max_parallel_tool_calls}"
            )


async def run_act(
    engine: Engine,
    identifier: str,
    model_name: str,
    history: Iterable[Message],
    tools: Iterable[ToolLike] | None,
    options: ActOptions,
    callbacks: ActCallbacks,
) -> ActResult:
    """Run the loop to its end; see `AsyncLLM.act` for the public contract."""
    toolset = Toolset(tools)
    info = RunInfo(
        model_name, engine.provider_name, toolset.definitions, options.max_prediction_rounds
    )
    trace = get_observer().start_run(info)
    run = _Run(engine, identifier, model_name, list(history), toolset, options, callbacks, trace)
    try:
        result = await _cancellable(run, options.cancel_token)
    except BaseException as error:
        trace.run_ended(run.snapshot(), error)
        raise
    trace.run_ended(result, None)
    return result


async def _cancellable(run: _Run, token: CancelToken | None) -> ActResult:
    if token is None:
        return await run.loop()
    with token.attach() as scope:
        result = await run.loop()
    if scope.cancelled_caught:
        raise ActCancelled("the act() run was cancelled through its CancelToken", run.result)
    return result


@dataclass(slots=True)
class _RoundOutput:
    """What a round commits, and whether the run stops after it."""

    messages: list[Message]
    stop: StopReason | None
    outcomes: list[ToolCallOutcome] = field(default_factory=list)
    parsed: Any = None
    held: tuple[ToolCall, ...] = ()  # calls waiting for approval


class _Run:
    """The state of one act() run."""

    def __init__(
        self,
        engine: Engine,
        identifier: str,
        model_name: str,
        history: list[Message],
        toolset: Toolset,
        options: ActOptions,
        callbacks: ActCallbacks,
        trace: RunTrace,
    ) -> None:
        self.trace = trace
        self.engine = engine
        self.identifier = identifier
        self.model_name = model_name
        self.history = history
        self.toolset = toolset
        self.options = options
        self.callbacks = callbacks
        self.failures: dict[str, int] = {}
        self.started = time.perf_counter()
        self.result = ActResult(
            rounds=0, total_time_seconds=0.0, final=None, stop_reason=None, usage=Usage()
        )

    async def loop(self) -> ActResult:
        limit = self.options.max_prediction_rounds
        round_index = 0
        while self.result.stop_reason is None:
            # Scripted or cached predictions may never yield to the loop: give a pending
            # cancellation its chance before each round.
            await anyio.lowlevel.checkpoint_if_cancelled()
            final_round = limit is not None and round_index == limit - 1
            await self.round(round_index, final_round)
            round_index += 1
        return self.result

    async def round(self, index: int, final_round: bool) -> None:
        self.trace.round_started(index, final_round)
        try:
            record = await self._round(index, final_round)
        except BaseException as error:
            self.trace.round_ended(None, error)
            raise
        self.trace.round_ended(record, None)

    async def _round(self, index: int, final_round: bool) -> RoundRecord:
        callbacks = self.callbacks
        await fire(callbacks.on_round_start, index)
        output_format = self.options.response_format
        tools = () if final_round else self.toolset.definitions
        context = self.options.context
        request = PredictionRequest(
            messages=tuple(self.history) if context is None else await self.fit(context, tools),
            tools=tools,
            config=self.options.config,
            response_format=None if output_format is None else output_format.spec,
            round_index=index,
        )
        predicted = await self.predict(request)
        self.result.usage += predicted.result.usage
        await fire(callbacks.on_prediction_completed, predicted.result)
        tools_started = time.perf_counter()
        if predicted.result.tool_calls or predicted.malformed:
            output = await self.tool_round(predicted, final_round)
        else:
            output = self.answer_round(predicted.result, final_round)
        record = RoundRecord(
            index,
            predicted.result,
            tuple(outcome.record() for outcome in output.outcomes),
            time.perf_counter() - tools_started if output.outcomes else 0.0,
        )
        if self.callbacks.on_message is None:
            await self.commit(record, output)  # nothing in it can suspend: nothing to shield
        else:
            with anyio.CancelScope(shield=True):
                await self.commit(record, output)
        await fire(callbacks.on_round_end, index)
        return record

    async def fit(
        self, context: ContextPolicy, tools: tuple[ToolDefinition, ...]
    ) -> tuple[Message, ...]:
        """What the context policy sends of the history this round (the history stays whole)."""
        from agentkit.memory.context_tokens import ContextModel  # loaded by runs that use it

        model = ContextModel(self.engine, self.identifier, self.model_name, tools)
        return tuple(await context.apply(self.history, model))

    async def predict(self, request: PredictionRequest) -> RoundPrediction:
        self.trace.prediction_started(request)

        async def prediction() -> RoundPrediction:
            return await run_prediction(
                self.engine, self.identifier, self.model_name, request, self.callbacks.stream
            )

        try:
            predicted = await self.options.steps.run(
                f"prediction {request.round_index}", prediction
            )
        except BaseException as error:
            self.trace.prediction_ended(None, error)
            raise
        self.trace.prediction_ended(predicted.result, None)
        return predicted

    async def tool_round(self, predicted: RoundPrediction, final_round: bool) -> _RoundOutput:
        handler = self.options.handle_invalid_tool_request
        outcomes = await run_tool_calls(
            predicted.result.tool_calls,
            self.toolset,
            final_round=final_round,
            max_parallel=self.options.max_parallel_tool_calls,
            handler=handler,
            trace=self.trace,
            # A fast sync tool may run inline on agentkit's own loop, unless a cancel token
            # was given: it could not cut an inline tool short.
            inline=self.options.cancel_token is None and on_portal_loop(),
            hold=None if final_round else self.needs_approval,
            steps=self.options.steps,
        )
        assistant = predicted.result.message
        feedback: list[Message] = []
        for malformed in predicted.malformed:
            error = MalformedToolCallError(malformed.raw, malformed.reason)
            feedback.append(
                UserMessage(content=await message_for_invalid_request(error, None, handler))
            )
            assistant = _with_raw_text(assistant, malformed.raw)
            if not final_round:
                self.count_failure(_MALFORMED_OUTPUT, DEFAULT_RETRIES, error)
        if not final_round:
            for outcome in outcomes:
                self.count_outcome(outcome)
        held = tuple(o.call for o in outcomes if o.held)
        ran = [o for o in outcomes if not o.held]
        messages: list[Message] = [assistant, *(o.message() for o in ran), *feedback]
        stop: StopReason | None = "max_rounds" if final_round else None
        return _RoundOutput(messages, "approval_required" if held else stop, ran, held=held)

    def needs_approval(self, call: ToolCall) -> bool:
        return needs_approval(call, self.toolset, self.options.approval)

    def answer_round(self, prediction: PredictionResult, final_round: bool) -> _RoundOutput:
        message = prediction.message
        output_format = self.options.response_format
        if output_format is None:
            return _RoundOutput([message], "answered")
        try:
            parsed = output_format.parse(message.content)
        except OutputInvalid as invalid:
            attempts = self.failures.get(_FINAL_ANSWER, 0) + 1
            self.failures[_FINAL_ANSWER] = attempts
            if final_round or attempts > DEFAULT_RETRIES:
                raise StructuredOutputError(
                    f"the model's answer does not match response_format ({invalid}); "
                    f"{attempts} attempt(s) in a row failed. Check that the model can follow "
                    "the schema, or raise max_prediction_rounds",
                    message.content,
                    self.snapshot(),
                ) from invalid
            retry = UserMessage(
                content=f"Your answer does not match the required JSON schema: {invalid}. "
                "Reply with only a JSON object that matches it."
            )
            return _RoundOutput([message, retry], None)
        return _RoundOutput([message], "answered", parsed=parsed)

    def count_outcome(self, outcome: ToolCallOutcome) -> None:
        if outcome.tool is None:
            key, budget = _UNKNOWN_TOOLS, DEFAULT_RETRIES
        else:
            key, budget = outcome.tool.name, outcome.tool.retries
        if outcome.error is None:
            self.failures.pop(key, None)
        else:
            self.count_failure(key, budget, outcome.error)

    def count_failure(self, key: str, budget: int, error: InvalidToolRequest) -> None:
        failures = self.failures.get(key, 0) + 1
        self.failures[key] = failures
        if failures > budget:
            tool_name = None if key.startswith("\0") else key
            raise ToolRetriesExceededError(tool_name, failures, error, self.snapshot())

    async def commit(self, record: RoundRecord, output: _RoundOutput) -> None:
        result = self.result
        self.history += output.messages
        result.messages += output.messages
        result.round_records.append(record)
        result.rounds += 1
        result.final = next(m for m in output.messages if isinstance(m, AssistantMessage))
        result.parsed = output.parsed
        result.pending_approvals = output.held
        result.total_time_seconds = time.perf_counter() - self.started
        for message in output.messages:
            await fire(self.callbacks.on_message, message)
        result.stop_reason = output.stop

    def snapshot(self) -> ActResult:
        """The result so far, for errors that end the run."""
        self.result.total_time_seconds = time.perf_counter() - self.started
        return self.result


def _with_raw_text(message: AssistantMessage, raw: str) -> AssistantMessage:
    """Keep malformed tool-call text in the assistant message so no output is lost."""
    if raw in message.content:
        return message
    content = f"{message.content}\n{raw}" if message.content else raw
    return message.model_copy(update={"content": clean_text(content)})  # copies skip validation
