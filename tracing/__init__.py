"""Tracing of act() runs with OpenTelemetry, and traced evaluations.

    import agentkit.tracing
    agentkit.tracing.configure(otlp_endpoint="http://127.0.0.1:6006")   # or instrument(...)

Spans follow the GenAI semantic conventions; see `agentkit.tracing.spans`. Record and replay
predictions with `RecordingEngine` / `ReplayEngine` (`agentkit.tracing.replay`).
"""

from agentkit.tracing.replay import (
    AsyncReplayModel,
    RecordingEngine,
    ReplayEngine,
    ReplayMissError,
    ReplayModel,
)
from agentkit.tracing.setup import TracingHandle, configure, instrument
from agentkit.tracing.spans import OtelObserver

__all__ = [
    "AsyncReplayModel",
    "OtelObserver",
    "RecordingEngine",
    "ReplayEngine",
    "ReplayMissError",
    "ReplayModel",
    "TracingHandle",
    "configure",
    "instrument",
]
