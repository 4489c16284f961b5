"""Running one round's tool calls: validate, run in parallel, report problems to the model.

Every problem with a call (unknown tool, arguments that are not a JSON object or fail
validation, a tool that raised or timed out, a call on the final round) becomes an
`InvalidToolRequest`, which `handle_invalid_tool_request` may reword or turn into an exception.
Results come back in request order whatever order the calls finish in.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import anyio

from agentkit import untrusted
from agentkit.cancel import is_cancellation
from agentkit.errors import (
    InvalidToolRequest,
    ToolArgumentsError,
    ToolCallOnFinalRoundError,
    ToolExecutionError,
    ToolTimeoutError,
    UnknownToolError,
)
from agentkit.messages import ToolCall, ToolResultMessage
from agentkit.observe import NO_TRACE, RunTrace
from agentkit.results import ToolCallRecord
from agentkit.steps import DIRECT, StepRunner
from agentkit.tools.signature import BoundArguments
from agentkit.tools.tool import Tool, render_result
from agentkit.tools.toolset import Toolset

__all__ = [
    "InvalidRequestHandler",
    "ToolCallOutcome",
    "message_for_invalid_request",
    "run_tool_calls",
]

InvalidRequestHandler: TypeAlias = Callable[
    [InvalidToolRequest, ToolCall | None], "str | Awaitable[str | None] | None"
]


@dataclass(slots=True)
class ToolCallOutcome:
    """What one call produced: the message for the model and, on failure, the error."""

    call: ToolCall
    tool: Tool[..., Any] | None
    content: str = ""
    error: InvalidToolRequest | None = None
    duration_seconds: float = 0.0
    executed: bool = False
    held: bool = False

    def message(self) -> ToolResultMessage:
        """The tool result message to commit to the chat."""
        return ToolResultMessage(
            tool_call_id=self.call.id,
            name=self.call.name,
            content=self.content,
            is_error=self.error is not None,
        )

    def record(self) -> ToolCallRecord:
        """The call as it appears in the round's record."""
        error = None if self.error is None else self.error.kind
        return ToolCallRecord(self.call, self.content, error, self.duration_seconds)


async def run_tool_calls(
    calls: Sequence[ToolCall],
    toolset: Toolset,
    *,
    final_round: bool,
    max_parallel: int | None,
    handler: InvalidRequestHandler | None,
    trace: RunTrace = NO_TRACE,
    inline: bool = False,
    hold: Callable[[ToolCall], bool] | None = None,
    steps: StepRunner = DIRECT,
) -> list[ToolCallOutcome]:
    """Run the calls (sequential tools alone, the rest concurrently); outcomes in call order.

    `inline` allows a fast sync tool to run in this thread when it is its batch's one call
    (see `Tool`): the caller sets it when nothing else is lost by that (the sync API, no
    cancel token). A valid call for which `hold(call)` is true is not run but marked `held`
    (it waits for approval). Each execution is one of `steps`, named after its call.
    """
    outcomes = [ToolCallOutcome(call, toolset.get(call.name)) for call in calls]
    runnable: list[tuple[ToolCallOutcome, BoundArguments]] = []
    for outcome in outcomes:
        bound = _prepare(outcome, toolset, final_round)
        if bound is not None and hold is not None and hold(outcome.call):
            outcome.held = True
        elif bound is not None:
            runnable.append((outcome, bound))
    limiter = anyio.CapacityLimiter(max_parallel) if max_parallel else None
    for batch in _batches(runnable):
        if len(batch) == 1:
            await _execute(*batch[0], limiter, trace, inline, steps)
            continue
        async with anyio.create_task_group() as group:
            for outcome, bound in batch:
                group.start_soon(_execute, outcome, bound, limiter, trace, False, steps)
    for outcome in outcomes:
        if not outcome.executed and not outcome.held:
            trace.tool_call_rejected(outcome)
    for outcome in outcomes:
        if outcome.error is not None:
            outcome.content = await message_for_invalid_request(
                outcome.error, outcome.call, handler
            )
    return outcomes


