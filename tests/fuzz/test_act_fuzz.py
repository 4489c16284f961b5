"""Properties of act() under hostile model outputs and badly behaved tools.

Whatever the model says and whatever a tool does, act() returns or raises an agentkit error;
a chat built with `on_message=chat.append` holds whole rounds and survives a JSON round trip;
each run ends within a bound; the worker threads tools leave behind stay under the cap; and
the sync client keeps working for the next call.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fuzzing import fuzz
from hypothesis import event, given
from hypothesis import strategies as st
from pydantic import BaseModel

import agentkit as ak
from agentkit import tool_threads
from agentkit.errors import ActError, AgentkitError
from agentkit.messages import AssistantMessage, ToolResultMessage
from agentkit.testing import Malformed, Reply, ScriptedModel, ToolCall

TOOL_TIMEOUT = 0.05
RUN_BOUND_SECONDS = 20.0  # generous: a run here takes milliseconds; the bound catches hangs

CHARACTERS = st.characters(codec=None, exclude_categories=())
HOSTILE_TOKENS = ["1e400", "-1e400", "NaN", "Infinity", "9" * 5000, "1" + "0" * 400, "\ud800"]


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no string for you")

    __repr__ = __str__


class BadException(Exception):
    def __str__(self) -> str:
        raise ValueError("__str__ raised")


class CustomBase(BaseException):
    pass


def deep(depth: int, leaf: object = 1) -> object:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def deep_text(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(CHARACTERS, max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=12,
)

# Deep and huge values reach act() as the model's arguments text (argument_texts below): an
# engine decodes that text, and a mapping built in Python is the caller's own data.
hostile_values = st.one_of(json_values, st.sampled_from(["\udfff", "x" * 20_000]))

argument_texts = st.one_of(
    st.text(CHARACTERS, max_size=60),
    st.integers(80, 5000).map(deep_text),
    st.sampled_from(HOSTILE_TOKENS).map(lambda t: f'{{"a": {t}, "b": 1}}'),
    st.sampled_from(['{"a": 1', "[1, 2]", "null", '"text"', "{", '{"a": "\\ud800"}']),
)

arguments = st.one_of(
    st.dictionaries(st.sampled_from(["a", "b", "text", "kind", "x"]), hostile_values, max_size=3),
    argument_texts,
)

TOOL_NAMES = ["add", "echo", "misbehave", "slow_sync", "slow_async", "stream"]
names = st.one_of(st.sampled_from(TOOL_NAMES), st.text(CHARACTERS, max_size=20))

well_formed_calls = st.one_of(
    st.builds(lambda a, b: ToolCall("add", {"a": a, "b": b}), st.integers(), st.integers()),
    st.builds(lambda text: ToolCall("echo", {"text": text}), st.text(CHARACTERS, max_size=30)),
    st.sampled_from(["misbehave", "slow_sync", "slow_async", "stream"]).map(ToolCall),
)
calls = st.one_of(
    well_formed_calls,
    well_formed_calls,
    st.builds(ToolCall, names, arguments),
    st.builds(Malformed, st.one_of(argument_texts, st.text(CHARACTERS, max_size=40))),
)

calls_reply = st.builds(
    Reply,
    content=st.text(CHARACTERS, max_size=40),
    tool_calls=st.lists(calls, min_size=1, max_size=4),
    reasoning=st.none() | st.text(CHARACTERS, max_size=20),
)
replies = st.one_of(  # rounds with calls weigh most: they exercise the tools
    calls_reply,
    calls_reply,
    calls_reply,
    st.text(CHARACTERS, max_size=80),
    st.integers(80, 3000).map(deep_text),
)

# What `misbehave` does, chosen per example.
MISBEHAVIOURS: dict[str, Callable[[], object]] = {
    "value": lambda: 10**5000,
    "unprintable": Unprintable,
    "deep": lambda: deep(5000),
    "huge": lambda: "y" * 2_000_000,
    "surrogate": lambda: "\ud800 lone",
    "nan": lambda: float("nan"),
}
RAISES: dict[str, Callable[[], BaseException]] = {
    "error": lambda: ValueError("bad"),
    "bad_str": BadException,
    "keyboard": KeyboardInterrupt,
    "exit": lambda: SystemExit(2),
    "generator_exit": GeneratorExit,
    "cancelled": asyncio.CancelledError,
    "custom_base": lambda: CustomBase("custom"),
    "recursion": lambda: RecursionError("deep"),
}


class Answer(BaseModel):
    name: str
    score: float


def make_tools(behaviour: str) -> list[ak.Tool[..., Any]]:
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    def echo(text: str) -> str:
        """Echo the text."""
        return text

    def misbehave() -> object:
        """Misbehave in the chosen way."""
        if behaviour in RAISES:
            raise RAISES[behaviour]()
        return MISBEHAVIOURS[behaviour]()

    def slow_sync() -> str:
        """Outlive the timeout in a worker thread (briefly, so threads come back)."""
        time.sleep(TOOL_TIMEOUT * 4)
        return "late"

    async def slow_async() -> str:
        """Outlive the timeout on the event loop."""
        await asyncio.sleep(10)
        return "late"

    def stream() -> Iterator[str]:
        """An endless generator."""
        while True:
            yield "z"

    timed = {"slow_sync", "slow_async", "stream"}
    return [
        ak.tool(f, timeout=TOOL_TIMEOUT if f.__name__ in timed else None)
        for f in (add, echo, misbehave, slow_sync, slow_async, stream)
    ]


def assert_whole_rounds(chat: ak.Chat) -> None:
    """Each assistant message's calls are answered, in order, before anything else follows."""
    messages = list(chat)
    index = 0
    while index < len(messages):
        message = messages[index]
        index += 1
        if isinstance(message, AssistantMessage) and message.tool_calls:
            expected = [call.id for call in message.tool_calls]
            answered = messages[index : index + len(expected)]
            assert [
                m.tool_call_id for m in answered if isinstance(m, ToolResultMessage)
            ] == expected
            index += len(expected)
        else:
            assert not isinstance(message, ToolResultMessage), "a tool result outside its round"


