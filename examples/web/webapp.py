"""A chat backend on the Agent runtime: FastAPI, AG-UI events over SSE, approvals, a web page.

    python examples/web/webapp.py --token alice=alice-secret --token bob=bob-secret
    # then open http://127.0.0.1:8000/ and sign in with a token

Endpoints (every /api request carries `Authorization: Bearer <token>`):

- `POST /api/sessions` creates a session for the caller: `201 {"id": ...}`.
- `GET /api/sessions/{id}`: the history as AG-UI messages and the calls waiting for approval.
- `POST /api/sessions/{id}/messages` `{"message": "..."}`: the run as AG-UI events (SSE).
- `POST /api/sessions/{id}/resume` `{"resume": [ResumeEntry, ...]}`: decisions on the waiting
  calls (AG-UI resume entries); the resumed run as AG-UI events (SSE).

Outcomes: 401 without a valid token; 404 for a session id that was not created by the caller
(unknown and foreign ids look the same: sessions are created only by `POST /api/sessions`);
422 for a body that is not `{"message": <text>}`; 413 for a message over the size limit; 409
for a message while calls wait for approval, a decision on a call that is not waiting, or a
second resume of the same pause; 429 with Retry-After beyond the messages-per-minute or
concurrent-runs limit of the user, or when the model's queue is full. A browser that
disconnects mid-stream cancels the run between whole rounds: the store keeps each round
committed before, never half of one.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from ag_ui.core import ResumeEntry
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from owners import Owners
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import agentkit as ak
from agentkit.agent import AsyncAgent
from agentkit.approval import pending_calls
from agentkit.errors import ApprovalError, ApprovalPendingError
from agentkit.web import (
    AgentRun,
    AGUIMapper,
    AGUIResponse,
    LimitExceeded,
    ModelQueue,
    RunSlot,
    UserLimits,
    approval_interrupts,
    history_messages,
    resume_decisions,
)

STATIC = Path(__file__).resolve().parent / "static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass
class WebConfig:
    """The app's configuration: users by bearer token, limits, where owners are kept."""

    tokens: Mapping[str, str]
    """bearer token -> user id"""
    owners_path: str | Path
    limits: UserLimits = field(default_factory=UserLimits)
    model_queue: ModelQueue = field(default_factory=lambda: ModelQueue(32))


class NewMessage(BaseModel):
    """`POST .../messages`: the text of the user's message, nothing else."""

    model_config = ConfigDict(extra="forbid")
    message: StrictStr = Field(min_length=1)


class Resume(BaseModel):
    """`POST .../resume`: AG-UI resume entries, one per waiting call."""

    model_config = ConfigDict(extra="forbid")
    resume: list[ResumeEntry] = Field(min_length=1)


