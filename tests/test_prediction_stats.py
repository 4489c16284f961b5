"""PredictionStats on every engine but the local one (its figures, peak memory included, are
checked on the real model in tests/engines/llama_cpp/test_tool_choice_llama.py): scripted
counts, an OpenAI-compatible server's usage, LM Studio's own stats, and the chat span."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from lmstudio_server import Finish, Fragment, LMStudioTestServer, Step
from openai_fault_server import FaultServer, chunk, sse, text_stream
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import agentkit as ak
from agentkit.engines.lmstudio.engine import LMStudioEngine
from agentkit.engines.openai.engine import OpenAIEngine
from agentkit.errors import EngineError
from agentkit.observe import set_observer
from agentkit.testing import Reply, ScriptedModel
from agentkit.tracing import instrument

CHAT = "/v1/chat/completions"


def assert_consistent(result: ak.PredictionResult) -> None:
    """The rate is the count over the generation time, and that time fits in the prediction."""
    stats = result.stats
    assert stats.generated_tokens is not None and stats.generated_tokens >= 2
    assert stats.generation_seconds is not None and stats.tokens_per_second is not None
    assert stats.tokens_per_second * stats.generation_seconds == pytest.approx(
        stats.generated_tokens
    )
    assert result.time_to_first_token_seconds is not None
    assert (
        0
        < stats.generation_seconds
        <= result.duration_seconds - result.time_to_first_token_seconds + 1e-6
    )


def test_scripted_stats_are_its_counts_and_agentkits_clock() -> None:
    model = ScriptedModel([Reply("one two three four five", delay=0.02, fragment_delay=0.01)])
    result = model.respond("count these words")
    stats = result.stats
    assert (stats.prompt_tokens, stats.generated_tokens) == (3, 5)
    assert (stats.prompt_tokens, stats.generated_tokens) == (
        result.usage.prompt_tokens,
        result.usage.completion_tokens,
    )
    assert stats.time_to_first_token_seconds == result.time_to_first_token_seconds
    assert result.time_to_first_token_seconds is not None
    assert result.time_to_first_token_seconds >= 0.02
    assert stats.generation_seconds is not None and stats.generation_seconds >= 0.04
    assert_consistent(result)
    # Five tokens, four 10 ms gaps between them: well under 5 / 0.04 tokens per second.
    assert stats.tokens_per_second is not None and stats.tokens_per_second <= 125
    assert stats.peak_memory_bytes is None  # only the local engine knows it


def test_one_token_has_no_rate() -> None:
    result = ScriptedModel(["Yes"]).respond("q")
    assert result.stats.generated_tokens == 1
    assert result.stats.tokens_per_second is None


def test_round_records_carry_their_predictions_stats() -> None:
    calls = [ak.ToolCall("add", {"a": 1, "b": 2}, "c1")]
    model = ScriptedModel([calls, "The sum is 3."])

    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    result = model.act("add 1 and 2", [add])
    stats = [record.prediction.stats for record in result.round_records]
    assert [s.generated_tokens for s in stats] == [
        r.usage.completion_tokens for r in result.round_records
    ]
    assert stats[1].generated_tokens == 4 and stats[1].tokens_per_second is not None


def test_a_cancelled_prediction_counts_nothing() -> None:
    model = ScriptedModel([Reply("a b c d e f", fragment_delay=0.05)])
    stream = model.respond_stream("q")
    for _ in stream:
        stream.cancel()
    result = stream.result()
    assert result.finish_reason == "cancelled"
    assert result.stats.generated_tokens is None and result.stats.tokens_per_second is None


# -- OpenAI-compatible ----------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


@pytest.mark.anyio
async def test_openai_stats_come_from_usage_and_timing(server: FaultServer) -> None:
    server.script(CHAT, sse(text_stream("a", "b", "c", usage=(11, 3)), drip=0.0005))
    async with ak.AsyncClient(engine=OpenAIEngine(server.url)) as client:
        result = await (await client.llm.model()).respond("q")
    assert (result.stats.prompt_tokens, result.stats.generated_tokens) == (11, 3)
    assert_consistent(result)


@pytest.mark.anyio
async def test_openai_without_usage_counts_are_unknown(server: FaultServer) -> None:
    events = [chunk("a"), chunk("b"), chunk("c"), chunk(finish="stop"), "[DONE]"]
    server.script(CHAT, sse(events))
    async with ak.AsyncClient(engine=OpenAIEngine(server.url)) as client:
        result = await (await client.llm.model()).respond("q")
    assert result.usage == ak.Usage(0, 3)  # usage keeps its chunk count, as before
    stats = result.stats
    assert stats.prompt_tokens is None and stats.generated_tokens is None
    assert stats.tokens_per_second is None and stats.generation_seconds is not None


# -- LM Studio ------------------------------------------------------------------------------------


def _reply_with(stats: dict[str, Any]) -> Any:
    def respond(param: dict[str, Any], index: int) -> list[Step]:
        return [Fragment("a"), Fragment("b"), Fragment("c"), Fragment("d"), Finish(stats=stats)]

    return respond


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the lmstudio SDK is asyncio-only
@pytest.mark.anyio
async def test_lmstudio_stats_are_the_servers() -> None:
    reported = {"tokensPerSecond": 40.0, "timeToFirstTokenSec": 0.125}
    with LMStudioTestServer(_reply_with(reported)) as server:
        async with ak.AsyncClient(engine=LMStudioEngine(server.host)) as client:
            result = await (await client.llm.model("qwen-test")).respond("q")
    stats = result.stats
    assert (stats.prompt_tokens, stats.generated_tokens) == (7, 4)  # the server's counts
    assert stats.tokens_per_second == 40.0 and stats.time_to_first_token_seconds == 0.125
    assert stats.generation_seconds == pytest.approx(4 / 40.0)
    assert stats.peak_memory_bytes is None


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_lmstudio_without_server_figures_uses_agentkits_clock() -> None:
    with LMStudioTestServer(_reply_with({}), step_delay=0.005) as server:
        async with ak.AsyncClient(engine=LMStudioEngine(server.host)) as client:
            result = await (await client.llm.model("qwen-test")).respond("q")
    assert result.stats.time_to_first_token_seconds == result.time_to_first_token_seconds
    assert_consistent(result)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
@pytest.mark.parametrize(
    "reported", [{"tokensPerSecond": -3.0}, {"timeToFirstTokenSec": float("inf")}]
)
async def test_lmstudio_impossible_stats_are_engine_errors(reported: dict[str, Any]) -> None:
    with LMStudioTestServer(_reply_with(reported)) as server:
        async with ak.AsyncClient(engine=LMStudioEngine(server.host)) as client:
            model = await client.llm.model("qwen-test")
            with pytest.raises(EngineError, match="impossible"):
                await model.respond("q")


# -- tracing --------------------------------------------------------------------------------------


def test_the_chat_span_carries_the_stats_and_the_tool_choice() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument(provider)
    try:
        calls = [ak.ToolCall("add", {"a": 1, "b": 2}, "c1")]
        model = ScriptedModel([calls, Reply("The sum is three.", fragment_delay=0.001)])

        def add(a: int, b: int) -> int:
            """Add."""
            return a + b

        result = model.act(
            "q", [add], config={"tool_choice": {"name": "add"}}, max_prediction_rounds=2
        )
    finally:
        set_observer(None)
    chats = sorted(
        (s for s in exporter.get_finished_spans() if s.name.startswith("chat ")),
        key=lambda s: s.start_time or 0,
    )
    first, final = (dict(s.attributes or {}) for s in chats)
    assert first["agentkit.request.tool_choice"] == "function:add"
    assert "agentkit.request.tool_choice" not in final  # no tools offered on the final round
    stats = result.round_records[1].prediction.stats
    assert final["agentkit.prediction.tokens_per_second"] == stats.tokens_per_second
    assert final["agentkit.prediction.generation_seconds"] == stats.generation_seconds
    assert "agentkit.prediction.peak_memory_bytes" not in final
