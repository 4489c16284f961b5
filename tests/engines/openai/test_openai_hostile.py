"""The OpenAI-compatible engine against a hostile or broken server (issue 8).

Everything runs against the real local fault server over HTTP. Each fault must end as an
`EngineError` (server data), or for tool-call arguments the model produced, on the
invalid-request path; time and memory stay bounded. Timed assertions have wide margins.
"""

from __future__ import annotations

import json
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from openai_fault_server import Canned, FaultServer, chunk, gzip_bomb, gzipped, sse, text_stream

import agentkit as ak
from agentkit.engines.base import (
    MalformedToolCall,
    PredictionDone,
    PredictionEvent,
    PredictionRequest,
    TextDelta,
    ToolCallRequested,
)
from agentkit.engines.openai.engine import OpenAIEngine
from agentkit.errors import ConfigurationError, EngineError
from agentkit.messages import UserMessage

CHAT = "/v1/chat/completions"
MiB = 1024 * 1024
GZIP = {"Content-Encoding": "gzip"}
EMPTY_DELTA = json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": None}]})


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


def engine_for(server: FaultServer, **options: Any) -> OpenAIEngine:
    return OpenAIEngine(server.url, backoff=0.01, **options)


async def predict(server: FaultServer, **options: Any) -> list[PredictionEvent]:
    """One prediction's events (the engine is closed afterwards, whatever happens)."""
    engine = engine_for(server, **options)
    try:
        info = await engine.get_or_load(None, None, None)
        request = PredictionRequest([UserMessage(content="q")])
        return [event async for event in engine.predict(info.identifier, request)]
    finally:
        await engine.aclose()


