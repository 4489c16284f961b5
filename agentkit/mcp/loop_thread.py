"""An asyncio loop in a thread of its own: the home of a server's session in the sync API.

A session's tasks must keep running between sync calls (stdio readers, notifications), and a
sync act() runs its tools on its own portal's loop; a tool call hops to this loop and back.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread:
    """A running asyncio loop in a daemon thread; `run` blocks on it, `hop` awaits it."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the loop and wait for its result (from any other thread)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    async def hop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Await `coroutine` on the loop from another asyncio loop (cancelling carries over)."""
        if asyncio.get_running_loop() is self.loop:
            return await coroutine
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self.loop))

    def close(self) -> None:
        """Stop the loop and its thread (after the caller closed what runs on it)."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()
