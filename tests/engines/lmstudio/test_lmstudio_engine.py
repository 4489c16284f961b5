"""LMStudioEngine through the real `lmstudio` SDK against the protocol test server.

The lmstudio SDK's async client is asyncio-only, so these tests run on asyncio only.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from lmstudio_server import (
    Delay,
    Drop,
    Fragment,
    LMStudioTestServer,
    ModelSpec,
    Step,
    ToolCallFails,
    ToolCallGen,
)
from pydantic import BaseModel

import agentkit as ak
from agentkit.engines.base import (
    Engine,
    FirstToken,
    MalformedToolCall,
    PredictionDone,
    PredictionEvent,
    PredictionRequest,
    PromptProgress,
    TextDelta,
    ToolCallRequested,
    ToolDefinition,
)
from agentkit.engines.lmstudio.engine import LMStudioEngine
from agentkit.errors import EngineError, ModelNotFoundError
from agentkit.messages import UserMessage


@pytest.fixture
def anyio_backend() -> str:
    """The lmstudio SDK's async client is asyncio-only."""
    return "asyncio"


@pytest.fixture
def server() -> Iterator[LMStudioTestServer]:
    with LMStudioTestServer() as running:
        yield running


def _tool_then_answer(param: dict[str, Any], index: int) -> list[Step]:
    messages = param["history"]["messages"]
    if messages[-1]["role"] == "tool":
        result = messages[-1]["content"][0]["content"]
        return [
            Fragment("The sum is "),
            Fragment(json.loads(result) if result[0] == '"' else result),
        ]
    return [Fragment("Let me add."), ToolCallGen("add", {"a": 2, "b": 3}, id="call_7")]


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@pytest.mark.anyio
async def test_act_tool_round_trip(server: LMStudioTestServer) -> None:
    server.responder = _tool_then_answer
    messages: list[Any] = []
    async with ak.AsyncClient(engine=LMStudioEngine(server.host)) as client:
        model = await client.llm.model("qwen-test", ttl=300, config={"context_length": 2048})
        result = await model.act("add 2 and 3", [add], on_message=messages.append)
    assert result.rounds == 2
    assert messages[-1].content == "The sum is 5"
    first, second = server.stats.predictions
    tools = first["predictionConfigStack"]["layers"][0]["config"]["fields"]
    raw_tools = next(f for f in tools if f["key"] == "llm.prediction.tools")["value"]
    assert raw_tools["tools"][0]["function"]["name"] == "add"
    history = second["history"]["messages"]
    request = history[-2]["content"][-1]
    assert request["type"] == "toolCallRequest"
    assert request["toolCallRequest"]["name"] == "add"
    assert request["toolCallRequest"]["id"] == "call_7"
    assert history[-1]["content"][0] == {
        "type": "toolCallResult",
        "content": "5",
        "toolCallId": "call_7",
    }
    load = server.stats.load_requests[0]
    assert load["loadTtlMs"] == 300_000
    fields = load["loadConfigStack"]["layers"][0]["config"]["fields"]
    assert {"key": "llm.load.contextLength", "value": 2048} in fields


def test_sync_client_act_tool_round_trip(server: LMStudioTestServer) -> None:
    server.responder = _tool_then_answer
    with ak.Client(engine=LMStudioEngine(server.host)) as client:
        model = client.llm.model("qwen-test")
        chat = ak.Chat()
        chat.add_user_message("add 2 and 3")
        model.act(chat, [add], on_message=chat.append)
        assert model.get_context_length() == 4096
    assert len(server.stats.predictions) == 2


async def _events(engine: LMStudioEngine, request: PredictionRequest) -> list[PredictionEvent]:
    return [event async for event in engine.predict("qwen-test", request)]


