"""The example web app (examples/web/webapp.py) served by uvicorn on 127.0.0.1, scripted."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn

import agentkit as ak
from agentkit.agent import AsyncAgent
from agentkit.memory import SQLiteStore
from agentkit.messages import ToolResultMessage, UserMessage
from agentkit.testing import AsyncScriptedModel, Reply, ToolCall
from agentkit.web import ModelQueue, UserLimits

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "web"))

import webapp

TOKENS = {"alice-token": "alice", "bob-token": "bob"}
XSS = 'Here: <script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> done'
GATE = threading.Event()  # "hold" messages wait for it


def last_user(chat: ak.Chat) -> str:
    return next(m.content for m in reversed(list(chat)) if isinstance(m, UserMessage))


async def web_script(chat: ak.Chat, index: int) -> Any:
    """What the scripted model says, by the user's last message."""
    text = last_user(chat)
    if isinstance(chat[-1], UserMessage):
        if text.startswith("refund"):
            return Reply("Let me check that order.", [
                ToolCall("lookup_order", {"order": "A-1"}, id="call-look"),
                ToolCall("refund_order", {"order": "A-1", "amount": 20.0}, id="call-refund"),
            ])  # fmt: skip
        if text.startswith("xss"):
            return XSS
        if text.startswith("stream"):
            return Reply("streaming word by word works", fragment_delay=0.15)
        if text.startswith("slow"):
            return [ToolCall("lookup_order", {"order": "S-1"}, id="call-slow")]
        if text.startswith("hold"):
            # GATE is a threading.Event, set from the test's thread
            await anyio.to_thread.run_sync(GATE.wait, abandon_on_cancel=True)
        return f"echo: {text}"
    if text.startswith("slow"):
        return Reply("a partial answer that never ends", fragment_delay=3600)
    results = [m.content for m in chat if isinstance(m, ToolResultMessage)]
    return "All done: " + " | ".join(results)


@dataclass
class Served:
    url: str
    store: SQLiteStore
    config: webapp.WebConfig

    def client(self, token: str | None = "alice-token") -> httpx.Client:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)


def sse_events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The JSON of each `data:` line of an SSE response, as it arrives."""
    assert response.headers["content-type"].startswith("text/event-stream")
    for line in response.iter_lines():
        if line.startswith("data:"):
            yield json.loads(line[5:])


@pytest.fixture
def limits() -> UserLimits:
    return UserLimits(max_message_chars=200, messages_per_minute=50, max_concurrent_runs=2)


@pytest.fixture
def model_queue() -> ModelQueue:
    return ModelQueue(8, retry_after=2)


@pytest.fixture
def served(tmp_path: Path, limits: UserLimits, model_queue: ModelQueue) -> Iterator[Served]:
    GATE.clear()
    store = SQLiteStore(tmp_path / "sessions.db")
    agent = AsyncAgent(
        AsyncScriptedModel(web_script),
        tools=[webapp.lookup_order, webapp.refund_order],
        store=store,
    )
    config = webapp.WebConfig(
        TOKENS, owners_path=tmp_path / "owners.db", limits=limits, model_queue=model_queue
    )
    with serve(webapp.create_app(agent, config)) as url:
        yield Served(url, store, config)
    GATE.set()
    store.close()


class serve:
    """uvicorn in a thread on a free port of 127.0.0.1; the base URL."""

    def __init__(self, app: Any, **options: Any) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        # options: loop="asyncio", http="h11" for uvicorn's pure-Python stack (by default it
        # takes uvloop and httptools, which the web extra installs)
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2, **options)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        return self.url

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.socket.close()
