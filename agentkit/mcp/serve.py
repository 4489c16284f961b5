"""agentkit tools (or an Agent, as one `ask` tool) served over MCP, for any MCP client.

    server = mcp_server([add, search])          # an mcp.server.lowlevel.Server
    await serve_stdio(server)                    # or serve_http(server, "127.0.0.1", 8765)

Calls run through act()'s own tool machinery (argument validation against the schema agentkit
generates, timeouts, worker threads for sync tools), and every problem a model would be told
about comes back as an `isError` result with the same text. `agentkit mcp serve module:attr`
is the command-line form.

Over HTTP the server binds 127.0.0.1 unless told otherwise; bound anywhere else it requires a
bearer token. Host and Origin headers are checked on every request (the MCP spec's guard
against DNS rebinding).
"""

from __future__ import annotations

import hmac
import ipaddress
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.server.transport_security import TransportSecuritySettings

from agentkit.agent import Agent, AsyncAgent
from agentkit.errors import MCPConfigError
from agentkit.messages import ToolCall
from agentkit.tool_round import run_tool_calls
from agentkit.tools.tool import Tool, define_tool
from agentkit.tools.toolset import ToolLike, Toolset, as_tool

__all__ = ["agent_tool", "mcp_server", "serve_http", "serve_stdio"]

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def agent_tool(agent: Agent | AsyncAgent, *, name: str = "ask") -> Tool[..., Any]:
    """An Agent as one tool: `ask(question)` runs it on a fresh session and returns its answer."""

    async def ask(question: str) -> str:
        session = f"mcp-{uuid.uuid4().hex}"
        if isinstance(agent, AsyncAgent):
            result = await agent.act(session, question)
        else:
            import anyio.to_thread

            result = await anyio.to_thread.run_sync(agent.act, session, question)
        return "" if result.final is None else result.final.text

    schema = {
        "type": "object",
        "properties": {"question": {"type": "string", "description": "what to ask the agent"}},
        "required": ["question"],
        "additionalProperties": False,
    }
    return define_tool(name, "Ask an agent; it may use its own tools to answer.", schema, ask)


def mcp_server(
    tools: Iterable[ToolLike] | Agent | AsyncAgent, *, name: str = "agentkit"
) -> Server[Any]:
    """An MCP server (the SDK's low-level `Server`) offering `tools`, or an Agent as `ask`."""
    items = [agent_tool(tools)] if isinstance(tools, Agent | AsyncAgent) else list(tools)
    toolset = Toolset([as_tool(item) for item in items])
    listing = types.ListToolsResult(
        tools=[
            types.Tool(name=tool.name, description=tool.description, input_schema=tool.parameters)
            for tool in (toolset.get(n) for n in toolset.names)
            if tool is not None
        ]
    )

    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return listing

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        call = ToolCall(params.name, dict(params.arguments or {}))
        (outcome,) = await run_tool_calls(
            [call], toolset, final_round=False, max_parallel=None, handler=None
        )
        return types.CallToolResult(
            content=[types.TextContent(text=outcome.content)], is_error=outcome.error is not None
        )

    return Server(name, on_list_tools=list_tools, on_call_tool=call_tool)


async def serve_stdio(server: Server[Any]) -> None:
    """Serve over this process's stdin and stdout until the client closes them."""
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def serve_http(
    server: Server[Any], host: str = "127.0.0.1", port: int = 8765, *, token: str | None = None
) -> None:
    """Serve streamable HTTP at http://host:port/mcp until interrupted (blocks).

    A `token` makes every request carry `Authorization: Bearer <token>`; it is required when
    `host` is not a loopback address.
    """
    if token is None and not _is_loopback(host):
        raise MCPConfigError(
            f"serving MCP on {host} (not a loopback address) needs a bearer token "
            "(--token, or AGENTKIT_MCP_TOKEN)"
        )
    import uvicorn

    uvicorn.run(
        http_app(server, host, port, token=token), host=host, port=port, log_level="warning"
    )


def http_app(server: Server[Any], host: str, port: int, *, token: str | None = None) -> Any:
    """The ASGI app `serve_http` runs: Host and Origin checked, the bearer token when given."""
    shown = f"[{host}]" if ":" in host else host
    hosts = ["127.0.0.1", "localhost", "[::1]"] if _is_loopback(host) else [shown]
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[f"{h}:{port}" for h in hosts],
        allowed_origins=[f"{scheme}://{h}:{port}" for h in hosts for scheme in ("http", "https")],
    )
    app = server.streamable_http_app(transport_security=security, host=host)
    return app if token is None else _BearerGuard(app, token)


class _BearerGuard:
    """ASGI middleware: 401 unless `Authorization: Bearer <token>` (compared in constant time)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or ()).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"text/plain"),
                            (b"www-authenticate", b"Bearer"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": b"unauthorized"})
                return
        await self.app(scope, receive, send)


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` (or `[v6]:PORT`, or `PORT` alone for 127.0.0.1) as (host, port)."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise MCPConfigError(f"--http takes HOST:PORT, got {text!r}")
    return host, int(port)


def serve_command(spec: str, http: str | None, token: str | None, name: str) -> int:
    """`agentkit mcp serve`: the tools (or Agent) `spec` names, over stdio or `http`."""
    import anyio

    from agentkit.cli import import_spec, load_tools

    found = import_spec(spec, "mcp serve")
    served: Sequence[ToolLike] | Agent | AsyncAgent = (
        found if isinstance(found, Agent | AsyncAgent) else load_tools([spec])
    )
    server = mcp_server(served, name=name)
    if http is None:
        anyio.run(serve_stdio, server)
    else:
        host, port = parse_address(http)
        serve_http(server, host, port, token=token)
    return 0
