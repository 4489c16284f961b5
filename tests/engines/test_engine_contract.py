"""One engine-agnostic act() contract, run on every scriptable engine.

The same behaviours are proven on each engine: a tool round trip, parallel tool calls, structured
output, streamed fragments and cancellation. An engine is a fixture that turns a neutral script
(one reply per prediction: `Say` text, or a list of `Call`s) into a sync `agentkit.Client`:

- "scripted": `agentkit.testing.ScriptedEngine`;
- "openai": `OpenAIEngine` against the local fault server (openai_fault_server.py), replies
  streamed as SSE chat.completion.chunk events, tool calls as split deltas;
- "lmstudio": `LMStudioEngine` through the real `lmstudio` SDK against the protocol test server
  (lmstudio_server.py).

The sync Client is used throughout: its loop is asyncio, which LM Studio's SDK requires.

The local llama.cpp engine is not scriptable (its output comes from real inference), so it is not
a parameter here; test_llama_cpp.py covers the same behaviours with a real model.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import anyio
import pytest
from lmstudio_server import Delay, Fail, Fragment, LMStudioTestServer, Step, ToolCallGen
from openai_fault_server import Canned, FaultServer, chunk, sse
from pydantic import BaseModel

import agentkit as ak
from agentkit.engines.lmstudio.engine import LMStudioEngine
from agentkit.engines.openai.engine import OpenAIEngine
from agentkit.testing import Reply, ScriptedEngine, ToolCall

CHAT = "/v1/chat/completions"

# -- the neutral script ------------------------------------------------------------------------


@dataclass(frozen=True)
class Say:
    """A text reply streamed as these fragments, waiting `delay` seconds before each but the first.

    The scripted engine streams word by word, so fragments are whole words with their trailing
    whitespace; `Say` checks that, so every engine streams exactly these fragments.
    """

    fragments: tuple[str, ...]
    delay: float = 0.0

    def __post_init__(self) -> None:
        text = "".join(self.fragments)
        words = [word + " " for word in text.split(" ")]
        words[-1] = words[-1][:-1]
        assert list(self.fragments) == [w for w in words if w], "fragments must be whole words"

    @property
    def text(self) -> str:
        return "".join(self.fragments)


@dataclass(frozen=True)
class Call:
    """A tool call the model requests."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str = "call_1"


Script: TypeAlias = Sequence["Say | list[Call]"]
MakeClient: TypeAlias = Callable[[Script], ak.Client]


# -- engines -----------------------------------------------------------------------------------


def _scripted_reply(reply: Say | list[Call]) -> Reply:
    if isinstance(reply, Say):
        return Reply(reply.text, fragment_delay=reply.delay)
    return Reply(tool_calls=[ToolCall(c.name, c.arguments, c.id) for c in reply])


class _PacedEvents:
    """SSE events that the fault server sends with a pause before some of them.

    The pauses end early once `release` is set (at teardown), so a handler thread serving a
    cancelled stream never holds up the server's shutdown.
    """

    def __init__(self, timed: list[tuple[float, str]], release: threading.Event) -> None:
        self._timed = timed
        self._release = release

    def __len__(self) -> int:
        return len(self._timed)

    def __iter__(self) -> Iterator[str]:
        for pause, event in self._timed:
            if pause:
                self._release.wait(pause)
            yield event


def _openai_answer(reply: Say | list[Call], release: threading.Event) -> Canned:
    timed: list[tuple[float, str]] = []
    if isinstance(reply, Say):
        for index, piece in enumerate(reply.fragments):
            timed.append((reply.delay if index else 0.0, chunk(piece)))
        timed.append((0.0, chunk(finish="stop")))
    else:
        for index, call in enumerate(reply):
            arguments = json.dumps(call.arguments)
            half = len(arguments) // 2
            opening = {"index": index, "id": call.id, "type": "function"}
            opening["function"] = {"name": call.name, "arguments": arguments[:half]}
            rest = {"index": index, "function": {"arguments": arguments[half:]}}
            timed += [(0.0, chunk(tool_calls=[opening])), (0.0, chunk(tool_calls=[rest]))]
        timed.append((0.0, chunk(finish="tool_calls")))
    timed += [(0.0, chunk(usage=(10, 3))), (0.0, "[DONE]")]
    return sse(_PacedEvents(timed, release))  # type: ignore[arg-type]


