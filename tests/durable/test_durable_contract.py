"""act() and Agent runs give the same ActResult through the durable path as without it.

One DBOS runtime (SQLite in a temp dir) in this process for the module; each scenario runs on a
fresh scripted model twice, plainly and as a DBOS workflow, and the results are compared with
timings left out and tool-call ids (new on every prediction) numbered in order of appearance.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import agentkit as ak
from agentkit.approval import Approve, Deny
from agentkit.durable import Runtime
from agentkit.errors import ConfigurationError
from agentkit.memory import SQLiteStore
from agentkit.messages import UserMessage
from agentkit.results import ActResult
from agentkit.testing import Malformed, ScriptedModel, ToolCall


def multiply(a: float, b: float) -> float:
    """Multiply two numbers."""
    return a * b


def explode(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(f"boom: {reason}")


@ak.tool(timeout=0.05)
async def slow(seconds: float) -> str:
    """Sleeps."""
    await asyncio.sleep(seconds)
    return "woke"


@ak.tool(requires_approval=True)
def refund(order: str) -> str:
    """Refund an order (a person approves first)."""
    return f"refunded {order}"


class Answer(BaseModel):
    value: float


TOOLS = [multiply, explode, slow, refund]

# Scenario name -> (responder, act options)
SCENARIOS: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "parallel calls": (
        lambda chat, i: (
            [ToolCall("multiply", {"a": 2, "b": 3}), ToolCall("multiply", {"a": 4, "b": 5})]
            if i == 0
            else "6 and 20"
        ),
        {},
    ),
    "tool error, unknown tool, bad arguments, malformed call": (
        lambda chat, i: (
            [
                ToolCall("explode", {"reason": "x"}),
                ToolCall("nope", {}),
                ToolCall("multiply", {"a": "many"}),
                Malformed('{"name": "multiply", "arguments": {'),
            ]
            if i == 0
            else "sorry"
        ),
        {},
    ),
    "timeout": (lambda chat, i: [ToolCall("slow", {"seconds": 5})] if i == 0 else "late", {}),
    "final round refuses calls": (
        lambda chat, i: [ToolCall("multiply", {"a": 1, "b": 1})],
        {"max_prediction_rounds": 2},
    ),
    "structured answer after a retry": (
        lambda chat, i: (
            [ToolCall("multiply", {"a": 6, "b": 7})]
            if i == 0
            else ("not json" if i == 1 else '{"value": 42}')
        ),
        {"response_format": Answer},
    ),
    "approval pause": (
        lambda chat, i: [
            ToolCall("refund", {"order": "A-1"}),
            ToolCall("multiply", {"a": 1, "b": 2}),
        ],
        {},
    ),
}


def _normalised(result: ActResult) -> dict[str, Any]:
    ids: dict[str, str] = {}

    def rename(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                key: ids.setdefault(item, f"call{len(ids)}")
                if key in ("id", "tool_call_id")
                else rename(item)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [rename(item) for item in value]
        return value

    return {
        "messages": rename([m.model_dump(mode="json") for m in result.messages]),
        "final": rename(result.final.model_dump(mode="json")) if result.final else None,
        "stop_reason": result.stop_reason,
        "rounds": result.rounds,
        "usage": result.usage,
        "parsed": result.parsed,
        "pending": rename([call.model_dump(mode="json") for call in result.pending_approvals]),
        "records": [
            [(c.call.name, c.result, c.error) for c in record.tool_calls]
            for record in result.round_records
        ],
    }


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Runtime, dict[str, Any]]]:
    folder = tmp_path_factory.mktemp("durable")
    runtime = Runtime(folder / "runs.sqlite")
    made: dict[str, Any] = {}
    for index, (name, (responder, options)) in enumerate(SCENARIOS.items()):
        made[name] = runtime.loop(f"loop{index}", ScriptedModel(responder), TOOLS, **options)
    agent_model = ScriptedModel(
        lambda chat, i: (
            [ToolCall("refund", {"order": "A-1"}), ToolCall("multiply", {"a": 1, "b": 2})]
            if isinstance(chat[-1], UserMessage)
            else "done"
        )
    )
    made["agent"] = runtime.agent(
        "support", ak.Agent(agent_model, tools=TOOLS, store=SQLiteStore(folder / "chats.db"))
    )
    runtime.launch()
    yield runtime, made
    runtime.shutdown()


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_durable_act_returns_the_same_result(
    runtime: tuple[Runtime, dict[str, Any]], scenario: str
) -> None:
    responder, options = SCENARIOS[scenario]
    plain = ScriptedModel(responder).act("Go", TOOLS, **options)
    durable = runtime[1][scenario].act("Go", run_id=scenario)
    assert _normalised(durable) == _normalised(plain)
    again = runtime[1][scenario].act("Go", run_id=scenario)  # the same run, not a second one
    assert _normalised(again) == _normalised(plain)
    assert again.final == durable.final


def test_durable_agent_pauses_resumes_and_joins_retries(
    runtime: tuple[Runtime, dict[str, Any]],
) -> None:
    agent = runtime[1]["agent"]
    paused = agent.act("s1", "Refund A-1", message_id="m1")
    assert paused.stop_reason == "approval_required"
    [waiting] = paused.pending_approvals
    assert agent.act("s1", "Refund A-1", message_id="m1").pending_approvals == (waiting,)
    done = agent.resume("s1", [Approve(waiting.id)])
    assert done.final is not None and done.final.content == "done"
    retried = agent.resume("s1", [Deny(waiting.id)])  # the same pause: joins the first resume
    assert retried.final == done.final
    history = agent.history("s1")
    assert [type(m).__name__ for m in history] == [
        "UserMessage",
        "AssistantMessage",
        "ToolResultMessage",
        "ToolResultMessage",
        "AssistantMessage",
    ]
    assert {m.content for m in history if type(m).__name__ == "ToolResultMessage"} == {
        "2.0",
        "refunded A-1",
    }


def test_durable_agent_refuses_what_cannot_be_recorded(
    runtime: tuple[Runtime, dict[str, Any]], tmp_path: Path
) -> None:
    rt, made = runtime
    with pytest.raises(ConfigurationError, match="on_event"):
        made["agent"].act("s2", "hi", on_event=print)
    with pytest.raises(ConfigurationError, match="on_first_token"):
        made["agent"].act("s2", "hi", on_first_token=print)
    with pytest.raises(ConfigurationError, match="on_message"):
        made["parallel calls"].act("hi", on_message=print)
    with pytest.raises(ConfigurationError, match=r"before Runtime\.launch"):
        rt.loop("late", ScriptedModel(["x"]))
    with pytest.raises(ConfigurationError, match="postgresql"):
        Runtime("mysql://localhost/db")


def test_runs_on_one_model_share_one_queue_and_limit(
    runtime: tuple[Runtime, dict[str, Any]], tmp_path: Path
) -> None:
    model = ScriptedModel(["x"], model_key="shared-model")
    other = Runtime(tmp_path / "other.sqlite")  # never launched: registrations only
    try:
        other.loop("first", model, concurrency=2)
        other.agent("second", ak.Agent(model), concurrency=2)
        assert other.concurrency("first") == other.concurrency("second") == 2
        with pytest.raises(ConfigurationError, match="share one limit"):
            other.loop("third", model, concurrency=3)
        with pytest.raises(ConfigurationError, match="registered already"):
            other.loop("first", ScriptedModel(["y"]))
    finally:
        other.shutdown()  # forgets its own names only: the module's runtime still works
    assert runtime[1]["parallel calls"].act("Go", run_id="parallel calls").rounds == 2


def test_a_run_whose_agent_is_missing_fails_with_a_clear_error(
    runtime: tuple[Runtime, dict[str, Any]],
) -> None:
    from agentkit.durable import registry

    # What a recovered run meets in a worker that did not create the agent before launch.
    with pytest.raises(ConfigurationError, match=r"before Runtime\.launch\(\) in every worker"):
        registry.agent("nobody")
    with pytest.raises(ConfigurationError, match="not a DurableAgent"):
        registry.agent("loop0")


def test_evaluate_on_workers_checks_the_registration(tmp_path: Path) -> None:
    from agentkit.tracing.evaluation.evaluate import evaluate

    def agent(text: str) -> str:
        return text

    other = Runtime(tmp_path / "other.sqlite")  # registrations only
    try:
        other.evaluation("checked", agent, [])
        with pytest.raises(ConfigurationError, match="needs the name"):
            evaluate(["hi"], agent, workers=other)
        with pytest.raises(ConfigurationError, match="another agent"):
            evaluate(["hi"], lambda text: text, workers=other, name="checked")
        with pytest.raises(ConfigurationError, match="nothing durable named"):
            evaluate(["hi"], agent, workers=other, name="unknown")
    finally:
        other.shutdown()
