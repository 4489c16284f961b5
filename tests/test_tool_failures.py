"""What a tool or a callback raises stays inside the run; tool threads stay bounded.

A tool's exception, BaseExceptions included, is the tool's failure: the model hears about it and
the client keeps working. A callback that raises never leaves half a round in a chat built with
`on_message=chat.append`. Threads a sync tool keeps past its timeout are counted and capped.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import agentkit as ak
from agentkit import tool_threads
from agentkit.errors import ToolExecutionError
from agentkit.portal import Portal
from agentkit.testing import AsyncScriptedModel, ScriptedModel, ToolCall


class CustomBaseException(BaseException):
    pass


BASE_EXCEPTIONS: list[Callable[[], BaseException]] = [
    KeyboardInterrupt,
    lambda: SystemExit(3),
    GeneratorExit,
    asyncio.CancelledError,
    lambda: CustomBaseException("custom"),
]
IDS = ["KeyboardInterrupt", "SystemExit", "GeneratorExit", "CancelledError", "custom"]


def call_once(name: str) -> Callable[[ak.Chat, int], Any]:
    return lambda chat, i: [ToolCall(name, {})] if i == 0 else "done"


def raising_tools(make: Callable[[], BaseException]) -> list[ak.Tool[..., Any]]:
    def sync_tool() -> str:
        """Raise from a worker thread."""
        raise make()

    async def async_tool() -> str:
        """Raise on the event loop."""
        raise make()

    return [ak.tool(sync_tool), ak.tool(async_tool)]


@pytest.mark.parametrize("make", BASE_EXCEPTIONS, ids=IDS)
def test_a_tool_raising_a_base_exception_fails_the_call_and_the_client_lives(
    make: Callable[[], BaseException],
) -> None:
    for tool in raising_tools(make):
        for _ in range(3):  # the loop thread died on the first of these before
            result = ScriptedModel(call_once(tool.name)).act("go", [tool])
            record = result.round_records[0].tool_calls[0]
            assert record.error == "tool_error"
            assert type(make()).__name__ in record.result
            assert result.final is not None and result.final.text == "done"
    assert ScriptedModel(["still here"]).act("again").final.text == "still here"


@pytest.mark.anyio
@pytest.mark.parametrize("make", BASE_EXCEPTIONS, ids=IDS)
async def test_async_api_gets_the_same_tool_failure(make: Callable[[], BaseException]) -> None:
    errors: list[BaseException] = []

    def keep(error: Any, call: Any) -> None:
        errors.append(error)

    for tool in raising_tools(make):
        model = AsyncScriptedModel(call_once(tool.name))
        result = await model.act("go", [tool], handle_invalid_tool_request=keep)
        assert result.round_records[0].tool_calls[0].error == "tool_error"
    assert [type(e) for e in errors] == [ToolExecutionError, ToolExecutionError]
    assert all(type(e.__cause__) is type(make()) for e in errors)


@pytest.mark.anyio
async def test_cancelling_the_run_still_cancels_a_running_async_tool() -> None:
    started = anyio.Event()

    async def slow() -> str:
        """Wait for a long time."""
        started.set()
        await anyio.sleep(30)
        return "late"

    model = AsyncScriptedModel(call_once("slow"))
    with anyio.move_on_after(5) as scope:
        async with anyio.create_task_group() as group:
            group.start_soon(model.act, "go", [slow])
            await started.wait()
            group.cancel_scope.cancel()
    assert not scope.cancelled_caught  # the cancel ended the run, not the 5 s guard


@pytest.mark.parametrize("make", BASE_EXCEPTIONS, ids=IDS)
def test_a_callback_raising_a_base_exception_leaves_whole_rounds(
    make: Callable[[], BaseException], caplog: pytest.LogCaptureFixture
) -> None:
    def echo() -> str:
        """Echo."""
        return "echoed"

    chat = ak.Chat()

    def on_message(message: ak.Message) -> None:
        chat.append(message)
        if message.role == "assistant":
            raise make()

    model = ScriptedModel(call_once("echo"))
    with caplog.at_level(logging.ERROR, logger="agentkit"):
        result = model.act("go", [echo], on_message=on_message)
    assert [m.role for m in chat] == ["assistant", "tool", "assistant"]
    assert chat.messages == tuple(result.messages)
    assert sum("callback" in r.getMessage() for r in caplog.records) == 2
    assert ScriptedModel(["alive"]).act("again").final.text == "alive"


def test_other_callbacks_raising_base_exceptions_do_not_end_the_run() -> None:
    def interrupt(*_: Any) -> None:
        raise KeyboardInterrupt

    result = ScriptedModel(["fine"]).act(
        "go",
        on_round_start=interrupt,
        on_round_end=interrupt,
        on_prediction_completed=interrupt,
        on_prediction_fragment=interrupt,
    )
    assert result.final is not None and result.final.text == "fine"


def test_the_portal_survives_a_keyboard_interrupt_escaping_a_coroutine() -> None:
    portal = Portal()

    async def interrupt() -> None:
        raise KeyboardInterrupt

    async def answer() -> int:
        return 42

    try:
        for _ in range(3):
            with pytest.raises(KeyboardInterrupt):
                portal.call(interrupt)
            assert portal.call(answer) == 42
    finally:
        portal.close()


# -- threads ----------------------------------------------------------------------------------


def wait_for_no_abandoned_threads(limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while tool_threads.abandoned_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert tool_threads.abandoned_threads() == 0


@pytest.fixture
def cap_of_three() -> Iterator[None]:
    wait_for_no_abandoned_threads()
    previous = tool_threads.max_abandoned_threads()
    tool_threads.set_max_abandoned_threads(3)
    yield
    tool_threads.set_max_abandoned_threads(previous)


def test_hung_sync_tools_are_capped_warned_and_refused_with_a_clear_error(
    cap_of_three: None, caplog: pytest.LogCaptureFixture
) -> None:
    release = threading.Event()

    @ak.tool(timeout=0.05)
    def hang() -> str:
        """Block until released."""
        release.wait(10)
        return "late"

    model = ScriptedModel(call_once("hang"))
    threads_before = threading.active_count()
    try:
        with caplog.at_level(logging.WARNING, logger="agentkit"):
            errors = [
                model.act("go", [hang]).round_records[0].tool_calls[0].error for _ in range(8)
            ]
        assert errors == ["timeout"] * 3 + ["threads_exhausted"] * 5
        assert tool_threads.abandoned_threads() == 3
        assert threading.active_count() <= threads_before + 3
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 3 and "3 of at most 3" in warnings[-1]
        refused = model.act("go", [hang]).messages[1].content
        assert "still running past their timeouts" in refused
    finally:
        release.set()
    wait_for_no_abandoned_threads()
    result = model.act("go", [hang.with_options(timeout=5)])
    assert result.round_records[0].tool_calls[0].error is None  # capacity is back


def test_the_thread_cap_must_be_positive() -> None:
    with pytest.raises(ak.ConfigurationError):
        tool_threads.set_max_abandoned_threads(0)


def test_idle_worker_threads_are_reused() -> None:
    @ak.tool
    def thread_name() -> int:
        """The worker thread's identity."""
        return threading.get_ident()

    model = ScriptedModel(call_once("thread_name"))
    idents = {int(model.act("go", [thread_name]).messages[1].content) for _ in range(20)}
    assert len(idents) <= 2


