"""SIGKILL a worker mid-run, restart it: completed steps are not redone, the chat is whole.

Real processes (tests/durable/crash_worker.py), real SQLite files and a real Postgres server
started by the tests. Each prediction and each side effect leaves a line in a file, so the test
counts what ran; every prediction draws a fresh random nonce, so a recomputed prediction would
show up as a second nonce.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentkit.memory import PostgresStore, SQLiteStore
from agentkit.messages import AssistantMessage, ToolResultMessage, UserMessage

WORKER = Path(__file__).with_name("crash_worker.py")


def _worker(database: str, store: str, work: Path, kill_at: str, mode: str) -> Any:
    return subprocess.run(
        [sys.executable, str(WORKER), database, store, str(work), kill_at, mode],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _crash_and_restart(database: str, store: str, work: Path, kill_at: str, mode: str) -> Any:
    crashed = _worker(database, store, work, kill_at, mode)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert (work / f"killed-{kill_at}").exists()
    restarted = _worker(database, store, work, "none", mode)
    assert restarted.returncode == 0, restarted.stderr
    return json.loads(restarted.stdout.strip().splitlines()[-1])


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _check_run(work: Path, result: Any, kill_at: str) -> str:
    effects = _lines(work / "effects")
    assert len(effects) == 1, effects  # the tool's side effect happened exactly once
    order, nonce = effects[0].split()
    assert order == "A-1"
    predictions = _lines(work / "predictions")
    # The first prediction was recorded before the kill: never recomputed. The second is
    # computed once, or twice when the kill cut it short (it was never recorded).
    assert predictions == (["0", "1", "1"] if kill_at == "after_tool" else ["0", "1"])
    call = result["messages"][0]["tool_calls"][0]
    assert call["arguments"]["nonce"] == nonce  # the recorded prediction, not a new one
    assert result["rounds"] == 2
    assert result["final"].startswith("done: charged A-1")
    return str(call["id"])


def _check_session(store: SQLiteStore | PostgresStore, call_id: str, final: str) -> None:
    session = store.load("session-1")
    kinds = [type(message) for message in session.messages]
    assert kinds == [UserMessage, AssistantMessage, ToolResultMessage, AssistantMessage]
    assert session.revision == 3  # user message, tool round, answer: one commit each
    result = session.messages[2]
    assert isinstance(result, ToolResultMessage) and result.tool_call_id == call_id
    assert session.messages[3].content == final


@pytest.mark.parametrize("kill_at", ["in_tool", "after_tool"])
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_agent_run_survives_sigkill(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str, kill_at: str
) -> None:
    # DBOS's state and the sessions in the same kind of database. On Postgres each start gets a
    # fresh executor id: the restarted worker takes the dead one's run over because the dead
    # worker's advisory lock went with its connection.
    if backend == "postgres":
        runs = chats = request.getfixturevalue("postgres_dsn")
    else:
        runs, chats = str(tmp_path / "runs.sqlite"), str(tmp_path / "chats.db")
    result = _crash_and_restart(runs, chats, tmp_path, kill_at, "agent")
    call_id = _check_run(tmp_path, result, kill_at)
    store = PostgresStore(chats) if backend == "postgres" else SQLiteStore(chats)
    try:
        _check_session(store, call_id, result["final"])
    finally:
        store.close()


def test_plain_act_run_survives_sigkill(tmp_path: Path) -> None:
    runs = str(tmp_path / "runs.sqlite")
    result = _crash_and_restart(runs, str(tmp_path / "unused.db"), tmp_path, "in_tool", "loop")
    _check_run(tmp_path, result, "in_tool")
    kinds = [message["role"] for message in result["messages"]]
    assert kinds == ["assistant", "tool", "assistant"]
