"""act(): the loop's semantics, callbacks, results and structured output (scripted models)."""

from __future__ import annotations

import logging
import threading

import pytest
from pydantic import BaseModel

import agentkit as ak
from agentkit.engines.base import PredictionRequest
from agentkit.testing import AsyncScriptedModel, Reply, ScriptedModel, ToolCall


def multiply(a: float, b: float) -> float:
    """Given two numbers a and b, returns their product."""
    return a * b


def multiply_then_answer(chat: ak.Chat, round_index: int) -> str | list[ToolCall]:
    return [ToolCall("multiply", {"a": 2, "b": 3})] if round_index == 0 else "6"


def test_tool_round_trip_commits_messages_in_order() -> None:
    model = ScriptedModel(multiply_then_answer)
    chat = ak.Chat("You are a calculator.")
    chat.add_user_message("What is 2 times 3?")
    result = model.act(chat, [multiply], on_message=chat.append)

    assert result.final is not None and result.final.text == "6"
    assert result.rounds == 2 and result.stop_reason == "answered"
    roles = [m.role for m in chat]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    call = chat[2].tool_calls[0]  # type: ignore[union-attr]
    assert chat[3] == ak.ToolResultMessage(tool_call_id=call.id, name="multiply", content="6.0")
    assert result.messages == list(chat)[2:]


def test_act_does_not_mutate_the_chat_passed_in() -> None:
    chat = ak.Chat.from_history("What is 2 times 3?")
    before = chat.to_dict()
    ScriptedModel(multiply_then_answer).act(chat, [multiply])
    assert chat.to_dict() == before


def test_a_str_prompt_becomes_a_user_message() -> None:
    model = ScriptedModel(["hi"])
    model.act("hello there")
    request = model.engine.requests[0]
    assert [(m.role, m.content) for m in request.messages] == [("user", "hello there")]


def test_final_round_is_offered_no_tools_and_its_calls_are_refused() -> None:
    calls = [ToolCall("multiply", {"a": 1, "b": 1})]
    model = ScriptedModel([calls, calls, calls])
    result = model.act("loop forever", [multiply], max_prediction_rounds=3)

    assert [len(r.tools) for r in model.engine.requests] == [1, 1, 0]
    assert result.rounds == 3 and result.stop_reason == "max_rounds"
    last = result.round_records[-1].tool_calls[0]
    assert last.error == "final_round" and "no tools are available" in last.result
    # The refused call was not run: only the first two rounds produced "1.0".
    assert [r.tool_calls[0].result for r in result.round_records[:2]] == ["1.0", "1.0"]


def test_single_round_limit_runs_no_tools() -> None:
    model = ScriptedModel(["just text"])
    result = model.act("hi", [multiply], max_prediction_rounds=1)
    assert model.engine.requests[0].tools == ()
    assert result.final is not None and result.final.text == "just text"


@pytest.mark.parametrize("bad", [0, -1])
def test_invalid_round_limits_are_rejected(bad: int) -> None:
    with pytest.raises(ak.ConfigurationError, match="max_prediction_rounds"):
        ScriptedModel(["x"]).act("hi", max_prediction_rounds=bad)
    with pytest.raises(ak.ConfigurationError, match="max_parallel_tool_calls"):
        ScriptedModel(["x"]).act("hi", max_parallel_tool_calls=bad)


def test_loop_ends_after_a_round_without_tool_calls() -> None:
    model = ScriptedModel([[ToolCall("multiply", {"a": 2, "b": 2})], "4", "never used"])
    result = model.act("2*2", [multiply])
    assert result.rounds == 2 and len(model.engine.requests) == 2


