"""The Agent runtime: sessions persisted round by round, events, approvals, conflicts."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import agentkit as ak
from agentkit.agent import Agent, AsyncAgent
from agentkit.agent_events import (
    ApprovalRequested,
    RoundFinished,
    RunFailed,
    RunFinished,
    RunStarted,
    TextDelta,
    ToolCallStarted,
    ToolResult,
)
from agentkit.approval import Approve, Deny
from agentkit.errors import (
    ApprovalError,
    ApprovalPendingError,
    ConfigurationError,
    SessionConflict,
    SessionNotFoundError,
)
from agentkit.memory import InMemoryStore, PostgresStore, SessionStore, SQLiteStore
from agentkit.messages import AssistantMessage, Message, ToolResultMessage, UserMessage
from agentkit.testing import AsyncScriptedModel, ScriptedModel, ToolCall


def lookup(order: str) -> str:
    """Look up an order's status."""
    return f"order {order}: shipped"


refunds: list[tuple[str, float]] = []


@ak.tool(requires_approval=True)
def refund(order: str, amount: float) -> str:
    """Refund an amount on an order."""
    refunds.append((order, amount))
    return f"refunded {amount} on {order}"


def last_user(chat: ak.Chat) -> str:
    return next(m.content for m in reversed(list(chat)) if isinstance(m, UserMessage))


def tool_then_answer(chat: ak.Chat, index: int) -> Any:
    """Round 0 looks the order up; round 1 answers naming what the user asked."""
    if index == 0 and not isinstance(chat[-1], ToolResultMessage):
        return [ToolCall("lookup", {"order": last_user(chat)})]
    return f"done: {last_user(chat)}"


def whole_rounds(messages: tuple[Message, ...]) -> bool:
    """Every assistant message's calls are answered by the results right after it."""
    for index, message in enumerate(messages):
        if isinstance(message, AssistantMessage) and message.tool_calls:
            following = messages[index + 1 : index + 1 + len(message.tool_calls)]
            answered = {m.tool_call_id for m in following if isinstance(m, ToolResultMessage)}
            if answered != {call.id for call in message.tool_calls}:
                return False
    return True


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SessionStore]:
    if request.param == "postgres":
        made: SessionStore = PostgresStore(request.getfixturevalue("postgres_dsn"))
    else:
        made = InMemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "s.db")
    yield made
    made.close()


def test_act_persists_the_user_message_and_each_round(store: SessionStore) -> None:
    agent = Agent(ScriptedModel(tool_then_answer), tools=[lookup], store=store,
                  instructions="Be brief.")  # fmt: skip
    result = agent.act("s1", "A-17")
    assert result.final is not None and result.final.text == "done: A-17"
    session = store.load("s1")
    assert session.revision == 3  # the user message, the tool round, the answer round
    assert [type(m).__name__ for m in session.messages] == [
        "UserMessage", "AssistantMessage", "ToolResultMessage", "AssistantMessage",
    ]  # fmt: skip
    assert session.messages[2].content == "order A-17: shipped"
    assert all(not isinstance(m, ak.SystemMessage) for m in session.messages)  # not stored

    seen: list[ak.Chat] = []

    def remember(chat: ak.Chat, index: int) -> str:
        seen.append(chat)
        return "again"

    Agent(ScriptedModel(remember), store=store, instructions="Be brief.").act("s1", "more?")
    assert isinstance(seen[0][0], ak.SystemMessage)  # the instructions come first
    assert list(seen[0])[1:] == [*session.messages, UserMessage(content="more?")]
    assert store.load("s1").revision == 5


