"""The real local engine on the default model, one client and instance per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import agentkit as ak


@pytest.fixture(scope="module")
def client() -> Iterator[ak.Client]:
    with ak.Client() as client:
        yield client


@pytest.fixture(scope="module")
def model(client: ak.Client) -> ak.LLM:
    return client.llm.model()
