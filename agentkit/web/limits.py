"""Admission control for web backends: per-model backpressure and per-user limits.

Both are checked before a response starts, so a refused request gets a plain 4xx (429 with
Retry-After, 413) instead of an error inside a stream. They count runs in this process: a
deployment with several processes divides its budget between them.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from agentkit.errors import AgentkitError, ConfigurationError

__all__ = ["LimitExceeded", "ModelQueue", "RunSlot", "UserLimits"]


class LimitExceeded(AgentkitError):
    """A request over a limit: `status_code` (413 or 429) and `retry_after` seconds, if any."""

    def __init__(self, message: str, *, status_code: int, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after


class RunSlot:
    """A held place in a queue; `release()` gives it back (more than once is harmless)."""

    __slots__ = ("_release",)

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release

    def release(self) -> None:
        """Give the place back."""
        release, self._release = self._release, None
        if release is not None:
            release()


class ModelQueue:
    """The runs one loaded model may hold at once, running or waiting: `capacity`.

    A run beyond it is refused with 429 and `Retry-After: retry_after` rather than queued
    without bound (the llama.cpp engine's own queue is bounded too: `EngineBusyError`).
    """

    def __init__(self, capacity: int, *, retry_after: int = 1) -> None:
        if capacity < 1:
            raise ConfigurationError(f"a model queue holds at least 1 run, not {capacity}")
        self.capacity = capacity
        self.retry_after = retry_after
        self.active = 0

    def admit(self) -> RunSlot:
        """A place for one run, or `LimitExceeded` (429) when the queue is full."""
        if self.active >= self.capacity:
            raise LimitExceeded(
                f"the model is busy ({self.capacity} runs in progress or waiting); retry later",
                status_code=429,
                retry_after=self.retry_after,
            )
        self.active += 1
        return RunSlot(self._leave)

    def _leave(self) -> None:
        self.active -= 1


@dataclass
class UserLimits:
    """Per-user limits: message size, messages per minute, runs at once.

    `clock` is injectable for tests; by default `time.monotonic`.
    """

    max_message_chars: int = 4000
    messages_per_minute: int = 20
    max_concurrent_runs: int = 2
    clock: Callable[[], float] = time.monotonic
    _sent: dict[str, deque[float]] = field(default_factory=dict, repr=False)
    _running: dict[str, int] = field(default_factory=dict, repr=False)

    def check_message(self, user: str, text: str) -> RunSlot:
        """Count a message against `user`'s minute; `LimitExceeded` (413 or 429) if over.

        Releasing the returned slot takes the message back off the minute (a message the
        Agent refused before running it).
        """
        if len(text) > self.max_message_chars:
            raise LimitExceeded(
                f"a message has at most {self.max_message_chars} characters; "
                f"this one has {len(text)}",
                status_code=413,
            )
        now = self.clock()
        sent = self._sent.setdefault(user, deque())
        while sent and sent[0] <= now - 60.0:
            sent.popleft()
        if len(sent) >= self.messages_per_minute:
            wait = max(1, math.ceil(sent[0] + 60.0 - now))
            raise LimitExceeded(
                f"at most {self.messages_per_minute} messages a minute; retry in {wait} s",
                status_code=429,
                retry_after=wait,
            )
        sent.append(now)

        def forget() -> None:
            with contextlib.suppress(ValueError):  # already out of the window
                sent.remove(now)

        return RunSlot(forget)

    def start_run(self, user: str) -> RunSlot:
        """A place for one of `user`'s runs; `LimitExceeded` (429) beyond the concurrent limit."""
        running = self._running.get(user, 0)
        if running >= self.max_concurrent_runs:
            raise LimitExceeded(
                f"at most {self.max_concurrent_runs} runs at once per user; wait for one to end",
                status_code=429,
                retry_after=1,
            )
        self._running[user] = running + 1

        def leave() -> None:
            left = self._running[user] - 1
            if left:
                self._running[user] = left
            else:
                del self._running[user]

        return RunSlot(leave)