def text_of(events: list[PredictionEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def call_chunk(index: Any = 0, **function: Any) -> str:
    fragment = {"index": index, "id": "c1", "type": "function", "function": function}
    return chunk(tool_calls=[fragment])


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


# -- bounded time ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_slow_drip_ends_at_the_total_deadline(server: FaultServer) -> None:
    # One byte every 0.2 s: each read succeeds well within the per-read timeout.
    server.script(CHAT, sse(text_stream("a long answer"), drip=0.2))
    started = time.monotonic()
    with pytest.raises(EngineError, match=r"timed out.*1\.5 s \(total_timeout\)"):
        await predict(server, total_timeout=1.5)
    elapsed = time.monotonic() - started
    assert 1.4 <= elapsed < 6


@pytest.mark.anyio
async def test_an_endless_flood_of_empty_deltas_ends_at_the_deadline(server: FaultServer) -> None:
    server.script(CHAT, sse([chunk("Hello")], flood=EMPTY_DELTA))
    started = time.monotonic()
    with pytest.raises(EngineError, match="timed out"):
        await predict(server, total_timeout=1.5)
    assert time.monotonic() - started < 6


@pytest.mark.anyio
async def test_the_deadline_covers_retries_and_their_waits(server: FaultServer) -> None:
    server.script(CHAT, Canned(503, {"error": "busy"}, headers={"Retry-After": "20"}))
    started = time.monotonic()
    with pytest.raises(EngineError, match="timed out"):
        await predict(server, total_timeout=1.5, max_retries=5)
    assert time.monotonic() - started < 6


@pytest.mark.anyio
async def test_done_completes_the_answer_though_the_connection_stays_open(
    server: FaultServer,
) -> None:
    # The server holds the connection for a minute after [DONE]: the per-read timeout (3 s)
    # would fire if the engine kept reading.
    server.script(CHAT, sse(text_stream("all ", "done"), hold_open=60))
    started = time.monotonic()
    events = await predict(server, timeout=3)
    assert time.monotonic() - started < 2.5
    assert text_of(events) == "all done"
    assert events[-1] == PredictionDone(ak.Usage(5, 2), "stop")


@pytest.mark.anyio
async def test_events_after_done_are_not_read(server: FaultServer) -> None:
    server.script(CHAT, sse([*text_stream("kept"), chunk(" ignored"), "not even json"]))
    assert text_of(await predict(server)) == "kept"


# -- bounded memory ----------------------------------------------------------------------------


async def peak_growth(coroutine: Any) -> tuple[BaseException | None, int]:
    """Run `coroutine`; its error and the peak of traced allocations it added, in bytes."""
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    try:
        await coroutine
        error = None
    except Exception as caught:
        error = caught
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return error, peak - baseline


@pytest.mark.anyio
async def test_a_gzip_bomb_in_one_line_fails_within_bounded_memory(server: FaultServer) -> None:
    bomb = gzip_bomb(300)  # ~300 KB on the wire, one 300 MiB SSE line once decompressed
    assert len(bomb) < 2 * MiB
    server.script(CHAT, Canned(raw=bomb, headers=GZIP))
    error, growth = await peak_growth(predict(server))
    assert isinstance(error, EngineError), error
    assert "longer than 8388608 bytes (max_line_bytes)" in str(error)
    assert growth < 64 * MiB, f"peak grew by {growth / MiB:.0f} MiB"


@pytest.mark.anyio
async def test_a_gzip_bomb_in_an_error_body_is_read_only_up_to_its_cap(
    server: FaultServer,
) -> None:
    body = gzip_bomb(300, prefix=b'{"error": "overloaded ', fill=b"x")
    server.script(CHAT, Canned(503, raw=body, headers=GZIP, content_type="application/json"))
    error, growth = await peak_growth(predict(server, max_retries=1))
    assert isinstance(error, EngineError), error
    assert "HTTP 503" in str(error) and '"error": "overloaded xxx' in str(error)
    assert growth < 32 * MiB, f"peak grew by {growth / MiB:.0f} MiB"
    assert len(server.posts(CHAT)) == 2  # still retried like any 5xx


@pytest.mark.anyio
async def test_a_gzip_bomb_as_a_whole_json_answer_is_capped(server: FaultServer) -> None:
    body = gzip_bomb(200, prefix=b'{"choices": [{"index": 0, "message": {"content": "', fill=b"y")
    server.script(CHAT, Canned(raw=body, headers=GZIP, content_type="application/json"))
    error, growth = await peak_growth(predict(server))
    assert isinstance(error, EngineError)
    assert "answer is larger than 16777216 bytes (max_event_bytes)" in str(error)
    assert growth < 96 * MiB, f"peak grew by {growth / MiB:.0f} MiB"


@pytest.mark.anyio
async def test_a_gzip_bomb_as_the_model_list_is_capped() -> None:
    with FaultServer() as server:
        engine = engine_for(server, max_body_bytes=MiB)
        bomb = gzip_bomb(50, prefix=b'{"data": [{"id": "', fill=b"m")
        server.script("/v1/embeddings", Canned(raw=bomb, headers=GZIP))
        info = await engine.load_new_instance("test-model", "e", None, None, "embedding")
        with pytest.raises(EngineError, match=r"larger than 1048576 bytes \(max_body_bytes\)"):
            await engine.embed(info.identifier, ["x"])
        await engine.aclose()


@pytest.mark.anyio
async def test_line_and_event_caps(server: FaultServer) -> None:
    server.script(CHAT, sse([chunk("x" * 3000), "[DONE]"]))
    with pytest.raises(EngineError, match=r"line longer than 2000 bytes \(max_line_bytes\)"):
        await predict(server, max_line_bytes=2000)
    # An event of many short data lines: each line is fine, the event is not.
    many_lines = "\n".join(["data: x"] * 600).encode() + b"\n\n"
    server.script(CHAT, Canned(raw=many_lines))
    with pytest.raises(EngineError, match=r"event larger than 1000 bytes \(max_event_bytes\)"):
        await predict(server, max_event_bytes=1000)
    # A tool call's arguments spread over many small events are capped too.
    pieces = [call_chunk(name="f", arguments="{")] + [call_chunk(arguments="1" * 100)] * 30
    server.script(CHAT, sse([*pieces, chunk(finish="tool_calls"), "[DONE]"]))
    with pytest.raises(EngineError, match=r"tool call larger than 2000 characters"):
        await predict(server, max_event_bytes=2000)


@pytest.mark.anyio
async def test_compressed_streams_decode(server: FaultServer) -> None:
    body = "".join(f"data: {event}\n\n" for event in text_stream("zipped ", "text")).encode()
    deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    raw_deflate = deflater.compress(body) + deflater.flush()
    half = len(body) // 2
    two_members = gzipped(body[:half]) + gzipped(body[half:])
    for encoded, encoding in [
        (gzipped(body), "gzip"),
        (two_members, "gzip"),
        (zlib.compress(body), "deflate"),
        (raw_deflate, "deflate"),
    ]:
        server.script(CHAT, Canned(raw=encoded, headers={"Content-Encoding": encoding}))
        assert text_of(await predict(server)) == "zipped text", encoding
    assert server.posts(CHAT)[0].headers["accept-encoding"] == "gzip, deflate"
    server.script(CHAT, Canned(raw=body, headers={"Content-Encoding": "br"}))
    with pytest.raises(EngineError, match=r"Content-Encoding 'br'.*only gzip and deflate"):
        await predict(server)
    server.script(CHAT, Canned(raw=b"\x1f\x8b not gzip at all", headers=GZIP))
    with pytest.raises(EngineError, match="gzip body could not be decompressed"):
        await predict(server)


# -- untyped data ------------------------------------------------------------------------------

HOSTILE_CHUNKS = [
    ("not json", "not valid JSON"),
    ("[1, 2]", "a streamed chunk is not a JSON object"),
    ("5", "not a JSON object"),
    (json.dumps({"choices": "all of them"}), r"choices: Input should be a valid list"),
    (json.dumps({"choices": [5]}), r"choices\.0"),
    (json.dumps({"choices": [{"index": "0", "delta": {}}]}), r"choices\.0\.index"),
    (json.dumps({"choices": [{"index": 0, "delta": []}]}), r"choices\.0\.delta"),
    (json.dumps({"choices": [{"index": 0, "delta": "hi"}]}), r"choices\.0\.delta"),
    (json.dumps({"choices": [{"delta": {"content": 5}}]}), r"delta\.content"),
    (json.dumps({"choices": [{"delta": {"content": ["a"]}}]}), r"delta\.content"),
    (json.dumps({"choices": [{"delta": {"tool_calls": {}}}]}), r"delta\.tool_calls"),
    (json.dumps({"choices": [{"delta": {"tool_calls": [7]}}]}), r"tool_calls\.0"),
    (call_chunk(index="0", name="f"), r"tool_calls\.0\.index"),
    (call_chunk(index=None, name="f"), r"tool_calls\.0\.index"),
    (call_chunk(index=True, name="f"), r"tool_calls\.0\.index"),
    (call_chunk(index=-1, name="f"), r"tool_calls\.0\.index"),
    (call_chunk(index=1.5, name="f"), r"tool_calls\.0\.index"),
    (call_chunk(name=5), r"function\.name"),
    (call_chunk(arguments={"a": 1}), r"function\.arguments"),
    (json.dumps({"choices": [{"delta": {}, "finish_reason": 3}]}), r"finish_reason"),
    (json.dumps({"choices": [], "usage": 12}), r"usage: Input should be"),
    (json.dumps({"choices": [], "usage": {"prompt_tokens": "5"}}), r"usage\.prompt_tokens"),
    (json.dumps({"choices": [], "usage": {"completion_tokens": -2}}), r"completion_tokens"),
    (json.dumps({"choices": [], "usage": {"prompt_tokens": 2**60}}), r"prompt_tokens"),
    ('{"choices": [], "usage": {"prompt_tokens": ' + "9" * 5000 + "}}", "more than 400 digits"),
    ('{"choices": [{"index": 1e999}]}', "does not fit a float"),
    ('{"choices": [{"index": NaN}]}', "NaN is not a JSON number"),
    ('{"choices": ' + deep(5000) + "}", "nested deeper than 100 levels"),
    (json.dumps({"error": {"message": "quota exhausted"}}), "reported an error: quota exhausted"),
    (json.dumps({"error": ["odd", 1]}), r"reported an error: \['odd', 1\]"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("data", "message"), HOSTILE_CHUNKS)
async def test_a_hostile_chunk_is_an_engine_error(
    server: FaultServer, data: str, message: str
) -> None:
    server.script(CHAT, sse([chunk("fine so far"), data, chunk(finish="stop"), "[DONE]"]))
    with pytest.raises(EngineError, match=message):
        await predict(server)


@pytest.mark.anyio
@pytest.mark.parametrize(("data", "message"), HOSTILE_CHUNKS[3:])
async def test_a_hostile_whole_answer_is_an_engine_error(
    server: FaultServer, data: str, message: str
) -> None:
    # The same shapes as a non-streamed chat.completion body (delta spelled message).
    body = data.replace('"delta"', '"message"')
    message = message.replace("delta", "message").replace("a streamed chunk", "the answer")
    server.script(CHAT, Canned(raw=body.encode(), content_type="application/json"))
    with pytest.raises(EngineError, match=message):
        await predict(server)


@pytest.mark.anyio
async def test_a_non_streamed_answer_is_understood(server: FaultServer) -> None:
    message = {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}},
            {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
        ],
    }
    answer = {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 4},
    }
    server.script(CHAT, Canned(body=answer))
    events = await predict(server)
    assert text_of(events) == "Let me check."
    calls = [e.call for e in events if isinstance(e, ToolCallRequested)]
    assert [(c.id, c.name, c.arguments) for c in calls] == [("a", "f", {"x": 1}), ("b", "g", {})]
    assert events[-1] == PredictionDone(ak.Usage(9, 4), "tool_calls")


