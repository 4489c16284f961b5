"""Stores for the memory tests: every contract test runs on each backend (the Postgres
fixtures are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agentkit.memory import InMemoryStore, PostgresStore, SessionStore, SQLiteStore


def make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> SessionStore:
    if kind == "memory":
        return InMemoryStore()
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "sessions.db")
    return PostgresStore(request.getfixturevalue("postgres_dsn"), max_size=4)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SessionStore]:
    made = make_store(request.param, tmp_path, request)
    yield made
    made.close()