def _lmstudio_steps(reply: Say | list[Call]) -> list[Step]:
    if isinstance(reply, list):
        return [ToolCallGen(c.name, c.arguments, id=c.id) for c in reply]
    steps: list[Step] = []
    for index, piece in enumerate(reply.fragments):
        if index and reply.delay:
            steps.append(Delay(reply.delay))
        steps.append(Fragment(piece))
    return steps


@pytest.fixture(params=["scripted", "openai", "lmstudio"])
def make_client(request: pytest.FixtureRequest) -> Iterator[MakeClient]:
    """A factory: script -> a sync Client on the engine under test (closed after the test)."""
    engine_id = str(request.param)
    with ExitStack() as stack:

        def make(script: Script) -> ak.Client:
            if engine_id == "scripted":
                engine: Any = ScriptedEngine([_scripted_reply(r) for r in script])
            elif engine_id == "openai":
                release = threading.Event()
                server = stack.enter_context(FaultServer())
                stack.callback(release.set)  # runs before the server shuts down
                exhausted = Canned(400, {"error": "the contract script is exhausted"})
                server.script(CHAT, *(_openai_answer(r, release) for r in script), exhausted)
                engine = OpenAIEngine(server.url, backoff=0)
            else:
                steps = [_lmstudio_steps(r) for r in script]

                def responder(_param: dict[str, Any], index: int) -> list[Step]:
                    if index < len(steps):
                        return steps[index]
                    return [Fail("the contract script is exhausted")]

                lmstudio = stack.enter_context(LMStudioTestServer(responder))
                client = stack.enter_context(ak.Client(engine=LMStudioEngine(lmstudio.host)))
                # LM Studio's model() without a key means "any loaded model": load one first.
                client.llm.model("qwen-test")
                return client
            return stack.enter_context(ak.Client(engine=engine))

        yield make


def _model(client: ak.Client) -> Any:
    return client.llm.model()


def _assistant(message: object) -> ak.AssistantMessage:
    assert isinstance(message, ak.AssistantMessage)
    return message


def _tool_result(message: object) -> ak.ToolResultMessage:
    assert isinstance(message, ak.ToolResultMessage)
    return message


def _user_chat(text: str) -> ak.Chat:
    chat = ak.Chat()
    chat.add_user_message(text)
    return chat


# -- tools -------------------------------------------------------------------------------------


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


# -- the contract ------------------------------------------------------------------------------


def test_tool_round_trip(make_client: MakeClient) -> None:
    client = make_client(
        [[Call("add", {"a": 2, "b": 3}, id="call_add")], Say(("The ", "sum ", "is ", "5."))]
    )
    chat = _user_chat("Add 2 and 3.")

    result = _model(client).act(chat, [add], on_message=chat.append)

    assert [m.role for m in chat] == ["user", "assistant", "tool", "assistant"]
    request, answer, final = list(chat)[1:]
    request, answer, final = _assistant(request), _tool_result(answer), _assistant(final)
    assert [(c.id, c.name, c.arguments) for c in request.tool_calls] == [
        ("call_add", "add", {"a": 2, "b": 3})
    ]
    assert (answer.tool_call_id, answer.name, answer.content) == ("call_add", "add", "5")
    assert final.content == "The sum is 5."
    assert result.rounds == 2
    assert result.final is not None and result.final.content == "The sum is 5."