@pytest.mark.anyio
async def test_lone_surrogates_are_cleaned_so_the_next_request_encodes(
    server: FaultServer,
) -> None:
    def tool(a: str) -> str:
        """Echo."""
        return a

    # JSON escapes of a lone surrogate in the text, in the tool name's neighbourhood and inside
    # the arguments text; and a valid pair, which must be joined.
    first = [
        '{"choices": [{"index": 0, "delta": {"content": "odd \\ud800 and \\ud83d\\ude00"}}]}',
        call_chunk(name="tool", arguments='{"a": "\\udfff!"}'),
        chunk(finish="tool_calls"),
        "[DONE]",
    ]
    server.script(CHAT, sse(first), sse(text_stream("ok")))
    chat = ak.Chat()
    chat.add_user_message("lone \ud801 surrogate from the user")
    async with ak.AsyncClient(engine=engine_for(server)) as client:
        model = await client.llm.model()
        result = await model.act(chat, [tool], on_message=chat.append)
    assert result.final is not None and result.final.content == "ok"
    assistant = chat.messages[1]
    assert isinstance(assistant, ak.AssistantMessage)
    assert assistant.content == "odd \ufffd and \U0001f600"
    assert assistant.tool_calls[0].arguments == {"a": "\ufffd!"}
    # Both requests went out as UTF-8 (the user's own surrogate replaced too).
    first_request, second = server.posts(CHAT)
    assert first_request.body["messages"][0]["content"] == "lone \ufffd surrogate from the user"
    assert second.body["messages"][1]["content"] == "odd \ufffd and \U0001f600"
    json.dumps(chat.to_dict()).encode()