def _prepare(
    outcome: ToolCallOutcome, toolset: Toolset, final_round: bool
) -> BoundArguments | None:
    """Validate one call; on a problem, record it on the outcome and return None."""
    call, tool = outcome.call, outcome.tool
    try:
        if final_round:
            raise ToolCallOnFinalRoundError(call.name)
        if tool is None:
            raise UnknownToolError(call.name, toolset.names)
        arguments = call.arguments
        if isinstance(arguments, str):
            raise ToolArgumentsError(call.name, [_why_not_an_object(arguments)])
        return tool.bind(arguments)
    except InvalidToolRequest as error:
        outcome.error = error
        return None


def _why_not_an_object(text: str) -> str:
    try:
        value = untrusted.loads(text, what="the arguments")
    except untrusted.UntrustedDataError as error:
        return str(error)
    return f"the arguments must be a JSON object, got {type(value).__name__}"


def _batches(
    runnable: list[tuple[ToolCallOutcome, BoundArguments]],
) -> list[list[tuple[ToolCallOutcome, BoundArguments]]]:
    """Consecutive parallel-safe calls share a batch; a sequential tool's call is alone."""
    batches: list[list[tuple[ToolCallOutcome, BoundArguments]]] = []
    for item in runnable:
        tool = item[0].tool
        if tool is not None and tool.sequential:
            batches.append([item])
        elif batches and not _is_sequential(batches[-1]):
            batches[-1].append(item)
        else:
            batches.append([item])
    return batches


def _is_sequential(batch: list[tuple[ToolCallOutcome, BoundArguments]]) -> bool:
    tool = batch[0][0].tool
    return tool is not None and tool.sequential


async def _execute(
    outcome: ToolCallOutcome,
    bound: BoundArguments,
    limiter: anyio.CapacityLimiter | None,
    trace: RunTrace,
    inline: bool,
    steps: StepRunner,
) -> None:
    tool = outcome.tool
    assert tool is not None  # only validated calls get here
    outcome.executed = True

    async def execution() -> _Execution:
        return await _execute_now(tool, bound, inline)

    async def execute() -> None:
        with trace.tool_call(outcome):  # the span ends with the outcome filled in
            done = await steps.run(f"tool {outcome.call.id}", execution)
            outcome.content, outcome.error, outcome.duration_seconds = done

    if limiter is not None:
        async with limiter:
            await execute()
    else:
        await execute()


_Execution: TypeAlias = tuple[str, InvalidToolRequest | None, float]
"""What running a call produced: the result's text, or the error; and how long it took."""


async def _execute_now(tool: Tool[..., Any], bound: BoundArguments, allowed: bool) -> _Execution:
    inline = tool.runs_inline(allowed)
    started = time.perf_counter()
    try:
        if tool.timeout is None:
            value = await tool.run(bound, inline=inline)
        else:
            with anyio.move_on_after(tool.timeout) as scope:
                value = await tool.run(bound, inline=inline)
            if scope.cancelled_caught:
                error = ToolTimeoutError(tool.name, tool.timeout)
                return "", error, time.perf_counter() - started
        return render_result(value), None, time.perf_counter() - started
    except InvalidToolRequest as error:
        return "", error, time.perf_counter() - started
    except BaseException as error:
        # Whatever a tool raises (KeyboardInterrupt, SystemExit, its own CancelledError...) is
        # the tool's failure; only the loop cancelling this task ends the run.
        if is_cancellation(error) or (inline and _is_ctrl_c(error)):
            raise
        failure = ToolExecutionError(tool.name, error)
        failure.__cause__ = error
        return "", failure, time.perf_counter() - started


def _is_ctrl_c(error: BaseException) -> bool:
    """A KeyboardInterrupt in the main thread, where Python raises Ctrl-C: it ends the run."""
    return isinstance(error, KeyboardInterrupt) and (
        threading.current_thread() is threading.main_thread()
    )


async def message_for_invalid_request(
    error: InvalidToolRequest, call: ToolCall | None, handler: InvalidRequestHandler | None
) -> str:
    """The text the model gets for a failed call: the handler's, or the error's own."""
    if handler is not None:
        replacement = handler(error, call)
        if inspect.isawaitable(replacement):
            replacement = await replacement
        if replacement is not None:
            return str(replacement)
    return str(error)
