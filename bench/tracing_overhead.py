"""Cost of tracing on act() runs with a scripted model (no inference, no sleeps).

Measures, interleaved over rounds in one process (this machine's speed drifts):
  off      act() with an observer that never traces (the floor);
  no SDK   the default observer with only the OpenTelemetry API present (the usual case when
           the user configured nothing) - target: at most 10% over "off";
  SDK      an SDK TracerProvider and MeterProvider recording everything in memory (for scale).

Run: python bench/tracing_overhead.py [--rounds N]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentkit.observe import NO_TRACE, RunInfo, RunTrace, set_observer
from agentkit.testing import ScriptedModel, ToolCall
from agentkit.tracing import OtelObserver


def multiply(a: float, b: float) -> float:
    """Multiply two numbers."""
    return a * b


class Off:
    """An observer that never traces."""

    def start_run(self, info: RunInfo) -> RunTrace:
        return NO_TRACE


def batch(model: ScriptedModel, runs: int) -> float:
    """Mean seconds per act() run over a batch."""
    started = time.perf_counter()
    for _ in range(runs):
        model.act("What is 2 times 3?", [multiply])
    return (time.perf_counter() - started) / runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--runs", type=int, default=200, help="act() runs per batch")
    options = parser.parse_args()

    model = ScriptedModel(
        lambda chat, i: [ToolCall("multiply", {"a": 2, "b": 3})] if i == 0 else "6"
    )
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    observers: dict[str, Callable[[], object]] = {
        "off": Off,
        "no SDK": OtelObserver,
        "SDK": lambda: OtelObserver(tracer_provider, meter_provider),
    }
    samples: dict[str, list[float]] = {name: [] for name in observers}
    batch(model, 50)  # warm up
    for round_index in range(options.rounds):
        order = list(observers)
        if round_index % 2:
            order.reverse()
        for name in order:
            set_observer(observers[name]())  # type: ignore[arg-type]
            gc.collect()
            samples[name].append(batch(model, options.runs))
            model.engine.requests.clear()
            exporter.clear()
    set_observer(None)

    off = statistics.median(samples["off"])
    print(
        f"act() with one tool call, scripted model; {options.rounds} rounds x {options.runs} runs"
    )
    print(f"{'observer':<8} {'µs per run':>11} {'vs off':>8}")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:<8} {median * 1e6:>11.1f} {median / off:>8.3f}")
    ratio = statistics.median(samples["no SDK"]) / off
    verdict = "met" if ratio <= 1.10 else "MISSED"
    print(f"no SDK / off = {ratio:.3f}; target <= 1.10: {verdict}")


if __name__ == "__main__":
    main()
