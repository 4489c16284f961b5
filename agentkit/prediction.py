"""Running one prediction: turn an engine's event stream into a `PredictionResult`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentkit.callbacks import fire
from agentkit.chat import AssistantMessage, ToolCall
from agentkit.engines.base import (
    Engine,
    FirstToken,
    MalformedToolCall,
    PredictionDone,
    PredictionEvent,
    PredictionRequest,
    PromptProgress,
    TextDelta,
    ToolCallRequested,
)
from agentkit.errors import EngineError
from agentkit.results import PredictionFragment, PredictionResult, PredictionStats, Usage

__all__ = ["PredictionBuilder", "PredictionCallbacks", "RoundPrediction", "run_prediction"]


@dataclass(frozen=True, slots=True)
class PredictionCallbacks:
    """The streaming callbacks of act(); each gets the round index as its last argument."""

    on_first_token: Callable[[int], Any] | None = None
    on_prediction_fragment: Callable[[PredictionFragment, int], Any] | None = None
    on_prompt_processing_progress: Callable[[float, int], Any] | None = None


@dataclass(slots=True)
class RoundPrediction:
    """A finished prediction plus the tool-call output that could not be parsed."""

    result: PredictionResult
    malformed: list[MalformedToolCall] = field(default_factory=list)


class PredictionBuilder:
    """Accumulates prediction events; `add` says what a caller may want to report."""

    __slots__ = (
        "_calls",
        "_content",
        "_done",
        "_first_token_at",
        "_reasoning",
        "_started",
        "malformed",
        "model_name",
    )

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self._started = time.perf_counter()
        self._first_token_at: float | None = None
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._calls: list[ToolCall] = []
        self._done: PredictionDone | None = None
        self.malformed: list[MalformedToolCall] = []

    def add(self, event: PredictionEvent) -> tuple[bool, PredictionFragment | None]:
        """Record an event; returns (is this the first token, the text fragment if any)."""
        first = False
        if isinstance(event, TextDelta | FirstToken) and self._first_token_at is None:
            self._first_token_at = time.perf_counter()
            first = True
        if isinstance(event, TextDelta):
            (self._reasoning if event.reasoning else self._content).append(event.text)
            return first, PredictionFragment(event.text, event.reasoning)
        if isinstance(event, ToolCallRequested):
            self._calls.append(event.call)
        elif isinstance(event, PredictionDone):
            self._done = event
        elif isinstance(event, MalformedToolCall):
            self.malformed.append(event)
        return first, None

    def finish(self, cancelled: bool = False) -> PredictionResult:
        """The result; a stream that ended without `PredictionDone` is an engine failure."""
        done = self._done
        if done is not None:
            usage, reason = done.usage, "cancelled" if cancelled else done.finish_reason
        elif cancelled:
            usage, reason = Usage(), "cancelled"
        else:
            raise EngineError(
                f"the prediction stream for {self.model_name!r} ended without a result "
                "(an engine bug or a dropped connection); retry the call"
            )
        message = AssistantMessage(
            content="".join(self._content),
            tool_calls=tuple(self._calls),
            reasoning="".join(self._reasoning) if self._reasoning else None,
        )
        started, ended = self._started, time.perf_counter()
        first = self._first_token_at
        time_to_first_token = None if first is None else first - started
        return PredictionResult(
            message=message,
            usage=usage,
            finish_reason=reason,
            model=self.model_name,
            time_to_first_token_seconds=time_to_first_token,
            duration_seconds=ended - started,
            stats=_stats(
                done,
                usage,
                time_to_first_token,
                None if first is None else ended - first,
            ),
        )


def _stats(
    done: PredictionDone | None,
    usage: Usage,
    time_to_first_token: float | None,
    generation_seconds: float | None,
) -> PredictionStats:
    """The engine's own figures, completed from agentkit's clock where it reported none."""
    if done is None:  # cancelled before the engine finished: nothing was counted
        return PredictionStats(time_to_first_token_seconds=time_to_first_token)
    engine = done.stats or PredictionStats(usage.prompt_tokens, usage.completion_tokens)
    generated = engine.generated_tokens
    rate = engine.tokens_per_second
    if rate is not None:  # the engine's own rate: its generation time goes with it
        generation_seconds = engine.generation_seconds
        if generation_seconds is None and generated is not None and rate > 0:
            generation_seconds = generated / rate
    elif engine.generation_seconds is not None:
        generation_seconds = engine.generation_seconds
    if rate is None and generated is not None and generated >= 2 and generation_seconds:
        rate = generated / generation_seconds
    return PredictionStats(
        prompt_tokens=engine.prompt_tokens,
        generated_tokens=generated,
        time_to_first_token_seconds=(
            engine.time_to_first_token_seconds
            if engine.time_to_first_token_seconds is not None
            else time_to_first_token
        ),
        generation_seconds=generation_seconds,
        tokens_per_second=rate,
        peak_memory_bytes=engine.peak_memory_bytes,
    )


async def run_prediction(
    engine: Engine,
    identifier: str,
    model_name: str,
    request: PredictionRequest,
    callbacks: PredictionCallbacks,
) -> RoundPrediction:
    """Run one prediction, forwarding stream events to the callbacks as they arrive."""
    builder = PredictionBuilder(model_name)
    round_index = request.round_index
    stream = engine.predict(identifier, request)
    try:
        async for event in stream:
            first, fragment = builder.add(event)
            if first:
                await fire(callbacks.on_first_token, round_index)
            if fragment is not None:
                await fire(callbacks.on_prediction_fragment, fragment, round_index)
            elif isinstance(event, PromptProgress):
                await fire(callbacks.on_prompt_processing_progress, event.fraction, round_index)
    finally:
        await stream.aclose()
    return RoundPrediction(builder.finish(), builder.malformed)
