"""The events of an Agent run, in the order they happen: what `agent.stream()` yields.

Each event is a small frozen value with a `type` string, so web adapters can switch on it and
serialise it. A run yields `RunStarted` first and ends with exactly one of `RunFinished`
(completed, or paused for approval: see `result.stop_reason`) or `RunFailed`. `RunStarted`
comes once the run is admitted (its user message committed, or its decisions accepted): a run
refused before that (calls wait for approval, a bad decision) yields `RunFailed` alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, TypeAlias

from agentkit.messages import ToolCall, ToolResultMessage
from agentkit.results import ActResult

__all__ = [
    "AgentEvent",
    "ApprovalRequested",
    "ReasoningDelta",
    "RoundFinished",
    "RunFailed",
    "RunFinished",
    "RunStarted",
    "TextDelta",
    "ToolCallStarted",
    "ToolResult",
]


@dataclass(frozen=True, slots=True)
class RunStarted:
    """The run began; `resumed` when it continues a paused run."""

    type: ClassVar[str] = "run_started"
    session_id: str
    resumed: bool = False


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer text of round `round`."""

    type: ClassVar[str] = "text_delta"
    text: str
    round: int


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's reasoning ("thinking") in round `round`."""

    type: ClassVar[str] = "reasoning_delta"
    text: str
    round: int


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    """A tool call the model requested is about to run."""

    type: ClassVar[str] = "tool_call_started"
    call: ToolCall
    round: int


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A tool call's result (or its error, `message.is_error`), as committed."""

    type: ClassVar[str] = "tool_result"
    message: ToolResultMessage
    round: int


@dataclass(frozen=True, slots=True)
class ApprovalRequested:
    """The run pauses: these calls wait for a person's decision (`agent.resume`)."""

    type: ClassVar[str] = "approval_requested"
    calls: tuple[ToolCall, ...]


@dataclass(frozen=True, slots=True)
class RoundFinished:
    """Round `round` is committed and persisted; the session is now at `revision`."""

    type: ClassVar[str] = "round_finished"
    round: int
    revision: int


@dataclass(frozen=True, slots=True)
class RunFinished:
    """The run ended: answered, out of rounds, or paused for approval (`result.stop_reason`)."""

    type: ClassVar[str] = "run_finished"
    result: ActResult


@dataclass(frozen=True, slots=True)
class RunFailed:
    """The run ended with an error; the store holds the rounds committed before it."""

    type: ClassVar[str] = "run_failed"
    error: BaseException


AgentEvent: TypeAlias = (
    RunStarted
    | TextDelta
    | ReasoningDelta
    | ToolCallStarted
    | ToolResult
    | ApprovalRequested
    | RoundFinished
    | RunFinished
    | RunFailed
)
