"""Stores for the memory tests: every contract test runs on each backend.

Postgres tests start their own server (tests/servers/postgres_server.py). Without Postgres
binaries they skip, unless AGENTKIT_REQUIRE_POSTGRES=1 (set by .ci/run), where they fail.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from postgres_server import PostgresServer, find_binaries, running_postgres

from agentkit.memory import InMemoryStore, PostgresStore, SessionStore, SQLiteStore

_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    if find_binaries() is None:
        reason = "no Postgres binaries (initdb, pg_ctl on PATH or in /usr/lib/postgresql/*/bin)"
        if os.environ.get("AGENTKIT_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason + ", and AGENTKIT_REQUIRE_POSTGRES=1")
        pytest.skip(reason)
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the shared test server."""
    name = f"test_{os.getpid()}_{next(_databases)}"
    with psycopg.connect(postgres_server.dsn(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return postgres_server.dsn(name)


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
