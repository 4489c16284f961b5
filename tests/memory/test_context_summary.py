"""Summarize: older turns replaced by a summary a (scripted) model writes, grown incrementally,
kept with its provenance in memory or in a session's metadata."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

import agentkit as ak
from agentkit.errors import ConfigurationError, StoreCorruptedError
from agentkit.memory import (
    ContextModel,
    ContextPolicy,
    InMemoryStore,
    InMemorySummaries,
    Pin,
    SessionSummaries,
    SQLiteStore,
    Summarize,
    Summary,
    TokenBudget,
)
from agentkit.memory.context_summary import METADATA_KEY, SUMMARY_HEADING, digest_chain
from agentkit.messages import (
    AssistantMessage,
    Message,
    SystemMessage,
    ToolCall,
    ToolResultMessage,
    UserMessage,
)
from agentkit.testing import AsyncScriptedModel, ScriptedModel, scripted_engine

MODEL = ContextModel.of(AsyncScriptedModel(["unused"]))


def turns(start: int, stop: int) -> list[Message]:
    messages: list[Message] = []
    for i in range(start, stop):
        messages.append(UserMessage(content=f"question {i}"))
        messages.append(AssistantMessage(content=f"answer {i}"))
    return messages


def run(policy: ContextPolicy, history: Sequence[Message]) -> list[Message]:
    async def main() -> list[Message]:
        return await policy.apply(history, MODEL)

    return anyio.run(main)


def prompts(writer: Any) -> list[str]:
    return [request.messages[-1].content for request in scripted_engine(writer).requests]


def test_older_turns_become_a_summary_with_provenance() -> None:
    writer = AsyncScriptedModel(["summary one"])
    summaries = InMemorySummaries()
    policy = Summarize(writer, keep_turns=2, max_turns=4, summaries=summaries)
    history = [SystemMessage(content="be brief"), *turns(0, 5)]
    sent = run(policy, history)
    assert sent[0] == history[0]
    assert sent[1] == SystemMessage(content=SUMMARY_HEADING + "summary one")
    assert sent[2:] == history[-4:]  # the newest two turns, verbatim
    prompt = prompts(writer)[0]
    for i in range(3):
        assert f"User: question {i}" in prompt and f"Assistant: answer {i}" in prompt
    assert "question 3" not in prompt and "be brief" not in prompt  # kept / pinned
    assert prompt.endswith("in at most 150 words.")
    stored = anyio.run(summaries.find, digest_chain(history))
    assert stored is not None
    assert (stored.text, stored.covered, stored.model) == ("summary one", 7, "scripted-model")
    assert stored.digest == digest_chain(history[:7])[-1]


def test_no_summary_until_more_than_max_turns() -> None:
    writer = AsyncScriptedModel([])  # a call would raise ScriptExhaustedError
    policy = Summarize(writer, keep_turns=2, max_turns=4)
    history = turns(0, 4)
    assert run(policy, history) == history


def test_summaries_grow_incrementally_and_are_not_recomputed() -> None:
    writer = AsyncScriptedModel(["first summary", "second summary"])
    policy = Summarize(writer, keep_turns=1, max_turns=3)
    history = turns(0, 4)
    sent = run(policy, history)
    assert sent[0].content.endswith("first summary") and sent[1:] == history[-2:]
    # Same history again, and one turn more: the summary is reused, nothing new written.
    assert run(policy, history) == sent
    history += turns(4, 5)
    assert run(policy, history)[0] == sent[0]
    assert len(scripted_engine(writer).requests) == 1
    # Past max_turns again: the next summary comes from the previous one and the new turns.
    history += turns(5, 7)
    sent = run(policy, history)
    assert sent[0].content.endswith("second summary") and sent[1:] == history[-2:]
    second = prompts(writer)[1]
    assert "Summary so far: first summary" in second
    assert "question 0" not in second and "question 2" not in second
    assert all(f"question {i}" in second for i in (3, 4, 5))
    assert "question 6" not in second
    assert policy.written == 2


def test_pinned_messages_stay_verbatim_and_out_of_the_summary() -> None:
    writer = AsyncScriptedModel(["the summary"])
    fact = UserMessage(content="FACT: the door code is 4711")
    history = [SystemMessage(content="sys"), *turns(0, 2), fact, *turns(2, 6)]
    policy = Pin(lambda m: m.content.startswith("FACT")) | Summarize(
        writer, keep_turns=1, max_turns=2
    )
    sent = run(policy, history)
    assert sent[:3] == [history[0], SystemMessage(content=SUMMARY_HEADING + "the summary"), fact]
    assert sent[3:] == history[-2:]
    assert "4711" not in prompts(writer)[0]


def test_tool_rounds_are_summarised_whole_and_never_split() -> None:
    writer = AsyncScriptedModel(["calls summarised"])
    call = ToolCall("weather", {"city": "Oslo"}, id="c1")
    history: list[Message] = [
        UserMessage(content="weather?"),
        AssistantMessage(tool_calls=(call,)),
        ToolResultMessage(tool_call_id="c1", name="weather", content="rain, 4 degrees"),
        AssistantMessage(content="Rainy."),
        *turns(1, 3),
    ]
    sent = run(Summarize(writer, keep_turns=2, max_turns=2), history)
    assert sent == [SystemMessage(content=SUMMARY_HEADING + "calls summarised"), *history[4:]]
    prompt = prompts(writer)[0]
    assert '"name": "weather"' in prompt and "Tool weather: rain, 4 degrees" in prompt
    # With one turn kept, the cut falls at a user message again, never inside a call round.
    writer = AsyncScriptedModel(["two turns"])
    sent = run(Summarize(writer, keep_turns=1, max_turns=2), history)
    assert sent[1:] == history[-2:]


def test_a_blocking_writer_works_inside_a_blocking_act() -> None:
    # The writer's blocking handle waits on agentkit's loop, which runs this act(): it must not
    # be called from that loop's thread.
    writer = ScriptedModel(["old turns, summarised"])
    model = ScriptedModel(["done"])
    chat = ak.Chat("sys")
    for message in turns(0, 4):
        chat.append(message)
    chat.add_user_message("now")
    result = model.act(chat, context=Summarize(writer, keep_turns=1, max_turns=2))
    assert result.final is not None and result.final.text == "done"
    sent = list(scripted_engine(model).requests[0].messages)
    assert sent[1].content == SUMMARY_HEADING + "old turns, summarised"
    assert sent[2:] == [chat.messages[-1]]


@pytest.mark.anyio
async def test_a_blocking_writer_from_async_code() -> None:
    writer = ScriptedModel(["summarised"])
    policy = Summarize(writer, keep_turns=1, max_turns=2)
    sent = await policy.apply(turns(0, 3), MODEL)
    assert sent[0].content.endswith("summarised")


def test_max_tokens_triggers_a_summary_before_max_turns() -> None:
    writer = AsyncScriptedModel(["short"])
    history = [*turns(0, 2), UserMessage(content="long " * 100), AssistantMessage(content="ok")]
    assert run(Summarize(AsyncScriptedModel([]), keep_turns=1, max_turns=5), history) == history
    sent = run(Summarize(writer, keep_turns=1, max_turns=5, max_tokens=100), history)
    assert sent[0].content.endswith("short") and sent[1:] == history[-2:]


def test_summaries_compose_with_a_budget() -> None:
    writer = AsyncScriptedModel(["s"])
    policy = Summarize(writer, keep_turns=3, max_turns=4) | TokenBudget(40, reply_tokens=0)
    sent = run(policy, turns(0, 6))
    assert sent[0].content.endswith("s")  # the summary is pinned: the budget keeps it
    assert len(sent) < 7


# -- in a session store -----------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    made = InMemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "s.db")
    yield made
    made.close()


def test_a_session_summary_is_shared_by_workers(store: Any) -> None:
    history = [SystemMessage(content="sys"), *turns(0, 5)]
    store.append("chat", history, expected_revision=0)
    loaded = list(store.load("chat").messages)  # equal messages, new objects
    first = Summarize(AsyncScriptedModel(["stored summary"]), keep_turns=2, max_turns=3)
    sent = run(first.for_session(store, "chat"), loaded)
    data = store.load("chat").metadata[METADATA_KEY]
    assert data["text"] == "stored summary" and data["covered"] == 7
    assert data["digest"] == digest_chain(history)[6] and data["model"] == "scripted-model"
    # Another worker (another policy, another process's objects) uses it, writing nothing.
    other = Summarize(AsyncScriptedModel([]), keep_turns=2, max_turns=3)
    again = run(other.for_session(store, "chat"), list(store.load("chat").messages))
    assert again == sent
    # A fork that keeps fewer messages than the summary covers does not use it.
    store.fork("chat", "early", upto=5)
    fresh_writer = AsyncScriptedModel(["new summary"])
    fresh = Summarize(fresh_writer, keep_turns=1, max_turns=1)
    early = list(store.load("early").messages)
    sent = run(fresh.for_session(store, "early"), early)
    assert sent[1].content.endswith("new summary")
    assert "Summary so far: (none yet)" in prompts(fresh_writer)[0]
    assert store.load("early").metadata[METADATA_KEY]["covered"] == 3


def test_a_session_summary_picks_up_another_workers_newer_summary(store: Any) -> None:
    history = turns(0, 8)
    store.append("chat", history, expected_revision=0)
    mine = Summarize(AsyncScriptedModel(["mine"]), keep_turns=1, max_turns=3)
    bound = mine.for_session(store, "chat")
    run(bound, history[:8])  # loads the (empty) metadata, writes "mine" over turns 0-2
    assert store.load("chat").metadata[METADATA_KEY]["text"] == "mine"
    theirs = Summary("theirs", 14, digest_chain(history)[13], "other-model")
    store.update_metadata("chat", {METADATA_KEY: theirs.to_json()})
    sent = run(bound, history)  # needs a newer summary: rereads before writing one
    assert sent[0].content.endswith("theirs") and sent[1:] == history[-2:]
    assert len(scripted_engine(mine.writer).requests) == 1  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad", ["text", {"text": "t"}, {"text": "t", "covered": 0, "digest": "d", "model": "m"}]
)
def test_a_corrupt_stored_summary_is_a_typed_error(bad: object) -> None:
    store = InMemoryStore()
    store.append("chat", turns(0, 1), expected_revision=0)
    store.update_metadata("chat", {METADATA_KEY: bad})
    policy = Summarize(AsyncScriptedModel([]), keep_turns=1, max_turns=2)
    with pytest.raises(StoreCorruptedError, match=METADATA_KEY):
        run(policy.for_session(store, "chat"), turns(0, 1))


def test_summary_json_round_trip() -> None:
    summary = Summary("text", 3, "ab" * 32, "model", 12.5)
    assert Summary.from_json(summary.to_json()) == summary
    assert anyio.run(SessionSummaries(InMemoryStore(), "none").find, ["x"]) is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"keep_turns": 5, "max_turns": 4}, "keep_turns"),
        ({"max_turns": 0}, "max_turns"),
        ({"keep_turns": 0}, "keep_turns"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"summary_words": 0}, "summary_words"),
    ],
)
def test_bad_settings(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        Summarize(AsyncScriptedModel([]), **kwargs)


def test_the_writer_must_be_a_model_handle() -> None:
    with pytest.raises(ConfigurationError, match="LLM handle"):
        Summarize(lambda text: "summary")  # type: ignore[arg-type]
