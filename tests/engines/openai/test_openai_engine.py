"""The OpenAI-compatible engine: faults on a local canned server, then llama-cpp-python's server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from openai_fault_server import Canned, FaultServer, chunk, sse, text_stream
from pydantic import BaseModel

import agentkit as ak
from agentkit.engines.base import (
    FirstToken,
    MalformedToolCall,
    PredictionDone,
    PredictionRequest,
    TextDelta,
)
from agentkit.engines.openai.engine import OpenAIEngine
from agentkit.errors import EngineError, ModelNotFoundError, NotSupportedError
from agentkit.messages import UserMessage

CHAT = "/v1/chat/completions"


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


def engine_for(server: FaultServer, **options: Any) -> OpenAIEngine:
    return OpenAIEngine(server.url, backoff=0.05, **options)


def call_fragment(index: int, **fields: Any) -> dict[str, Any]:
    fragment: dict[str, Any] = {"index": index}
    if "id" in fields:
        fragment["id"] = fields.pop("id")
        fragment["type"] = "function"
    fragment["function"] = fields
    return fragment


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


# -- the canned server ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_tool_call_fragments_assemble_into_a_tool_round_trip(server: FaultServer) -> None:
    split_calls = [
        chunk(tool_calls=[call_fragment(0, id="call_a", name="multiply", arguments="")]),
        chunk(tool_calls=[call_fragment(0, arguments='{"a": 6')]),
        chunk(tool_calls=[call_fragment(1, id="call_b", name="multi")]),
        chunk(tool_calls=[call_fragment(0, arguments=', "b": 7}')]),
        chunk(tool_calls=[call_fragment(1, name="ply", arguments='{"a": 2, "b": 3}')]),
        chunk(finish="tool_calls"),
        chunk(usage=(30, 12)),
        "[DONE]",
    ]
    server.script(CHAT, sse(split_calls), sse(text_stream("42 and ", "6.", usage=(50, 4))))
    chat = ak.Chat("Use tools.")
    chat.add_user_message("6*7 and 2*3?")
    async with ak.AsyncClient(engine=engine_for(server)) as client:
        model = await client.llm.model()
        result = await model.act(chat, [multiply], on_message=chat.append)

    calls = [record.call for record in result.round_records[0].tool_calls]
    assert [(c.id, c.name, c.arguments) for c in calls] == [
        ("call_a", "multiply", {"a": 6, "b": 7}),
        ("call_b", "multiply", {"a": 2, "b": 3}),
    ]
    assert [r.result for r in result.round_records[0].tool_calls] == ["42", "6"]
    assert result.final is not None and result.final.content == "42 and 6."
    assert result.usage == ak.Usage(80, 16)
    assert [m.role for m in chat] == ["system", "user", "assistant", "tool", "tool", "assistant"]
    # The second request carries the calls and their results in OpenAI form.
    second = server.posts(CHAT)[1].body
    assert second["stream"] is True and second["stream_options"] == {"include_usage": True}
    assistant, first_result = second["messages"][2], second["messages"][3]
    assert assistant["tool_calls"][0]["id"] == "call_a"
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"a": 6, "b": 7}
    assert first_result == {
        "role": "tool",
        "tool_call_id": "call_a",
        "name": "multiply",
        "content": "42",
    }
    offered = server.posts(CHAT)[0].body["tools"]
    assert offered[0]["type"] == "function" and offered[0]["function"]["name"] == "multiply"
    assert offered[0]["function"]["parameters"]["required"] == ["a", "b"]


@pytest.mark.anyio
async def test_reasoning_is_kept_apart_and_a_nameless_call_is_malformed(
    server: FaultServer,
) -> None:
    events = [
        chunk(reasoning="Think "),
        chunk(reasoning="hard."),
        chunk("Answer"),
        chunk(tool_calls=[call_fragment(0, id="c1", arguments='{"x": 1}')]),
        chunk(finish="stop"),
        "[DONE]",
    ]
    server.script(CHAT, sse(events))
    engine = engine_for(server)
    info = await engine.get_or_load(None, None, None)
    got = [
        e
        async for e in engine.predict(
            info.identifier, PredictionRequest([UserMessage(content="q")])
        )
    ]
    await engine.aclose()
    assert got[0] == FirstToken()
    assert got[1:4] == [TextDelta("Think ", True), TextDelta("hard.", True), TextDelta("Answer")]
    assert got[4] == MalformedToolCall('{"x": 1}', "the tool call has no function name")
    # No usage from the server: output chunks are counted instead.
    assert got[5] == PredictionDone(ak.Usage(0, 4), "stop")
    assert sum(isinstance(e, PredictionDone) for e in got) == 1


@pytest.mark.anyio
async def test_config_response_format_and_prompt_payloads(server: FaultServer) -> None:
    server.script(CHAT, sse(text_stream('{"name": "Ada"}')))
    server.script(
        "/v1/completions",
        sse(
            [
                json.dumps({"choices": [{"index": 0, "text": "ok", "finish_reason": "length"}]}),
                "[DONE]",
            ]
        ),
    )

    class Person(BaseModel):
        name: str

    async with ak.AsyncClient(engine=engine_for(server)) as client:
        model = await client.llm.model("test-model")
        config = {
            "temperature": 0,
            "top_k": 5,
            "repeat_penalty": 1.1,
            "max_tokens": 9,
            "stop_strings": ["END"],
            "seed": 3,
            "logit_bias": {42: -1.5},
        }
        result = await model.respond("Who?", config=config, response_format=Person)
        completion = await model.complete("Once", config={"max_tokens": 2})
    assert result.parsed == Person(name="Ada")
    body = server.posts(CHAT)[0].body
    assert body["model"] == "test-model"
    assert {k: body[k] for k in config if k in body} == {
        "temperature": 0,
        "top_k": 5,
        "repeat_penalty": 1.1,
        "max_tokens": 9,
        "seed": 3,
        "logit_bias": {"42": -1.5},
    }
    assert body["stop"] == ["END"] and "top_p" not in body and "tools" not in body
    assert body["response_format"]["type"] == "json_schema"
    assert (
        body["response_format"]["json_schema"]["schema"]["properties"]["name"]["type"] == "string"
    )
    assert completion.message.content == "ok" and completion.finish_reason == "length"
    assert server.posts("/v1/completions")[0].body["prompt"] == "Once"


@pytest.mark.anyio
async def test_json_schema_rejection_falls_back_to_json_object(server: FaultServer) -> None:
    # llama-cpp-python's server answers 500 with a validation error naming json_schema.
    rejection = Canned(500, {"error": "literal_error json_schema"})
    server.script(CHAT, rejection, sse(text_stream('{"n": 1}')))
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    async with ak.AsyncClient(engine=engine_for(server)) as client:
        result = await (await client.llm.model()).respond("n?", response_format=schema)
    assert result.parsed == {"n": 1}
    first, second = server.posts(CHAT)
    assert first.body["response_format"]["type"] == "json_schema"
    assert second.body["response_format"] == {"type": "json_object", "schema": schema}


@pytest.mark.anyio
async def test_a_500_is_retried(server: FaultServer) -> None:
    server.script(CHAT, Canned(500, {"error": "boom"}), sse(text_stream("fine")))
    async with ak.AsyncClient(engine=engine_for(server)) as client:
        result = await (await client.llm.model()).respond("hi")
    assert result.message.content == "fine"
    assert len(server.posts(CHAT)) == 2


@pytest.mark.anyio
async def test_a_429_waits_for_retry_after(server: FaultServer) -> None:
    server.script(
        CHAT,
        Canned(429, {"error": "slow down"}, headers={"Retry-After": "1"}),
        sse(text_stream("ok")),
    )
    async with ak.AsyncClient(engine=engine_for(server)) as client:
        result = await (await client.llm.model()).respond("hi")
    first, second = server.posts(CHAT)
    assert result.message.content == "ok"
    assert 0.9 <= second.at - first.at < 5


@pytest.mark.anyio
async def test_persistent_5xx_gives_a_clear_error(server: FaultServer) -> None:
    server.script(CHAT, Canned(503, {"error": "overloaded right now"}))
    engine = engine_for(server, max_retries=2)
    async with ak.AsyncClient(engine=engine) as client:
        model = await client.llm.model()
        with pytest.raises(
            EngineError, match=r"127\.0\.0\.1 answered HTTP 503.*3 attempts.*overloaded"
        ):
            await model.respond("hi")
    assert len(server.posts(CHAT)) == 3


@pytest.mark.anyio
async def test_a_4xx_is_not_retried(server: FaultServer) -> None:
    server.script(CHAT, Canned(400, {"error": "bad request: messages"}))
    async with ak.AsyncClient(engine=engine_for(server)) as client:
        with pytest.raises(EngineError, match=r"HTTP 400.*bad request"):
            await (await client.llm.model()).respond("hi")
    assert len(server.posts(CHAT)) == 1


@pytest.mark.anyio
async def test_a_dropped_stream_raises_and_commits_no_half_round(server: FaultServer) -> None:
    events = text_stream("partial ", "answer")
    server.script(CHAT, sse(events, drop_after=1))
    chat = ak.Chat("sys")
    chat.add_user_message("hi")
    async with ak.AsyncClient(engine=engine_for(server)) as client:
        model = await client.llm.model()
        with pytest.raises(EngineError, match=r"stream from .*/v1/chat/completions broke off"):
            await model.act(chat, [multiply], on_message=chat.append)
    assert [m.role for m in chat] == ["system", "user"]
    assert len(server.posts(CHAT)) == 1  # not retried once text had streamed


@pytest.mark.anyio
async def test_a_stream_ending_without_finish_raises(server: FaultServer) -> None:
    server.script(CHAT, sse([chunk("half")]))
    async with ak.AsyncClient(engine=engine_for(server)) as client:
        with pytest.raises(EngineError, match="ended before the prediction finished"):
            await (await client.llm.model()).respond("hi")


@pytest.mark.anyio
async def test_authorization_header_only_with_a_key(server: FaultServer) -> None:
    server.script(CHAT, sse(text_stream("x")))
    async with ak.AsyncClient(engine=engine_for(server)) as client:
        await (await client.llm.model()).respond("hi")
    async with ak.AsyncClient(engine=engine_for(server, api_key="sk-test")) as client:
        await (await client.llm.model()).respond("hi")
    without, with_key = server.posts(CHAT)
    assert "authorization" not in without.headers
    assert with_key.headers["authorization"] == "Bearer sk-test"
    assert all(r.headers.get("authorization") == "Bearer sk-test" for r in server.requests[2:])


@pytest.mark.anyio
async def test_lifecycle_and_model_not_found() -> None:
    with FaultServer(models=["alpha", "beta"]) as server:
        server.script(
            "/v1/embeddings",
            Canned(
                body={
                    "data": [
                        {"index": 1, "embedding": [0.0, 1.0]},
                        {"index": 0, "embedding": [1.0, 0.0]},
                    ]
                }
            ),
        )
        async with ak.AsyncClient(engine=engine_for(server)) as client:
            default = await client.llm.model()
            assert default.identifier == "alpha"
            beta = await client.llm.load_new_instance("beta", "b2")
            assert [m.model_key for m in await client.llm.list_downloaded_models()] == [
                "alpha",
                "beta",
            ]
            assert {h.identifier for h in await client.llm.list_loaded()} == {"alpha", "b2"}
            with pytest.raises(
                ModelNotFoundError, match=r"does not serve model 'gamma'.*'alpha', 'beta'"
            ):
                await client.llm.model("gamma")
            engine = client.engine
            assert (await engine.get_info("b2")).model_key == "beta"
            with pytest.raises(NotSupportedError, match="does not support tokenize") as caught:
                await engine.tokenize("b2", "text")
            assert isinstance(caught.value, EngineError) and caught.value.provider == "openai"
            with pytest.raises(NotSupportedError, match="get_context_length"):
                await engine.get_context_length("b2")
            with pytest.raises(ModelNotFoundError):
                await engine.tokenize("nope", "text")
            embedder = await client.embedding.model("alpha")
            assert await engine.embed(embedder.identifier, ["a", "b"]) == [[1.0, 0.0], [0.0, 1.0]]
            assert server.posts("/v1/embeddings")[0].body == {"model": "alpha", "input": ["a", "b"]}
            await client.llm.unload(beta.identifier)
            assert {h.identifier for h in await client.llm.list_loaded()} == {"alpha"}


@pytest.mark.anyio
async def test_connection_refused_names_the_url() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine = OpenAIEngine(f"http://127.0.0.1:{port}/v1", max_retries=1, backoff=0.01)
    with pytest.raises(EngineError, match=rf"127\.0\.0\.1:{port}/v1/models.*server running"):
        await engine.get_or_load(None, None, None)
    await engine.aclose()


@pytest.mark.anyio
async def test_concurrent_runs_respect_max_concurrency(server: FaultServer) -> None:
    server.script(CHAT, sse(text_stream("done"), delay=0.15))
    results: list[str] = []
    async with ak.AsyncClient(engine=engine_for(server, max_concurrency=3)) as client:
        model = await client.llm.model()

        async def run(index: int) -> None:
            result = await model.act(f"task {index}", [multiply])
            assert result.final is not None
            results.append(result.final.content)

        async with anyio.create_task_group() as group:
            for index in range(8):
                group.start_soon(run, index)
    assert results == ["done"] * 8
    assert len(server.posts(CHAT)) == 8
    assert server.max_in_flight == 3


def test_sync_client_with_engine(server: FaultServer) -> None:
    server.script(CHAT, sse(text_stream("sync ", "works")))
    with ak.Client(engine=engine_for(server, max_concurrency=1)) as client:
        model = client.llm.model()
        result = model.respond("hi")
        # Each fragment is pulled by a different portal task: the slot must still be released.
        for _ in range(2):
            with model.respond_stream("hi") as stream:
                fragments = [fragment.content for fragment in stream]
    assert result.message.content == "sync works" and result.usage == ak.Usage(5, 2)
    assert fragments == ["sync ", "works"] and len(server.posts(CHAT)) == 3


# -- llama-cpp-python's own server -----------------------------------------------------------


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    pytest.importorskip("starlette_context", reason="llama-cpp-python server deps missing")
    from agentkit.engines.llama_cpp.models import resolve_model

    path = resolve_model(None)[1]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--chat_format",
        "chatml",  # SmolLM2's template is ChatML
        "--n_threads",
        "2",
    ]
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"llama-server-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(url + "/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not start within 120 s")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


GREEDY = {"temperature": 0, "max_tokens": 8, "seed": 1}


def test_llama_server_respond_text_and_usage(llama_server: str) -> None:
    with ak.Client(engine=OpenAIEngine(llama_server)) as client:
        model = client.llm.model()
        assert model.model_key.endswith(".gguf")
        result = model.respond("Say hello.", config=GREEDY)
    assert result.message.content.strip()
    assert 0 < result.usage.completion_tokens <= 8
    assert result.finish_reason in ("stop", "length")


def test_llama_server_streams_fragments(llama_server: str) -> None:
    with ak.Client(engine=OpenAIEngine(llama_server)) as client:
        model = client.llm.model()
        with model.respond_stream("Count: one, two,", config=GREEDY) as stream:
            fragments = [fragment.content for fragment in stream]
            result = stream.result()
    assert len(fragments) >= 2
    assert "".join(fragments) == result.message.content


def test_llama_server_structured_output(llama_server: str) -> None:
    class City(BaseModel):
        name: str

    with ak.Client(engine=OpenAIEngine(llama_server)) as client:
        model = client.llm.model()
        result = model.respond(
            "Name a city in France as JSON.",
            config={"temperature": 0, "max_tokens": 24},
            response_format=City,
        )
    assert isinstance(result.parsed, City) and result.parsed.name


def test_openai_server_example_runs_against_a_real_server(llama_server: str) -> None:
    example = Path(__file__).parents[3] / "examples" / "openai_server_agent.py"
    done = subprocess.run(
        [sys.executable, str(example), llama_server], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "assistant: " in done.stdout and " rounds, " in done.stdout


def test_openai_server_example_reports_an_unreachable_server() -> None:
    example = Path(__file__).parents[3] / "examples" / "openai_server_agent.py"
    done = subprocess.run(
        [sys.executable, str(example), "http://127.0.0.1:9/v1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        done.returncode == 2 and "could not run the agent on http://127.0.0.1:9/v1" in done.stderr
    )


def test_llama_server_stream_cancel(llama_server: str) -> None:
    with ak.Client(engine=OpenAIEngine(llama_server)) as client:
        model = client.llm.model()
        stream = model.respond_stream(
            "Tell me a long story.", config={"temperature": 0, "max_tokens": 200}
        )
        fragments = []
        for fragment in stream:
            fragments.append(fragment.content)
            if len(fragments) == 3:
                stream.cancel()
        result = stream.result()
        assert result.finish_reason == "cancelled"
        assert 3 <= len(fragments) <= 6 and result.content == "".join(fragments)
        # The connection was released: the engine serves the next request.
        assert model.respond("Hi", config={"max_tokens": 2}).finish_reason in ("stop", "length")