@fuzz(120)
@given(
    script=st.lists(replies, min_size=1, max_size=4),
    behaviour=st.sampled_from(sorted(MISBEHAVIOURS) + sorted(RAISES)),
    rounds=st.integers(1, 5),
    structured=st.booleans(),
    parallel=st.none() | st.integers(1, 3),
    raising_callback=st.sampled_from([None, "error", "keyboard", "custom_base"]),
)
def test_act_under_hostile_outputs_returns_or_raises_agentkit_errors_with_whole_rounds(
    script: list[Any],
    behaviour: str,
    rounds: int,
    structured: bool,
    parallel: int | None,
    raising_callback: str | None,
) -> None:
    model = ScriptedModel(lambda chat, i: script[i] if i < len(script) else "done")
    chat = ak.Chat()

    def on_message(message: ak.Message) -> None:
        chat.append(message)
        if raising_callback is not None:
            raise RAISES[raising_callback]()

    started = time.monotonic()
    result: ak.ActResult | None = None
    try:
        result = model.act(
            "go",
            make_tools(behaviour),
            max_prediction_rounds=rounds,
            max_parallel_tool_calls=parallel,
            response_format=Answer if structured else None,
            on_message=on_message,
        )
    except ActError as error:  # the run ended early: its partial result must be whole too
        result = error.result
    except AgentkitError:
        result = None
    assert time.monotonic() - started < RUN_BOUND_SECONDS
    assert_whole_rounds(chat)
    assert round_trips(chat)
    if result is not None:
        assert chat.messages == tuple(result.messages)
        for record in result.round_records:
            for call in record.tool_calls:
                if call.error == "timeout":
                    event("a tool timed out")
                    assert "timed out" in call.result
                    assert call.duration_seconds < TOOL_TIMEOUT + 2  # generous: never flakes
    assert tool_threads.abandoned_threads() <= tool_threads.max_abandoned_threads()
    assert ScriptedModel(["alive"]).act("again").final.text == "alive"


def round_trips(chat: ak.Chat) -> bool:
    text = chat.to_json()
    text.encode("utf-8")  # no lone surrogates survive into what the next request sends
    return ak.Chat.from_json(text) == chat


@pytest.fixture(autouse=True, scope="module")
def threads_come_back() -> Iterator[None]:
    before = threading.active_count()
    yield
    deadline = time.monotonic() + 10
    while tool_threads.abandoned_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tool_threads.abandoned_threads() == 0
    assert threading.active_count() <= before + tool_threads.max_abandoned_threads() + 8
