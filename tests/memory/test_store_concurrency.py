"""Two writers on one session never lose an update: threads and processes, SQLite and Postgres."""

from __future__ import annotations

import sqlite3
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


def test_opening_a_new_file_another_process_is_writing_waits_for_it(tmp_path: Path) -> None:
    # Switching a file to WAL needs it alone, and SQLite answers "locked" at once, without its
    # busy handler, while another connection writes (two processes opening a new store at once
    # failed 8 times in 25 that way).
    from agentkit.memory import SQLiteStore

    path = tmp_path / "new.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE app (x)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO app VALUES (1)")
    release = threading.Timer(0.3, other.execute, ("COMMIT",))
    release.start()
    try:
        with SQLiteStore(path, busy_timeout=10) as store:
            assert store.append("s", [UserMessage(content="in")], expected_revision=0) == 1
    finally:
        release.join()
        other.close()
