"""AGUIResponse over real HTTP (uvicorn on 127.0.0.1, both its stacks): streaming, refusals
before the start, pings, and a client that hangs up."""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest
from conftest import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentkit.agent_events import AgentEvent, RunFinished, RunStarted, TextDelta
from agentkit.errors import ApprovalError
from agentkit.results import ActResult, Usage
from agentkit.web import AGUIMapper, AGUIResponse

Emit = Callable[[AgentEvent], Awaitable[None]]
STACKS = [{}, {"loop": "asyncio", "http": "h11"}]  # uvloop + httptools, then pure Python


def finished() -> RunFinished:
    return RunFinished(ActResult(1, 0.0, None, "answered", Usage()))


class Runs:
    """What the test app's runs did, read by the test thread."""

    def __init__(self) -> None:
        self.closed = threading.Event()
        self.cancelled = threading.Event()


@pytest.fixture(params=STACKS, ids=["uvloop-httptools", "asyncio-h11"])
def app(request: pytest.FixtureRequest) -> Iterator[tuple[str, Runs]]:
    runs = Runs()

    async def answer(*, on_event: Emit) -> None:
        await on_event(RunStarted("s"))
        for word in ("one ", "two"):
            await on_event(TextDelta(word, 0))
        await on_event(finished())

    async def quiet(*, on_event: Emit) -> None:
        await on_event(RunStarted("s"))
        await anyio.sleep(0.5)  # pings keep the line alive meanwhile
        await on_event(finished())

    async def endless(*, on_event: Emit) -> None:
        await on_event(RunStarted("s"))
        await on_event(TextDelta("first", 0))
        try:
            await anyio.sleep(3600)
        finally:
            runs.cancelled.set()

    async def refused(*, on_event: Emit) -> None:
        raise ApprovalError("nothing is waiting")

    async def broken(*, on_event: Emit) -> None:
        raise RuntimeError("secret internals")

    def refusal(error: Exception) -> JSONResponse | None:
        return (
            JSONResponse({"detail": str(error)}, 409) if isinstance(error, ApprovalError) else None
        )

    routes = {"answer": answer, "quiet": quiet, "endless": endless, "refused": refused,
              "broken": broken}  # fmt: skip

    async def endpoint(request: Request) -> AGUIResponse:
        run = routes[request.path_params["name"]]
        return AGUIResponse(
            run,
            AGUIMapper(thread_id="t", run_id="r"),
            refusal=refusal,
            on_close=runs.closed.set,
            ping=0.1,
        )

    web = Starlette(routes=[Route("/{name}", endpoint, methods=["POST"])])
    with serve(web, **request.param) as url:
        yield url, runs


def data(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in lines if line.startswith("data:")]


def test_events_stream_as_agui_sse(app: tuple[str, Runs]) -> None:
    url, runs = app
    with httpx.stream("POST", url + "/answer") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        events = data(list(response.iter_lines()))
    assert [e["type"] for e in events] == [
        "RUN_STARTED", "TEXT_MESSAGE_START", "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END", "RUN_FINISHED",
    ]  # fmt: skip
    assert "".join(e.get("delta", "") for e in events) == "one two"
    assert runs.closed.wait(5)


def test_a_quiet_stream_is_pinged(app: tuple[str, Runs]) -> None:
    url, _ = app
    with httpx.stream("POST", url + "/quiet") as response:
        lines = list(response.iter_lines())
    pings = [line for line in lines if line == ": ping"]
    assert len(pings) >= 2
    started = next(n for n, line in enumerate(lines) if "RUN_STARTED" in line)
    assert lines.index(pings[0]) > started  # pings only once the stream has started
    assert data(lines)[-1]["type"] == "RUN_FINISHED"


def test_an_error_before_the_start_is_the_refusals_response(app: tuple[str, Runs]) -> None:
    url, runs = app
    refused = httpx.post(url + "/refused")
    assert refused.status_code == 409
    assert refused.json() == {"detail": "nothing is waiting"}
    assert runs.closed.wait(5)
    # an error the refusal does not answer: a stream of RUN_ERROR, without the internals
    broken = httpx.post(url + "/broken")
    assert broken.status_code == 200
    assert data(broken.text.splitlines()) == [
        {"type": "RUN_ERROR", "message": "internal error", "code": "InternalError"}
    ]


def test_a_client_that_hangs_up_cancels_the_run(app: tuple[str, Runs]) -> None:
    url, runs = app
    with httpx.stream("POST", url + "/endless") as response:
        for line in response.iter_lines():
            if "TEXT_MESSAGE_CONTENT" in line:
                break
    assert runs.cancelled.wait(5), "the run went on after the client left"
    assert runs.closed.wait(5)
