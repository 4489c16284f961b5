"""`MCPServer`: one MCP server as a source of agentkit tools, with one long-lived session.

The session is opened on first use and kept across act() runs until `aclose()` (or the end of
`async with`). Its task group and transport live in one task of their own (the connection's
runner), never in a caller's task: calls from any task, many at once, only send requests and
wait for their answers, so a caller cancelled or timed out mid-call cannot break the session's
cancel scopes. Under `async with` the runner belongs to the server's task group (asyncio or
trio); without it, on asyncio, it is a free-standing task that `aclose()` ends.

A connection lost (the server process died, an HTTP session the server no longer knows) is
re-opened once, transparently, and the call retried on the new session; if that fails too, the
call raises `MCPConnectionError`. A call in flight when the server died is therefore sent twice:
make such tools idempotent or give the server `retry_lost_calls=False`.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import anyio
import anyio.abc
import mcp_types as types
from mcp.client.session import ClientSession, IncomingMessage
from mcp.shared.exceptions import MCPError as SDKError
from opentelemetry import trace

from agentkit.errors import (
    MCPConfigError,
    MCPConnectionError,
    MCPToolError,
    ToolDefinitionError,
    ToolTimeoutError,
)
from agentkit.mcp.loop_thread import LoopThread
from agentkit.mcp.results import tool_result
from agentkit.mcp.transports import HTTPTransport, StdioTransport, Transport
from agentkit.tools.tool import DEFAULT_RETRIES, Tool, define_tool

__all__ = ["DEFAULT_CALL_TIMEOUT", "DEFAULT_INIT_TIMEOUT", "MCPServer"]

logger = logging.getLogger("agentkit.mcp")

_T = TypeVar("_T")

DEFAULT_CALL_TIMEOUT = 300.0
"""Seconds a tool call may take: generous, since MCP tools search, build and browse."""

DEFAULT_INIT_TIMEOUT = 60.0
"""Seconds a server may take to start and answer `initialize` (npx/uvx may first download)."""

_CLIENT_INFO = types.Implementation(name="agentkit", version="0.1.0")
_INVALID_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_LOST_ERRORS: tuple[type[BaseException], ...] = (
    anyio.ClosedResourceError,
    anyio.BrokenResourceError,
    anyio.EndOfStream,
    ConnectionError,
)


@dataclass(eq=False)
class _Connection:
    """One live session and the events its runner task reports through."""

    settled: anyio.Event = field(default_factory=anyio.Event)  # initialised, or failed to
    stop: anyio.Event = field(default_factory=anyio.Event)
    closed: anyio.Event = field(default_factory=anyio.Event)
    session: ClientSession | None = None
    error: BaseException | None = None


class MCPServer:
    """An MCP server whose tools agentkit can offer to a model.

        async with MCPServer.stdio("mcp-server-time") as time_server:
            tools = await time_server.tools()
            result = await model.act("What time is it in Tokyo?", tools)

    `tools()` lists the server's tools once and caches them until the server sends
    `notifications/tools/list_changed`; call it before each run to pick up changes.

    Args:
        transport: a `StdioTransport` or `HTTPTransport` (or use `stdio` / `http`).
        name: the server's name in errors and logs (mcp.json's key); defaults to the command
            or URL.
        prefix: put before every tool name the model sees (`"time_"` makes
            `time_get_current_time`), so two servers' tools cannot collide.
        allow: only these tools (server names), when given.
        deny: never these tools (server names).
        timeout: seconds one tool call may take before the model is told it timed out.
        init_timeout: seconds the server may take to start and initialise.
        requires_approval: True for all tools, or the server names of the tools whose calls
            wait for a person's approval (the Agent's approval flow).
        retries: failed calls in a row the model may make to one tool (see `agentkit.tool`).
        retry_lost_calls: resend a call in flight when the connection was lost (default);
            when False such a call fails and only later calls reconnect.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        name: str | None = None,
        prefix: str = "",
        allow: Iterable[str] | None = None,
        deny: Iterable[str] = (),
        timeout: float = DEFAULT_CALL_TIMEOUT,
        init_timeout: float = DEFAULT_INIT_TIMEOUT,
        requires_approval: bool | Collection[str] = False,
        retries: int = DEFAULT_RETRIES,
        retry_lost_calls: bool = True,
    ) -> None:
        if not isinstance(transport, StdioTransport | HTTPTransport):
            raise MCPConfigError(
                "transport must be a StdioTransport or HTTPTransport, "
                f"got {type(transport).__name__}"
            )
        if timeout <= 0 or init_timeout <= 0:
            raise MCPConfigError("MCP timeouts must be positive")
        if prefix and not re.fullmatch(r"[A-Za-z0-9_-]+", prefix):
            raise MCPConfigError(
                f"tool name prefix {prefix!r} may use only letters, digits, _ and -"
            )
        if isinstance(allow, str) or isinstance(deny, str):
            raise MCPConfigError("allow and deny take collections of tool names, not a string")
        self.transport = transport
        self.name = name or transport.describe()
        self.prefix = prefix
        self.allow = None if allow is None else frozenset(allow)
        self.deny = frozenset(deny)
        self.timeout = timeout
        self.init_timeout = init_timeout
        self.requires_approval = requires_approval
        self.retries = retries
        self.retry_lost_calls = retry_lost_calls
        self._connection: _Connection | None = None
        self._lock: anyio.Lock | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._background: set[Any] = set()  # free-standing asyncio runner tasks
        self._home: LoopThread | None = None  # the sync API's loop (`with server:`)
        self._tools: list[Tool[..., Any]] | None = None
        self._listing: list[types.Tool] = []
        self._stale = True
        self.connections = 0
        """Sessions opened so far (1 + reconnects): for monitoring and tests."""

    @classmethod
    def stdio(
        cls,
        command: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        **options: Any,
    ) -> MCPServer:
        """A server started as `command args...` that speaks MCP over its stdin/stdout."""
        return cls(StdioTransport(command, tuple(args), env, cwd), **options)

    @classmethod
    def http(
        cls, url: str, *, headers: Mapping[str, str] | None = None, **options: Any
    ) -> MCPServer:
        """A server at `url` speaking MCP over streamable HTTP."""
        return cls(HTTPTransport(url, dict(headers or {})), **options)

    def __repr__(self) -> str:
        return f"MCPServer({self.name!r})"

    # lifecycle

    async def __aenter__(self) -> MCPServer:
        if self._task_group is not None:
            raise MCPConfigError(f"MCP server {self.name!r} is already entered")
        group = anyio.create_task_group()
        await group.__aenter__()
        self._task_group = group
        self._lock = None  # a lock belongs to one event loop
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        group, self._task_group = self._task_group, None
        try:
            await self.aclose()
        finally:
            if group is not None:
                # Only runners live in the group and aclose() ended them: exiting it without the
                # body's exception keeps that exception as it is (not in an ExceptionGroup).
                group.cancel_scope.cancel()
                await group.__aexit__(None, None, None)

    def __enter__(self) -> MCPServer:
        """The sync API: the session lives on a loop thread of the server's own until exit."""
        if self._home is not None or self._task_group is not None:
            raise MCPConfigError(f"MCP server {self.name!r} is already entered")
        self._home = LoopThread(f"agentkit-mcp:{self.name}")
        self._lock = None  # a lock belongs to one event loop
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        home, self._home = self._home, None
        if home is not None:
            try:
                home.run(self.aclose())
            finally:
                home.close()

    def tools_sync(self) -> list[Tool[..., Any]]:
        """`tools()` for sync code, inside `with server:`; the tools work in sync act()."""
        return self._sync().run(self.tools())

    def call_tool_sync(
        self, name: str, arguments: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> types.CallToolResult:
        """`call_tool()` for sync code, inside `with server:`."""
        return self._sync().run(self.call_tool(name, arguments, timeout=timeout))

    def _sync(self) -> LoopThread:
        if self._home is None:
            raise MCPConfigError(
                f"MCP server {self.name!r}: use the sync API inside `with server:`"
            )
        return self._home

    async def aclose(self) -> None:
        """Close the session and stop the server process (idempotent); a later use reconnects."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await _shut(connection)

    @property
    def connected(self) -> bool:
        """Whether a session is open now."""
        connection = self._connection
        return connection is not None and _live(connection)

    async def connect(self) -> None:
        """Open the session now rather than on first use."""
        await self._connected()

    async def _connected(self) -> _Connection:
        connection = self._connection
        if connection is not None and _live(connection):
            return connection
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            connection = self._connection
            if connection is not None and _live(connection):
                return connection
            if connection is not None:
                self._connection = None
                await _shut(connection)
            connection = await self._open()
            self._connection = connection
            self._stale = True  # a new session may offer other tools
            return connection

    async def _open(self) -> _Connection:
        missing = self.transport.missing_command()
        if missing is not None:
            raise MCPConnectionError(self.name, missing)
        connection = _Connection()
        self._spawn(connection)
        with anyio.CancelScope(shield=True):  # a cancelled caller must not orphan the runner
            await connection.settled.wait()
        if connection.session is None:
            await _shut(connection)
            error = connection.error
            raise MCPConnectionError(self.name, _why_not_connected(error, self)) from error
        self.connections += 1
        return connection

    def _spawn(self, connection: _Connection) -> None:
        if self._task_group is not None:
            self._task_group.start_soon(self._run, connection, name=f"mcp:{self.name}")
            return
        if "asyncio" not in sys.modules or not _on_asyncio():
            raise MCPConfigError(
                f"MCP server {self.name!r}: outside asyncio, open it with `async with` first "
                "(its session needs a task group that outlives the call)"
            )
        import asyncio

        task = asyncio.get_running_loop().create_task(self._run(connection))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _run(self, connection: _Connection) -> None:
        """The runner: owns the transport and the session from start to close, in one task."""
        try:
            async with contextlib.AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self.transport.open())
                session = await stack.enter_async_context(
                    ClientSession(
                        read, write, message_handler=self._on_message, client_info=_CLIENT_INFO
                    )
                )
                with anyio.fail_after(self.init_timeout):
                    await session.initialize()
                connection.session = session
                connection.settled.set()
                await connection.stop.wait()  # then the stack closes the session and the process
        except Exception as error:
            connection.error = error
            if connection.session is not None:
                logger.warning("MCP server %r: the connection ended: %s", self.name, error)
        finally:
            connection.settled.set()
            connection.closed.set()

    async def _on_message(self, message: IncomingMessage) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self._stale = True
        elif isinstance(message, Exception):
            logger.debug("MCP server %r: transport error: %s", self.name, message)

    # tools

    async def list_tools(self) -> list[types.Tool]:
        """The server's tools as MCP describes them (all pages), unfiltered."""
        listing: list[types.Tool] = []
        cursor: str | None = None
        while True:
            params = None if cursor is None else types.PaginatedRequestParams(cursor=cursor)

            async def list_page(
                session: ClientSession, params: types.PaginatedRequestParams | None = params
            ) -> types.ListToolsResult:
                return await session.list_tools(params=params)

            page = await self._request(list_page, self.timeout, "tools/list")
            listing.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                return listing

    async def tools(self) -> list[Tool[..., Any]]:
        """The server's tools as agentkit tools (filtered, prefixed), listed on first use and
        again after the server said its list changed (or after a reconnect)."""
        if self._tools is None or self._stale:
            self._stale = False  # a change notified while listing marks it stale again
            try:
                listing = await self.list_tools()
            except BaseException:
                self._stale = True
                raise
            self._listing = listing
            self._tools = self._as_tools(listing)
        return list(self._tools)

    def _as_tools(self, listing: list[types.Tool]) -> list[Tool[..., Any]]:
        tools: list[Tool[..., Any]] = []
        seen: set[str] = set()
        for spec in listing:
            if (self.allow is not None and spec.name not in self.allow) or spec.name in self.deny:
                continue
            name = (self.prefix + _INVALID_NAME_CHARS.sub("_", spec.name))[:64]
            if name in seen:
                logger.warning(
                    "MCP server %r: tool %r skipped: its name %r is taken",
                    self.name,
                    spec.name,
                    name,
                )
                continue
            try:
                tools.append(self._as_tool(name, spec))
            except ToolDefinitionError as error:
                logger.warning("MCP server %r: tool %r skipped: %s", self.name, spec.name, error)
                continue
            seen.add(name)
        return tools

    def _as_tool(self, name: str, spec: types.Tool) -> Tool[..., Any]:
        server_name = spec.name

        async def call(**arguments: Any) -> Any:
            span = trace.get_current_span()  # act()'s execute_tool span, when traced
            if span.is_recording():
                span.set_attribute("agentkit.mcp.server", self.name)
                span.set_attribute("agentkit.mcp.tool", server_name)
                span.set_attribute("mcp.method.name", "tools/call")
            request = self.call_tool(server_name, arguments, tool_name=name)
            home = self._home  # in the sync API the session lives on its own loop
            result = await (request if home is None else home.hop(request))
            return tool_result(name, self.name, result)

        approval = self.requires_approval
        needs_approval = approval if isinstance(approval, bool) else server_name in approval
        return define_tool(
            name,
            spec.description or spec.title or "",
            spec.input_schema,
            call,
            retries=self.retries,
            requires_approval=needs_approval,
        )

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the server's default, or this call's
        tool_name: str | None = None,
    ) -> types.CallToolResult:
        """Call the server's tool `name` (its own name, without prefix) and return MCP's result.

        Raises `ToolTimeoutError` after `timeout` (default: the server's), `MCPToolError` when
        the server answers with a JSON-RPC error, `MCPConnectionError` when it cannot be reached.
        """
        limit = self.timeout if timeout is None else timeout
        arguments = dict(arguments or {})
        return await self._request(
            lambda session: session.call_tool(name, arguments), limit, tool_name or name, tool=True
        )

    async def _request(
        self,
        send: Callable[[ClientSession], Awaitable[_T]],
        limit: float,
        what: str,
        *,
        tool: bool = False,
    ) -> _T:
        lost: BaseException | None = None
        for attempt in range(2):
            connection = await self._connected()
            session = connection.session
            assert session is not None
            try:
                with anyio.fail_after(limit):
                    return await send(session)
            except TimeoutError:
                raise ToolTimeoutError(what, limit) from None
            except SDKError as error:
                if not _session_lost(error) and not await self._http_session_gone(error, session):
                    if tool:
                        raise MCPToolError(what, self.name, error.message, error.code) from error
                    raise MCPConnectionError(self.name, f"{what} failed: {error}") from error
                lost = error
            except _LOST_ERRORS as error:
                lost = error
            await self._drop(connection)
            if attempt == 0 and tool and not self.retry_lost_calls:
                raise MCPConnectionError(
                    self.name, f"the connection was lost during {what!r}; it may not have run"
                ) from lost
        raise MCPConnectionError(
            self.name, f"the connection was lost again after reconnecting ({lost})"
        ) from lost

    async def _http_session_gone(self, error: SDKError, session: ClientSession) -> bool:
        """Whether an HTTP error status the SDK could not read (INTERNAL_ERROR) means the
        server lost our session, as when a restarted server answers 400 instead of the spec's
        404: a ping on the same session tells the session's loss from one failed request."""
        if not isinstance(self.transport, HTTPTransport) or error.code != types.INTERNAL_ERROR:
            return False
        try:
            with anyio.fail_after(min(self.timeout, 10.0)):
                await session.send_ping()
        except (SDKError, TimeoutError):
            return True
        except _LOST_ERRORS:
            return True
        return False

    async def _drop(self, connection: _Connection) -> None:
        if self._connection is connection:
            self._connection = None
            self._stale = True
        await _shut(connection)


