"""`CancelToken`: cancel act() runs and predictions from any thread or task."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import anyio.lowlevel

__all__ = ["CancelToken", "call_soon_in_loop", "is_cancellation"]


class CancelToken:
    """Cancels the runs it is passed to, from any thread, task or callback.

    `cancel()` is thread-safe and idempotent; a run started with an already-cancelled token is
    cancelled at once. Running tools are cancelled and the chat receives no partial round.
    """

    __slots__ = ("_cancelled", "_lock", "_scopes")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._scopes: list[tuple[anyio.CancelScope, anyio.lowlevel.EventLoopToken]] = []

    @property
    def cancelled(self) -> bool:
        """Whether `cancel()` was called."""
        return self._cancelled

    def cancel(self) -> None:
        """Cancel every run using this token, now and in future."""
        with self._lock:
            self._cancelled = True
            scopes = self._scopes.copy()
        for scope, loop in scopes:
            call_soon_in_loop(loop, scope.cancel)

    @contextmanager
    def attach(self) -> Iterator[anyio.CancelScope]:
        """Enter a cancel scope that this token cancels; check `cancelled_caught` after."""
        scope = anyio.CancelScope()
        entry = (scope, anyio.lowlevel.current_token())
        with self._lock:
            self._scopes.append(entry)
            if self._cancelled:
                scope.cancel()
        try:
            with scope:
                yield scope
        finally:
            with self._lock:
                self._scopes.remove(entry)


def call_soon_in_loop(loop: anyio.lowlevel.EventLoopToken, function: Any) -> None:
    """Schedule `function()` on the loop without blocking (safe from any thread)."""
    native: Any = loop.native_token
    if hasattr(native, "call_soon_threadsafe"):  # asyncio loop
        if not native.is_closed():
            native.call_soon_threadsafe(function)
    else:  # trio token
        with contextlib.suppress(Exception):  # trio.RunFinishedError: the run ended already
            native.run_sync_soon(function)


def is_cancellation(error: BaseException) -> bool:
    """True when `error` is the event loop cancelling the current task.

    A tool or callback may raise `asyncio.CancelledError` itself; that is its failure, not a
    cancellation of the run. On asyncio the two differ in whether the task has a cancel
    request pending; trio's `Cancelled` cannot be raised by user code at all.
    """
    if not isinstance(error, anyio.get_cancelled_exc_class()):
        return False
    asyncio = sys.modules.get("asyncio")  # not imported: no asyncio loop, so trio's Cancelled
    if asyncio is not None and isinstance(error, asyncio.CancelledError):
        task = asyncio.current_task()
        return task is not None and task.cancelling() > 0
    return True
