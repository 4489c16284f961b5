"""How to reach an MCP server: a command to start (stdio) or a URL (streamable HTTP)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

from mcp.client._transport import TransportStreams
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from agentkit.errors import MCPConfigError

__all__ = ["HTTPTransport", "StdioTransport", "Transport"]


@dataclass(frozen=True, slots=True)
class StdioTransport:
    """Start `command` with `args` (directly, never through a shell) and talk over its stdio.

    `env` is added to the few variables the MCP SDK passes on (PATH, HOME, USER...); the rest of
    this process's environment is not inherited.
    """

    command: str
    args: Sequence[str] = ()
    env: Mapping[str, str] | None = None
    cwd: str | Path | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.command, str) or not self.command.strip():
            raise MCPConfigError("an MCP stdio server needs a command (a non-empty string)")
        if isinstance(self.args, str) or not all(isinstance(a, str) for a in self.args):
            raise MCPConfigError(f"MCP server command {self.command!r}: args must be strings")

    def describe(self) -> str:
        return " ".join([self.command, *self.args])

    def missing_command(self) -> str | None:
        """Why the command cannot be started, when it plainly cannot (not found)."""
        command = self.command
        if os.sep in command or (os.altsep and os.altsep in command):
            return None if os.path.exists(command) else f"command {command!r} does not exist"
        if shutil.which(command, path=(self.env or {}).get("PATH")) is None:
            return f"command {command!r} is not installed (not found on PATH)"
        return None

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[TransportStreams]:
        parameters = StdioServerParameters(
            command=self.command,
            args=list(self.args),
            env=None if self.env is None else dict(self.env),
            cwd=self.cwd,
        )
        async with stdio_client(parameters) as streams:
            yield streams


@dataclass(frozen=True, slots=True)
class HTTPTransport:
    """An MCP server at `url` over streamable HTTP, with extra request `headers` (auth)."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url.startswith(("http://", "https://")):
            raise MCPConfigError(
                f"an MCP server URL must start with http:// or https://: {self.url!r}"
            )

    def describe(self) -> str:
        return self.url

    def missing_command(self) -> str | None:
        return None

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[TransportStreams]:
        async with (
            create_mcp_http_client(headers=dict(self.headers)) as client,
            streamable_http_client(self.url, http_client=client) as streams,
        ):
            yield streams


Transport: TypeAlias = StdioTransport | HTTPTransport
