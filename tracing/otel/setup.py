"""Turning tracing on: `instrument()` picks providers and content capture for act() runs;
`configure()` also sets up the OpenTelemetry SDK with exporters in one call, for scripts and the
CLI.

    import agentkit.tracing as tracing
    handle = tracing.configure(console=True, jsonl_path="spans.jsonl")
    ...  # act() runs are traced
    handle.shutdown()   # flush and stop exporters
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agentkit.observe import set_observer
from agentkit.tracing.otel.spans import OtelObserver, Redactor

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.trace import TracerProvider

__all__ = ["TracingHandle", "configure", "instrument"]


def instrument(
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    *,
    capture_content: bool = False,
    redact: Redactor | None = None,
) -> OtelObserver:
    """Trace act() runs with these providers (default: the global ones).

    Message content (prompts, completions, tool arguments and results) stays out of spans
    unless `capture_content=True`; then `redact` is applied to every piece first.
    """
    observer = OtelObserver(
        tracer_provider, meter_provider, capture_content=capture_content, redact=redact
    )
    set_observer(observer)
    return observer


@dataclass
class TracingHandle:
    """The SDK providers `configure()` installed."""

    tracer_provider: SdkTracerProvider
    meter_provider: SdkMeterProvider

    def force_flush(self) -> None:
        """Export everything pending now."""
        self.tracer_provider.force_flush()
        self.meter_provider.force_flush()

    def shutdown(self) -> None:
        """Flush and stop the exporters."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def configure(
    *,
    console: bool = False,
    otlp_endpoint: str | None = None,
    jsonl_path: str | os.PathLike[str] | None = None,
    service_name: str = "agentkit",
    capture_content: bool = False,
    redact: Redactor | None = None,
    otlp_metrics: bool = True,
    set_global: bool = True,
) -> TracingHandle:
    """Set up the OpenTelemetry SDK with the chosen exporters and trace act() runs with it.

    Args:
        console: print spans to stdout.
        otlp_endpoint: an OTLP/HTTP collector base URL (e.g. "http://127.0.0.1:6006" for
            Phoenix); spans go to `{endpoint}/v1/traces`, metrics to `{endpoint}/v1/metrics`.
            Needs `pip install opentelemetry-exporter-otlp-proto-http`.
        jsonl_path: append one JSON object per finished span to this file.
        otlp_metrics: also export metrics over OTLP (off for backends that take only traces,
            such as Phoenix).
        set_global: also install the providers as OpenTelemetry's global ones.
    """
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    resource = Resource.create({"service.name": service_name})
    tracer_provider = SdkTracerProvider(resource=resource)
    readers: list[MetricReader] = []
    if console:
        tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    if jsonl_path is not None:
        from agentkit.tracing.otel.jsonl_export import JsonlSpanExporter

        tracer_provider.add_span_processor(SimpleSpanProcessor(JsonlSpanExporter(jsonl_path)))
    if otlp_endpoint is not None:
        try:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as error:
            from agentkit.errors import ConfigurationError

            raise ConfigurationError(
                "otlp_endpoint needs the OTLP exporter: "
                "pip install opentelemetry-exporter-otlp-proto-http"
            ) from error
        base = otlp_endpoint.rstrip("/")
        tracer_provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces"))
        )
        if otlp_metrics:
            exporter = OTLPMetricExporter(endpoint=f"{base}/v1/metrics")
            readers.append(PeriodicExportingMetricReader(exporter))
    meter_provider = SdkMeterProvider(resource=resource, metric_readers=readers)
    if set_global:
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
    instrument(tracer_provider, meter_provider, capture_content=capture_content, redact=redact)
    return TracingHandle(tracer_provider, meter_provider)