@pytest.mark.anyio
async def test_stream_fragments_first_token_reasoning_and_progress(
    server: LMStudioTestServer,
) -> None:
    server.responder = lambda _p, _i: [
        Fragment("thinking", reasoning=True),
        Fragment("Hel"),
        Fragment("lo"),
    ]
    engine = LMStudioEngine(server.host)
    assert isinstance(engine, Engine)
    try:
        await engine.get_or_load("qwen-test", None, None)
        events = await _events(engine, PredictionRequest(messages=[UserMessage(content="hi")]))
    finally:
        await engine.aclose()
    assert events[:2] == [PromptProgress(0.0), PromptProgress(1.0)]
    assert events[2] == FirstToken()
    assert events[3:6] == [TextDelta("thinking", True), TextDelta("Hel"), TextDelta("lo")]
    done = events[-1]
    assert isinstance(done, PredictionDone)
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (7, 3)
    assert done.finish_reason == "stop"
    assert sum(isinstance(e, PredictionDone) for e in events) == 1


@pytest.mark.anyio
async def test_tool_calls_and_malformed_tool_call_events(server: LMStudioTestServer) -> None:
    server.responder = lambda _p, _i: [
        ToolCallFails("<tool_call>{oops", "Unexpected end of JSON"),
        ToolCallGen("add", {"a": 1, "b": 2}, id="c1"),
    ]
    engine = LMStudioEngine(server.host)
    try:
        await engine.get_or_load("qwen-test", None, None)
        tool = ToolDefinition("add", "Add", {"type": "object", "properties": {}})
        request = PredictionRequest(messages=[UserMessage(content="x")], tools=[tool])
        events = await _events(engine, request)
    finally:
        await engine.aclose()
    assert MalformedToolCall("<tool_call>{oops", "Unexpected end of JSON") in events
    calls = [e.call for e in events if isinstance(e, ToolCallRequested)]
    assert [(c.name, c.arguments, c.id) for c in calls] == [("add", {"a": 1, "b": 2}, "c1")]
    done = events[-1]
    assert isinstance(done, PredictionDone) and done.finish_reason == "tool_calls"


class Answer(BaseModel):
    city: str


@pytest.mark.anyio
async def test_structured_output_passes_response_format(server: LMStudioTestServer) -> None:
    server.responder = lambda _p, _i: [Fragment('{"city": '), Fragment('"Paris"}')]
    async with ak.AsyncClient(engine=LMStudioEngine(server.host)) as client:
        model = await client.llm.model("qwen-test")
        result = await model.respond("capital of France?", response_format=Answer)
    assert result.parsed == Answer(city="Paris")
    fields = server.stats.predictions[0]["predictionConfigStack"]["layers"][0]["config"]["fields"]
    structured = next(f for f in fields if f["key"] == "llm.prediction.structured")["value"]
    assert structured["type"] == "json"
    assert structured["jsonSchema"]["properties"]["city"]["type"] == "string"


@pytest.mark.anyio
async def test_cancel_sends_sdk_cancel(server: LMStudioTestServer) -> None:
    server.responder = lambda _p, _i: [Fragment("a "), Delay(30), Fragment("never")]
    async with ak.AsyncClient(engine=LMStudioEngine(server.host)) as client:
        model = await client.llm.model("qwen-test")
        stream = model.respond_stream("go")
        with anyio.fail_after(10):
            fragments = []
            async for fragment in stream:
                fragments.append(fragment.content)
                stream.cancel()
            result = await stream.result()
        assert fragments == ["a "]
        assert result.finish_reason == "cancelled"
        # the connection is still usable afterwards
        server.responder = lambda _p, _i: [Fragment("again")]
        assert (await model.respond("more")).content == "again"
    assert server.stats.cancels == 1


@pytest.mark.anyio
async def test_eight_concurrent_act_runs_queue_per_model(server: LMStudioTestServer) -> None:
    server.responder = _tool_then_answer
    server.step_delay = 0.005
    async with ak.AsyncClient(engine=LMStudioEngine(server.host)) as client:
        model = await client.llm.model("qwen-test")
        results: list[Any] = []

        async def run() -> None:
            results.append(await model.act("add 2 and 3", [add]))

        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                for _ in range(8):
                    group.start_soon(run)
    assert [r.rounds for r in results] == [2] * 8
    assert len(server.stats.predictions) == 16
    assert server.stats.peak == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.anyio
