"""Worker threads for sync tools: a cheap hop there and back, and a visible bound on the threads
that outlive their call.

Python cannot stop a thread. A sync tool that hangs past its timeout (or whose run is cancelled)
keeps its thread until it returns on its own; agentkit stops waiting for it and calls the thread
*abandoned*. Abandoned threads are counted: each one logs a warning, and once
`max_abandoned_threads()` of them are still running, sync tool calls fail at once with
`ToolThreadsExhaustedError` (the invalid-request path) instead of piling up more threads.

Everything a call does runs in its worker, including draining a generator the tool returns, so
a tool's timeout covers all of its work. Whatever the tool raises, BaseExceptions included, is
handed back to the caller; the worker thread and the event loop carry on.

A worker costs two thread wake-ups per call, ~250 µs when the other CPU is idle, which is far
more than a small function takes. So a worker run is timed, and `run_inline` runs a function in
the calling thread instead; `Tool` decides which (see its `inline` option).
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import logging
import queue
import threading
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import sniffio

if TYPE_CHECKING:
    import asyncio

from agentkit.cancel import call_soon_in_loop
from agentkit.errors import ConfigurationError, ToolResultTooLongError, ToolThreadsExhaustedError

__all__ = [
    "MAX_GENERATED_ITEMS",
    "abandoned_threads",
    "drain",
    "drain_async",
    "max_abandoned_threads",
    "run_in_worker",
    "run_inline",
    "set_max_abandoned_threads",
]

logger = logging.getLogger("agentkit")

MAX_GENERATED_ITEMS = 100_000
"""Most items taken from a generator a tool returns; one that yields more is the tool's error."""

INLINE_FAST_SECONDS = 100e-6
"""A sync tool whose last worker run took less than this may run inline (see `Tool`)."""

INLINE_SLOW_SECONDS = 1e-3
"""An inline run that takes this long sends its tool back to a worker thread (see `Tool`)."""

_IDLE_SECONDS = 10.0
_DEFAULT_MAX_ABANDONED = 32


class _Outcome:
    """What a job ended with, set by the worker and read by the waiting task."""

    __slots__ = ("abandoned", "error", "finished", "name", "seconds", "value")

    def __init__(self, name: str) -> None:
        self.name = name
        self.value: Any = None
        self.error: BaseException | None = None
        self.abandoned = False
        self.finished = False
        self.seconds = 0.0  # how long the function (and draining) took in the worker