def test_result_records_usage_rounds_and_durations() -> None:
    model = ScriptedModel(multiply_then_answer)
    result = model.act("What is 2 times 3?", [multiply])

    per_round = [r.usage for r in result.round_records]
    assert all(u.prompt_tokens > 0 for u in per_round)
    assert result.usage.prompt_tokens == sum(u.prompt_tokens for u in per_round)
    assert result.usage.completion_tokens == sum(u.completion_tokens for u in per_round)
    assert result.usage == model.engine.usage
    first = result.round_records[0]
    assert first.index == 0 and first.tool_calls[0].ok and first.tool_calls[0].duration_seconds >= 0
    assert result.round_records[1].tool_calls == ()
    assert result.total_time_seconds >= first.prediction.duration_seconds


def test_prediction_config_reaches_the_engine_and_is_validated() -> None:
    model = ScriptedModel(["ok", "ok"])
    model.act("hi", config={"temperature": 0.2, "maxTokens": 64})
    config = model.engine.requests[0].config
    assert config is not None and config.temperature == 0.2 and config.max_tokens == 64
    with pytest.raises(ak.ConfigurationError, match="temprature"):
        model.act("hi", config={"temprature": 0.2})


def test_callbacks_fire_in_order_with_round_indexes() -> None:
    events: list[tuple[object, ...]] = []
    model = ScriptedModel(
        [Reply("let me compute", tool_calls=[ToolCall("multiply", {"a": 2, "b": 3})]), "six"]
    )
    model.act(
        "2*3",
        [multiply],
        on_round_start=lambda i: events.append(("start", i)),
        on_round_end=lambda i: events.append(("end", i)),
        on_first_token=lambda i: events.append(("first", i)),
        on_prediction_fragment=lambda f, i: events.append(("fragment", f.content, i)),
        on_prompt_processing_progress=lambda p, i: events.append(("progress", p, i)),
        on_prediction_completed=lambda r: events.append(("completed", r.content)),
        on_message=lambda m: events.append(("message", m.role)),
    )
    assert events == [
        ("start", 0),
        ("progress", 0.0, 0),
        ("progress", 1.0, 0),
        ("first", 0),
        ("fragment", "let ", 0),
        ("fragment", "me ", 0),
        ("fragment", "compute", 0),
        ("completed", "let me compute"),
        ("message", "assistant"),
        ("message", "tool"),
        ("end", 0),
        ("start", 1),
        ("progress", 0.0, 1),
        ("progress", 1.0, 1),
        ("first", 1),
        ("fragment", "six", 1),
        ("completed", "six"),
        ("message", "assistant"),
        ("end", 1),
    ]


def test_coroutine_callbacks_are_awaited_in_the_sync_api() -> None:
    seen: list[str] = []

    async def on_message(message: ak.Message) -> None:
        seen.append(message.role)

    ScriptedModel(multiply_then_answer).act("2*3", [multiply], on_message=on_message)
    assert seen == ["assistant", "tool", "assistant"]


def test_a_raising_callback_is_logged_by_name_and_the_run_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken_callback(index: int) -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="agentkit"):
        result = ScriptedModel(multiply_then_answer).act(
            "2*3", [multiply], on_round_start=broken_callback
        )
    assert result.final is not None and result.final.text == "6"
    records = [r for r in caplog.records if "broken_callback" in r.getMessage()]
    assert len(records) == 2 and records[0].exc_info is not None


def test_reasoning_is_kept_apart_from_the_answer() -> None:
    fragments: list[ak.PredictionFragment] = []
    model = ScriptedModel([Reply("42", reasoning="think hard")])
    result = model.act("?", on_prediction_fragment=lambda f, i: fragments.append(f))
    assert result.final is not None
    assert result.final.content == "42" and result.final.reasoning == "think hard"
    assert [f.reasoning for f in fragments] == [True, True, False]


def test_engine_errors_propagate_and_commit_nothing() -> None:
    chat = ak.Chat.from_history("2*3")
    model = ScriptedModel([[ToolCall("multiply", {"a": 2, "b": 3})], ConnectionError("gone")])
    with pytest.raises(ConnectionError, match="gone"):
        model.act(chat, [multiply], on_message=chat.append)
    # The first round completed and was committed; the failed second round left no trace.
    assert [m.role for m in chat] == ["user", "assistant", "tool"]


