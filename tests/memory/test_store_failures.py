"""Stores facing bad files, other versions, dead servers and rows agentkit did not write."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import psycopg
import pytest

from agentkit import UserMessage
from agentkit.errors import (
    ConfigurationError,
    SessionStoreError,
    StoreCorruptedError,
    StoreVersionError,
)
from agentkit.memory import PostgresStore, SQLiteStore


def test_a_file_that_is_not_a_database_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not SQLite" * 500)
    with pytest.raises(StoreCorruptedError, match="not a readable SQLite store"):
        SQLiteStore(path)
    assert path.read_bytes() == b"this is not SQLite" * 500  # nothing written over it


def test_a_damaged_database_page_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(path) as store:
        for i in range(50):
            store.append(f"s{i}", [UserMessage(content="x" * 2000)], expected_revision=0)
    data = bytearray(path.read_bytes())
    data[4096 * 2 : 4096 * 6] = b"\xff" * (4096 * 4)  # clobber pages after the header
    path.write_bytes(bytes(data))

    def read_all() -> None:
        with SQLiteStore(path) as store:
            for i in range(50):
                store.load(f"s{i}")

    with pytest.raises(StoreCorruptedError):
        read_all()


def test_a_newer_schema_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA user_version = 7")
    with pytest.raises(StoreVersionError, match="schema 7, written by a newer agentkit"):
        SQLiteStore(path)


def test_an_older_file_is_migrated_and_other_tables_are_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as raw:  # a user's database, no agentkit tables (version 0)
        raw.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)")
        raw.execute("INSERT INTO orders (item) VALUES ('book')")
    with SQLiteStore(path) as store:
        store.append("s", [UserMessage(content="hi")], expected_revision=0)
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT item FROM orders").fetchall() == [("book",)]
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 1


def test_a_row_agentkit_did_not_write_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(path) as store:
        store.append("s", [UserMessage(content="hi")], expected_revision=0)
    with sqlite3.connect(path) as raw:
        raw.execute('UPDATE agentkit_messages SET body = \'{"role": "robot"}\'')
    with SQLiteStore(path) as store, pytest.raises(StoreCorruptedError, match="message 0"):
        store.load("s")


def test_memory_is_refused_and_a_closed_store_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="InMemoryStore"):
        SQLiteStore(":memory:")
    store = SQLiteStore(tmp_path / "s.db")
    store.close()
    with pytest.raises(SessionStoreError, match="closed"):
        store.load("s")


def test_a_locked_sqlite_file_times_out_with_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path, busy_timeout=0.2)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    try:
        started = time.monotonic()
        with pytest.raises(SessionStoreError, match="locked"):
            store.append("s", [UserMessage(content="x")], expected_revision=0)
        assert time.monotonic() - started < 10
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    store.append("s", [UserMessage(content="x")], expected_revision=0)  # and it recovers
    store.close()


def test_postgres_newer_schema_and_bad_rows(postgres_dsn: str) -> None:
    with PostgresStore(postgres_dsn) as store:
        store.append("s", [UserMessage(content="hi")], expected_revision=0)
    with psycopg.connect(postgres_dsn, autocommit=True) as raw:
        raw.execute("UPDATE agentkit_messages SET body = '[1, 2]'")
    with PostgresStore(postgres_dsn) as store, pytest.raises(StoreCorruptedError):
        store.load("s")
    with psycopg.connect(postgres_dsn, autocommit=True) as raw:
        raw.execute("UPDATE agentkit_schema SET version = 9")
    with PostgresStore(postgres_dsn) as store, pytest.raises(StoreVersionError, match="schema 9"):
        store.load("s")


def test_an_unreachable_postgres_is_a_typed_error_in_bounded_time() -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = PostgresStore(f"postgresql://x@127.0.0.1:{port}/db", timeout=2)
    started = time.monotonic()
    with pytest.raises(SessionStoreError, match="Postgres store"):
        store.load("s")
    assert time.monotonic() - started < 30
    store.close()


def test_close_releases_the_connections_of_every_loop(postgres_dsn: str) -> None:
    def connections() -> int:
        with psycopg.connect(postgres_dsn) as probe:
            row = probe.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
        assert row is not None
        return int(row[0])

    store = PostgresStore(postgres_dsn, min_size=1)
    loop = asyncio.new_event_loop()  # another loop, idle when the store closes (a sync client's)
    try:
        loop.run_until_complete(store.aload("s", missing_ok=True))
        store.load("s", missing_ok=True)
        assert connections() == 2  # one pool per loop
        store.close()
        assert connections() == 0
    finally:
        loop.close()


@pytest.mark.parametrize(
    "row",
    [
        '{"role": "assistant", "tool_calls": [{"name": "f", "id": "c", "arguments": {"k": '
        + "[" * 5000
        + "]" * 5000
        + "}}]}",
        '{"role": "assistant", "tool_calls": [{"name": "f", "id": "c", "arguments": '
        '{"k": "\\ud800"}}]}',
        '{"role": "tool", "tool_call_id": "c", "content": 5}',
    ],
    ids=["nested too deep", "lone surrogate", "wrong type"],
)
def test_hostile_stored_rows_are_typed_errors(tmp_path: Path, row: str) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(path) as store:
        store.append("s", [UserMessage(content="hi")], expected_revision=0)
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE agentkit_messages SET body = ?", (row,))
    with SQLiteStore(path) as store, pytest.raises(StoreCorruptedError, match="message 0"):
        store.load("s")


def test_checkpoints_run_off_the_commit_path_and_close_is_prompt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentkit.memory import sqlite_store

    monkeypatch.setattr(sqlite_store, "CHECKPOINT_DELAY", 0.05)
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    revision = 0
    for index in range(300):  # ~1.2 MB of log
        revision = store.append("s", [UserMessage(content="x" * 4000 + str(index))],
                                expected_revision=revision)  # fmt: skip
    deadline = time.monotonic() + 10
    while path.stat().st_size < 1_000_000 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.stat().st_size > 1_000_000  # checkpointed into the file while still open
    started = time.monotonic()
    store.close()
    assert time.monotonic() - started < 5
    with SQLiteStore(path) as store:
        assert len(store.load("s").messages) == 300
