"""act(): cancellation from threads and tasks, and many concurrent runs on one handle."""

from __future__ import annotations

import signal
import threading
import time

import anyio
import pytest

import agentkit as ak
from agentkit.testing import AsyncScriptedModel, Reply, ScriptedModel, ToolCall


def test_cancel_token_from_another_thread_while_a_sync_tool_runs() -> None:
    tool_started = threading.Event()

    def slow_lookup(key: str) -> str:
        tool_started.set()
        time.sleep(0.5)
        return key

    token = ak.CancelToken()
    chat = ak.Chat.from_history("go")
    model = ScriptedModel(
        [
            [ToolCall("slow_lookup", {"key": "a"})],  # round 0 completes
            [ToolCall("slow_lookup", {"key": "b"})],  # round 1 is cancelled mid-tool
            "never",
        ]
    )
    canceller = threading.Thread(
        target=lambda: (tool_started.wait(), time.sleep(0.6), token.cancel())
    )
    canceller.start()
    started = time.perf_counter()
    with pytest.raises(ak.ActCancelled) as caught:
        model.act(chat, [slow_lookup], cancel_token=token, on_message=chat.append)
    canceller.join()
    assert time.perf_counter() - started < 1.5
    assert [m.role for m in chat] == ["user", "assistant", "tool"]  # round 0 only
    assert caught.value.result is not None and caught.value.result.rounds == 1


@pytest.mark.anyio
async def test_cancelling_the_task_cancels_running_async_tools() -> None:
    tool_state: list[str] = []

    async def wait_forever() -> str:
        tool_state.append("started")
        started.set()
        try:
            await anyio.sleep(5)  # interrupt_main() does not wake the loop: it lands after
        finally:
            tool_state.append("cleaned up")
        return "never"

    started = anyio.Event()
    chat = ak.Chat.from_history("go")
    model = AsyncScriptedModel(lambda c, i: [ToolCall("wait_forever")])
    async with anyio.create_task_group() as group:

        async def run() -> None:
            await model.act(chat, [wait_forever], on_message=chat.append)

        group.start_soon(run)
        await started.wait()
        group.cancel_scope.cancel()
    assert tool_state == ["started", "cleaned up"]
    assert len(chat) == 1


@pytest.mark.anyio
async def test_cancel_token_during_generation() -> None:
    token = ak.CancelToken()
    model = AsyncScriptedModel([Reply("slow words " * 50, fragment_delay=0.01)])
    fragments: list[str] = []

    def on_fragment(fragment: ak.PredictionFragment, index: int) -> None:
        fragments.append(fragment.content)
        if len(fragments) == 3:
            token.cancel()

    with pytest.raises(ak.ActCancelled):
        await model.act("go", cancel_token=token, on_prediction_fragment=on_fragment)
    assert 3 <= len(fragments) <= 5


def test_an_already_cancelled_token_cancels_at_once() -> None:
    token = ak.CancelToken()
    token.cancel()
    model = ScriptedModel(["hi"])
    with pytest.raises(ak.ActCancelled):
        model.act("go", cancel_token=token)
    assert token.cancelled


def test_keyboard_interrupt_in_the_caller_cancels_the_background_run() -> None:
    state: list[str] = []
    sleeping = threading.Event()

    async def wait() -> None:
        try:
            sleeping.set()
            await anyio.sleep(30)
        finally:
            state.append("cancelled")

    model = ScriptedModel(lambda c, i: [ToolCall("wait")])
    main = threading.get_ident()

    def interrupt() -> None:
        # Once the tool sleeps, so the interrupt is Ctrl-C landing on the loop, not an exception
        # raised inside the tool's own code (a tool's failure, see tool_round): on a loaded
        # machine a fixed 0.2 s delay sometimes landed there, and the run went on calling tools.
        sleeping.wait(10)
        time.sleep(0.05)
        import _thread

        _thread.interrupt_main()

    # Python's own Ctrl-C handler, whatever an earlier test or library left installed: with
    # another handler the interrupt raised nothing and the scripted run called its tool forever.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=interrupt).start()
        with pytest.raises(KeyboardInterrupt):
            model.act("go", [wait], max_prediction_rounds=3)  # bounded if it is lost
    finally:
        signal.signal(signal.SIGINT, previous)
    deadline = time.perf_counter() + 2
    while not state and time.perf_counter() < deadline:
        time.sleep(0.01)
    assert state == ["cancelled"] and threading.get_ident() == main


@pytest.mark.anyio
async def test_200_concurrent_runs_on_one_handle_do_not_cross_talk() -> None:
    async def lookup(session: str) -> str:
        await anyio.sleep(0.01)
        return f"record-of-{session}"

    def responder(chat: ak.Chat, round_index: int) -> str | list[ToolCall]:
        session = chat[1].content  # each chat's own user message
        if round_index == 0:
            return [ToolCall("lookup", {"session": session})]
        tool_result = chat[-1].content
        return f"{session} got {tool_result}"

    model = AsyncScriptedModel(responder)
    chats = {f"s{n}": ak.Chat(f"system {n}") for n in range(200)}
    for session, chat in chats.items():
        chat.add_user_message(session)
    results: dict[str, ak.ActResult] = {}

    async def run(session: str) -> None:
        results[session] = await model.act(
            chats[session], [lookup], on_message=chats[session].append
        )

    async with anyio.create_task_group() as group:
        for session in chats:
            group.start_soon(run, session)

    for session, chat in chats.items():
        final = results[session].final
        assert final is not None and final.text == f"{session} got record-of-{session}"
        assert len(chat) == 5 and chat[0].content == f"system {session[1:]}"
    assert len(model.engine.requests) == 400


def test_concurrent_sync_runs_from_threads_share_one_handle() -> None:
    model = ScriptedModel(
        lambda chat, i: (
            [ToolCall("echo", {"text": chat[0].content})] if i == 0 else chat[-1].content
        )
    )

    def echo(text: str) -> str:
        return text.upper()

    outputs: dict[int, str] = {}

    def worker(n: int) -> None:
        result = model.act(f"thread {n}", [echo])
        assert result.final is not None
        outputs[n] = result.final.text

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outputs == {n: f"THREAD {n}" for n in range(20)}