class Product(BaseModel):
    a: float
    b: float
    product: float


def test_structured_output_with_tools() -> None:
    model = ScriptedModel(
        [[ToolCall("multiply", {"a": 2, "b": 3})], '{"a": 2, "b": 3, "product": 6}']
    )
    result = model.act("2*3 as JSON", [multiply], response_format=Product)
    assert result.parsed == Product(a=2, b=3, product=6)
    spec = model.engine.requests[0].response_format
    assert spec is not None and spec.schema == Product.model_json_schema()
    assert len(model.engine.requests[0].tools) == 1


def test_structured_output_from_a_json_schema_dict() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    result = ScriptedModel(['```json\n{"n": 7}\n```']).act("n?", response_format=schema)
    assert result.parsed == {"n": 7}


def test_invalid_structured_answer_is_fed_back_then_retried() -> None:
    model = ScriptedModel(['{"a": 2}', '{"a": 2, "b": 3, "product": 6}'])
    result = model.act("2*3 as JSON", response_format=Product)
    assert result.parsed == Product(a=2, b=3, product=6)
    feedback = model.engine.requests[1].messages[-1]
    assert feedback.role == "user" and "b: Field required" in feedback.content
    assert result.rounds == 2


def test_structured_output_failing_on_the_final_round_raises() -> None:
    chat = ak.Chat.from_history("json please")
    with pytest.raises(ak.StructuredOutputError, match="not valid JSON") as caught:
        ScriptedModel(["not json"]).act(
            chat, response_format=Product, max_prediction_rounds=1, on_message=chat.append
        )
    assert caught.value.raw == "not json"
    assert caught.value.result is not None and caught.value.result.rounds == 0
    assert len(chat) == 1


def test_structured_output_retry_budget() -> None:
    model = ScriptedModel(lambda chat, i: "nope")
    with pytest.raises(ak.StructuredOutputError, match="4 attempt"):
        model.act("json", response_format=Product)
    assert len(model.engine.requests) == ak.tools.DEFAULT_RETRIES + 1


def test_invalid_response_format_is_a_configuration_error() -> None:
    with pytest.raises(ak.ConfigurationError, match="response_format"):
        ScriptedModel(["x"]).act("hi", response_format=int)  # type: ignore[arg-type]
    with pytest.raises(ak.ConfigurationError, match="not a valid schema"):
        ScriptedModel(["x"]).act("hi", response_format={"type": "banana"})


def test_responder_sees_the_round_request() -> None:
    seen: list[PredictionRequest] = []

    def responder(chat: ak.Chat, index: int, request: PredictionRequest) -> str:
        seen.append(request)
        return "done"

    ScriptedModel(responder).act("hi", [multiply], config={"seed": 3})
    assert seen[0].tools[0].name == "multiply" and seen[0].config is not None
    assert seen[0].config.seed == 3


@pytest.mark.anyio
async def test_async_api_runs_the_same_loop() -> None:
    loop_thread = threading.get_ident()
    threads: dict[str, int] = {}

    def sync_tool(x: int) -> int:
        threads["sync"] = threading.get_ident()
        return x + 1

    async def async_tool(x: int) -> int:
        threads["async"] = threading.get_ident()
        return x * 2

    model = AsyncScriptedModel(
        lambda chat, i: (
            [ToolCall("sync_tool", {"x": 1}), ToolCall("async_tool", {"x": 5})]
            if i == 0
            else "done"
        )
    )
    chat = ak.Chat.from_history("go")
    result = await model.act(chat, [sync_tool, async_tool], on_message=chat.append)
    assert [m.content for m in chat if m.role == "tool"] == ["2", "10"]
    assert result.final is not None and result.final.text == "done"
    assert threads["async"] == loop_thread and threads["sync"] != loop_thread
