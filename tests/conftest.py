"""Shared fixtures: async tests run on both asyncio and trio; schema compilations counted."""

from __future__ import annotations

from typing import Any

import pytest

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
