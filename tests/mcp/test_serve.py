"""`agentkit mcp serve`: agentkit tools served over MCP, used by the official client and ours."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import HTTPServerProcess
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from agentkit.errors import MCPConnectionError
from agentkit.mcp import MCPServer, content_text
from agentkit.mcp.serve import parse_address
from agentkit.testing import AsyncScriptedModel, ToolCall

pytestmark = pytest.mark.anyio

SERVED = Path(__file__).parent / "servers"
AGENTKIT = [sys.executable, "-m", "agentkit.cli"]


def serve_args(target: str = "served:tools", *extra: str) -> list[str]:
    return ["-m", "agentkit.cli", "mcp", "serve", target, *extra]


async def test_official_client_over_stdio() -> None:
    parameters = StdioServerParameters(command=sys.executable, args=serve_args(), cwd=SERVED)
    async with stdio_client(parameters) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        listing = {tool.name: tool for tool in (await session.list_tools()).tools}
        assert set(listing) == {"add", "divide", "snooze"}
        assert listing["add"].description == "Add two integers."
        assert listing["add"].input_schema["required"] == ["a", "b"]
        assert listing["add"].input_schema["properties"]["a"]["description"] == "the first."
        added = await session.call_tool("add", {"a": 2, "b": 40})
        assert not added.is_error and content_text(added.content) == "42"
        invalid = await session.call_tool("add", {"a": "x", "b": 1})
        assert invalid.is_error and "Invalid arguments for tool 'add'" in content_text(
            invalid.content
        )
        failed = await session.call_tool("divide", {"a": 1, "b": 0})
        assert failed.is_error and "ZeroDivisionError" in content_text(failed.content)
        slow = await session.call_tool("snooze", {"seconds": 2})
        assert slow.is_error and "timed out after 0.3 s" in content_text(slow.content)
        unknown = await session.call_tool("nope", {})
        assert unknown.is_error and "There is no tool named 'nope'" in content_text(unknown.content)


async def test_agentkit_client_over_stdio_and_an_agent_as_ask() -> None:
    tools_server = MCPServer.stdio(sys.executable, serve_args(), cwd=SERVED, prefix="ak_")
    agent_server = MCPServer.stdio(sys.executable, serve_args("served:agent"), cwd=SERVED)
    async with tools_server, agent_server:
        tools = await tools_server.tools() + await agent_server.tools()
        assert [t.name for t in tools] == ["ak_add", "ak_divide", "ak_snooze", "ask"]
        calls = [ToolCall("ak_add", {"a": 1, "b": 2}), ToolCall("ask", {"question": "2+3?"})]
        result = await AsyncScriptedModel(lambda c, i: calls if i == 0 else "ok").act("go", tools)
    added, asked = result.round_records[0].tool_calls
    assert added.result == "3" and asked.result == "the agent says 5"


@pytest.fixture
def served_http() -> Iterator[HTTPServerProcess]:
    server = HTTPServerProcess(
        [sys.executable, *serve_args("served:tools", "--http", "127.0.0.1:{port}")],
        env={"PYTHONPATH": str(SERVED)},
    )
    yield server
    server.stop()


async def test_http_with_our_client_and_origin_checks(served_http: HTTPServerProcess) -> None:
    async with MCPServer.http(served_http.url) as server:
        result = await server.call_tool("add", {"a": 5, "b": 6})
        assert content_text(result.content) == "11"
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"Accept": "application/json, text/event-stream", "Origin": "http://evil.example"}
    async with httpx.AsyncClient() as client:
        refused = await client.post(served_http.url, json=initialize, headers=headers)
    assert refused.status_code == 403  # a browser page from another origin (DNS rebinding)


def test_off_loopback_needs_a_token() -> None:
    done = subprocess.run(
        [sys.executable, *serve_args("served:tools", "--http", "0.0.0.0:8999")],
        cwd=SERVED,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "", "PYTHONPATH": str(SERVED)},
    )
    assert done.returncode == 2
    assert "needs a bearer token" in done.stderr


def test_bearer_token_is_required_when_set() -> None:
    server = HTTPServerProcess(
        [
            sys.executable,
            *serve_args("served:tools", "--http", "127.0.0.1:{port}", "--token", "s3"),
        ],
        env={"PYTHONPATH": str(SERVED)},
    )
    try:
        request = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        accept = {"Accept": "application/json, text/event-stream"}
        assert httpx.post(server.url, json=request, headers=accept).status_code == 401
        wrong = httpx.post(
            server.url, json=request, headers={**accept, "Authorization": "Bearer x"}
        )
        assert wrong.status_code == 401
        right = httpx.post(
            server.url, json=request, headers={**accept, "Authorization": "Bearer s3"}
        )
        assert right.status_code != 401
        # agentkit's client sends the token as a configured header
        with MCPServer.http(server.url, headers={"Authorization": "Bearer s3"}) as client:
            assert content_text(client.call_tool_sync("add", {"a": 1, "b": 1}).content) == "2"
        with MCPServer.http(server.url) as client, pytest.raises(MCPConnectionError):
            client.tools_sync()
    finally:
        server.stop()


def test_parse_address() -> None:
    assert parse_address("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_address("[::1]:8080") == ("::1", 8080)
    assert parse_address(":9000") == ("127.0.0.1", 9000)
    with pytest.raises(Exception, match="HOST:PORT"):
        parse_address("localhost")
