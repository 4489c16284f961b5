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
    from concurrent.futures import Future

    from agentkit.portal import _cancel, _start

    loop = asyncio.new_event_loop()
    try:
        result: Future[int] = Future()
        result.set_running_or_notify_cancel()
        started: list[asyncio.Task[None]] = []
        _start(loop, started, result, pause_and_return, (5,))
        _cancel(started)
        loop.run_until_complete(asyncio.gather(*started, return_exceptions=True))
        assert result.done()
        with pytest.raises(asyncio.CancelledError):
            result.result()
    finally:
        loop.close()
