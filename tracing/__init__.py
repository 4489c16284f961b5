"""Tracing of act() runs with OpenTelemetry, and traced evaluations.

    import agentkit.tracing
    agentkit.tracing.configure(otlp_endpoint="http://127.0.0.1:6006")   # or instrument(...)

Spans follow the GenAI semantic conventions; see `agentkit.tracing.spans`.
"""

from agentkit.tracing.setup import TracingHandle, configure, instrument
from agentkit.tracing.spans import OtelObserver

__all__ = ["OtelObserver", "TracingHandle", "configure", "instrument"]