class _Pool:
    """Idle workers wait on their own queue, so handing one a job is a single `put`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.idle: list[queue.SimpleQueue[_Job | None]] = []
        self.abandoned = 0
        self.max_abandoned = _DEFAULT_MAX_ABANDONED

    def submit(self, job: _Job) -> None:
        with self.lock:
            if self.abandoned >= self.max_abandoned:
                raise ToolThreadsExhaustedError(job.outcome.name, self.abandoned)
            inbox = self.idle.pop() if self.idle else None
        if inbox is None:
            inbox = queue.SimpleQueue()
            threading.Thread(
                target=self._work, args=(inbox,), name="agentkit-tool", daemon=True
            ).start()
        inbox.put(job)

    def _work(self, inbox: queue.SimpleQueue[_Job | None]) -> None:
        while True:
            try:
                job = inbox.get(timeout=_IDLE_SECONDS)
            except queue.Empty:
                with self.lock:
                    if inbox in self.idle:  # not handed a job while the wait timed out
                        self.idle.remove(inbox)
                        return
                continue
            if job is None:
                return
            job.run()
            with self.lock:
                job.outcome.finished = True
                if job.outcome.abandoned:
                    self.abandoned -= 1
                self.idle.append(inbox)

    def abandon(self, outcome: _Outcome) -> None:
        with self.lock:
            if outcome.abandoned or outcome.finished:
                return
            outcome.abandoned = True
            self.abandoned += 1
            count = self.abandoned
        logger.warning(
            "tool %r is still running in a thread agentkit no longer waits for (Python cannot "
            "stop threads); %d of at most %d such threads are running",
            outcome.name,
            count,
            self.max_abandoned,
        )


class _Job:
    __slots__ = ("call", "outcome", "wake")

    def __init__(self, call: Callable[[], Any], outcome: _Outcome, wake: Callable[[], object]):
        self.call = call
        self.outcome = outcome
        self.wake = wake

    def run(self) -> None:
        outcome = self.outcome
        started = time.perf_counter()
        try:
            outcome.value = drain(self.call(), outcome.name, outcome)
        except BaseException as error:  # the tool's failure, whatever it is, goes to the caller
            outcome.error = error
        outcome.seconds = time.perf_counter() - started
        try:
            self.wake()
        except Exception:  # the loop is gone: nobody waits for this result any more
            logger.debug("tool %r finished after its event loop closed", outcome.name)


_pool = _Pool()


def drain(value: Any, name: str, outcome: _Outcome | None = None) -> Any:
    """A generator's items as a list (so they are produced here, under the timeout).

    A generator, unlike a thread, can be stopped: once its call is abandoned, draining ends.
    """
    if not inspect.isgenerator(value):
        return value
    items: list[Any] = []
    with contextlib.closing(value):
        for item in value:
            if outcome is not None and outcome.abandoned:
                return items
            if len(items) == MAX_GENERATED_ITEMS:
                raise ToolResultTooLongError(name, MAX_GENERATED_ITEMS)
            items.append(item)
    return items


async def drain_async(generator: AsyncGenerator[Any, Any], name: str) -> list[Any]:
    """An async generator's items as a list, bounded like `drain`."""
    items: list[Any] = []
    try:
        async for item in generator:
            if len(items) == MAX_GENERATED_ITEMS:
                raise ToolResultTooLongError(name, MAX_GENERATED_ITEMS)
            items.append(item)
    finally:
        await generator.aclose()
    return items


async def run_in_worker(
    function: Callable[[], Any],
    name: str,
    timed: Callable[[float, BaseException | None], object] | None = None,
) -> Any:
    """`function()` (and any generator it returns, drained) in a worker thread.

    Raises what the function raised. If the caller is cancelled while the function runs, the
    thread is abandoned (counted and logged) and the cancellation goes on. `timed`, if given,
    gets the seconds the function took in the worker and what it raised (None if nothing).
    """
    outcome = _Outcome(name)
    call = contextvars.copy_context().run
    bound = _bind(call, function)
    if sniffio.current_async_library() == "asyncio":
        import asyncio  # already loaded: we are on its loop

        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        _pool.submit(_Job(bound, outcome, lambda: loop.call_soon_threadsafe(_resolve, future)))
        waiting: Awaitable[Any] = future
    else:
        done = anyio.Event()
        token = anyio.lowlevel.current_token()
        _pool.submit(_Job(bound, outcome, lambda: call_soon_in_loop(token, done.set)))
        waiting = done.wait()
    try:
        await waiting
    except BaseException:
        _pool.abandon(outcome)
        raise
    if timed is not None:
        timed(outcome.seconds, outcome.error)
    if outcome.error is not None:
        raise outcome.error
    return outcome.value


def run_inline(function: Callable[[], Any], name: str) -> Any:
    """`function()` (and any generator it returns, drained) in the calling thread.

    It runs in a copy of the current context, as in a worker, so the context variables it sets
    stay its own. Nothing can stop it: it has no timeout and a cancellation waits for it.
    """
    return contextvars.copy_context().run(_call_and_drain, function, name)


def _call_and_drain(function: Callable[[], Any], name: str) -> Any:
    return drain(function(), name)


def _bind(run: Callable[..., Any], function: Callable[[], Any]) -> Callable[[], Any]:
    return lambda: run(function)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def abandoned_threads() -> int:
    """How many sync tool threads are still running after agentkit stopped waiting for them."""
    return _pool.abandoned


def max_abandoned_threads() -> int:
    """The most abandoned threads allowed before sync tool calls are refused."""
    return _pool.max_abandoned


def set_max_abandoned_threads(limit: int) -> None:
    """Change the cap on abandoned tool threads (default 32)."""
    if limit < 1:
        raise ConfigurationError(f"the abandoned thread cap must be at least 1, got {limit}")
    _pool.max_abandoned = limit
