"""The observation seam of act(): what a tracer sees of a run, and nothing more.

act() reports its run, rounds, predictions and tool calls to a `RunTrace`; the base class
ignores everything, so a run without tracing pays one method call per event. The default
observer (`agentkit.tracing`) turns them into OpenTelemetry spans and metrics, and gives out the
base `RunTrace` when no OpenTelemetry SDK is configured.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from agentkit.engines.base import PredictionRequest, ToolDefinition
    from agentkit.results import ActResult, PredictionResult, RoundRecord
    from agentkit.tool_round import ToolCallOutcome

__all__ = ["ActObserver", "RunInfo", "RunTrace", "get_observer", "set_observer"]


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What is known when a run starts."""

    model: str
    provider: str
    tools: Sequence[ToolDefinition]
    max_prediction_rounds: int | None


class RunTrace:
    """Receives one run's events; this base class ignores them."""

    __slots__ = ()

    def round_started(self, index: int, final: bool) -> None:
        """A round begins."""

    def round_ended(self, record: RoundRecord | None, error: BaseException | None) -> None:
        """A round was committed (record) or ended by an error (record is None)."""

    def prediction_started(self, request: PredictionRequest) -> None:
        """The round's prediction begins."""

    def prediction_ended(
        self, result: PredictionResult | None, error: BaseException | None
    ) -> None:
        """The round's prediction finished or failed."""

    @contextlib.contextmanager
    def tool_call(self, outcome: ToolCallOutcome) -> Iterator[None]:
        """Wraps a running tool; `outcome` is filled in when the block exits."""
        yield

    def tool_call_rejected(self, outcome: ToolCallOutcome) -> None:
        """A call that never ran (unknown tool, invalid arguments, final round)."""

    def run_ended(self, result: ActResult, error: BaseException | None) -> None:
        """The run finished (error None) or ended early."""


class ActObserver(Protocol):
    """Creates a `RunTrace` per act() run."""

    def start_run(self, info: RunInfo) -> RunTrace:
        """Begin observing one run."""
        ...


NO_TRACE = RunTrace()

_observer: ActObserver | None = None


def set_observer(observer: ActObserver | None) -> None:
    """Use this observer for act() runs from now on (None: the default, OpenTelemetry)."""
    global _observer
    _observer = observer


def get_observer() -> ActObserver:
    """The observer act() runs report to."""
    global _observer
    if _observer is None:
        from agentkit.tracing.otel.spans import OtelObserver

        _observer = OtelObserver()
    return _observer
