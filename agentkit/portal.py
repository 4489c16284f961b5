"""The background event loop behind the sync API.

Each sync `Client` owns one portal: an anyio (asyncio) event loop in a thread that runs the
async core. A sync call submits a coroutine and waits for it; if the waiting thread is
interrupted (Ctrl-C), the coroutine is cancelled instead of being left running in the
background.

anyio's portal starts and stops the loop; calls go through `run_coroutine_threadsafe`, which
needs one thread hop instead of the two of `BlockingPortal.start_task_soon` (measured ~45 µs
against ~95 µs per call here).
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

from agentkit.errors import ClientClosedError

if TYPE_CHECKING:
    import asyncio  # imported when the first loop starts: `import agentkit` stays light

__all__ = ["Portal", "default_portal"]

T = TypeVar("T")


class Portal:
    """An event loop thread that sync code can hand coroutines to."""

    __slots__ = ("_lock", "_loop", "_loop_thread", "_manager", "_portal")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._manager: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._loop_thread: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _started(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None:
            return loop
        import asyncio

        with self._lock:
            if self._loop is None:
                self._manager = start_blocking_portal("asyncio")
                portal = self._manager.__enter__()
                self._loop_thread = portal.call(threading.get_ident)
                self._portal = portal
                self._loop = portal.call(asyncio.get_running_loop)
            return self._loop

    def call(self, function: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run `await function(*args)` on the loop and return its result."""
        if self._manager is None and self._portal is not None:
            raise ClientClosedError("this client is closed; create a new one")
        if self.in_loop_thread():
            raise RuntimeError(
                "a blocking agentkit call was made on agentkit's own event loop thread (from a "
                "callback or an async tool?); use the async handle (llm.async_handle) there"
            )
        loop = self._started()
        import asyncio  # loaded by _started; a lookup in sys.modules

        future = asyncio.run_coroutine_threadsafe(_await(function, *args), loop)
        try:
            while True:
                # A bounded wait lets the interpreter run signal handlers (Ctrl-C) between
                # waits; an unbounded lock wait is not interrupted by them.
                try:
                    return future.result(timeout=0.25)
                except TimeoutError:
                    if future.done():
                        raise
                except _Escaped as escaped:
                    raise escaped.error from None
        except BaseException:
            future.cancel()
            raise

    def in_loop_thread(self) -> bool:
        """True when called from the portal's own event loop thread."""
        return self._loop_thread == threading.get_ident()

    def close(self) -> None:
        """Stop the loop thread; idempotent."""
        with self._lock:
            manager, self._manager = self._manager, None
        if manager is not None:
            manager.__exit__(None, None, None)

    @property
    def closed(self) -> bool:
        """True after close()."""
        return self._portal is not None and self._manager is None


class _Escaped(Exception):
    """Carries a KeyboardInterrupt or SystemExit from the loop thread to the caller."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(repr(error))
        self.error = error


async def _await(function: Callable[..., Awaitable[T]], *args: Any) -> T:
    try:
        return await function(*args)
    except (KeyboardInterrupt, SystemExit) as error:
        # asyncio re-raises these out of the event loop, which would stop the portal's thread
        # for good; the caller's thread gets them instead.
        raise _Escaped(error) from None


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
