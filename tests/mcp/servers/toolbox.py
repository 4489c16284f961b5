"""A small MCP server (the official SDK's MCPServer) for agentkit's MCP client tests.

    python toolbox.py stdio
    python toolbox.py http PORT

Its tools: add, sleep, fail (an isError result), pid (the process id, to see reconnects),
picture (an image), grow (adds a tool and sends notifications/tools/list_changed), and
"dotted.name" (a name agentkit must rewrite).
"""

from __future__ import annotations

import os
import sys

import anyio
from mcp.server.mcpserver import Context, Image, MCPServer

server = MCPServer("toolbox")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
async def sleep(seconds: float) -> str:
    """Sleep, then say so."""
    await anyio.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
def fail(message: str) -> str:
    """Always fails with the message."""
    raise ValueError(message)


@server.tool()
def pid() -> int:
    """This server process's id."""
    return os.getpid()


@server.tool()
def picture() -> Image:
    """A 4-byte 'PNG'."""
    return Image(data=b"\x89PNG", format="png")


@server.tool(name="dotted.name")
def dotted() -> str:
    """A tool whose name has a dot."""
    return "dotted"


@server.tool()
async def grow(name: str, ctx: Context) -> str:
    """Add a tool called `name` and tell the client the tool list changed."""

    def added() -> str:
        return f"{name} ran"

    server.add_tool(added, name=name, description=f"added by grow: {name}")
    await ctx.session.send_tool_list_changed()
    return f"added {name}"


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