def _live(connection: _Connection) -> bool:
    return connection.session is not None and not connection.closed.is_set()


async def _shut(connection: _Connection) -> None:
    connection.stop.set()
    with anyio.CancelScope(shield=True):  # the process must be stopped even when cancelled
        await connection.closed.wait()


def _session_lost(error: SDKError) -> bool:
    """Whether an SDK error means the connection, not the request, is the problem."""
    if error.code == types.CONNECTION_CLOSED:
        return True
    # HTTP 404 for a session the server no longer knows ("Session not found", "Session
    # terminated"): the request was refused unseen, so sending it again is safe.
    return error.code == types.INVALID_REQUEST and "session" in error.message.lower()


def _why_not_connected(error: BaseException | None, server: MCPServer) -> str:
    if error is None:
        return "the connection closed during start-up"
    if isinstance(error, BaseExceptionGroup):
        leaves = _leaves(error)
        error = leaves[0] if leaves else error
    if isinstance(error, TimeoutError):
        return f"did not initialise within {server.init_timeout:g} s"
    if isinstance(error, FileNotFoundError | PermissionError):
        return f"cannot start {server.transport.describe()!r}: {error}"
    return f"could not connect: {type(error).__name__}: {error}"


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for error in group.exceptions:
        found.extend(_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    return found


def _on_asyncio() -> bool:
    import sniffio

    try:
        return sniffio.current_async_library() == "asyncio"
    except sniffio.AsyncLibraryNotFoundError:
        return False
