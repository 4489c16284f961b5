"""Tracing of act() runs with OpenTelemetry, and traced evaluations.

    import agentkit.tracing
    agentkit.tracing.configure(otlp_endpoint="http://127.0.0.1:6006")   # or instrument(...)

Spans follow the GenAI semantic conventions; see `agentkit.tracing.spans`. Record and replay
predictions with `RecordingEngine` / `ReplayEngine` (`agentkit.tracing.replay`).
"""

from agentkit.tracing import scorers
from agentkit.tracing.compare import Comparison, compare
from agentkit.tracing.evaluate import Case, Outcome, evaluate, evaluate_async, load_cases
from agentkit.tracing.replay import (
    AsyncReplayModel,
    RecordingEngine,
    ReplayEngine,
    ReplayMissError,
    ReplayModel,
)
from agentkit.tracing.report import CaseResult, EvalReport
from agentkit.tracing.scorers import Score
from agentkit.tracing.setup import TracingHandle, configure, instrument
from agentkit.tracing.spans import OtelObserver

__all__ = [
    "AsyncReplayModel",
    "Case",
    "CaseResult",
    "Comparison",
    "EvalReport",
    "OtelObserver",
    "Outcome",
    "RecordingEngine",
    "ReplayEngine",
    "ReplayMissError",
    "ReplayModel",
    "Score",
    "TracingHandle",
    "compare",
    "configure",
    "evaluate",
    "evaluate_async",
    "instrument",
    "load_cases",
    "scorers",
]
