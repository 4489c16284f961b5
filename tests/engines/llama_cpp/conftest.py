"""The real local engine on the default model, one client and instance per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import agentkit as ak
from agentkit.engines.llama_cpp.models import DEFAULT_MODEL_KEY


@pytest.fixture(scope="module")
def client() -> Iterator[ak.Client]:
    with ak.Client() as client:
        yield client


@pytest.fixture(scope="module")
def model(client: ak.Client) -> ak.LLM:
    return client.llm.model()


@pytest.fixture(scope="module")
def trained(client: ak.Client) -> ak.LLM:
    """The default model loaded with its family's trained call syntax (SmolLM2's)."""
    return client.llm.load_new_instance(
        DEFAULT_MODEL_KEY, config=ak.LoadConfig(tool_call_syntax="trained")
    )
