"""act(): running tool calls — parallelism, ordering, limits and every invalid-request path."""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import agentkit as ak
from agentkit.errors import (
    InvalidToolRequest,
    MalformedToolCallError,
    ToolArgumentsError,
    ToolCallOnFinalRoundError,
    ToolExecutionError,
    ToolTimeoutError,
    UnknownToolError,
)
from agentkit.testing import AsyncScriptedModel, Malformed, Reply, ScriptedModel, ToolCall


def calls_then(calls: list[ToolCall], answer: str = "done") -> Any:
    return lambda chat, i: calls if i == 0 else answer


class Concurrency:
    """Counts how many calls run at once."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.lock = threading.Lock()

    def enter(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def exit(self) -> None:
        with self.lock:
            self.now -= 1


@pytest.mark.anyio
async def test_eight_async_tools_sleeping_run_concurrently() -> None:
    async def nap(n: int) -> int:
        await anyio.sleep(0.2)
        return n

    model = AsyncScriptedModel(calls_then([ToolCall("nap", {"n": n}) for n in range(8)]))
    started = time.perf_counter()
    result = await model.act("nap", [nap])
    elapsed = time.perf_counter() - started
    assert elapsed < 0.4, f"8 x 0.2 s tools took {elapsed:.3f} s: they did not run in parallel"
    assert [r.result for r in result.round_records[0].tool_calls] == [str(n) for n in range(8)]


def test_sync_api_runs_sync_tools_in_parallel_threads() -> None:
    def slow(n: int) -> int:
        time.sleep(0.2)
        return n

    model = ScriptedModel(calls_then([ToolCall("slow", {"n": n}) for n in range(4)]))
    started = time.perf_counter()
    model.act("go", [slow])
    assert time.perf_counter() - started < 0.6


def test_results_enter_the_chat_in_request_order() -> None:
    async def delayed(label: str, seconds: float) -> str:
        await anyio.sleep(seconds)
        return label

    calls = [
        ToolCall("delayed", {"label": "first", "seconds": 0.15}),
        ToolCall("delayed", {"label": "second", "seconds": 0.0}),
        ToolCall("delayed", {"label": "third", "seconds": 0.07}),
    ]
    chat = ak.Chat.from_history("go")
    ScriptedModel(calls_then(calls)).act(chat, [delayed], on_message=chat.append)
    tool_messages = [m for m in chat if isinstance(m, ak.ToolResultMessage)]
    assert [m.content for m in tool_messages] == ["first", "second", "third"]
    assert [m.tool_call_id for m in tool_messages] == [c.id for c in calls]


@pytest.mark.parametrize(("limit", "expected_peak"), [(None, 6), (2, 2), (1, 1)])
def test_max_parallel_tool_calls_caps_concurrency(limit: int | None, expected_peak: int) -> None:
    gauge = Concurrency()

    async def busy() -> None:
        gauge.enter()
        await anyio.sleep(0.05)
        gauge.exit()

    model = ScriptedModel(calls_then([ToolCall("busy") for _ in range(6)]))
    model.act("go", [busy], max_parallel_tool_calls=limit)
    assert gauge.peak == expected_peak


def test_sequential_tools_run_alone() -> None:
    gauge = Concurrency()
    overlapped: list[int] = []

    async def parallel_ok() -> None:
        gauge.enter()
        await anyio.sleep(0.05)
        gauge.exit()

    @ak.tool(sequential=True)
    async def exclusive() -> None:
        gauge.enter()
        overlapped.append(gauge.now)
        await anyio.sleep(0.05)
        gauge.exit()

    calls = [ToolCall("parallel_ok"), ToolCall("parallel_ok"), ToolCall("exclusive")]
    calls += [ToolCall("parallel_ok"), ToolCall("exclusive"), ToolCall("parallel_ok")]
    ScriptedModel(calls_then(calls)).act("go", [parallel_ok, exclusive])
    assert overlapped == [1, 1]
    assert gauge.peak == 2  # the two leading parallel calls did share a batch


def failing_tool(x: int) -> int:
    """Always fails."""
    raise ValueError(f"cannot handle {x}")


async def sleepy() -> str:
    await anyio.sleep(5)
    return "woke"


def add(a: int, b: int) -> int:
    return a + b


INVALID_CASES = [
    (
        "unknown",
        ToolCall("nope", {}),
        UnknownToolError,
        "There is no tool named 'nope'. Available tools: 'add'",
    ),
    ("not json", ToolCall("add", '{"a": 1,'), ToolArgumentsError, "not valid JSON"),
    (
        "not an object",
        ToolCall("add", "[1, 2]"),
        ToolArgumentsError,
        "must be a JSON object, got list",
    ),
    (
        "bad type",
        ToolCall("add", {"a": "x", "b": 1}),
        ToolArgumentsError,
        "a: Input should be a valid integer",
    ),
    ("missing", ToolCall("add", {"a": 1}), ToolArgumentsError, "b: Field required"),
    (
        "extra",
        ToolCall("add", {"a": 1, "b": 2, "c": 3}),
        ToolArgumentsError,
        "c: Extra inputs are not permitted",
    ),
    (
        "raised",
        ToolCall("failing_tool", {"x": 3}),
        ToolExecutionError,
        "ValueError: cannot handle 3",
    ),
    ("timed out", ToolCall("sleepy", {}), ToolTimeoutError, "timed out after 0.05 s"),
]
TOOLS = [add, failing_tool, ak.tool(sleepy, timeout=0.05)]


@pytest.mark.parametrize(
    ("label", "call", "error_type", "text"), INVALID_CASES, ids=[c[0] for c in INVALID_CASES]
)
def test_invalid_requests_are_reported_to_the_model(
    label: str, call: ToolCall, error_type: type[InvalidToolRequest], text: str
) -> None:
    if label == "unknown":
        tools: list[Any] = [add]
    else:
        tools = TOOLS
    model = ScriptedModel(calls_then([call]))
    chat = ak.Chat.from_history("go")
    result = model.act(chat, tools, on_message=chat.append)

    result_message = chat[2]
    assert isinstance(result_message, ak.ToolResultMessage)
    assert result_message.is_error and text in result_message.content
    assert result_message.tool_call_id == call.id
    assert result.round_records[0].tool_calls[0].error == error_type.kind
    # The model saw the message in the next round and the run went on.
    assert model.engine.requests[1].messages[-1] == result_message
    assert result.final is not None and result.final.text == "done"


@pytest.mark.parametrize(
    ("label", "call", "error_type", "text"), INVALID_CASES, ids=[c[0] for c in INVALID_CASES]
)
def test_handler_receives_the_typed_error_and_can_reword(
    label: str, call: ToolCall, error_type: type[InvalidToolRequest], text: str
) -> None:
    received: list[tuple[InvalidToolRequest, ToolCall | None]] = []

    def handler(error: InvalidToolRequest, request: ToolCall | None) -> str:
        received.append((error, request))
        return f"custom: {type(error).__name__}"

    model = ScriptedModel(calls_then([call]))
    result = model.act("go", TOOLS, handle_invalid_tool_request=handler)
    assert len(received) == 1
    error, request = received[0]
    assert type(error) is error_type and request == call and text in str(error)
    assert result.round_records[0].tool_calls[0].result == f"custom: {error_type.__name__}"


def test_tool_exception_is_the_cause_of_the_reported_error() -> None:
    received: list[InvalidToolRequest] = []
    ScriptedModel(calls_then([ToolCall("failing_tool", {"x": 1})])).act(
        "go", [failing_tool], handle_invalid_tool_request=lambda e, r: received.append(e)
    )
    assert isinstance(received[0].__cause__, ValueError)


def test_handler_returning_none_keeps_the_default_message() -> None:
    result = ScriptedModel(calls_then([ToolCall("nope")])).act(
        "go", [add], handle_invalid_tool_request=lambda e, r: None
    )
    assert result.round_records[0].tool_calls[0].result.startswith("There is no tool named 'nope'")


def test_async_handler_is_awaited() -> None:
    async def handler(error: InvalidToolRequest, request: ToolCall | None) -> str:
        await anyio.lowlevel.checkpoint()
        return "async says no"

    result = ScriptedModel(calls_then([ToolCall("nope")])).act(
        "go", [add], handle_invalid_tool_request=handler
    )
    assert result.round_records[0].tool_calls[0].result == "async says no"


def test_handler_raising_ends_the_run_and_commits_nothing() -> None:
    class Stop(Exception):
        pass

    def handler(error: InvalidToolRequest, request: ToolCall | None) -> str:
        raise Stop(str(error))

    chat = ak.Chat.from_history("go")
    with pytest.raises(Stop, match="no tool named"):
        ScriptedModel(calls_then([ToolCall("add", {"a": 1, "b": 2}), ToolCall("nope")])).act(
            chat, [add], handle_invalid_tool_request=handler, on_message=chat.append
        )
    assert len(chat) == 1


def test_call_on_the_final_round_reaches_the_handler() -> None:
    received: list[InvalidToolRequest] = []
    ScriptedModel([[ToolCall("add", {"a": 1, "b": 2})]]).act(
        "go",
        [add],
        max_prediction_rounds=1,
        handle_invalid_tool_request=lambda e, r: received.append(e),
    )
    assert isinstance(received[0], ToolCallOnFinalRoundError)


def test_malformed_output_is_fed_back_and_kept() -> None:
    received: list[tuple[InvalidToolRequest, ToolCall | None]] = []
    model = ScriptedModel(
        [
            Reply(
                "calling",
                tool_calls=[Malformed('<tool_call>{"name": "add", ', "unterminated JSON")],
            ),
            "ok",
        ]
    )
    chat = ak.Chat.from_history("go")
    result = model.act(
        chat,
        [add],
        on_message=chat.append,
        handle_invalid_tool_request=lambda e, r: received.append((e, r)),
    )
    assistant, feedback = chat[1], chat[2]
    assert isinstance(assistant, ak.AssistantMessage)
    assert assistant.content == 'calling\n<tool_call>{"name": "add", '  # no output lost
    assert isinstance(feedback, ak.UserMessage) and "unterminated JSON" in feedback.content
    assert isinstance(received[0][0], MalformedToolCallError) and received[0][1] is None
    assert result.final is not None and result.final.text == "ok"


def test_malformed_output_has_a_retry_budget() -> None:
    model = ScriptedModel(lambda chat, i: [Malformed("{{{")])
    with pytest.raises(ak.ToolRetriesExceededError, match="the model's tool calls failed 4 times"):
        model.act("go", [add])


def test_retry_budget_ends_the_run_with_a_typed_error() -> None:
    flaky = ak.tool(failing_tool, retries=1)
    model = ScriptedModel(lambda chat, i: [ToolCall("failing_tool", {"x": i})])
    chat = ak.Chat.from_history("go")
    with pytest.raises(ak.ToolRetriesExceededError) as caught:
        model.act(chat, [flaky], on_message=chat.append)
    error = caught.value
    assert error.tool_name == "failing_tool" and error.failures == 2
    assert isinstance(error.last_error, ToolExecutionError)
    assert "retries=N" in str(error)
    # Round 0 was committed; round 1, which exhausted the budget, was not.
    assert [m.role for m in chat] == ["user", "assistant", "tool"]
    assert error.result is not None and error.result.rounds == 1


def test_retry_budget_counts_failures_in_a_row() -> None:
    outcomes = iter([True, False, True, False, True, False])

    @ak.tool(retries=1)
    def sometimes() -> str:
        if next(outcomes):
            raise RuntimeError("flaky")
        return "fine"

    model = ScriptedModel(lambda chat, i: [ToolCall("sometimes")] if i < 6 else "done")
    result = model.act("go", [sometimes])
    assert result.final is not None and result.final.text == "done"


def test_unknown_tools_share_one_budget() -> None:
    model = ScriptedModel(lambda chat, i: [ToolCall(f"made_up_{i}")])
    with pytest.raises(ak.ToolRetriesExceededError) as caught:
        model.act("go", [add])
    assert caught.value.tool_name is None and isinstance(caught.value.last_error, UnknownToolError)


def test_duplicate_tool_names_are_rejected_before_any_prediction() -> None:
    model = ScriptedModel(["x"])
    with pytest.raises(ak.ToolDefinitionError, match="two tools are named 'add'"):
        model.act("go", [add, ak.tool(add)])
    assert model.engine.requests == []


def test_tool_results_are_rendered_as_text() -> None:
    def structured() -> dict[str, Any]:
        return {"ok": True, "items": [1, 2]}

    result = ScriptedModel(calls_then([ToolCall("structured")])).act("go", [structured])
    assert result.round_records[0].tool_calls[0].result == '{"ok":true,"items":[1,2]}'


def test_timed_out_sync_tool_does_not_block_the_round() -> None:
    @ak.tool(timeout=0.1)
    def blocking() -> str:
        time.sleep(1.0)
        return "late"

    started = time.perf_counter()
    result = ScriptedModel(calls_then([ToolCall("blocking")])).act("go", [blocking])
    assert time.perf_counter() - started < 0.8
    assert result.round_records[0].tool_calls[0].error == "timeout"