class _SecurityHeaders:
    """Adds the CSP and friends to every response (plain ASGI: no per-chunk cost on streams)."""

    HEADERS = (
        (b"content-security-policy", CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *self.HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


# -- authentication: the one dependency a real backend replaces ---------------------------------


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def current_user(request: Request) -> str:
    """The user whose bearer token the request carries; 401 without a known one."""
    # looked up by the token's SHA-256: one dict probe whatever the number of users, and its
    # timing tells nothing about the stored tokens (it depends on the digest only)
    users: Mapping[bytes, str] = request.app.state.users_by_digest
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        user = users.get(_digest(token))
        if user is not None:
            return user
    raise HTTPException(
        401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"}
    )


User = Annotated[str, Depends(current_user)]


def _refusal(error: Exception) -> JSONResponse | None:
    """The 409 for a run the Agent refused before starting it (the session is paused, or the
    decisions do not fit the pause); None for other errors, which end the stream instead."""
    if isinstance(error, ApprovalPendingError):
        detail = f"calls wait for approval: {', '.join(error.call_ids)}"
        return JSONResponse({"detail": detail}, 409)
    if isinstance(error, ApprovalError):
        return JSONResponse({"detail": str(error)}, 409)
    return None


def create_app(agent: AsyncAgent, config: WebConfig) -> FastAPI:
    """The FastAPI app serving `agent` to the users of `config`."""
    owners = Owners(config.owners_path)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        owners.close()

    app = FastAPI(title="agentkit web example", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.config = config
    app.state.users_by_digest = {_digest(token): user for token, user in config.tokens.items()}

    app.add_middleware(_SecurityHeaders)

    @app.exception_handler(LimitExceeded)
    async def over_limit(request: Request, error: LimitExceeded) -> JSONResponse:
        headers = {} if error.retry_after is None else {"Retry-After": str(error.retry_after)}
        return JSONResponse({"detail": str(error)}, error.status_code, headers=headers)

    def owned(user: str, session_id: str) -> str:
        """The store's id of the caller's session; 404 for any other id."""
        if not owners.owns(user, session_id):
            raise HTTPException(404, "no such session")
        return f"{user}/{session_id}"  # namespaced in the store too: no id is shared

    # -- pages ---------------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> FileResponse:
        files = {"app.js": "text/javascript", "style.css": "text/css"}
        if name not in files:
            raise HTTPException(404, "not found")
        return FileResponse(STATIC / name, media_type=files[name])

    # -- API -----------------------------------------------------------------------------------

    @app.post("/api/sessions", status_code=201)
    async def create_session(user: User) -> dict[str, str]:
        return {"id": owners.create(user)}

    @app.get("/api/sessions")
    async def list_sessions(user: User) -> dict[str, list[str]]:
        return {"sessions": owners.sessions(user)}

    @app.get("/api/sessions/{session_id}")
    async def session(session_id: str, user: User) -> dict[str, Any]:
        stored = await agent.history(owned(user, session_id))
        waiting = pending_calls(stored)
        return {
            "threadId": session_id,
            "messages": [
                m.model_dump(mode="json", by_alias=True)
                for m in history_messages(stored, id_prefix=f"{session_id}-")
            ],
            "interrupts": [
                i.model_dump(mode="json", by_alias=True) for i in approval_interrupts(waiting)
            ],
        }

    def admit(user: str) -> list[RunSlot]:
        slots = [config.limits.start_run(user)]
        try:
            slots.append(config.model_queue.admit())
        except LimitExceeded:
            slots[0].release()
            raise
        return slots

    def respond(
        run: AgentRun, session_id: str, slots: list[RunSlot], counted: RunSlot | None = None
    ) -> AGUIResponse:
        def release() -> None:
            for slot in slots:
                slot.release()

        def refusal(error: Exception) -> JSONResponse | None:
            refused = _refusal(error)
            if refused is not None and counted is not None:
                counted.release()  # a message the Agent refused costs no rate
            return refused

        return AGUIResponse(
            run, AGUIMapper(thread_id=session_id), refusal=refusal, on_close=release
        )

    @app.post("/api/sessions/{session_id}/messages")
    async def post_message(session_id: str, body: NewMessage, user: User) -> Any:
        store_id = owned(user, session_id)
        counted = config.limits.check_message(user, body.message)
        try:
            slots = admit(user)
        except LimitExceeded:
            counted.release()
            raise
        # a paused session is refused by agent.act under the session's lock, before its first
        # event: a 409 rather than a stream (_refusal), with no read of the history here
        run = functools.partial(agent.act, store_id, body.message)
        return respond(run, session_id, slots, counted)

    @app.post("/api/sessions/{session_id}/resume")
    async def resume(session_id: str, body: Resume, user: User) -> Any:
        store_id = owned(user, session_id)
        try:
            decisions = resume_decisions(body.resume)
        except ApprovalError as error:
            raise HTTPException(409, str(error)) from None
        slots = admit(user)
        # agent.resume checks the decisions against the stored pause under the session's lock,
        # before its first event: a refusal (not waiting, malformed, a second resume) is a 409
        return respond(functools.partial(agent.resume, store_id, decisions), session_id, slots)

    return app


# -- running it on the local default model ----------------------------------------------------


def lookup_order(order: str) -> str:
    """Look up the status of an order by its id."""
    return f"Order {order} shipped on Monday."


@ak.tool(requires_approval=True)
def refund_order(order: str, amount: float) -> str:
    """Refund an amount of money on an order."""
    return f"Refunded {amount:.2f} on order {order}."


def main() -> None:
    import anyio
    import uvicorn

    from agentkit.memory import SQLiteStore

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--token", action="append", default=[], metavar="USER=TOKEN")
    parser.add_argument("--db", default="web_sessions.db")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    tokens = {token: user for user, _, token in (item.partition("=") for item in args.token)}
    if not tokens or "" in tokens:
        parser.error("give at least one --token USER=TOKEN")

    async def serve() -> None:
        async with ak.AsyncClient() as client:
            model = await client.llm.model()
            agent = AsyncAgent(
                model,
                tools=[lookup_order, refund_order],
                instructions="You are a support agent. Use the tools; be brief.",
                store=SQLiteStore(args.db),
            )
            app = create_app(agent, WebConfig(tokens, owners_path=args.db + ".owners"))
            config = uvicorn.Config(app, host="127.0.0.1", port=args.port)
            await uvicorn.Server(config).serve()

    anyio.run(serve)


if __name__ == "__main__":
    main()