@pytest.mark.anyio
async def test_hostile_tool_arguments_go_back_to_the_model(server: FaultServer) -> None:
    cases = {
        "deep": '{"a": ' + deep(5000) + "}",
        "digits": '{"a": ' + "7" * 5000 + "}",
        "overflow": '{"a": 1e999}',
    }
    for label, arguments in cases.items():
        server.script(CHAT, sse([call_chunk(name="f", arguments=arguments), "[DONE]"]))
        events = await predict(server)
        malformed = [e for e in events if isinstance(e, MalformedToolCall)]
        assert len(malformed) == 1, label
        assert malformed[0].raw == arguments
        assert any(word in malformed[0].reason for word in ("nested", "digits", "fit a float")), (
            label
        )
    # Text that is not JSON at all stays a tool call with raw string arguments.
    server.script(CHAT, sse([call_chunk(name="f", arguments="{oops"), "[DONE]"]))
    calls = [e for e in await predict(server) if isinstance(e, ToolCallRequested)]
    assert calls[0].call.arguments == "{oops"


@pytest.mark.anyio
async def test_act_reports_hostile_arguments_to_the_model_and_continues(
    server: FaultServer,
) -> None:
    def f(a: int) -> int:
        """Identity."""
        return a

    bad = sse([call_chunk(name="f", arguments='{"a": ' + deep(3000) + "}"), "[DONE]"])
    server.script(CHAT, bad, sse(text_stream("recovered")))
    chat = ak.Chat()
    chat.add_user_message("go")
    async with ak.AsyncClient(engine=engine_for(server)) as client:
        result = await (await client.llm.model()).act(chat, [f], on_message=chat.append)
    assert result.final is not None and result.final.content == "recovered"
    told = json.dumps(server.posts(CHAT)[1].body["messages"])
    assert "could not be parsed" in told and "nested deeper" in told


