"""What act() and respond() return: usage, per-round records and the run's result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from agentkit.messages import AssistantMessage, Message, ToolCall

__all__ = [
    "ActResult",
    "PredictionFragment",
    "PredictionResult",
    "PredictionStats",
    "RoundRecord",
    "StopReason",
    "ToolCallRecord",
    "Usage",
]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one prediction, or summed over several."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )


@dataclass(frozen=True, slots=True)
class PredictionFragment:
    """A piece of streamed model output; `reasoning` marks thinking text."""

    content: str
    reasoning: bool = False


@dataclass(frozen=True, slots=True)
class PredictionStats:
    """How one prediction went; a figure the engine cannot know is None.

    Counts and peak memory come from the engine. Timings are agentkit's clock on the caller's
    side unless the engine reports its own (LM Studio reports the server's time to first token
    and tokens per second).
    """

    prompt_tokens: int | None = None
    generated_tokens: int | None = None
    time_to_first_token_seconds: float | None = None
    generation_seconds: float | None = None
    """From the first generated token to the end of the prediction."""
    tokens_per_second: float | None = None
    """`generated_tokens / generation_seconds`; None with fewer than two generated tokens (one
    token has no rate)."""
    peak_memory_bytes: int | None = None
    """Local engine only: the model's weights plus the KV cache the prediction's tokens occupy
    at its end, as llama.cpp sizes them (why this measure: `InstanceWorker.peak_memory` in
    `agentkit.engines.llama_cpp.worker`)."""


@dataclass(frozen=True, slots=True)
class PredictionResult:
    """One finished prediction (a respond() or complete() call, or one act() round)."""

    message: AssistantMessage
    usage: Usage
    finish_reason: str
    model: str
    time_to_first_token_seconds: float | None
    duration_seconds: float
    parsed: Any = None
    stats: PredictionStats = field(default_factory=PredictionStats)
    """Token counts, time to first token, tokens per second and (local engine) peak memory."""

    @property
    def content(self) -> str:
        """The response text."""
        return self.message.content

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The tool calls the model requested."""
        return self.message.tool_calls


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """One tool call of a round: what was asked, what came back, and how long it took."""

    call: ToolCall
    result: str
    error: str | None
    duration_seconds: float

    @property
    def ok(self) -> bool:
        """True when the call ran and returned normally."""
        return self.error is None


@dataclass(frozen=True, slots=True)
class RoundRecord:
    """One round of an act() run."""

    index: int
    prediction: PredictionResult
    tool_calls: tuple[ToolCallRecord, ...]
    tools_seconds: float

    @property
    def usage(self) -> Usage:
        """This round's token usage."""
        return self.prediction.usage


StopReason: TypeAlias = Literal["answered", "max_rounds", "approval_required"]


@dataclass(slots=True)
class ActResult:
    """The outcome of an act() run.

    `final` is the last assistant message; `parsed` is the validated structured answer when a
    `response_format` was given. `messages` are the messages the run added, in order (the same
    ones `on_message` received).
    """

    rounds: int
    total_time_seconds: float
    final: AssistantMessage | None
    stop_reason: StopReason | None
    usage: Usage
    round_records: list[RoundRecord] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    parsed: Any = None
    pending_approvals: tuple[ToolCall, ...] = ()