def test_one_agent_serves_many_sessions_concurrently(tmp_path: Path) -> None:
    async def echo(chat: ak.Chat, index: int) -> Any:
        await anyio.sleep(0.001)
        return tool_then_answer(chat, index)

    store = SQLiteStore(tmp_path / "many.db")
    agent = AsyncAgent(AsyncScriptedModel(echo), tools=[lookup], store=store)

    async def converse(n: int) -> None:
        for turn in range(3):
            result = await agent.act(f"session-{n}", f"S{n}-T{turn}")
            assert result.final is not None and result.final.text == f"done: S{n}-T{turn}"

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for n in range(40):
                group.start_soon(converse, n)

    anyio.run(main)
    for n in range(40):  # no cross-talk and nothing lost or doubled
        messages = store.load(f"session-{n}").messages
        users = [m.content for m in messages if isinstance(m, UserMessage)]
        assert users == [f"S{n}-T{turn}" for turn in range(3)]
        assert len(messages) == 12
        assert all(f"S{n}-" in m.content for m in messages if isinstance(m, ToolResultMessage))


def approval_script(chat: ak.Chat, index: int) -> Any:
    last = chat[-1]
    if isinstance(last, UserMessage):
        return [ToolCall("lookup", {"order": "A-1"}, id="c-look"),
                ToolCall("refund", {"order": "A-1", "amount": 20.0}, id="c-refund")]  # fmt: skip
    results = [m.content for m in chat if isinstance(m, ToolResultMessage)]
    return "final: " + " | ".join(results)


def test_a_call_needing_approval_pauses_and_resumes_elsewhere(store: SessionStore) -> None:
    refunds.clear()
    agent = Agent(ScriptedModel(approval_script), tools=[lookup, refund], store=store)
    paused = agent.act("s", "refund A-1")
    assert paused.stop_reason == "approval_required"
    assert [call.id for call in paused.pending_approvals] == ["c-refund"]
    assert refunds == []  # not run
    stored = store.load("s").messages
    assert isinstance(stored[-1], ToolResultMessage) and stored[-1].tool_call_id == "c-look"

    with pytest.raises(ApprovalPendingError, match="c-refund"):
        agent.act("s", "hello?")
    with pytest.raises(ApprovalError, match="not waiting"):
        agent.resume("s", [Approve("c-look")])
    with pytest.raises(ApprovalError, match="no decision"):
        agent.resume("s", [])
    with pytest.raises(ApprovalError, match="do not fit"):
        agent.resume("s", [Approve("c-refund", {"order": "A-1", "amount": "lots"})])
    assert refunds == []

    other = Agent(ScriptedModel(approval_script), tools=[lookup, refund], store=store)
    result = other.resume("s", [Approve("c-refund", {"order": "A-1", "amount": 5.0})])
    assert refunds == [("A-1", 5.0)]  # the edited arguments
    assert result.final is not None
    assert result.final.text == "final: order A-1: shipped | refunded 5.0 on A-1"
    assert whole_rounds(store.load("s").messages)
    with pytest.raises(ApprovalError, match="nothing is waiting"):
        other.resume("s", [Approve("c-refund")])  # a second resume of the same pause
    assert refunds == [("A-1", 5.0)]


def test_a_denied_call_gives_the_model_the_reason(store: SessionStore) -> None:
    refunds.clear()
    agent = Agent(ScriptedModel(approval_script), tools=[lookup, refund], store=store)
    agent.act("s", "refund A-1")
    result = agent.resume("s", [Deny("c-refund", "Refunds need a manager.")])
    assert refunds == []
    assert result.final is not None and "Refunds need a manager." in result.final.text
    denial = next(m for m in store.load("s").messages if isinstance(m, ToolResultMessage)
                  and m.tool_call_id == "c-refund")  # fmt: skip
    assert denial.is_error


def test_an_approval_policy_flags_calls(store: SessionStore) -> None:
    agent = Agent(
        ScriptedModel(approval_script),
        tools=[lookup, refund.with_options(requires_approval=False)],
        store=store,
        approval=lambda call: call.name == "lookup",
    )
    paused = agent.act("s", "refund A-1")
    assert [call.id for call in paused.pending_approvals] == ["c-look"]


