"""The step runner that records each step in DBOS (see `agentkit.steps`).

A step is recorded one of two ways, with the same record either way:

- DBOS's `run_step_async`: on Postgres, and for a run that has recorded steps already (one
  resumed after a crash, whose recorded steps must replay instead of running).
- On the calling thread, for a run on SQLite that has recorded nothing yet (every run until a
  crash): the step's id is reserved as it starts (so parallel tool calls get their ids in call
  order, as with `run_step_async`), its body runs, and DBOS records the output on the event
  loop's own thread. `run_step_async` checks and records through three `asyncio.to_thread`
  hops, which cost more than the SQLite statements: DBOS alone, about 1.8 ms a step that way
  against 1.2 ms without the hops (bench/durable.py prints both). On Postgres a statement is
  a network round trip the event loop must not wait for. No public DBOS API records on the
  calling thread from inside an event loop, so this uses DBOS internals; if they are
  gone, every step takes the public path.

A cancelled run (`DBOS.cancel_workflow`) behaves alike both ways for the step in flight: its
record is refused, so it runs again if the run is resumed. Inline, the check comes at the
record rather than before the body, so a cancel landing in the gap between two steps (only
agentkit's own work: a run never waits between steps) lets one more step run, unrecorded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar, cast

from dbos import DBOS

try:
    from dbos._context import snapshot_step_context
    from dbos._core import run_step as _record_step
    from dbos._dbos import _get_dbos_instance
except ImportError:  # pragma: no cover - a DBOS release that moved them
    _INLINE_AVAILABLE = False
else:
    _INLINE_AVAILABLE = True

__all__ = ["DBOSSteps"]

T = TypeVar("T")


class DBOSSteps:
    """Each step a DBOS step: its output (or error) recorded, and replayed on recovery.

    Outside a workflow DBOS runs the step as it is. DBOS checks a replayed step's name against
    its record, so a run whose code changed fails loudly instead of pairing outputs wrongly.
    Make one per workflow execution with `for_this_run()`.
    """

    __slots__ = ("inline",)

    def __init__(self, *, inline: bool) -> None:
        self.inline = inline
        """Whether steps are recorded on the calling thread (see the module's docstring)."""

    @classmethod
    def for_this_run(cls) -> DBOSSteps:
        """The runner for the workflow running now: inline on SQLite until a run has a record."""
        if not _INLINE_AVAILABLE or DBOS.workflow_id is None:
            return cls(inline=False)
        system_db = _get_dbos_instance()._sys_db
        if system_db.engine.dialect.name != "sqlite":
            return cls(inline=False)
        # Not DBOS.list_workflow_steps: inside a workflow that is a recorded step itself, and
        # its replay would say "nothing recorded" to a resumed run.
        recorded = system_db.list_workflow_steps(DBOS.workflow_id, load_output=False, limit=1)
        return cls(inline=not recorded)

    async def run(self, name: str, step: Callable[[], Awaitable[T]]) -> T:
        if not self.inline:

            async def body() -> T:  # a coroutine function: DBOS runs it on this loop, in this task
                return await step()

            return await DBOS.run_step_async({"name": name}, body)
        reserved = snapshot_step_context()  # the step's id, taken in start order
        try:
            value = await step()
        except Exception as error:  # recorded, as DBOS records a step's error; then raised
            return cast(T, _record(name, reserved, _raiser(error)))
        # Cancellation (a BaseException) propagates unrecorded, so the step runs again on resume.
        return cast(T, _record(name, reserved, lambda: value))


def _record(name: str, reserved: Any, output: Callable[[], object]) -> object:
    """DBOS's check-and-record of a step, on this thread, under the id reserved at its start:
    returns `output()` or raises its error, unless a record exists, which it returns instead."""
    return _record_step(_get_dbos_instance(), reserved, output, {"name": name}, (), {})


def _raiser(error: Exception) -> Callable[[], NoReturn]:
    def again() -> NoReturn:
        raise error

    return again
