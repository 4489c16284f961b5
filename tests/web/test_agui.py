"""The AG-UI mapping of Agent events, driven by scripted agents (no HTTP)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from ag_ui.core import EventType, ResumeEntry

import agentkit as ak
from agentkit.agent import AsyncAgent
from agentkit.approval import Approve, Deny
from agentkit.errors import ApprovalError
from agentkit.memory import SQLiteStore
from agentkit.messages import ToolResultMessage, UserMessage
from agentkit.testing import AsyncScriptedModel, Reply, ToolCall
from agentkit.web import AGUIMapper, agui_sse, history_messages, resume_decisions

refunds: list[float] = []


def lookup(order: str) -> str:
    """Look up an order."""
    return f"order {order}: shipped"


@ak.tool(requires_approval=True)
def refund(order: str, amount: float) -> str:
    """Refund an order."""
    refunds.append(amount)
    return f"refunded {amount} on {order}"


def script(chat: ak.Chat, index: int) -> Any:
    last = chat[-1]
    if isinstance(last, UserMessage) and last.content.startswith("refund"):
        return Reply("Checking first.", [ToolCall("lookup", {"order": "A-1"}, id="c-look"),
                     ToolCall("refund", {"order": "A-1", "amount": 5.0}, id="c-ref")])  # fmt: skip
    if isinstance(last, UserMessage):
        return Reply("hello there", reasoning="think")
    return "final: " + " | ".join(m.content for m in chat if isinstance(m, ToolResultMessage))


def agent(tmp_path: Path) -> AsyncAgent:
    return AsyncAgent(
        AsyncScriptedModel(script), tools=[lookup, refund], store=SQLiteStore(tmp_path / "s.db")
    )


async def collect(stream: Any, mapper: AGUIMapper | None = None) -> list[dict[str, Any]]:
    events = []
    async for chunk in agui_sse(stream, mapper):
        events += parse(chunk)
    return events


def parse(chunk: str) -> list[dict[str, Any]]:
    """The events of one chunk: one or more `data: {json}` blocks."""
    assert chunk.endswith("\n\n")
    blocks = chunk[:-2].split("\n\n")
    assert all(block.startswith("data: ") and "\n" not in block for block in blocks)
    return [json.loads(block[len("data: ") :]) for block in blocks]


def types(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


def test_a_text_answer_with_reasoning(tmp_path: Path) -> None:
    events = anyio.run(collect, agent(tmp_path).stream("s1", "hi"),
                       AGUIMapper(thread_id="public-1", run_id="r1"))  # fmt: skip
    names = types(events)
    assert names[0] == "RUN_STARTED" and names[-1] == "RUN_FINISHED"
    assert events[0] == {"type": "RUN_STARTED", "threadId": "public-1", "runId": "r1"}
    assert names[1:4] == ["REASONING_START", "REASONING_MESSAGE_START", "REASONING_MESSAGE_CONTENT"]
    start = names.index("TEXT_MESSAGE_START")
    assert names.index("REASONING_END") < start < names.index("TEXT_MESSAGE_END")
    text = "".join(e["delta"] for e in events if e["type"] == "TEXT_MESSAGE_CONTENT")
    assert text == "hello there"
    ids = {e["messageId"] for e in events if e["type"].startswith("TEXT_MESSAGE")}
    assert len(ids) == 1
    assert events[start]["role"] == "assistant"
    assert events[-1]["outcome"] == {"type": "success"}
    assert events[-1]["result"]["text"] == "hello there"
    assert all(name in EventType.__members__ for name in names)  # the protocol's names


def test_tool_calls_and_an_approval_interrupt_then_resume(tmp_path: Path) -> None:
    refunds.clear()
    the_agent = agent(tmp_path)
    events = anyio.run(collect, the_agent.stream("s", "refund A-1"))
    names = types(events)
    assert names == [
        "RUN_STARTED",
        "TEXT_MESSAGE_START", "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_END",
        "TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_END", "TOOL_CALL_RESULT",
        "TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_END",  # the call waiting for approval
        "RUN_FINISHED",
    ]  # fmt: skip
    look, waiting = events[5], events[9]
    assert look["toolCallName"] == "lookup" and look["toolCallId"] == "c-look"
    assert look["parentMessageId"] == events[1]["messageId"]
    assert json.loads(events[6]["delta"]) == {"order": "A-1"}
    assert events[8]["toolCallId"] == "c-look" and events[8]["content"] == "order A-1: shipped"
    assert waiting["toolCallName"] == "refund"
    assert json.loads(events[10]["delta"]) == {"order": "A-1", "amount": 5.0}
    outcome = events[-1]["outcome"]
    assert outcome["type"] == "interrupt"
    [interrupt] = outcome["interrupts"]
    assert interrupt["id"] == interrupt["toolCallId"] == "c-ref"
    assert interrupt["reason"] == "tool_approval"
    assert interrupt["responseSchema"]["required"] == ["approved"]
    assert refunds == []

    entry = ResumeEntry(interrupt_id="c-ref", status="resolved", payload={"approved": True})
    resumed = anyio.run(collect, the_agent.stream_resume("s", resume_decisions([entry])))
    assert types(resumed)[:2] == ["RUN_STARTED", "TOOL_CALL_RESULT"]  # not announced again
    assert resumed[1]["toolCallId"] == "c-ref" and resumed[1]["content"] == "refunded 5.0 on A-1"
    assert resumed[-1]["outcome"] == {"type": "success"}
    assert resumed[-1]["result"]["text"] == "final: order A-1: shipped | refunded 5.0 on A-1"
    assert refunds == [5.0]

    again = anyio.run(collect, the_agent.stream_resume("s", resume_decisions([entry])))
    assert types(again) == ["RUN_STARTED", "RUN_ERROR"] or types(again) == ["RUN_ERROR"]
    assert again[-1]["code"] == "ApprovalError" and "nothing is waiting" in again[-1]["message"]
    assert refunds == [5.0]


def test_resume_entries_become_decisions() -> None:
    def entry(status: str, payload: object = None) -> ResumeEntry:
        return ResumeEntry(interrupt_id="c", status=status, payload=payload)  # type: ignore[arg-type]

    assert resume_decisions([entry("cancelled")]) == [Deny("c")]
    assert resume_decisions([entry("resolved", {"approved": False, "reason": "no"})]) == [
        Deny("c", "no")
    ]
    assert resume_decisions([entry("resolved", {"approved": True, "arguments": {"a": 1}})]) == [
        Approve("c", {"a": 1})
    ]
    for bad in (None, "yes", {"approved": "true"}, {"approved": True, "admin": True}):
        with pytest.raises(ApprovalError, match="not an approval"):
            resume_decisions([entry("resolved", bad)])


def test_errors_show_agentkit_text_only() -> None:
    async def boom(chat: ak.Chat, index: int) -> Any:
        raise RuntimeError("secret path /etc/x")

    async def run() -> list[dict[str, Any]]:
        return await collect(AsyncAgent(AsyncScriptedModel(boom)).stream("s", "hi"))

    events = anyio.run(run)
    assert types(events) == ["RUN_STARTED", "RUN_ERROR"]
    assert events[-1] == {"type": "RUN_ERROR", "message": "internal error", "code": "InternalError"}


def test_closing_the_sse_stream_cancels_the_run_between_rounds(tmp_path: Path) -> None:
    def slow(chat: ak.Chat, index: int) -> Any:
        if index == 0:
            return [ToolCall("lookup", {"order": "x"})]
        return Reply("a partial answer that never ends", fragment_delay=3600)

    store = SQLiteStore(tmp_path / "c.db")
    the_agent = AsyncAgent(AsyncScriptedModel(slow), tools=[lookup], store=store)
    seen: list[str] = []

    async def main() -> None:
        with anyio.fail_after(5):  # an uncancelled run would sleep for an hour
            async with contextlib.aclosing(agui_sse(the_agent.stream("s", "go"))) as blocks:
                async for block in blocks:
                    seen.extend(event["type"] for event in parse(block))
                    if seen[-1] == "TEXT_MESSAGE_CONTENT":
                        break

    anyio.run(main)
    assert "TOOL_CALL_RESULT" in seen
    session = store.load("s")  # round 0 whole, the interrupted round 1 not at all
    assert [m.role for m in session.messages] == ["user", "assistant", "tool"]


def test_history_as_agui_messages(tmp_path: Path) -> None:
    the_agent = agent(tmp_path)

    async def run() -> Any:
        await the_agent.act("s", "refund A-1")
        await the_agent.resume("s", [Deny("c-ref", "manager only")])
        return await the_agent.history("s")

    messages = [
        m.model_dump(by_alias=True) for m in history_messages(anyio.run(run), id_prefix="s-")
    ]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool", "assistant"]
    assert messages[0] == {"id": "s-0", "role": "user", "content": "refund A-1"}
    calls = messages[1]["toolCalls"]
    assert [c["function"]["name"] for c in calls] == ["lookup", "refund"]
    assert json.loads(calls[1]["function"]["arguments"]) == {"order": "A-1", "amount": 5.0}
    assert messages[3]["toolCallId"] == "c-ref" and messages[3]["error"] == "manager only"
    assert "manager only" in messages[4]["content"]
