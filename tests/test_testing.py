"""agentkit.testing: the scripted models users test their agents with."""

from __future__ import annotations

import time

import anyio
import anyio.lowlevel
import pytest

import agentkit as ak
from agentkit.engines.base import PredictionRequest
from agentkit.testing import (
    AsyncScriptedModel,
    Malformed,
    Reply,
    ScriptedEngine,
    ScriptedModel,
    ScriptExhaustedError,
    ToolCall,
)


def test_list_responder_is_consumed_in_order_and_runs_out_loudly() -> None:
    model = ScriptedModel(["one", "two"])
    assert [model.respond("q").content for _ in range(2)] == ["one", "two"]
    with pytest.raises(ScriptExhaustedError, match="2 replies and prediction 3"):
        model.respond("q")


def test_exceptions_in_a_script_are_raised() -> None:
    model = ScriptedModel([TimeoutError("engine stalled")])
    with pytest.raises(TimeoutError, match="engine stalled"):
        model.respond("q")


def test_a_raising_responder_propagates() -> None:
    def responder(chat: ak.Chat, index: int) -> str:
        raise LookupError("no script for that")

    with pytest.raises(LookupError):
        ScriptedModel(responder).respond("q")


@pytest.mark.anyio
async def test_async_responder_with_request_argument() -> None:
    async def responder(chat: ak.Chat, index: int, request: PredictionRequest) -> str:
        await anyio.lowlevel.checkpoint()
        return f"{len(request.tools)} tools, round {index}, {len(chat)} messages"

    def noop() -> None:
        """Does nothing."""

    result = await AsyncScriptedModel(responder).act("q", [noop])
    assert result.final is not None and result.final.text == "1 tools, round 0, 1 messages"


def test_reply_with_text_and_calls_and_malformed_output() -> None:
    reply = Reply("thinking aloud", tool_calls=[ToolCall("f", {"x": 1}), Malformed("{oops")])
    result = ScriptedModel([reply]).respond("q")
    assert result.content == "thinking aloud"
    assert [c.name for c in result.tool_calls] == ["f"]
    assert result.finish_reason == "tool_calls"


def test_delay_is_real_and_counts_toward_time_to_first_token() -> None:
    model = ScriptedModel([Reply("late", delay=0.1)])
    started = time.perf_counter()
    result = model.respond("q")
    assert time.perf_counter() - started >= 0.1
    assert (
        result.time_to_first_token_seconds is not None and result.time_to_first_token_seconds >= 0.1
    )


def test_usage_counts_words() -> None:
    model = ScriptedModel(["three word answer"])
    result = model.respond(ak.Chat.from_history("four words of prompt"))
    assert result.usage == ak.Usage(prompt_tokens=4, completion_tokens=3)
    assert model.engine.usage == result.usage


@pytest.mark.parametrize("bad", ["just a string", 42])
def test_bad_responders_are_rejected(bad: object) -> None:
    with pytest.raises(ak.ConfigurationError, match="responder"):
        ScriptedEngine(bad)  # type: ignore[arg-type]


def test_bad_replies_are_rejected() -> None:
    with pytest.raises(ak.ConfigurationError, match="scripted reply"):
        ScriptedModel([{"not": "a reply"}]).respond("q")  # type: ignore[list-item]


def test_requests_are_recorded() -> None:
    model = ScriptedModel(["a"])
    model.respond("hello", config={"temperature": 0})
    [request] = model.engine.requests
    assert request.config is not None and request.config.temperature == 0
    assert request.messages[0].content == "hello"


def test_fragment_delay_is_between_fragments() -> None:
    stamps: list[float] = []
    started = time.perf_counter()
    ScriptedModel([Reply("one two", fragment_delay=1.0)]).act(
        "go", on_prediction_fragment=lambda f, i: stamps.append(time.perf_counter() - started)
    )
    # Generous bounds: the first fragment is not delayed, the second is, by the full second.
    assert stamps[0] < 0.9 and stamps[1] - stamps[0] >= 0.95
