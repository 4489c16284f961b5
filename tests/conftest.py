"""Shared fixtures: async tests run on both asyncio and trio; schema compilations counted; a
Postgres server started for the tests that need one.

Postgres tests start their own server (tests/servers/postgres_server.py). Without Postgres
binaries they skip, unless AGENTKIT_REQUIRE_POSTGRES=1 (set by .ci/run), where they fail.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

import pytest
from postgres_server import PostgresServer, find_binaries, running_postgres

from agentkit.tools import json_schema


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def compiled_schemas(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every schema jsonschema-rs compiles while the test runs, in order."""
    compiled: list[Any] = []
    real = json_schema.jsonschema_rs.validator_for

    def counting(schema: Any, **options: Any) -> Any:
        compiled.append(schema)
        return real(schema, **options)

    monkeypatch.setattr(json_schema.jsonschema_rs, "validator_for", counting)
    return compiled


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
    import psycopg

    with psycopg.connect(postgres_server.dsn(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return postgres_server.dsn(name)