def test_stream_yields_events_in_order(store: SessionStore) -> None:
    agent = Agent(ScriptedModel(tool_then_answer), tools=[lookup], store=store)
    events = list(agent.stream("s", "B-2"))
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished"
    assert kinds.index("ToolCallStarted") < kinds.index("ToolResult") < kinds.index("RoundFinished")
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text.replace(" ", "") == "done:B-2"
    rounds = [e for e in events if isinstance(e, RoundFinished)]
    assert [(r.round, r.revision) for r in rounds] == [(0, 2), (1, 3)]
    finished = events[-1]
    assert isinstance(finished, RunFinished) and finished.result.rounds == 2
    assert isinstance(events[0], RunStarted) and events[0].session_id == "s"
    started = next(e for e in events if isinstance(e, ToolCallStarted))
    assert started.call.arguments == {"order": "B-2"}
    assert next(e for e in events if isinstance(e, ToolResult)).message.content == (
        "order B-2: shipped"
    )


def test_stream_reports_a_pause_and_failures_as_events(store: SessionStore) -> None:
    agent = Agent(ScriptedModel(approval_script), tools=[lookup, refund], store=store)
    events = list(agent.stream("s", "refund"))
    assert isinstance(events[-2], ApprovalRequested)
    assert [c.id for c in events[-2].calls] == ["c-refund"]
    failed = list(agent.stream("s", "new message while paused"))
    assert len(failed) == 1  # refused before it started: no RunStarted
    assert isinstance(failed[-1], RunFailed)
    assert isinstance(failed[-1].error, ApprovalPendingError)


def test_a_consumer_that_stops_cancels_the_run_between_whole_rounds(store: SessionStore) -> None:
    release = anyio.Event()

    async def slow(chat: ak.Chat, index: int) -> Any:
        if index < 2:
            return [ToolCall("lookup", {"order": f"o{index}"})]
        await release.wait()  # never set: the consumer leaves during this prediction
        return "never"

    agent = AsyncAgent(AsyncScriptedModel(slow), tools=[lookup], store=store)

    async def main() -> list[str]:
        seen = []
        async with contextlib.aclosing(agent.stream("s", "go")) as events:
            async for event in events:
                seen.append(type(event).__name__)
                if isinstance(event, RoundFinished) and event.round == 1:
                    break
        return seen

    seen = anyio.run(main)
    assert seen.count("RoundFinished") == 2
    session = store.load("s")
    assert session.revision == 3 and len(session.messages) == 5
    assert whole_rounds(session.messages)


def test_closing_a_sync_stream_early_cancels_the_run(store: SessionStore) -> None:
    gate = threading.Event()

    def slow(chat: ak.Chat, index: int) -> Any:
        if index == 0:
            return [ToolCall("lookup", {"order": "x"})]
        gate.wait(5)
        return "late"

    agent = Agent(ScriptedModel(slow), tools=[lookup], store=store)
    events = agent.stream("s", "go")
    for event in events:
        if isinstance(event, RoundFinished):
            gate.set()
            events.close()  # type: ignore[attr-defined]
            break
    session = store.load("s")
    assert whole_rounds(session.messages)
    assert session.revision in (2, 3)  # the answer round may have committed before the cancel


def test_a_conflicting_writer_ends_the_run_without_merging(store: SessionStore) -> None:
    def meddle(order: str) -> str:
        """Look up an order, while another worker writes to the same session."""
        current = store.load("s")
        store.append("s", [UserMessage(content="from elsewhere")],
                     expected_revision=current.revision)  # fmt: skip
        return "ok"

    agent = Agent(
        ScriptedModel(lambda chat, i: [ToolCall("meddle", {"order": "1"})] if i == 0 else "x"),
        tools=[meddle],
        store=store,
    )
    with pytest.raises(SessionConflict) as caught:
        agent.act("s", "go")
    assert caught.value.expected_revision == 1 and caught.value.actual_revision == 2
    contents = [m.content for m in store.load("s").messages]
    assert contents == ["go", "from elsewhere"]  # this run's round was not merged in