def test_parallel_tool_calls_enter_the_chat_in_request_order(make_client: MakeClient) -> None:
    ran: list[str] = []

    async def lookup(key: str, pause: float) -> str:
        """Look a key up (slowly, if asked)."""
        await anyio.sleep(pause)
        ran.append(key)
        return f"value of {key}"

    calls = [
        Call("lookup", {"key": "slow", "pause": 0.2}, id="call_slow"),
        Call("lookup", {"key": "fast", "pause": 0.0}, id="call_fast"),
    ]
    client = make_client([calls, Say(("Both ", "found."))])
    chat = _user_chat("Look up slow and fast.")

    result = _model(client).act(chat, [lookup], on_message=chat.append)

    assert sorted(ran) == ["fast", "slow"]
    assert [m.role for m in chat] == ["user", "assistant", "tool", "tool", "assistant"]
    request = _assistant(list(chat)[1])
    assert [(c.id, c.arguments) for c in request.tool_calls] == [
        ("call_slow", {"key": "slow", "pause": 0.2}),
        ("call_fast", {"key": "fast", "pause": 0.0}),
    ]
    results = [_tool_result(m) for m in list(chat)[2:4]]
    assert [(m.tool_call_id, m.content) for m in results] == [
        ("call_slow", "value of slow"),
        ("call_fast", "value of fast"),
    ]
    assert [r.call.id for r in result.round_records[0].tool_calls] == ["call_slow", "call_fast"]
    assert result.final is not None and result.final.content == "Both found."


class City(BaseModel):
    name: str
    country: str


def test_structured_output_is_parsed(make_client: MakeClient) -> None:
    client = make_client([Say(('{"name": ', '"Paris", ', '"country": ', '"France"}'))])

    result = _model(client).act("Name a city as JSON.", response_format=City)

    assert isinstance(result.parsed, City)
    assert result.parsed == City(name="Paris", country="France")
    assert result.final is not None and json.loads(result.final.content)["name"] == "Paris"


def test_streamed_fragments_arrive_in_order_and_join_to_the_answer(
    make_client: MakeClient,
) -> None:
    reply = Say(("Once ", "upon ", "a ", "time."), delay=0.02)
    client = make_client([reply])
    seen: list[tuple[str, bool, int]] = []

    def on_fragment(fragment: ak.PredictionFragment, round_index: int) -> None:
        seen.append((fragment.content, fragment.reasoning, round_index))

    result = _model(client).act("Tell a story.", on_prediction_fragment=on_fragment)

    assert seen == [(piece, False, 0) for piece in reply.fragments]
    assert result.final is not None
    assert "".join(content for content, _, _ in seen) == result.final.content == reply.text


@pytest.mark.parametrize("canceller", ["callback", "thread"])
def test_cancel_during_a_slow_reply_commits_no_partial_round(
    make_client: MakeClient, canceller: str
) -> None:
    slow = Say(("Thinking ", "very ", "slowly."), delay=1.5)
    client = make_client([[Call("add", {"a": 1, "b": 1}, id="call_add")], slow])
    chat = _user_chat("Add 1 and 1, then think.")
    token = ak.CancelToken()
    fragments: list[tuple[str, int]] = []
    first_fragment = threading.Event()
    cancelled_at: list[float] = []

    def cancel() -> None:
        cancelled_at.append(time.monotonic())
        token.cancel()

    def on_fragment(fragment: ak.PredictionFragment, round_index: int) -> None:
        fragments.append((fragment.content, round_index))
        if canceller == "callback":
            cancel()
        else:
            first_fragment.set()

    def cancel_from_a_thread() -> None:
        if first_fragment.wait(10):
            cancel()

    thread = threading.Thread(target=cancel_from_a_thread, daemon=True)
    if canceller == "thread":
        thread.start()
    with pytest.raises(ak.ActCancelled) as caught:
        _model(client).act(
            chat,
            [add],
            on_message=chat.append,
            on_prediction_fragment=on_fragment,
            cancel_token=token,
        )
    ended = time.monotonic()
    if canceller == "thread":
        thread.join(5)

    assert token.cancelled and cancelled_at
    assert ended - cancelled_at[0] < 1.2  # before the next fragment (1.5 s away)
    assert fragments == [("Thinking ", 1)]
    assert [m.role for m in chat] == ["user", "assistant", "tool"]  # round 0 only
    assert _tool_result(list(chat)[2]).content == "2"
    assert caught.value.result is not None and caught.value.result.rounds == 1
