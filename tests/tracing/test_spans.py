"""OpenTelemetry spans and metrics of act() runs (SDK in-memory exporter and reader)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import agentkit as ak
from agentkit.observe import NO_TRACE, RunInfo, set_observer
from agentkit.testing import Malformed, Reply, ScriptedModel, ToolCall
from agentkit.tracing import OtelObserver, configure, instrument
from agentkit.tracing.otel.jsonl_export import read_spans


@dataclass
class Telemetry:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    tracer_provider: TracerProvider

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def named(self, prefix: str) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.name.startswith(prefix)]

    def metric_points(self, name: str) -> list[Any]:
        data = self.metrics.get_metrics_data()
        assert data is not None
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


def make_telemetry(**options: Any) -> Telemetry:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    instrument(tracer_provider, MeterProvider(metric_readers=[reader]), **options)
    return Telemetry(exporter, reader, tracer_provider)


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    yield make_telemetry()
    set_observer(None)


def multiply(a: float, b: float) -> float:
    """Multiply."""
    return a * b


def calls_then_answer(chat: ak.Chat, index: int) -> str | list[ToolCall]:
    return [ToolCall("multiply", {"a": 2, "b": 3}, id="call_1")] if index == 0 else "6"


def test_span_tree_and_gen_ai_attributes(telemetry: Telemetry) -> None:
    result = ScriptedModel(calls_then_answer).act("2*3?", [multiply], config={"temperature": 0.5})
    [run] = telemetry.named("invoke_agent")
    rounds = sorted(telemetry.named("round "), key=lambda s: s.attributes["agentkit.round.index"])  # type: ignore[index]
    chats = telemetry.named("chat ")
    [tool] = telemetry.named("execute_tool ")
    assert run.parent is None
    assert [r.parent.span_id for r in rounds] == [run.context.span_id] * 2  # type: ignore[union-attr]
    assert {c.parent.span_id for c in chats} == {r.context.span_id for r in rounds}  # type: ignore[union-attr]
    assert tool.parent is not None and tool.parent.span_id == rounds[0].context.span_id
    assert run.attributes is not None and run.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert run.attributes["gen_ai.provider.name"] == "agentkit.testing"
    assert run.attributes["agentkit.rounds"] == 2
    assert run.attributes["gen_ai.usage.input_tokens"] == result.usage.prompt_tokens
    assert (
        rounds[0].attributes is not None and rounds[0].attributes["agentkit.round.tool_calls"] == 1
    )
    first_chat = min(chats, key=lambda s: s.start_time or 0)
    attributes = first_chat.attributes or {}
    assert first_chat.name == "chat scripted-model"
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "scripted-model"
    assert attributes["gen_ai.request.temperature"] == 0.5
    assert attributes["gen_ai.usage.input_tokens"] == result.round_records[0].usage.prompt_tokens
    assert (
        attributes["gen_ai.usage.output_tokens"] == result.round_records[0].usage.completion_tokens
    )
    assert attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert "gen_ai.server.time_to_first_token" in attributes
    tool_attributes = tool.attributes or {}
    assert tool.name == "execute_tool multiply"
    assert tool_attributes["gen_ai.tool.name"] == "multiply"
    assert tool_attributes["gen_ai.tool.call.id"] == "call_1"
    assert tool_attributes["agentkit.tool.outcome"] == "ok"
    assert (
        "gen_ai.input.messages" not in attributes
        and "gen_ai.tool.call.result" not in tool_attributes
    )


def failing(x: int) -> int:
    """Fails."""
    raise ValueError("bad x")


def test_failing_and_invalid_tool_calls_are_recorded(telemetry: Telemetry) -> None:
    calls = [ToolCall("failing", {"x": 1}), ToolCall("nope"), ToolCall("failing", {"x": "word"})]
    ScriptedModel(lambda c, i: calls if i == 0 else "done").act("go", [failing])
    spans = {s.attributes["agentkit.tool.outcome"]: s for s in telemetry.named("execute_tool")}  # type: ignore[index]
    assert set(spans) == {"tool_error", "unknown_tool", "invalid_arguments"}
    assert spans["tool_error"].attributes["error.type"] == "ValueError"  # type: ignore[index]
    assert spans["unknown_tool"].attributes["error.type"] == "unknown_tool"  # type: ignore[index]
    assert all(s.status.status_code is StatusCode.ERROR for s in spans.values())


def test_final_round_calls_are_rejected_in_spans(telemetry: Telemetry) -> None:
    ScriptedModel([[ToolCall("multiply", {"a": 1, "b": 1})]]).act(
        "go", [multiply], max_prediction_rounds=1
    )
    [round_span] = telemetry.named("round ")
    [tool] = telemetry.named("execute_tool")
    assert (
        round_span.attributes is not None and round_span.attributes["agentkit.round.final"] is True
    )
    assert tool.attributes is not None and tool.attributes["agentkit.tool.outcome"] == "final_round"


def test_cancelled_run_ends_its_spans_with_an_error(telemetry: Telemetry) -> None:
    started = threading.Event()

    async def wait() -> None:
        started.set()
        await anyio.sleep(10)

    token = ak.CancelToken()
    threading.Thread(target=lambda: (started.wait(), time.sleep(0.05), token.cancel())).start()
    with pytest.raises(ak.ActCancelled):
        ScriptedModel(lambda c, i: [ToolCall("wait")]).act("go", [wait], cancel_token=token)
    [run] = telemetry.named("invoke_agent")
    [round_span] = telemetry.named("round ")
    [tool] = telemetry.named("execute_tool")
    assert run.status.status_code is StatusCode.ERROR
    assert run.attributes is not None and run.attributes["error.type"] == "ActCancelled"
    assert round_span.status.status_code is StatusCode.ERROR
    assert tool.attributes is not None and tool.attributes["agentkit.tool.outcome"] == "cancelled"


def test_engine_error_marks_the_chat_span(telemetry: Telemetry) -> None:
    with pytest.raises(ConnectionError):
        ScriptedModel([ConnectionError("down")]).act("go")
    [chat] = telemetry.named("chat ")
    assert chat.status.status_code is StatusCode.ERROR
    assert chat.attributes is not None and chat.attributes["error.type"] == "ConnectionError"


def test_metrics(telemetry: Telemetry) -> None:
    result = ScriptedModel(calls_then_answer).act("2*3?", [multiply])
    tokens = telemetry.metric_points("gen_ai.client.token.usage")
    by_type = {p.attributes["gen_ai.token.type"]: p for p in tokens}
    assert by_type["input"].sum == result.usage.prompt_tokens and by_type["input"].count == 2
    assert by_type["output"].sum == result.usage.completion_tokens
    [duration] = telemetry.metric_points("gen_ai.client.operation.duration")
    assert duration.count == 2
    [calls] = telemetry.metric_points("agentkit.tool.calls")
    assert calls.value == 1 and calls.attributes["agentkit.tool.outcome"] == "ok"
    [tool_duration] = telemetry.metric_points("agentkit.tool.duration")
    assert tool_duration.count == 1


def test_content_is_recorded_only_when_opted_in_and_redacted() -> None:
    telemetry = make_telemetry(
        capture_content=True, redact=lambda text: text.replace("secret", "***")
    )
    try:
        ScriptedModel(
            lambda c, i: [ToolCall("echo", {"text": "secret"})] if i == 0 else "secret ok"
        ).act("my secret question", [echo])
    finally:
        set_observer(None)
    chat = min(telemetry.named("chat "), key=lambda s: s.start_time or 0)
    [tool] = telemetry.named("execute_tool")
    prompt = (chat.attributes or {})["gen_ai.input.messages"]
    assert isinstance(prompt, str) and "my *** question" in prompt and "secret" not in prompt
    assert "***" in str((tool.attributes or {})["gen_ai.tool.call.arguments"])
    assert (tool.attributes or {})["gen_ai.tool.call.result"] == "***"
    last = max(telemetry.named("chat "), key=lambda s: s.start_time or 0)
    assert "*** ok" in str((last.attributes or {})["gen_ai.output.messages"])


def echo(text: str) -> str:
    """Echo."""
    return text


def test_spans_made_inside_a_tool_nest_under_its_span(telemetry: Telemetry) -> None:
    tracer = telemetry.tracer_provider.get_tracer("test")

    def lookup() -> str:
        with tracer.start_as_current_span("database query"):
            return "row"

    ScriptedModel(lambda c, i: [ToolCall("lookup")] if i == 0 else "ok").act("go", [lookup])
    [query] = telemetry.named("database query")
    [tool] = telemetry.named("execute_tool")
    assert query.parent is not None and query.parent.span_id == tool.context.span_id  # type: ignore[union-attr]


def test_a_run_inside_a_caller_span_becomes_its_child(telemetry: Telemetry) -> None:
    tracer = telemetry.tracer_provider.get_tracer("test")
    model = ScriptedModel(["hi"])
    with tracer.start_as_current_span("eval_case 1") as case:
        model.async_handle  # noqa: B018
        ak_result = model.act("hello")
    assert ak_result.final is not None
    [run] = telemetry.named("invoke_agent")
    # The sync API runs on the client's loop thread; the caller's context travels with the call.
    assert run.parent is not None and run.parent.span_id == case.get_span_context().span_id


def test_no_sdk_means_the_silent_trace() -> None:
    info = RunInfo("m", "p", (), None)
    assert OtelObserver(trace.NoOpTracerProvider()).start_run(info) is NO_TRACE
    assert OtelObserver().start_run(info) is NO_TRACE or not isinstance(
        trace.get_tracer_provider(), trace.ProxyTracerProvider
    )


def test_configure_writes_jsonl_spans(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    handle = configure(jsonl_path=path, set_global=False)
    try:
        ScriptedModel(calls_then_answer).act("2*3?", [multiply])
        handle.force_flush()
    finally:
        set_observer(None)
        handle.shutdown()
    records = read_spans(path)
    names = [r["name"] for r in records]
    assert names.count("invoke_agent") == 1 and "execute_tool multiply" in names
    run = next(r for r in records if r["name"] == "invoke_agent")
    assert all(r["trace_id"] == run["trace_id"] for r in records)
    assert run["attributes"]["agentkit.rounds"] == 2


def test_malformed_output_round_is_traced(telemetry: Telemetry) -> None:
    ScriptedModel([Reply(tool_calls=[Malformed("{oops")]), "fine"]).act("go", [multiply])
    assert len(telemetry.named("round ")) == 2
