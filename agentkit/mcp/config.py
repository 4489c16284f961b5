"""LM Studio's `mcp.json`: the MCP servers a user configured in the app, for agentkit agents.

The format is Cursor's, which LM Studio follows:

    {"mcpServers": {
        "time": {"command": "uvx", "args": ["mcp-server-time"], "env": {}},
        "hf": {"url": "https://huggingface.co/mcp", "headers": {"Authorization": "Bearer ..."}}}}

LM Studio keeps it at ~/.lmstudio/mcp.json (%USERPROFILE%\\.lmstudio\\mcp.json on Windows); some
macOS installs keep it at ~/.cache/lm-studio/mcp.json, read when the first is missing. A server
with `"disabled": true` is skipped; unknown keys are ignored with a warning.
"""

from __future__ import annotations

import contextlib
import json
import re
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from agentkit.errors import MCPConfigError
from agentkit.mcp.server import MCPServer
from agentkit.mcp.transports import HTTPTransport, StdioTransport, Transport
from agentkit.tools.tool import Tool

__all__ = ["MCPServers", "default_mcp_json_path", "load_mcp_json", "parse_mcp_json"]

_KNOWN_KEYS = frozenset({"command", "args", "env", "cwd", "url", "headers", "type", "disabled"})
_STDIO_TYPES = frozenset({"stdio"})
_HTTP_TYPES = frozenset({"http", "streamable-http", "streamableHttp", "streamable_http"})


def default_mcp_json_path() -> Path:
    """Where LM Studio keeps mcp.json (the first that exists, else the documented one)."""
    home = Path.home()
    documented = home / ".lmstudio" / "mcp.json"
    if documented.exists():
        return documented
    cached = home / ".cache" / "lm-studio" / "mcp.json"
    return cached if cached.exists() else documented


def load_mcp_json(path: str | Path | None = None, **options: Any) -> MCPServers:
    """The servers in an mcp.json file (LM Studio's own by default), not yet connected.

    `options` go to every `MCPServer` (timeout, init_timeout, requires_approval...);
    `prefix=True` puts each server's name before its tools' names (`time_get_current_time`).
    """
    file = default_mcp_json_path() if path is None else Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MCPConfigError(f"no mcp.json at {file}") from None
    except OSError as error:
        raise MCPConfigError(f"cannot read {file}: {error}") from error
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise MCPConfigError(f"{file} is not valid JSON: {error}") from None
    return parse_mcp_json(data, source=str(file), **options)


def parse_mcp_json(data: Any, *, source: str = "mcp.json", **options: Any) -> MCPServers:
    """The servers described by parsed mcp.json content (see `load_mcp_json`)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("mcpServers"), Mapping):
        raise MCPConfigError(f'{source}: expected an object with an "mcpServers" object')
    prefix = options.pop("prefix", False)
    servers: dict[str, MCPServer] = {}
    for name, entry in data["mcpServers"].items():
        if not isinstance(entry, Mapping):
            raise MCPConfigError(f"{source}: MCP server {name!r} must be an object")
        unknown = sorted(str(key) for key in entry if key not in _KNOWN_KEYS)
        if unknown:
            warnings.warn(
                f"{source}: MCP server {name!r}: ignoring unknown key(s) {', '.join(unknown)}",
                stacklevel=2,
            )
        if entry.get("disabled") is True:
            continue
        server_prefix = _prefix_for(name) if prefix is True else (prefix or "")
        servers[name] = MCPServer(
            _transport(name, entry, source), name=name, prefix=server_prefix, **options
        )
    return MCPServers(servers)


def _transport(name: str, entry: Mapping[str, Any], source: str) -> Transport:
    where = f"{source}: MCP server {name!r}"
    kind = entry.get("type")
    command, url = entry.get("command"), entry.get("url")
    if kind is not None and kind not in _STDIO_TYPES | _HTTP_TYPES:
        raise MCPConfigError(
            f"{where}: transport type {kind!r} is not supported (use stdio or streamable http)"
        )
    if command is not None and url is not None:
        raise MCPConfigError(f"{where}: give a command or a url, not both")
    if url is not None or kind in _HTTP_TYPES:
        if not isinstance(url, str) or not url:
            raise MCPConfigError(f"{where}: missing url")
        return HTTPTransport(url, _strings(entry.get("headers"), f"{where}: headers"))
    if not isinstance(command, str) or not command.strip():
        raise MCPConfigError(f"{where}: missing command (or url)")
    args = entry.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise MCPConfigError(f"{where}: args must be a list of strings")
    env = entry.get("env")
    cwd = entry.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        raise MCPConfigError(f"{where}: cwd must be a string")
    return StdioTransport(
        command, tuple(args), None if env is None else _strings(env, f"{where}: env"), cwd
    )


def _strings(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise MCPConfigError(f"{where} must be an object of strings")
    result: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise MCPConfigError(f"{where}: {key!r} must be a string")
        result[str(key)] = str(item)
    return result


def _prefix_for(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:40] + "_"


class MCPServers(Mapping[str, MCPServer]):
    """Several MCP servers by name, used together: `async with` closes them all, and `tools()`
    gathers their tools, refusing two tools of the same name."""

    def __init__(self, servers: Mapping[str, MCPServer]) -> None:
        self._servers = dict(servers)
        # what `with` / `async with` entered, exited in reverse (one failing to enter exits the
        # ones before it)
        self._entered = contextlib.ExitStack()
        self._entered_async = contextlib.AsyncExitStack()

    def __getitem__(self, name: str) -> MCPServer:
        return self._servers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._servers)

    def __len__(self) -> int:
        return len(self._servers)

    def __repr__(self) -> str:
        return f"MCPServers({list(self._servers)!r})"

    async def tools(self) -> list[Tool[..., Any]]:
        """Every server's tools (each server's list cached as `MCPServer.tools` says)."""
        return _gathered([(name, await server.tools()) for name, server in self._servers.items()])

    def tools_sync(self) -> list[Tool[..., Any]]:
        """`tools()` for sync code, inside `with servers:`."""
        return _gathered([(name, server.tools_sync()) for name, server in self._servers.items()])

    def __enter__(self) -> MCPServers:
        with contextlib.ExitStack() as stack:
            for server in self._servers.values():
                stack.enter_context(server)
            self._entered = stack.pop_all()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._entered.__exit__(exc_type, exc, traceback)

    async def aclose(self) -> None:
        """Close every server's session."""
        for server in self._servers.values():
            await server.aclose()

    async def __aenter__(self) -> MCPServers:
        async with contextlib.AsyncExitStack() as stack:
            for server in self._servers.values():
                await stack.enter_async_context(server)
            self._entered_async = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._entered_async.__aexit__(exc_type, exc, traceback)


def _gathered(listings: list[tuple[str, list[Tool[..., Any]]]]) -> list[Tool[..., Any]]:
    tools: list[Tool[..., Any]] = []
    owners: dict[str, str] = {}
    for name, listed in listings:
        for tool in listed:
            if tool.name in owners:
                raise MCPConfigError(
                    f"MCP servers {owners[tool.name]!r} and {name!r} both offer a tool "
                    f"named {tool.name!r}: give them prefixes (prefix=True)"
                )
            owners[tool.name] = name
            tools.append(tool)
    return tools
