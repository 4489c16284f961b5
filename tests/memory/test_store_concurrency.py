"""Two writers on one session never lose an update: threads and processes, SQLite and Postgres."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from agentkit import UserMessage
from agentkit.errors import SessionConflict
from agentkit.memory import SessionStore

WRITER = Path(__file__).with_name("store_writer.py")


def test_exactly_one_of_two_racing_writers_wins(store: SessionStore) -> None:
    store.append("s", [UserMessage(content="start")], expected_revision=0)
    for round_index in range(20):
        revision = store.load("s").revision
        barrier = threading.Barrier(2)
        outcomes: list[str | int] = []

        def write(
            name: str, revision: int, barrier: threading.Barrier, outcomes: list[str | int]
        ) -> None:
            barrier.wait()
            try:
                store.append("s", [UserMessage(content=name)], expected_revision=revision)
                outcomes.append("won")
            except SessionConflict as conflict:
                outcomes.append(conflict.actual_revision)

        threads = [
            threading.Thread(target=write, args=(f"{round_index}{w}", revision, barrier, outcomes))
            for w in "ab"
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes, key=str) == [revision + 1, "won"]  # the loser saw the winner
    session = store.load("s")
    assert session.revision == 21
    assert len(session.messages) == 21


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_two_processes_writing_many_rounds_lose_nothing(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    target = (
        str(tmp_path / "shared.db") if kind == "sqlite" else request.getfixturevalue("postgres_dsn")
    )
    count = 150
    writers = [
        subprocess.Popen(
            [sys.executable, str(WRITER), kind, target, "shared", name, str(count)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    conflicts = [int(writer.communicate(timeout=240)[0]) for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0]

    from agentkit.memory import PostgresStore, SQLiteStore

    with SQLiteStore(target) if kind == "sqlite" else PostgresStore(target) as store:
        session = store.load("shared")
    contents = [m.content for m in session.messages]
    assert session.revision == len(contents) == 2 * count
    for name in ("a", "b"):  # every write there once, each writer's in its own order
        assert [c for c in contents if c.startswith(name + ":")] == [
            f"{name}:{i}" for i in range(count)
        ]
    print(f"{kind}: {sum(conflicts)} conflicts retried")
