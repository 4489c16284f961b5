"""An agent run as a Starlette / FastAPI response of AG-UI events over SSE, cheap per turn.

`AGUIResponse(run, mapper)` calls `run(on_event=...)` (`functools.partial(agent.act, session_id,
text)` or `agent.resume`'s) and writes the AG-UI events of each agent event as one SSE chunk
when it happens: no queue between the run and the socket, one task for the run while the
request's task waits for the client to hang up (`agent.stream()` with sse-starlette took a
memory stream and five tasks per response).

The response starts (status 200) at the run's first event, `RunStarted`, which the Agent fires
once the run is admitted. An error raised before it, for which `refusal` gives a response (calls
wait for approval, a decision that does not fit: the example app's 409), is answered with that
response instead of a stream. A client that disconnects cancels the run: the Agent keeps the rounds
committed before, never part of one. `on_close` runs however the response ends, even if it
never started.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from agentkit.agent_events import AgentEvent, RunFailed
from agentkit.web.agui import AGUIMapper

__all__ = ["AGUIResponse", "AgentRun"]

PING = b": ping\n\n"


class AgentRun(Protocol):
    """A run that reports its events: `agent.act` or `agent.resume` with all but `on_event`."""

    def __call__(self, *, on_event: Callable[[AgentEvent], Awaitable[None]]) -> Awaitable[Any]: ...


class AGUIResponse(Response):
    """Streams one agent run as AG-UI Server-Sent Events (see the module docstring).

    Args:
        run: called once with `on_event`; what it raises ends the stream with RUN_ERROR.
        mapper: maps and encodes the run's events (default: a fresh `AGUIMapper`).
        headers: extra response headers.
        refusal: the response to send for an error raised before the first event, or None to
            stream it as RUN_ERROR.
        on_close: called once when the response ends, however it ends.
        ping: seconds of silence after which a comment line keeps proxies from closing the
            connection.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        run: AgentRun,
        mapper: AGUIMapper | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        refusal: Callable[[Exception], Response | None] | None = None,
        on_close: Callable[[], None] | None = None,
        ping: float = 15.0,
    ) -> None:
        self.run = run
        self.mapper = mapper or AGUIMapper()
        self.refusal = refusal
        self.on_close = on_close
        self.ping = ping
        self.status_code = 200
        self.background = None
        self.init_headers(
            {"Cache-Control": "no-store", "X-Accel-Buffering": "no", **(headers or {})}
        )
        self._scope: Scope = {}
        self._receive: Receive | None = None
        self._send: Send | None = None
        self._started = False  # a response (the stream or a refusal) has started
        self._streaming = False  # the stream is open: pings may be sent

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._scope, self._receive, self._send = scope, receive, send
        try:
            async with anyio.create_task_group() as group:
                # the run in a task of its own: its many resumptions do not each pass back
                # through the whole middleware stack this task is in
                group.start_soon(self._stream_then_stop, group.cancel_scope)
                await self._watch(receive, group.cancel_scope)
        finally:
            if self.on_close is not None:
                self.on_close()

    async def _stream_then_stop(self, scope: anyio.CancelScope) -> None:
        await self._stream()
        scope.cancel()  # stops the watcher

    async def _stream(self) -> None:
        encode = self.mapper.encode

        async def on_event(event: AgentEvent) -> None:
            chunk = encode(event)
            if chunk:
                await self._write(chunk)

        try:
            await self.run(on_event=on_event)
        except Exception as error:
            refused = None
            if not self._started and self.refusal is not None:
                refused = self.refusal(error)
            if refused is not None:
                assert self._receive is not None and self._send is not None
                self._started = True
                await refused(self._scope, self._receive, self._send)
                return
            await on_event(RunFailed(error))
        await self._write(b"", more=False)
        self._streaming = False

    async def _write(self, chunk: bytes, *, more: bool = True) -> None:
        assert self._send is not None
        if not self._started:
            self._started = self._streaming = True
            await self._send(
                {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
            )
        await self._send({"type": "http.response.body", "body": chunk, "more_body": more})

    async def _watch(self, receive: Receive, scope: anyio.CancelScope) -> None:
        """Cancel the run when the client disconnects; ping while the stream is quiet."""
        while True:
            with anyio.move_on_after(self.ping):
                message = await receive()
                if message["type"] == "http.disconnect":
                    scope.cancel()
                    return
                continue
            if self._streaming:
                assert self._send is not None
                await self._send({"type": "http.response.body", "body": PING, "more_body": True})