async def test_server_not_running_names_host_and_fix() -> None:
    host = f"127.0.0.1:{_free_port()}"
    engine = LMStudioEngine(host)
    with pytest.raises(EngineError) as caught:
        await engine.get_or_load("qwen-test", None, None)
    assert host in str(caught.value)
    assert "lms server start" in str(caught.value)
    await engine.aclose()


@pytest.mark.anyio
async def test_model_not_found(server: LMStudioTestServer) -> None:
    async with ak.AsyncClient(engine=LMStudioEngine(server.host)) as client:
        with pytest.raises(ModelNotFoundError):
            await client.llm.model("no-such-model")
        with pytest.raises(ModelNotFoundError):
            await client.engine.get_info("not-loaded")


@pytest.mark.anyio
async def test_disconnect_mid_stream_leaves_no_half_round(server: LMStudioTestServer) -> None:
    server.responder = lambda _p, _i: [Fragment("partial "), Drop()]
    async with ak.AsyncClient(engine=LMStudioEngine(server.host)) as client:
        model = await client.llm.model("qwen-test")
        chat = ak.Chat()
        chat.add_user_message("hi")
        before = len(chat)
        with anyio.fail_after(10), pytest.raises(EngineError, match=r"connection|LM Studio"):
            await model.act(chat, [add], on_message=chat.append)
        assert len(chat) == before
        # the engine reconnects on the next call
        server.responder = lambda _p, _i: [Fragment("back")]
        assert (await model.respond("again")).content == "back"


@pytest.mark.anyio
async def test_api_token_reaches_auth_frame() -> None:
    token = "sk-lm-AbCdEfGh:0123456789abcdefghij"
    with LMStudioTestServer(api_token=token) as server:
        engine = LMStudioEngine(server.host, api_token=token)
        try:
            info = await engine.get_or_load("qwen-test", None, None)
        finally:
            await engine.aclose()
        assert info.identifier == "qwen-test"
        frames = server.stats.auth_frames
        assert frames and all(
            (f["clientIdentifier"], f["clientPasskey"])
            == ("sk-lm-AbCdEfGh", "0123456789abcdefghij")
            for f in frames
        )
        wrong = LMStudioEngine(server.host, api_token="sk-lm-wrong000:zzzzzzzzzzzzzzzzzzzz")
        with pytest.raises(EngineError, match=r"Invalid API token|auth"):
            await wrong.get_or_load("qwen-test", None, None)
        await wrong.aclose()


@pytest.mark.anyio
async def test_lifecycle_listing_tokens_and_embeddings() -> None:
    models = (ModelSpec("qwen-test"), ModelSpec("embed-test", "embedding"))
    with LMStudioTestServer(models=models) as server:
        engine = LMStudioEngine(server.host)
        try:
            first = await engine.get_or_load("qwen-test", None, None)
            second = await engine.load_new_instance("qwen-test", "qwen-b", None, 60)
            embedder = await engine.get_or_load("embed-test", None, None, "embedding")
            loaded = await engine.list_loaded()
            assert {(i.identifier, i.kind) for i in loaded} == {
                ("qwen-test", "llm"),
                ("qwen-b", "llm"),
                ("embed-test", "embedding"),
            }
            assert second.identifier == "qwen-b" and server.instances["qwen-b"].ttl_ms == 60_000
            downloaded = await engine.list_downloaded()
            assert {d.model_key for d in downloaded} == {"qwen-test", "embed-test"}
            info = await engine.get_info(first.identifier)
            assert (info.model_key, info.architecture) == ("qwen-test", "qwen2")
            assert await engine.tokenize(first.identifier, "ab cde") == [2, 3]
            vectors = await engine.embed(embedder.identifier, ["one two", "x"])
            assert vectors == [[7.0, 2.0, 1.0], [1.0, 1.0, 1.0]]
            await engine.unload("qwen-b")
            assert "qwen-b" not in server.instances
        finally:
            await engine.aclose()
