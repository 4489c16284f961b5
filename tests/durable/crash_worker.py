"""A worker process for the crash tests: one durable run that can SIGKILL itself on the way.

    python crash_worker.py DATABASE STORE WORKDIR KILL_AT [MODE]

DATABASE is the DBOS database (SQLite path or Postgres URL), STORE the session store (SQLite
path or Postgres URL). KILL_AT is `in_tool` (inside the tool, before its side effect), or
`after_tool` (the tool done and recorded, at the start of the next prediction), or `none`. A
kill happens once: a marker file in WORKDIR says it happened. Each prediction appends a line to
WORKDIR/predictions, each completed side effect to WORKDIR/effects. MODE `agent` (default) runs
a DurableAgent on a session; `loop` a DurableLoop. The result goes to stdout as JSON.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import uuid
from pathlib import Path

import agentkit as ak
from agentkit.durable import Runtime
from agentkit.memory import PostgresStore, SQLiteStore
from agentkit.messages import ToolResultMessage, UserMessage
from agentkit.testing import ScriptedModel, ToolCall

database, store_at, workdir, kill_at = sys.argv[1:5]
mode = sys.argv[5] if len(sys.argv) > 5 else "agent"
work = Path(workdir)


def _kill_once(point: str) -> None:
    marker = work / f"killed-{point}"
    if kill_at == point and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)


def charge(order: str, nonce: str) -> str:
    """Charge an order (a side effect that must happen once)."""
    _kill_once("in_tool")
    with open(work / "effects", "a") as effects:
        effects.write(f"{order} {nonce}\n")
    return f"charged {order}"


def responder(chat: ak.Chat, index: int) -> object:
    with open(work / "predictions", "a") as predictions:
        predictions.write(f"{index}\n")
    if isinstance(chat[-1], UserMessage):
        # A fresh nonce every time: a recomputed prediction would show a second one.
        return [ToolCall("charge", {"order": "A-1", "nonce": uuid.uuid4().hex})]
    _kill_once("after_tool")
    last = chat[-1]
    assert isinstance(last, ToolResultMessage)
    return f"done: {last.content} ({uuid.uuid4().hex[:8]})"


def store() -> SQLiteStore | PostgresStore:
    return PostgresStore(store_at) if store_at.startswith("postgresql") else SQLiteStore(store_at)


runtime = Runtime(database, liveness_interval=0.2, poll_interval=0.02)
model = ScriptedModel(responder)
if mode == "agent":
    durable = runtime.agent("shop", ak.Agent(model, tools=[charge], store=store()))
    runtime.launch()
    result = durable.act("session-1", "Charge order A-1")
else:
    loop = runtime.loop("shop", model, [charge])
    runtime.launch()
    result = loop.act("Charge order A-1", run_id="run-1")
print(
    json.dumps(
        {
            "final": result.final.content if result.final else None,
            "rounds": result.rounds,
            "messages": [m.model_dump(mode="json") for m in result.messages],
        }
    )
)
runtime.shutdown()
