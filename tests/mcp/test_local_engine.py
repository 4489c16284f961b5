"""The local llama.cpp engine (SmolLM2-135M-Instruct, greedy) calling a real MCP server's tool."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import agentkit as ak
from agentkit.mcp import MCPServer

pytest.importorskip(
    "llama_cpp", reason="the local engine is not installed (agentkit install-engine)"
)


@pytest.fixture(scope="module")
def model() -> Iterator[ak.LLM]:
    with ak.Client() as client:
        yield client.llm.model()


def test_local_model_calls_get_current_time_once(model: ak.LLM) -> None:
    with MCPServer.stdio("mcp-server-time", allow={"get_current_time"}) as server:
        chat = ak.Chat("Use the tools to answer.")
        chat.add_user_message("What time is it now in Tokyo (timezone Asia/Tokyo)?")
        result = model.act(
            chat,
            server.tools_sync(),
            max_prediction_rounds=2,
            config={"temperature": 0, "seed": 7, "max_tokens": 40, "tool_choice": "required"},
        )
    [call] = result.round_records[0].tool_calls
    assert call.call.name == "get_current_time"
    assert isinstance(call.call.arguments, dict)
    assert isinstance(call.call.arguments["timezone"], str)
    # the model's timezone may not exist; then the server's error is what the model reads
    assert call.ok or (call.error == "tool_error" and "timezone" in call.result.lower())
    if call.ok:
        assert '"datetime"' in call.result
    assert result.rounds == 2
