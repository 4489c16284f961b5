"""Tracing of act() runs with OpenTelemetry, traced evaluations, and record/replay.

Three concerns, a sub-package each: `otel` (GenAI spans and metrics, `configure`, exporters),
`evaluation` (cases, `evaluate`, scorers, reports, compare) and `replay` (record predictions to
JSONL, replay them without inference). Everything public is re-exported here.

    import agentkit.tracing
    agentkit.tracing.configure(otlp_endpoint="http://127.0.0.1:6006")   # or instrument(...)

Spans follow the GenAI semantic conventions; see `agentkit.tracing.otel.spans`.
"""

from agentkit.tracing.evaluation import scorers
from agentkit.tracing.evaluation.compare import Comparison, compare
from agentkit.tracing.evaluation.evaluate import Case, Outcome, evaluate, evaluate_async, load_cases
from agentkit.tracing.evaluation.report import CaseResult, EvalReport
from agentkit.tracing.evaluation.scorers import Score
from agentkit.tracing.otel.setup import TracingHandle, configure, instrument
from agentkit.tracing.otel.spans import OtelObserver
from agentkit.tracing.replay import (
    AsyncReplayModel,
    RecordingEngine,
    ReplayEngine,
    ReplayMissError,
    ReplayModel,
)

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
