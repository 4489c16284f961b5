"""Steps: the seam where a run's predictions and tool calls can be recorded.

act() runs each prediction and each tool call through a `StepRunner`. The default runs them as
they are; `agentkit.durable` records each step's output (in DBOS) so a run resumed after a crash
gets completed steps back instead of running them again. Steps are started in the same order on
every execution of a run (predictions in round order, a round's tool calls in call order), and
each has a name that says what it is, so a runner can check that a replay matches its record.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

__all__ = ["DIRECT", "StepRunner"]

T = TypeVar("T")


class StepRunner(Protocol):
    """Runs one step of a run: `await runner.run(name, step)` returns the step's output."""

    async def run(self, name: str, step: Callable[[], Awaitable[T]]) -> T:
        """Run (or replay) `step`; its output must be picklable for a recording runner."""
        ...


class _Direct:
    """Runs every step as it is, recording nothing."""

    __slots__ = ()

    async def run(self, name: str, step: Callable[[], Awaitable[T]]) -> T:
        return await step()


DIRECT: StepRunner = _Direct()
