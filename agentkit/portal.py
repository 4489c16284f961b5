"""The event loop behind the sync API, run by the threads that wait on it.

Each sync `Client` owns one portal: an asyncio event loop that runs the async core. A sync call
submits a coroutine and then, rather than sleep while another thread runs the loop, runs the loop
itself until its result is ready. A hop to a loop thread costs two cross-thread wake-ups, and on
a virtual machine whose other CPU is idle each costs ~125 µs (measured here: a round trip of
~280 µs across CPUs, ~30 µs on one); a call that drives the loop itself pays none.

One thread drives at a time. Calls from several threads share the loop: the driver runs every
call's coroutine, and when its own is done it hands the loop to a thread still waiting. A caller
that cannot drive (its thread already runs an event loop, as in Jupyter) gets a helper thread
that drives for it. Engines with background tasks that must run between calls (the LM Studio
SDK's connection) set `needs_running_loop`, and their portal keeps a loop thread instead.

If the waiting thread is interrupted (Ctrl-C), its coroutine is cancelled, not left behind.
"""

from __future__ import annotations

import atexit
import functools
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

from agentkit.errors import ClientClosedError

if TYPE_CHECKING:
    import asyncio  # imported when the first loop starts: `import agentkit` stays light

__all__ = ["Portal", "default_portal"]

T = TypeVar("T")

_WAIT_SECONDS = 0.25
"""Longest single wait: the interpreter runs signal handlers (Ctrl-C) between waits."""


class Portal:
    """An event loop that sync code hands coroutines to (see the module docstring)."""

    __slots__ = (
        "_background",
        "_changed",
        "_closed",
        "_drive",
        "_driver",
        "_handoffs",
        "_lock",
        "_loop",
        "_thread",
    )

    def __init__(self, *, background: bool = False) -> None:
        self._background = background
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a call ended or the driver left
        self._drive = threading.Lock()  # held by the thread running the loop
        self._driver: int | None = None
        self._handoffs = 0  # counts releases of the loop, so a waiter never misses one
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def _started(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None:
            return loop
        import asyncio

        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                if self._background:
                    self._thread = threading.Thread(
                        target=self._drive_forever, name="agentkit-loop", daemon=True
                    )
                    self._thread.start()
            return self._loop

    def call(self, function: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run `await function(*args)` on the loop and return its result."""
        if self._closed:
            raise ClientClosedError("this client is closed; create a new one")
        if self.in_loop_thread():
            raise RuntimeError(
                "a blocking agentkit call was made on agentkit's own event loop thread (from a "
                "callback or an async tool?); use the async handle (llm.async_handle) there"
            )
        loop = self._started()
        result: Future[T] = Future()
        result.set_running_or_notify_cancel()  # done only when the coroutine's task has ended
        result.add_done_callback(self._finished)
        started: list[asyncio.Task[None]] = []
        driving = (
            not self._background
            and not _thread_runs_a_loop()
            and self._drive.acquire(blocking=False)
        )
        if driving:  # this thread runs the loop next, so nothing needs waking up
            loop.call_soon(_start, loop, started, result, function, args)
        else:
            loop.call_soon_threadsafe(_start, loop, started, result, function, args)
        try:
            if driving:
                try:
                    self._run_until(result)
                finally:
                    self._release()
            self._wait(result)
        except BaseException:
            loop.call_soon_threadsafe(_cancel, started)
            self._wait(result)  # let the cancellation run: the run ends without half a round
            raise
        try:
            return result.result()
        except _Escaped as escaped:
            raise escaped.error from None

    def _wait(self, future: Future[Any]) -> None:
        """Return once `future` is done, running the loop whenever no other thread does."""
        if not self._background:
            if not _thread_runs_a_loop():
                self._serve(future)
                return
            threading.Thread(target=self._serve, args=(future,), daemon=True).start()
        while not future.done():  # another thread runs the loop
            with self._lock:
                if not future.done():
                    self._changed.wait(_WAIT_SECONDS)

    def _serve(self, future: Future[Any]) -> None:
        while not future.done():
            handoffs = self._handoffs
            if self._drive.acquire(blocking=False):
                try:
                    self._run_until(future)
                finally:
                    self._release()
                continue
            with self._lock:
                if not future.done() and handoffs == self._handoffs:
                    self._changed.wait(_WAIT_SECONDS)

    def _release(self) -> None:
        self._driver = None
        with self._lock:
            self._handoffs += 1
            self._drive.release()
            self._changed.notify_all()  # a waiting caller takes the loop over

    def _run_until(self, future: Future[Any]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or future.done():
            return
        self._driver = threading.get_ident()
        # The future is resolved on the loop, so this stops run_forever right after; a stop
        # left over from an interrupted driver only ends a drive early, and _serve goes on.
        future.add_done_callback(lambda _: loop.stop())
        loop.run_forever()

    def _drive_forever(self) -> None:
        loop = self._loop
        assert loop is not None
        with self._drive:
            self._driver = threading.get_ident()
            try:
                loop.run_forever()
            finally:
                self._driver = None

    def _finished(self, _: Future[Any]) -> None:
        with self._lock:
            self._changed.notify_all()

    def in_loop_thread(self) -> bool:
        """True when called from the thread that is running the portal's loop."""
        return self._driver == threading.get_ident()

    def close(self) -> None:
        """Cancel what still runs and close the loop; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None:
            return
        if thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
        with self._drive:
            self._driver = threading.get_ident()
            try:
                _shut_down(loop)
            finally:
                self._driver = None

    @property
    def closed(self) -> bool:
        """True after close()."""
        return self._closed


def _thread_runs_a_loop() -> bool:
    import asyncio

    return asyncio._get_running_loop() is not None


def _shut_down(loop: asyncio.AbstractEventLoop) -> None:
    import asyncio

    try:
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


class _Escaped(Exception):
    """Carries a KeyboardInterrupt or SystemExit from the loop to the caller."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(repr(error))
        self.error = error


def _start(
    loop: asyncio.AbstractEventLoop,
    started: list[asyncio.Task[None]],
    result: Future[Any],
    function: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
) -> None:
    task = loop.create_task(_run(result, function, args))
    task.add_done_callback(functools.partial(_settle, result))
    started.append(task)


def _settle(result: Future[Any], task: asyncio.Task[None]) -> None:
    import asyncio

    if not result.done():  # cancelled before its first step, so _run never began
        result.set_exception(asyncio.CancelledError())


def _cancel(started: list[asyncio.Task[None]]) -> None:
    for task in started:
        task.cancel()


async def _run(
    result: Future[Any], function: Callable[..., Awaitable[Any]], args: tuple[Any, ...]
) -> None:
    try:
        value = await function(*args)
    except (KeyboardInterrupt, SystemExit) as error:
        # Raised out of the loop, these would stop whoever drives it; the caller gets them.
        result.set_exception(_Escaped(error))
    except BaseException as error:  # a cancellation included: this task is the call's root
        result.set_exception(error)
    else:
        result.set_result(value)


_default: Portal | None = None
_default_lock = threading.Lock()


def default_portal() -> Portal:
    """The portal shared by sync handles that belong to no client (such as ScriptedModel)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Portal()
            atexit.register(_default.close)
        return _default