@pytest.mark.anyio
async def test_a_hostile_chunk_mid_act_commits_no_half_round(server: FaultServer) -> None:
    def f() -> str:
        """Nothing."""
        return ""

    events = [chunk("Half an answer"), call_chunk(index="zero", name="f"), "[DONE]"]
    server.script(CHAT, sse(events))
    chat = ak.Chat("sys")
    chat.add_user_message("hi")
    async with ak.AsyncClient(engine=engine_for(server)) as client:
        with pytest.raises(EngineError, match="index"):
            await (await client.llm.model()).act(chat, [f], on_message=chat.append)
    assert [m.role for m in chat] == ["system", "user"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"data": {"embedding": [1.0]}}, r"data: Input should be a valid list"),
        ({"data": [{"embedding": ["1.0"]}]}, r"data\.0\.embedding\.0"),
        ({"data": [{"embedding": [True]}]}, r"data\.0\.embedding\.0"),
        ({"data": [{"embedding": 1.0}]}, r"data\.0\.embedding"),
        ({"data": [{"index": "0", "embedding": [1.0]}]}, r"data\.0\.index"),
        ({"data": []}, "answered 0 embeddings for 1 texts"),
        ({"data": [{"embedding": [1.0]}, {"embedding": [2.0]}]}, "2 embeddings for 1 texts"),
        ({"nothing": True}, r"data: Field required"),
        ([1, 2], "embeddings answer is not a JSON object"),
        ({"error": {"message": "no embeddings here"}}, "reported an error: no embeddings here"),
    ],
)
async def test_embedding_answers_of_the_wrong_shape(answer: Any, message: str) -> None:
    with FaultServer() as server:
        server.script("/v1/embeddings", Canned(body=answer))
        engine = engine_for(server)
        info = await engine.load_new_instance("test-model", "e", None, None, "embedding")
        with pytest.raises(EngineError, match=message):
            await engine.embed(info.identifier, ["x"])
        await engine.aclose()


@pytest.mark.anyio
async def test_embedding_indices_must_cover_every_text_once() -> None:
    with FaultServer() as server:
        rows = [{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [2.0]}]
        server.script("/v1/embeddings", Canned(body={"data": rows}))
        engine = engine_for(server)
        info = await engine.load_new_instance("test-model", "e", None, None, "embedding")
        with pytest.raises(EngineError, match=r"indices that are not 0\.\.1 once each"):
            await engine.embed(info.identifier, ["x", "y"])
        deep_answer = '{"data": [{"embedding": ' + deep(500) + "}]}"
        server.script("/v1/embeddings", Canned(raw=deep_answer.encode()))
        with pytest.raises(EngineError, match="nested deeper"):
            await engine.embed(info.identifier, ["x"])
        await engine.aclose()


@pytest.mark.anyio
async def test_model_lists_of_the_wrong_shape() -> None:
    with FaultServer() as server:
        engine = engine_for(server)
        server.models = [5]  # type: ignore[list-item]
        with pytest.raises(EngineError, match=r"data\.0\.id: Input should be a valid string"):
            await engine.get_or_load(None, None, None)
        await engine.aclose()


def test_options_are_checked() -> None:
    for options in [
        {"total_timeout": 0},
        {"total_timeout": float("nan")},
        {"max_line_bytes": 0},
        {"max_event_bytes": -1},
        {"max_error_bytes": 0},
        {"max_body_bytes": 0},
    ]:
        with pytest.raises(ConfigurationError, match=next(iter(options))):
            OpenAIEngine("http://127.0.0.1:1/v1", **options)
    engine = OpenAIEngine("http://127.0.0.1:1/v1")
    assert (engine.total_timeout, engine.max_line_bytes, engine.max_event_bytes) == (
        600,
        8 * MiB,
        16 * MiB,
    )
    assert (engine.max_error_bytes, engine.max_body_bytes) == (MiB, 256 * MiB)
