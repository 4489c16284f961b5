"""Per-call overhead of agentkit's MCP client over the bare `mcp` ClientSession.

Both call `add` on the same kind of stdio server (tests/mcp/servers/toolbox.py, one process
each), in interleaved batches so machine noise hits both alike. Reported: median µs per call
for the bare session, for `MCPServer.call_tool`, and for the agentkit tool (argument validation
and result mapping included), and their ratios (issue 12's target: <= 1.1x).

    python bench/mcp_overhead.py [--batches 30] [--calls 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import anyio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from agentkit.mcp import MCPServer

TOOLBOX = str(Path(__file__).parent.parent / "tests" / "mcp" / "servers" / "toolbox.py")


async def main(batches: int, calls: int) -> None:
    parameters = StdioServerParameters(command=sys.executable, args=[TOOLBOX, "stdio"])
    bare_times: list[float] = []
    client_times: list[float] = []
    tool_times: list[float] = []
    async with (
        stdio_client(parameters) as (read, write),
        ClientSession(read, write) as session,
        MCPServer.stdio(sys.executable, [TOOLBOX, "stdio"]) as server,
    ):
        await session.initialize()
        await session.list_tools()
        (add,) = [t for t in await server.tools() if t.name == "add"]
        arguments = {"a": 1, "b": 2}
        for _ in range(3):  # warm-up
            await session.call_tool("add", arguments)
            await server.call_tool("add", arguments)
            await add.function(**add.bind(arguments).kwargs)
        for _ in range(batches):
            started = time.perf_counter()
            for _ in range(calls):
                await session.call_tool("add", arguments)
            bare_times.append((time.perf_counter() - started) / calls)
            started = time.perf_counter()
            for _ in range(calls):
                await server.call_tool("add", arguments)
            client_times.append((time.perf_counter() - started) / calls)
            started = time.perf_counter()
            for _ in range(calls):
                await add.function(**add.bind(arguments).kwargs)
            tool_times.append((time.perf_counter() - started) / calls)
    bare = statistics.median(bare_times)
    client = statistics.median(client_times)
    tool = statistics.median(tool_times)
    print(f"bare ClientSession.call_tool : {bare * 1e6:8.0f} µs/call")
    print(f"MCPServer.call_tool          : {client * 1e6:8.0f} µs/call  ({client / bare:.3f}x)")
    print(f"agentkit tool (bind + call)  : {tool * 1e6:8.0f} µs/call  ({tool / bare:.3f}x)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--calls", type=int, default=50)
    options = parser.parse_args()
    anyio.run(main, options.batches, options.calls)
