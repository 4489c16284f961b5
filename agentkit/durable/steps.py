"""The step runner that records each step in DBOS (see `agentkit.steps`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from dbos import DBOS

__all__ = ["DBOS_STEPS"]

T = TypeVar("T")


class _DBOSSteps:
    """Each step a DBOS step: its output (or error) recorded, and replayed on recovery.

    Outside a workflow DBOS runs the step as it is. DBOS checks a replayed step's name against
    its record, so a run whose code changed fails loudly instead of pairing outputs wrongly.
    """

    __slots__ = ()

    async def run(self, name: str, step: Callable[[], Awaitable[T]]) -> T:
        async def body() -> T:  # a coroutine function: DBOS runs it on this loop, in this task
            return await step()

        return await DBOS.run_step_async({"name": name}, body)


DBOS_STEPS = _DBOSSteps()
