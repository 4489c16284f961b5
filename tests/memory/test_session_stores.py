"""The SessionStore contract, on every backend (in memory, SQLite, Postgres)."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentkit import AssistantMessage, ToolCall, ToolResultMessage, UserMessage
from agentkit.errors import (
    ChatFormatError,
    ConfigurationError,
    MessageTooLargeError,
    SessionConflict,
    SessionExistsError,
    SessionNotFoundError,
)
from agentkit.memory import SessionStore
from agentkit.messages import Image, SystemMessage

ROUND = [
    AssistantMessage(
        content="checking",
        tool_calls=(ToolCall("lookup", {"q": "x"}, id="c1"), ToolCall("f", "not json", id="c2")),
        reasoning="think",
    ),
    ToolResultMessage(tool_call_id="c1", name="lookup", content="found"),
    ToolResultMessage(tool_call_id="c2", name="f", content="bad", is_error=True),
]


def test_a_missing_session_is_an_error_or_empty_at_revision_0(store: SessionStore) -> None:
    with pytest.raises(SessionNotFoundError, match="'nope'"):
        store.load("nope")
    empty = store.load("nope", missing_ok=True)
    assert (empty.messages, empty.revision) == ((), 0)


def test_appends_commit_whole_rounds_and_count_revisions(store: SessionStore) -> None:
    assert store.append("s", [SystemMessage(content="be brief"), UserMessage(content="hi")],
                        expected_revision=0) == 1  # fmt: skip
    assert store.append("s", ROUND, expected_revision=1) == 2
    session = store.load("s")
    assert session.revision == 2
    assert session.messages == (
        SystemMessage(content="be brief"),
        UserMessage(content="hi"),
        *ROUND,
    )


def test_a_stale_revision_is_a_conflict_and_writes_nothing(store: SessionStore) -> None:
    store.append("s", [UserMessage(content="one")], expected_revision=0)
    store.append("s", [UserMessage(content="two")], expected_revision=1)
    with pytest.raises(SessionConflict) as caught:
        store.append("s", [UserMessage(content="stale")], expected_revision=1)
    assert (caught.value.session_id, caught.value.expected_revision) == ("s", 1)
    assert caught.value.actual_revision == 2
    with pytest.raises(SessionConflict) as created_twice:
        store.append("s", [UserMessage(content="again")], expected_revision=0)
    assert created_twice.value.actual_revision == 2
    with pytest.raises(SessionConflict) as ahead:
        store.append("new", [UserMessage(content="x")], expected_revision=3)
    assert ahead.value.actual_revision == 0
    assert [m.content for m in store.load("s").messages] == ["one", "two"]
    assert store.load("new", missing_ok=True).revision == 0


def test_dict_messages_are_accepted_in_openai_form(store: SessionStore) -> None:
    store.append(
        "s",
        [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c9", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c9", "content": "ok"},
        ],
        expected_revision=0,
    )  # fmt: skip
    messages = store.load("s").messages
    assert isinstance(messages[1], AssistantMessage)
    assert messages[1].tool_calls[0].id == "c9"
    assert messages[2] == ToolResultMessage(tool_call_id="c9", name="f", content="ok")


def test_a_bad_message_in_a_round_writes_none_of_it(store: SessionStore) -> None:
    store.append("s", [UserMessage(content="kept")], expected_revision=0)
    with pytest.raises(ChatFormatError):
        store.append("s", [UserMessage(content="ok"), {"role": "robot"}], expected_revision=1)
    with pytest.raises(ConfigurationError, match="at least one"):
        store.append("s", [], expected_revision=1)
    assert store.load("s").revision == 1
    assert len(store.load("s").messages) == 1


def test_a_message_over_the_limit_is_refused_and_nothing_written(store: SessionStore) -> None:
    store.max_message_bytes = 1000
    store.append("s", [UserMessage(content="small")], expected_revision=0)
    with pytest.raises(MessageTooLargeError, match="message 1 of the round") as caught:
        store.append(
            "s", [UserMessage(content="fine"), UserMessage(content="é" * 600)], expected_revision=1
        )
    assert caught.value.size > 1000 >= caught.value.limit
    session = store.load("s")
    assert (session.revision, len(session.messages)) == (1, 1)


def test_list_delete_and_metadata(store: SessionStore) -> None:
    for name in ("a", "b", "c"):
        store.append(name, [UserMessage(content=name)], expected_revision=0)
    store.append("a", [UserMessage(content="again")], expected_revision=1)  # a is now newest
    listed = store.list_sessions()
    assert [info.id for info in listed] == ["a", "c", "b"]
    assert (listed[0].revision, listed[0].message_count) == (2, 2)
    assert [info.id for info in store.list_sessions(limit=1, offset=1)] == ["c"]

    assert store.update_metadata("a", {"user": "u1", "tags": ["x"]}) == {
        "user": "u1",
        "tags": ["x"],
    }
    assert store.update_metadata("a", {"user": None, "n": 2}) == {"tags": ["x"], "n": 2}
    assert store.load("a").metadata == {"tags": ["x"], "n": 2}
    assert store.load("a").revision == 2  # metadata is not a commit
    with pytest.raises(ConfigurationError, match="JSON"):
        store.update_metadata("a", {"bad": float("nan")})
    with pytest.raises(SessionNotFoundError):
        store.update_metadata("zzz", {"k": 1})

    assert store.delete("b") is True
    assert store.delete("b") is False
    with pytest.raises(SessionNotFoundError):
        store.load("b")
    assert {info.id for info in store.list_sessions()} == {"a", "c"}


def test_fork_copies_history_up_to_a_message(store: SessionStore) -> None:
    store.append("s", [UserMessage(content="q1")], expected_revision=0)
    store.append("s", ROUND, expected_revision=1)
    store.append("s", [UserMessage(content="q2")], expected_revision=2)
    store.update_metadata("s", {"owner": "me"})
    fork = store.fork("s", "f", upto=4)
    assert fork.messages == (UserMessage(content="q1"), *ROUND)
    assert (fork.revision, fork.metadata) == (1, {"owner": "me"})
    assert store.load("f") == fork
    store.append("f", [UserMessage(content="other")], expected_revision=1)
    assert len(store.load("s").messages) == 5  # the source is untouched
    assert {i.id: i.forked_from for i in store.list_sessions()} == {"s": None, "f": "s"}

    with pytest.raises(ConfigurationError, match="split tool calls"):
        store.fork("s", "g", upto=2)  # between the calls and their results
    with pytest.raises(ConfigurationError, match="split tool calls"):
        store.fork("s", "g", upto=3)
    with pytest.raises(ConfigurationError, match="from 0 to 5"):
        store.fork("s", "g", upto=6)
    with pytest.raises(SessionExistsError):
        store.fork("s", "f")
    with pytest.raises(SessionNotFoundError):
        store.fork("missing", "g")
    assert store.fork("s", "all").messages == store.load("s").messages


@pytest.mark.parametrize("bad", ["", "x" * 513, "a\x00b", "\ud800", 42])
def test_bad_session_ids_are_refused(store: SessionStore, bad: object) -> None:
    with pytest.raises(ConfigurationError, match="session id"):
        store.append(bad, [UserMessage(content="x")], expected_revision=0)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="session id"):
        store.load(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [-1, True, "1", 1.0])
def test_bad_revisions_are_refused(store: SessionStore, bad: object) -> None:
    with pytest.raises(ConfigurationError, match="expected_revision"):
        store.append("s", [UserMessage(content="x")], expected_revision=bad)  # type: ignore[arg-type]


def test_the_async_api_is_the_same_store(store: SessionStore) -> None:
    async def main() -> None:
        assert await store.aappend("s", [UserMessage(content="a")], expected_revision=0) == 1
        assert (await store.aload("s")).messages == (UserMessage(content="a"),)
        with pytest.raises(SessionConflict):
            await store.aappend("s", [UserMessage(content="b")], expected_revision=0)
        await store.aupdate_metadata("s", {"k": 1})
        fork = await store.afork("s", "t")
        assert fork.metadata == {"k": 1}
        assert [i.id for i in await store.alist_sessions()] == ["t", "s"]
        assert await store.adelete("t")

    anyio.run(main)  # asyncio: psycopg's async API needs it
    assert store.load("s").revision == 1  # and the blocking API sees what the async one wrote


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | _text
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
_calls = st.lists(
    st.builds(ToolCall, _text.filter(bool), st.dictionaries(_text, _json, max_size=3) | _text),
    max_size=3,
)
_message = st.one_of(
    st.builds(UserMessage, content=_text, images=st.just((Image(url="data:image/png;base64,AA"),))),
    st.builds(SystemMessage, content=_text),
    st.builds(AssistantMessage, content=_text, tool_calls=_calls.map(tuple),
              reasoning=st.none() | _text),
    st.builds(ToolResultMessage, tool_call_id=_text, name=_text, content=_text,
              is_error=st.booleans()),
)  # fmt: skip


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rounds=st.lists(st.lists(_message, min_size=1, max_size=4), min_size=1, max_size=3))
def test_any_messages_round_trip_exactly(store: SessionStore, rounds: list[list[object]]) -> None:
    session_id = f"h{id(rounds)}"
    revision = 0
    for messages in rounds:
        revision = store.append(session_id, messages, expected_revision=revision)
    loaded = store.load(session_id)
    assert loaded.messages == tuple(m for messages in rounds for m in messages)
    assert loaded.revision == len(rounds)
    store.delete(session_id)
