"""Sync tools run inline: when agentkit chooses it, what the tool sees, and what stays the same.

A fast sync tool runs in the thread that drives agentkit's loop instead of a worker thread, in
the sync API, when it is its round's one call with no timeout and no cancel token; a slow inline
run (or a BaseException) sends it back to workers for good. `inline=True`/`False` force it.
Timeouts, cancellation, Ctrl-C and tool errors keep their meaning either way.
"""

from __future__ import annotations

import _thread
import asyncio
import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import agentkit as ak
from agentkit import tool_threads
from agentkit.errors import ToolDefinitionError, ToolExecutionError
from agentkit.portal import Portal, on_portal_loop
from agentkit.testing import AsyncScriptedModel, ScriptedModel, ToolCall

MAIN = threading.main_thread().ident
SLOW = 0.05


@pytest.fixture(autouse=True)
def roomy_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Thresholds far from what these tools take, so a loaded machine cannot flip a choice."""
    monkeypatch.setattr(tool_threads, "INLINE_FAST_SECONDS", 0.01)
    monkeypatch.setattr(tool_threads, "INLINE_SLOW_SECONDS", SLOW)


def calling(name: str, **arguments: Any) -> Callable[[ak.Chat, int], Any]:
    """A responder that calls the tool once, then answers."""
    return lambda chat, i: [ToolCall(name, arguments)] if i == 0 else "done"


class Where:
    """A tool recording the thread of each of its runs."""

    def __init__(self) -> None:
        self.threads: list[int | None] = []

    def tool(self, **options: Any) -> ak.Tool[..., str]:
        def where() -> str:
            """Say where it ran."""
            self.threads.append(threading.get_ident())
            return "here"

        return ak.tool(where, **options)

    def inline(self) -> list[bool]:
        """For each run: did it run in this (the test's) thread?"""
        return [ident == threading.get_ident() for ident in self.threads]


def run_sync(tool: ak.Tool[..., Any], times: int, **act_options: Any) -> list[ak.ActResult]:
    model = ScriptedModel(calling(tool.name))
    return [model.act("go", [tool], **act_options) for _ in range(times)]


def test_a_fast_tool_runs_in_a_worker_first_then_in_the_calling_thread() -> None:
    where = Where()
    results = run_sync(where.tool(), 4)
    assert where.inline() == [False, True, True, True]
    assert all(r.final is not None and r.final.text == "done" for r in results)
    assert all(r.messages[1].content == "here" for r in results)


def test_the_async_api_keeps_sync_tools_in_worker_threads_by_default() -> None:
    where = Where()
    tool = where.tool()
    model = AsyncScriptedModel(calling("where"))

    async def main() -> list[int]:
        loop_thread = threading.get_ident()
        for _ in range(4):
            await model.act("go", [tool])
        return [loop_thread]

    loop_thread = asyncio.run(main())[0]
    assert len(where.threads) == 4
    assert loop_thread not in where.threads


@pytest.mark.parametrize(
    "setting",
    ["timeout", "cancel_token", "inline=False", "two calls"],
)
def test_the_default_keeps_the_worker_when_inline_would_lose_something(setting: str) -> None:
    where = Where()
    tool = where.tool(
        timeout=5 if setting == "timeout" else None,
        inline=False if setting == "inline=False" else None,
    )
    if setting == "two calls":
        both = [ToolCall("where"), ToolCall("where")]
        model = ScriptedModel(lambda c, i: both if i == 0 else ".")
        for _ in range(3):
            model.act("go", [tool])
    else:
        options = {"cancel_token": ak.CancelToken()} if setting == "cancel_token" else {}
        run_sync(tool, 3, **options)
    assert where.threads and not any(where.inline())


def test_a_tool_with_a_timeout_still_times_out_after_fast_runs() -> None:
    calls: list[int] = []

    @ak.tool(timeout=0.2)
    def sometimes_slow() -> str:
        """Fast, then hangs on the fourth call."""
        calls.append(threading.get_ident())
        if len(calls) == 4:
            time.sleep(1.0)
        return "ok"

    results = run_sync(sometimes_slow, 4)
    assert MAIN not in calls  # never inline: only a worker can be given up on
    record = results[-1].round_records[0].tool_calls[0]
    assert record.error == "timeout" and "timed out" in record.result
    assert record.duration_seconds < 0.9


def test_an_inline_tool_cannot_have_a_timeout() -> None:
    def f() -> str:
        """Do nothing."""
        return ""

    with pytest.raises(ToolDefinitionError, match="inline tool cannot have a timeout"):
        ak.tool(f, inline=True, timeout=1)
    with pytest.raises(ToolDefinitionError, match="inline tool cannot have a timeout"):
        ak.tool(f, timeout=1).with_options(inline=True)
    with pytest.raises(ToolDefinitionError, match="inline tool cannot have a timeout"):
        ak.define_tool("f", "Do nothing.", {}, f, inline=True, timeout=1)


def test_inline_true_runs_in_the_loop_thread_from_the_first_call_in_both_apis() -> None:
    where = Where()
    tool = where.tool(inline=True)
    run_sync(tool, 2)
    assert where.inline() == [True, True]

    async def main() -> int:
        await AsyncScriptedModel(calling("where")).act("go", [tool])
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert where.threads[-1] == loop_thread


def test_with_options_keeps_or_resets_inline() -> None:
    where = Where()
    forced = where.tool(inline=True)
    assert forced.with_options(retries=1).inline is True
    assert forced.with_options(inline=None).inline is None
    assert forced.with_options(inline=False).inline is False


def test_a_slow_inline_run_goes_back_to_a_worker_and_the_third_for_good() -> None:
    threads: list[int] = []
    slow_calls = {3, 5, 7}

    @ak.tool
    def sometimes_slow() -> str:
        """Fast, except on some calls."""
        threads.append(threading.get_ident())
        if len(threads) in slow_calls:
            time.sleep(SLOW * 2)
        return "ok"

    results = run_sync(sometimes_slow, 10)
    here = threading.get_ident()
    inline = [t == here for t in threads]
    # worker, inline, inline (slow), worker, inline (slow), worker, inline (slow: the third)...
    assert inline == [False, True, True, False, True, False, True, False, False, False]
    assert all(r.messages[1].content == "ok" for r in results)  # slow runs still count


def test_an_inline_tool_error_takes_the_invalid_request_path_and_stays_inline() -> None:
    threads: list[int] = []

    @ak.tool
    def flaky() -> str:
        """Fails on its second call."""
        threads.append(threading.get_ident())
        if len(threads) == 2:
            raise ValueError("flaky failed")
        return "ok"

    errors: list[Any] = []
    model = ScriptedModel(calling("flaky"))
    results = [
        model.act("go", [flaky], handle_invalid_tool_request=lambda e, c: errors.append(e))
        for _ in range(3)
    ]
    record = results[1].round_records[0].tool_calls[0]
    assert record.error == "tool_error" and "flaky failed" in record.result
    assert [type(e) for e in errors] == [ToolExecutionError]
    assert isinstance(errors[0].__cause__, ValueError)
    assert [t == threading.get_ident() for t in threads] == [False, True, True]


def test_ctrl_c_inside_an_inline_tool_ends_the_run_with_whole_rounds() -> None:
    assert threading.get_ident() == MAIN
    interrupt = [False]

    @ak.tool
    def busy() -> str:
        """Quick, unless asked to wait for Ctrl-C."""
        if interrupt[0]:
            _thread.interrupt_main()  # as Ctrl-C: Python raises KeyboardInterrupt in here
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                pass
        return "ok"

    model = ScriptedModel(calling("busy"))
    for _ in range(2):
        model.act("go", [busy])  # the second ran inline
    chat = ak.Chat()
    chat.add_user_message("go")
    interrupt[0] = True
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        model.act(chat, [busy], on_message=chat.append)
    assert time.monotonic() - started < 4
    assert [m.role for m in chat] == ["user"]  # the interrupted round left nothing behind
    interrupt[0] = False
    result = model.act("again", [busy])  # the client works; the tool went back to a worker
    assert result.final is not None and result.final.text == "done"
    assert ScriptedModel(["alive"]).act("x").final.text == "alive"


@pytest.mark.parametrize(
    "make", [KeyboardInterrupt, lambda: SystemExit(3)], ids=["KeyboardInterrupt", "SystemExit"]
)
def test_a_base_exception_an_inline_tool_raises_off_the_main_thread_is_its_failure(
    make: Callable[[], BaseException],
) -> None:
    # Outside the main thread a KeyboardInterrupt cannot be Ctrl-C: it is the tool's own.
    raising = [False]
    threads: list[int] = []

    @ak.tool
    def tool() -> str:
        """Raise when told to."""
        threads.append(threading.get_ident())
        if raising[0]:
            raise make()
        return "ok"

    outcome: list[Any] = []

    def caller() -> None:
        model = ScriptedModel(calling("tool"))
        model.act("go", [tool])
        raising[0] = True
        outcome.append(model.act("go", [tool]))
        raising[0] = False
        outcome.append(model.act("go", [tool]))
        outcome.append(threading.get_ident())

    thread = threading.Thread(target=caller)
    thread.start()
    thread.join(30)
    failed, after, caller_thread = outcome
    record = failed.round_records[0].tool_calls[0]
    assert record.error == "tool_error" and type(make()).__name__ in record.result
    assert after.final.text == "done"
    assert [t == caller_thread for t in threads] == [False, True, False]  # demoted by it


def test_a_tool_that_raised_a_base_exception_in_a_worker_is_never_inlined() -> None:
    raising = [True]
    threads: list[int] = []

    @ak.tool
    def tool() -> str:
        """Raise SystemExit first, then behave."""
        threads.append(threading.get_ident())
        if raising[0]:
            raising[0] = False
            raise SystemExit(1)
        return "ok"

    results = run_sync(tool, 4)
    assert results[0].round_records[0].tool_calls[0].error == "tool_error"
    assert threading.get_ident() not in threads


def test_an_inline_tool_sees_the_callers_context_and_keeps_its_own_changes() -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
    seen: list[str] = []

    @ak.tool
    def read() -> str:
        """Read and change a context variable."""
        seen.append(request_id.get())
        request_id.set("changed by the tool")
        return "ok"

    token = request_id.set("request-7")
    try:
        run_sync(read, 3)
        assert request_id.get() == "request-7"
    finally:
        request_id.reset(token)
    assert seen == ["request-7"] * 3


def test_an_inline_generator_is_drained_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    limit = [3]

    @ak.tool
    def items() -> Iterator[int]:
        """Yield a few numbers."""
        yield from range(limit[0])

    results = run_sync(items, 2)
    assert [r.messages[1].content for r in results] == ["[0,1,2]", "[0,1,2]"]
    monkeypatch.setattr("agentkit.tool_threads.MAX_GENERATED_ITEMS", 5)
    limit[0] = 10
    record = run_sync(items, 1)[0].round_records[0].tool_calls[0]
    assert record.error == "result_too_long" and "more than 5 items" in record.result


def test_on_portal_loop_is_true_only_on_a_portals_own_loop() -> None:
    portal = Portal()
    inner: list[bool] = []

    async def check() -> bool:
        def elsewhere() -> None:  # a copy of this context, on a loop of its own
            async def probe() -> bool:
                return on_portal_loop()

            inner.append(asyncio.run(probe()))

        thread = threading.Thread(target=contextvars.copy_context().run, args=(elsewhere,))
        thread.start()
        thread.join(10)
        return on_portal_loop()

    async def probe() -> bool:
        return on_portal_loop()

    try:
        assert portal.call(check) is True
        assert inner == [False]
        assert asyncio.run(probe()) is False
        assert on_portal_loop() is False
    finally:
        portal.close()
