"""Steps recorded on the calling thread (SQLite, a run with nothing recorded yet).

The record must be the one DBOS's own path would write: step ids in start order even when a
later parallel tool call finishes first, a step's error recorded as its error, and a replay of those
records (a fork, which re-runs the workflow from its start with the records before a step
copied over) returns them without running the tools again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from dbos import DBOS

import agentkit as ak
from agentkit.durable import Runtime
from agentkit.durable.ids import act_run_id
from agentkit.durable.steps import DBOSSteps
from agentkit.testing import ScriptedModel, ToolCall

FINISHED: list[str] = []  # tool bodies, in the order they finished


async def slow_first(label: str) -> str:
    """Finishes after the call after it."""
    await asyncio.sleep(0.3)
    FINISHED.append(label)
    return f"slow {label}"


def quick_second(label: str) -> str:
    """Finishes at once."""
    FINISHED.append(label)
    return f"quick {label}"


def fails(label: str) -> str:
    """Always fails."""
    FINISHED.append(label)
    raise ValueError(f"no {label}")


def _responder(chat: ak.Chat, index: int) -> object:
    if index == 0:
        return [
            ToolCall("slow_first", {"label": "a"}),
            ToolCall("quick_second", {"label": "b"}),
            ToolCall("fails", {"label": "c"}),
        ]
    return "all three back"


async def _noop() -> str:
    return "noop"


async def _boom() -> str:
    raise ValueError("boom")


@DBOS.workflow(name="tests.inline_probe")
async def inline_probe() -> tuple[bool, bool]:
    """Whether a run records inline before and after it has recorded a step."""
    steps = DBOSSteps.for_this_run()
    await steps.run("noop", _noop)
    with pytest.raises(ValueError, match="boom"):
        await steps.run("boom", _boom)
    return steps.inline, DBOSSteps.for_this_run().inline


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    folder: Path = tmp_path_factory.mktemp("inline")
    runtime = Runtime(folder / "runs.sqlite")
    runtime.loop("order", ScriptedModel(_responder), [slow_first, quick_second, fails])
    runtime.launch()
    yield runtime
    runtime.shutdown()


def test_a_fresh_sqlite_run_records_inline_until_it_has_a_record(runtime: Runtime) -> None:
    handle = DBOS.start_workflow(inline_probe)
    assert handle.get_result() == (True, False)
    noop, boom = DBOS.list_workflow_steps(handle.workflow_id)
    assert (noop["function_name"], noop["output"], noop["error"]) == ("noop", "noop", None)
    assert boom["function_name"] == "boom" and isinstance(boom["error"], ValueError)


def test_parallel_steps_recorded_in_start_order_and_replayed(runtime: Runtime) -> None:
    from agentkit.durable import registry

    FINISHED.clear()
    result = registry.loop("order").act("Go", run_id="order-1")
    assert result.final is not None and result.final.content == "all three back"
    assert sorted(FINISHED) == ["a", "b", "c"] and FINISHED[-1] == "a"  # the first finished last
    [record, _] = result.round_records
    call_ids = [outcome.call.id for outcome in record.tool_calls]
    assert [outcome.error is not None for outcome in record.tool_calls] == [False, False, True]

    workflow_id = act_run_id("order", [], "order-1")
    steps = DBOS.list_workflow_steps(workflow_id)
    assert [step["function_name"] for step in steps] == [
        "prediction 0",
        *(f"tool {call_id}" for call_id in call_ids),
        "prediction 1",
    ]
    assert [step["function_id"] for step in steps] == [1, 2, 3, 4, 5]

    # Replay steps 1-4 from the record, run step 5 again: no tool body runs a second time.
    FINISHED.clear()
    replayed = DBOS.fork_workflow(workflow_id, start_step=5).get_result()
    assert FINISHED == []
    assert replayed.final == result.final
    assert [o.result for o in replayed.round_records[0].tool_calls] == [
        o.result for o in record.tool_calls
    ]
    assert replayed.round_records[0].tool_calls[2].error == record.tool_calls[2].error