def test_a_conflict_on_the_user_message_is_retried(store: SessionStore) -> None:
    class Racing(InMemoryStore):
        raced = False

        async def aappend(self, session_id: str, messages: Any, *, expected_revision: int) -> int:
            if not self.raced:  # another worker commits first, once
                self.raced = True
                self.append(session_id, [UserMessage(content="other")], expected_revision=0)
            return await super().aappend(session_id, messages, expected_revision=expected_revision)

    racing = Racing()
    agent = Agent(ScriptedModel(lambda chat, i: f"saw {len(chat)}"), store=racing)
    result = agent.act("s", "mine")
    assert result.final is not None and result.final.text == "saw 2"  # other + mine
    assert [m.content for m in racing.load("s").messages] == ["other", "mine", "saw 2"]


def test_bad_input_is_refused(store: SessionStore) -> None:
    agent = Agent(ScriptedModel(["x"]), store=store)
    with pytest.raises(ConfigurationError, match="str or a UserMessage"):
        agent.act("s", {"role": "user"})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="session id"):
        agent.act("", "hi")
    with pytest.raises(ConfigurationError, match="AsyncAgent"):
        Agent(AsyncScriptedModel(["x"]))  # type: ignore[arg-type]
    with pytest.raises(SessionNotFoundError):
        agent.resume("missing", [])
    agent.act("s", "hi")
    with pytest.raises(ApprovalError, match="nothing is waiting"):
        agent.resume("s", [])


def test_the_context_policy_trims_what_the_model_sees_and_keeps_summaries_in_the_store(
    store: SessionStore,
) -> None:
    from agentkit.memory import KeepLastTurns, Summarize
    from agentkit.memory.context_summary import METADATA_KEY

    seen: list[list[str]] = []

    def answer(chat: ak.Chat, index: int) -> str:
        seen.append([m.content for m in chat if isinstance(m, UserMessage)])
        return "ok"

    trimmed = Agent(ScriptedModel(answer), store=store, context=KeepLastTurns(2))
    for turn in range(4):
        trimmed.act("t", f"q{turn}")
    assert seen[-1] == ["q2", "q3"]  # the model saw the last two turns
    assert len(store.load("t").messages) == 8  # the store keeps them all

    writer = ScriptedModel(lambda chat, i: "SUMMARY of the early turns")
    summarizing = Agent(
        ScriptedModel(answer), store=store,
        context=Summarize(writer, keep_turns=1, max_turns=2),
    )  # fmt: skip
    for turn in range(4):
        summarizing.act("u", f"u{turn}")
    stored = store.load("u").metadata[METADATA_KEY]
    assert "SUMMARY of the early turns" in str(stored)  # in the session, for every worker


def test_a_store_that_fails_mid_run_ends_the_run_with_its_error(tmp_path: Path) -> None:
    from agentkit.errors import SessionStoreError

    class Failing(InMemoryStore):
        appends = 0

        async def aappend(self, session_id: str, messages: Any, *, expected_revision: int) -> int:
            self.appends += 1
            if self.appends == 2:  # the first round's commit: the disk is full, say
                raise SessionStoreError("disk full")
            return await super().aappend(session_id, messages, expected_revision=expected_revision)

    store = Failing()
    ran: list[str] = []

    def lookup_once(order: str) -> str:
        """Look up an order."""
        ran.append(order)
        return "shipped"

    script = [
        [ToolCall("lookup_once", {"order": "1"})],
        [ToolCall("lookup_once", {"order": "2"})],
        "x",
    ]
    agent = Agent(ScriptedModel(script), tools=[lookup_once], store=store)
    with pytest.raises(SessionStoreError, match="disk full"):
        agent.act("s", "go")
    assert ran == ["1"]  # the run stopped at the round it could not persist
    assert [m.content for m in store.load("s").messages] == ["go"]
