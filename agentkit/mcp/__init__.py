"""MCP servers as a source of agentkit tools (needs the `mcp` extra: pip install agentkit[mcp]).

    async with MCPServer.stdio("mcp-server-time", prefix="time_") as server:
        result = await model.act("What time is it in Tokyo?", await server.tools())

`load_mcp_json()` reads LM Studio's mcp.json, so an agent gets the servers the app has.
"""

try:
    import mcp as _sdk  # noqa: F401 - present, or a clear message instead of a deep ImportError
except ImportError as error:  # pragma: no cover - the extra is not installed
    raise ImportError("agentkit.mcp needs the MCP SDK: pip install 'agentkit[mcp]'") from error

from agentkit.errors import MCPConfigError, MCPConnectionError, MCPError, MCPToolError
from agentkit.mcp.config import MCPServers, default_mcp_json_path, load_mcp_json, parse_mcp_json
from agentkit.mcp.results import content_text, tool_result
from agentkit.mcp.serve import agent_tool, mcp_server, serve_http, serve_stdio
from agentkit.mcp.server import DEFAULT_CALL_TIMEOUT, DEFAULT_INIT_TIMEOUT, MCPServer
from agentkit.mcp.transports import HTTPTransport, StdioTransport, Transport

__all__ = [
    "DEFAULT_CALL_TIMEOUT",
    "DEFAULT_INIT_TIMEOUT",
    "HTTPTransport",
    "MCPConfigError",
    "MCPConnectionError",
    "MCPError",
    "MCPServer",
    "MCPServers",
    "MCPToolError",
    "StdioTransport",
    "Transport",
    "agent_tool",
    "content_text",
    "default_mcp_json_path",
    "load_mcp_json",
    "mcp_server",
    "parse_mcp_json",
    "serve_http",
    "serve_stdio",
    "tool_result",
]
