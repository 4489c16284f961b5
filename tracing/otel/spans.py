"""OpenTelemetry spans and metrics for act() runs, following the GenAI semantic conventions.

Span tree of one run:

    invoke_agent                      the act() run (child of the caller's current span)
      round {i}                       one per round: agentkit.round.index, .tool_calls, .final
        chat {model}                  the prediction: gen_ai.* request and usage attributes
        execute_tool {name}           one per tool call, invalid ones included (error.type)

Metrics: gen_ai.client.token.usage and gen_ai.client.operation.duration histograms, and
agentkit.tool.calls / agentkit.tool.duration for tools.

Message content (prompts, completions, tool arguments and results) is recorded only with
`capture_content=True`, and then passes through the `redact` hook first.

With the OpenTelemetry API alone (no SDK configured) `start_run` hands out the silent base
`RunTrace`, so an untraced run costs next to nothing.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import ProxyTracerProvider, Span, SpanKind, Status, StatusCode

from agentkit.chat_dicts import message_to_dict
from agentkit.observe import NO_TRACE, RunInfo, RunTrace

if TYPE_CHECKING:
    from agentkit.engines.base import PredictionRequest
    from agentkit.results import ActResult, PredictionResult, RoundRecord
    from agentkit.tool_round import ToolCallOutcome

__all__ = ["OtelObserver", "Redactor"]

Redactor = Callable[[str], str]
_SCOPE = "agentkit"


class OtelObserver:
    """Makes OpenTelemetry spans and metrics of act() runs.

    Args:
        tracer_provider: defaults to the global one (read at each run, so configuring
            OpenTelemetry later still takes effect).
        meter_provider: defaults to the global one.
        capture_content: record prompts, completions, tool arguments and results.
        redact: applied to every recorded piece of content.
    """

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        *,
        capture_content: bool = False,
        redact: Redactor | None = None,
    ) -> None:
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self.capture_content = capture_content
        self.redact = redact
        self._instruments: tuple[Any, _Instruments] | None = None

    def start_run(self, info: RunInfo) -> RunTrace:
        """A span-making trace, or the silent one when no SDK is configured."""
        provider = self._tracer_provider or trace.get_tracer_provider()
        if isinstance(provider, ProxyTracerProvider | trace.NoOpTracerProvider):
            return NO_TRACE
        tracer = provider.get_tracer(_SCOPE)
        return _OtelRunTrace(tracer, self._metrics(), info, self)

    def _metrics(self) -> _Instruments:
        provider = self._meter_provider or metrics.get_meter_provider()
        cached = self._instruments
        if cached is None or cached[0] is not provider:
            cached = (provider, _Instruments(provider.get_meter(_SCOPE)))
            self._instruments = cached
        return cached[1]


class _Instruments:
    def __init__(self, meter: metrics.Meter) -> None:
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Tokens per prediction"
        )
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="Prediction duration"
        )
        self.tool_calls = meter.create_counter(
            "agentkit.tool.calls", unit="{call}", description="Tool calls by outcome"
        )
        self.tool_duration = meter.create_histogram(
            "agentkit.tool.duration", unit="s", description="Tool call duration"
        )


class _OtelRunTrace(RunTrace):
    __slots__ = (
        "_base",
        "_info",
        "_metrics",
        "_observer",
        "_prediction",
        "_round",
        "_run",
        "_tracer",
    )

    def __init__(
        self, tracer: trace.Tracer, instruments: _Instruments, info: RunInfo, observer: OtelObserver
    ) -> None:
        self._tracer = tracer
        self._metrics = instruments
        self._info = info
        self._observer = observer
        self._base = {
            "gen_ai.provider.name": info.provider,
            "gen_ai.request.model": info.model,
        }
        self._run = tracer.start_span(
            "invoke_agent",
            kind=SpanKind.INTERNAL,
            attributes={
                **self._base,
                "gen_ai.operation.name": "invoke_agent",
                "agentkit.tools": [tool.name for tool in info.tools],
            },
        )
        if info.max_prediction_rounds is not None:
            self._run.set_attribute("agentkit.max_prediction_rounds", info.max_prediction_rounds)
        self._round: Span | None = None
        self._prediction: Span | None = None

    def _content(self, text: str) -> str | None:
        if not self._observer.capture_content:
            return None
        redact = self._observer.redact
        return redact(text) if redact is not None else text

    def _child(self, name: str, parent: Span | None, attributes: dict[str, Any]) -> Span:
        context = trace.set_span_in_context(parent or self._run)
        return self._tracer.start_span(name, context=context, attributes=attributes)

    def round_started(self, index: int, final: bool) -> None:
        self._round = self._child(
            f"round {index}",
            self._run,
            {"agentkit.round.index": index, "agentkit.round.final": final},
        )

    def round_ended(self, record: RoundRecord | None, error: BaseException | None) -> None:
        span = self._round
        if span is None:
            return
        if record is not None:
            span.set_attribute("agentkit.round.tool_calls", len(record.tool_calls))
        _finish(span, error)
        self._round = None

    def prediction_started(self, request: PredictionRequest) -> None:
        attributes: dict[str, Any] = {**self._base, "gen_ai.operation.name": "chat"}
        config = request.config
        if config is not None:
            for key, value in (
                ("gen_ai.request.temperature", config.temperature),
                ("gen_ai.request.top_p", config.top_p),
                ("gen_ai.request.top_k", config.top_k),
                ("gen_ai.request.max_tokens", config.max_tokens),
                ("gen_ai.request.seed", config.seed),
            ):
                if value is not None:
                    attributes[key] = value
            if config.stop_strings:
                attributes["gen_ai.request.stop_sequences"] = list(config.stop_strings)
            if request.tools:
                choice = config.tool_choice
                attributes["agentkit.request.tool_choice"] = (
                    choice if isinstance(choice, str) else f"function:{choice.name}"
                )
        attributes["agentkit.request.tools"] = [tool.name for tool in request.tools]
        prompt = self._content(json.dumps([message_to_dict(m) for m in request.messages]))
        if prompt is not None:
            attributes["gen_ai.input.messages"] = prompt
        self._prediction = self._child(f"chat {self._info.model}", self._round, attributes)

    def prediction_ended(
        self, result: PredictionResult | None, error: BaseException | None
    ) -> None:
        span = self._prediction
        if span is None:
            return
        self._prediction = None
        if result is not None:
            usage = result.usage
            span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
            span.set_attribute("gen_ai.response.finish_reasons", [result.finish_reason])
            if result.time_to_first_token_seconds is not None:
                span.set_attribute(
                    "gen_ai.server.time_to_first_token", result.time_to_first_token_seconds
                )
            stats = result.stats  # no gen_ai attributes exist for these
            for key, value in (
                ("agentkit.prediction.generation_seconds", stats.generation_seconds),
                ("agentkit.prediction.tokens_per_second", stats.tokens_per_second),
                ("agentkit.prediction.peak_memory_bytes", stats.peak_memory_bytes),
            ):
                if value is not None:
                    span.set_attribute(key, value)
            completion = self._content(json.dumps(message_to_dict(result.message)))
            if completion is not None:
                span.set_attribute("gen_ai.output.messages", completion)
            attributes = {**self._base, "gen_ai.operation.name": "chat"}
            self._metrics.tokens.record(
                usage.prompt_tokens, {**attributes, "gen_ai.token.type": "input"}
            )
            self._metrics.tokens.record(
                usage.completion_tokens, {**attributes, "gen_ai.token.type": "output"}
            )
            self._metrics.duration.record(result.duration_seconds, attributes)
        _finish(span, error)

    @contextlib.contextmanager
    def tool_call(self, outcome: ToolCallOutcome) -> Iterator[None]:
        span = self._tool_span(outcome)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            yield
        except BaseException as error:
            self._end_tool(span, outcome, error)
            raise
        finally:
            otel_context.detach(token)
        self._end_tool(span, outcome, None)

    def tool_call_rejected(self, outcome: ToolCallOutcome) -> None:
        self._end_tool(self._tool_span(outcome), outcome, None)

    def _tool_span(self, outcome: ToolCallOutcome) -> Span:
        call = outcome.call
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": call.name,
            "gen_ai.tool.call.id": call.id,
            "gen_ai.tool.type": "function",
        }
        arguments = (
            call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
        )
        captured = self._content(arguments)
        if captured is not None:
            attributes["gen_ai.tool.call.arguments"] = captured
        return self._child(f"execute_tool {call.name}", self._round, attributes)

    def _end_tool(self, span: Span, outcome: ToolCallOutcome, error: BaseException | None) -> None:
        invalid = outcome.error
        result = "cancelled" if error is not None else ("ok" if invalid is None else invalid.kind)
        span.set_attribute("agentkit.tool.outcome", result)
        if invalid is not None:
            cause = invalid.__cause__
            span.set_attribute("error.type", type(cause).__name__ if cause else invalid.kind)
            span.set_status(Status(StatusCode.ERROR, str(invalid)))
        elif error is None:
            captured = self._content(outcome.content)
            if captured is not None:
                span.set_attribute("gen_ai.tool.call.result", captured)
        name = {"gen_ai.tool.name": outcome.call.name, "agentkit.tool.outcome": result}
        self._metrics.tool_calls.add(1, name)
        if outcome.executed:
            self._metrics.tool_duration.record(outcome.duration_seconds, name)
        _finish(span, error)

    def run_ended(self, result: ActResult, error: BaseException | None) -> None:
        span = self._run
        span.set_attribute("agentkit.rounds", result.rounds)
        span.set_attribute("gen_ai.usage.input_tokens", result.usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", result.usage.completion_tokens)
        if result.stop_reason is not None:
            span.set_attribute("agentkit.stop_reason", result.stop_reason)
        for open_span in (self._prediction, self._round):  # ended by an error mid-round
            if open_span is not None:
                _finish(open_span, error)
        _finish(span, error)


def _finish(span: Span, error: BaseException | None) -> None:
    if error is not None:
        span.set_attribute("error.type", type(error).__name__)
        span.set_status(Status(StatusCode.ERROR, str(error) or type(error).__name__))
    span.end(end_time=time.time_ns())
