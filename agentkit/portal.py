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
import contextvars
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from agentkit.errors import ClientClosedError

if TYPE_CHECKING:
    import asyncio  # imported when the first loop starts: `import agentkit` stays light

__all__ = ["Portal", "default_portal", "on_portal_loop"]

T = TypeVar("T")

_WAIT_SECONDS = 0.25
"""Longest single wait: the interpreter runs signal handlers (Ctrl-C) between waits."""

_PORTAL_LOOP: contextvars.ContextVar[asyncio.AbstractEventLoop | None] = contextvars.ContextVar(
    "agentkit_portal_loop", default=None
)


def on_portal_loop() -> bool:
    """True in a call a portal runs (the sync API), on the portal's own loop.

    Its loop belongs to agentkit, not to the caller's async code, so it may be blocked for a
    moment (a fast sync tool run inline).
    """
    loop = _PORTAL_LOOP.get()
    if loop is None:
        return False
    import asyncio  # loaded: a portal made the loop

    return asyncio._get_running_loop() is loop


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
        "_waiters",
    )

    def __init__(self, *, background: bool = False) -> None:
        self._background = background
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a call ended or the driver left
        self._drive = threading.Lock()  # held by the thread running the loop
        self._driver: int | None = None
        self._handoffs = 0  # counts releases of the loop, so a waiter never misses one
        self._waiters = 0  # threads in _changed.wait(); with none, nobody needs notifying
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
        if self._driver == threading.get_ident():
            raise RuntimeError(
                "a blocking agentkit call was made on agentkit's own event loop thread (from a "
                "callback or an async tool?); use the async handle (llm.async_handle) there"
            )
        loop = self._loop or self._started()
        call: _Call[T] = _Call(self)
        driving = (
            not self._background
            and not _thread_runs_a_loop()
            and self._drive.acquire(blocking=False)
        )
        try:
            if driving:
                try:
                    # This thread runs the loop next, so the task is made here and nothing
                    # needs waking up; it copies this thread's context, as a call's task must.
                    call.task = loop.create_task(_run(call, function, args))
                    self._run_until(call)
                finally:
                    self._release()
            else:
                loop.call_soon_threadsafe(_start, loop, call, function, args)
            self._wait(call)
        except BaseException:
            loop.call_soon_threadsafe(_cancel, call)
            self._wait(call)  # let the cancellation run: the run ends without half a round
            raise
        return call.outcome()

    def _wait(self, call: _Call[Any]) -> None:
        """Return once `call` is done, running the loop whenever no other thread does."""
        if call.done:
            return
        if not self._background:
            if not _thread_runs_a_loop():
                self._serve(call)
                return
            threading.Thread(target=self._serve, args=(call,), daemon=True).start()
        while not call.done:  # another thread runs the loop
            self._sleep(call, None)

    def _serve(self, call: _Call[Any]) -> None:
        while not call.done:
            handoffs = self._handoffs
            if self._drive.acquire(blocking=False):
                try:
                    self._run_until(call)
                finally:
                    self._release()
                continue
            self._sleep(call, handoffs)

    def _sleep(self, call: _Call[Any], handoffs: int | None) -> None:
        """Wait for a change, unless `call` ended or the loop was released since `handoffs`."""
        with self._lock:
            # Counted before the check: a call that ends and then sees no waiter to notify
            # was marked done before this check reads it.
            self._waiters += 1
            try:
                if not call.done and handoffs in (None, self._handoffs):
                    self._changed.wait(_WAIT_SECONDS)
            finally:
                self._waiters -= 1

    def _release(self) -> None:
        self._driver = None
        with self._lock:
            self._handoffs += 1
            self._drive.release()
            if self._waiters:
                self._changed.notify_all()  # a waiting caller takes the loop over

    def _notify(self) -> None:
        if self._waiters:
            with self._lock:
                self._changed.notify_all()

    def _run_until(self, call: _Call[Any]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or call.done:
            return
        self._driver = threading.get_ident()
        call.stops = loop  # the call stops run_forever as it ends
        try:
            loop.run_forever()
        finally:
            call.stops = None  # interrupted: the call must not end another thread's drive

    def _drive_forever(self) -> None:
        loop = self._loop
        assert loop is not None
        with self._drive:
            self._driver = threading.get_ident()
            try:
                loop.run_forever()
            finally:
                self._driver = None

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


class _Call(Generic[T]):
    """One call's coroutine task and outcome; set on the loop, read by the calling thread."""

    __slots__ = ("done", "error", "portal", "stops", "task", "value")

    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        self.task: asyncio.Task[None] | None = None
        self.stops: asyncio.AbstractEventLoop | None = None
        self.value: Any = None
        self.error: BaseException | None = None
        self.done = False

    def finish(self) -> None:
        self.done = True  # before the notification: see Portal._sleep
        if self.stops is not None:
            self.stops.stop()
        self.portal._notify()

    def outcome(self) -> T:
        error = self.error
        if error is None:
            value: T = self.value
            return value
        try:
            raise error
        finally:
            del error  # no reference cycle through the traceback


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


def _start(
    loop: asyncio.AbstractEventLoop,
    call: _Call[Any],
    function: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
) -> None:
    call.task = loop.create_task(_run(call, function, args))


def _cancel(call: _Call[Any]) -> None:
    task = call.task
    if task is None:  # its task was never made
        _settle(call)
        return
    task.cancel()
    task.add_done_callback(lambda _: _settle(call))


def _settle(call: _Call[Any]) -> None:
    import asyncio

    if not call.done:  # cancelled before its first step, so _run never began
        call.error = asyncio.CancelledError()
        call.finish()


async def _run(
    call: _Call[Any], function: Callable[..., Awaitable[Any]], args: tuple[Any, ...]
) -> None:
    _PORTAL_LOOP.set(call.portal._loop)  # in this task's own copy of the caller's context
    try:
        call.value = await function(*args)
    except BaseException as error:
        # A cancellation included (this task is the call's root), and KeyboardInterrupt and
        # SystemExit, which raised out of the loop would stop whoever drives it: the caller
        # gets each of them.
        call.error = error
    call.finish()


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
