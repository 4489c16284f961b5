"""The sync API's event loop: driven by the callers, shared by threads, never left running.

A sync call runs the loop in its own thread; calls from many threads share it and hand it on;
a thread that already runs an event loop gets a helper; `background=True` keeps a loop thread;
an unclosed client does not keep the interpreter alive.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time

import anyio
import anyio.lowlevel
import pytest

from agentkit.errors import ClientClosedError
from agentkit.portal import Portal


async def current_thread() -> int:
    return threading.get_ident()


async def pause_and_return(value: int) -> int:
    await anyio.sleep(0.001)
    return value


def test_a_call_runs_the_loop_in_the_calling_thread() -> None:
    portal = Portal()
    try:
        assert portal.call(current_thread) == threading.get_ident()
    finally:
        portal.close()


def test_background_mode_runs_the_loop_in_its_own_thread() -> None:
    portal = Portal(background=True)
    try:
        assert portal.call(current_thread) != threading.get_ident()
        assert portal.call(pause_and_return, 7) == 7
    finally:
        portal.close()


@pytest.mark.parametrize("background", [False, True])
def test_many_threads_share_one_portal_and_every_call_returns_its_own_result(
    background: bool,
) -> None:
    portal = Portal(background=background)
    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            results[index] = [portal.call(pause_and_return, index * 1000 + n) for n in range(40)]
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    portal.close()
    assert not errors
    assert results == {i: [i * 1000 + n for n in range(40)] for i in range(8)}
    assert time.monotonic() - started < 60  # generous: a lost hand-off would hang for good


@pytest.mark.parametrize("background", [False, True])
def test_no_wake_up_is_lost_between_threads(
    background: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Waiters also re-check every _WAIT_SECONDS; made long, a lost notification would hang.
    monkeypatch.setattr("agentkit.portal._WAIT_SECONDS", 30.0)
    portal = Portal(background=background)
    errors: list[BaseException] = []

    async def step(value: int) -> int:
        if value % 2:
            await anyio.lowlevel.checkpoint()
        return value

    def worker(index: int) -> None:
        try:
            for n in range(300):
                assert portal.call(step, n) == n
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    portal.close()
    assert not errors
    assert time.monotonic() - started < 25  # one lost wake-up alone would take 30 s


def test_a_waiting_caller_takes_the_loop_over_when_the_driver_leaves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("agentkit.portal._WAIT_SECONDS", 30.0)  # no periodic re-check
    portal = Portal()
    driving = threading.Event()

    async def short() -> int:
        driving.set()
        await anyio.sleep(0.2)
        return threading.get_ident()

    async def long() -> int:
        await anyio.sleep(0.5)  # still sleeping when the first caller's call ends
        return threading.get_ident()

    second: list[int] = []
    thread = threading.Thread(target=lambda: second.append(portal.call(long)))
    try:
        started = time.monotonic()
        first = threading.Thread(target=lambda: second.append(portal.call(short)))
        first.start()
        assert driving.wait(10)
        thread.start()
        first.join(10)
        thread.join(20)
        assert time.monotonic() - started < 10  # a lost hand-off would wait 30 s
        assert len(second) == 2 and second[0] != second[1]  # each ended on its own thread
    finally:
        portal.close()


def test_a_thread_that_runs_an_event_loop_gets_a_helper_to_drive() -> None:
    portal = Portal()

    async def inside_a_loop() -> tuple[int, int]:
        return portal.call(current_thread), threading.get_ident()

    try:
        driver, caller = asyncio.run(inside_a_loop())
        assert driver != caller
    finally:
        portal.close()


def test_a_blocking_call_from_the_loop_itself_is_refused() -> None:
    portal = Portal()

    async def nested() -> int:
        return portal.call(current_thread)

    try:
        with pytest.raises(RuntimeError, match="own event loop thread"):
            portal.call(nested)
        assert portal.call(pause_and_return, 3) == 3  # the portal still works
    finally:
        portal.close()


def test_close_cancels_what_still_runs_and_later_calls_fail_typed() -> None:
    portal = Portal()
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await anyio.sleep(3600)
        finally:
            cancelled.set()

    tasks: list[asyncio.Task[None]] = []

    async def start_forever() -> None:
        tasks.append(asyncio.get_running_loop().create_task(forever()))
        await anyio.lowlevel.checkpoint()

    portal.call(start_forever)
    portal.close()
    assert cancelled.is_set()
    with pytest.raises(ClientClosedError):
        portal.call(pause_and_return, 1)
    portal.close()  # idempotent


@pytest.mark.parametrize(
    "code",
    [
        "import agentkit as ak\n"
        "from agentkit.testing import ScriptedModel\n"
        "c = ak.Client('http://127.0.0.1:9/v1')\n"
        "async def f():\n    return 1\n"
        "assert c._portal.call(f) == 1\n"
        "print(ScriptedModel(['hi']).act('x').final.text)\n",
        "from agentkit.portal import Portal\n"
        "p = Portal(background=True)\n"
        "async def f():\n    return 1\n"
        "print(p.call(f))\n",
    ],
    ids=["unclosed client", "unclosed background portal"],
)
def test_an_unclosed_portal_does_not_keep_the_interpreter_alive(code: str) -> None:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_a_call_cancelled_before_its_task_starts_still_ends() -> None:
    # Ctrl-C can land before the call's task takes its first step; the call must end anyway.
    from agentkit.portal import _Call, _cancel, _start

    portal = Portal()
    loop = asyncio.new_event_loop()
    try:
        call: _Call[int] = _Call(portal)
        _start(loop, call, pause_and_return, (5,))
        _cancel(call)
        assert call.task is not None
        loop.run_until_complete(asyncio.gather(call.task, return_exceptions=True))
        loop.run_until_complete(asyncio.sleep(0))  # the task's done callbacks
        assert call.done
        with pytest.raises(asyncio.CancelledError):
            call.outcome()
    finally:
        loop.close()
        portal.close()