def test_a_generator_result_is_drained_under_the_tool_timeout() -> None:
    produced: list[int] = []

    @ak.tool(timeout=0.2)
    def endless() -> Iterator[int]:
        """Yield slowly, forever."""
        n = 0
        while True:
            time.sleep(0.01)
            produced.append(n)
            yield n
            n += 1

    started = time.perf_counter()
    result = ScriptedModel(call_once("endless")).act("go", [endless])
    assert time.perf_counter() - started < 3
    assert result.round_records[0].tool_calls[0].error == "timeout"
    count = len(produced)
    time.sleep(0.1)
    assert len(produced) <= count + 1  # the abandoned generator is not run on the loop


def test_a_generator_result_becomes_a_list() -> None:
    @ak.tool
    def squares(n: int) -> Iterator[int]:
        """The first n squares."""
        return (i * i for i in range(n))

    model = ScriptedModel(lambda chat, i: [ToolCall("squares", {"n": 4})] if i == 0 else "ok")
    assert model.act("go", [squares]).messages[1].content == "[0,1,4,9]"


def test_a_generator_with_too_many_items_is_the_tools_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tool_threads, "MAX_GENERATED_ITEMS", 50)

    @ak.tool
    def many() -> Iterator[int]:
        """Count without end."""
        n = 0
        while True:
            yield n
            n += 1

    result = ScriptedModel(call_once("many")).act("go", [many])
    record = result.round_records[0].tool_calls[0]
    assert record.error == "result_too_long"
    assert "more than 50 items" in record.result


@pytest.mark.anyio
async def test_an_async_generator_result_is_drained_within_the_timeout() -> None:
    async def ticks() -> AsyncIterator[int]:
        for n in range(3):
            await anyio.lowlevel.checkpoint()
            yield n

    async def endless() -> AsyncIterator[int]:
        while True:
            await anyio.sleep(0.01)
            yield 0

    async def finite_tool() -> AsyncIterator[int]:
        """Three ticks."""
        return ticks()

    async def endless_tool() -> AsyncIterator[int]:
        """Ticks forever."""
        return endless()

    model = AsyncScriptedModel(call_once("finite_tool"))
    assert (await model.act("go", [finite_tool])).messages[1].content == "[0,1,2]"
    slow = ak.tool(endless_tool, timeout=0.2)
    result = await AsyncScriptedModel(call_once("endless_tool")).act("go", [slow])
    assert result.round_records[0].tool_calls[0].error == "timeout"
