"""A tiny OpenAI-compatible server with canned answers and injectable faults, for tests.

Each POST path has a queue of `Canned` answers served in order (the last one repeats). Every
request is recorded (path, headers, JSON body), and the server tracks the most requests it
had in flight at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Canned", "FaultServer", "RecordedRequest", "chunk", "sse", "text_stream"]


@dataclass(frozen=True)
class Canned:
    """One answer: a status and JSON body, or (`events` set) an SSE stream."""

    status: int = 200
    body: Any = None
    events: Sequence[str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering."""
    drop_after: int | None = None
    """Close the connection abruptly after this many events (no end of the chunked body)."""


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float


def chunk(
    content: str | None = None,
    *,
    reasoning: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    finish: str | None = None,
    usage: tuple[int, int] | None = None,
) -> str:
    """One chat.completion.chunk event's data."""
    delta: dict[str, Any] = {}
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta["reasoning_content"] = reasoning
    if tool_calls is not None:
        delta["tool_calls"] = tool_calls
    data: dict[str, Any] = {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        data["choices"] = []
        data["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1]}
    return json.dumps(data)


def text_stream(*pieces: str, usage: tuple[int, int] = (5, 2)) -> list[str]:
    """Events of a plain answer streamed in pieces, with usage and [DONE]."""
    return [*(chunk(p) for p in pieces), chunk(finish="stop"), chunk(usage=usage), "[DONE]"]


def sse(events: Sequence[str], **options: Any) -> Canned:
    return Canned(events=events, **options)


class FaultServer:
    """`with FaultServer() as server: server.url` is an OpenAI base URL ending in /v1."""

    def __init__(self, models: Sequence[str] = ("test-model",)) -> None:
        self.models = list(models)
        self.routes: dict[str, list[Canned]] = {}
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def script(self, path: str, *answers: Canned) -> None:
        """Answers for POSTs to `path` (e.g. "/v1/chat/completions"), served in order."""
        self.routes[path] = list(answers)

    def posts(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path == path]

    def next_answer(self, path: str) -> Canned | None:
        with self._lock:
            queue = self.routes.get(path)
            if not queue:
                return None
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __iter__(self) -> Iterator[RecordedRequest]:
        return iter(self.requests)


def _handler_for(server: FaultServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _record(self, body: Any) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            server.requests.append(
                RecordedRequest(self.command, self.path, headers, body, time.monotonic())
            )

        def do_GET(self) -> None:
            self._record(None)
            if self.path.endswith("/models"):
                data = [{"id": m, "object": "model"} for m in server.models]
                self._json(200, {"object": "list", "data": data})
            else:
                self._json(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            self._record(json.loads(raw) if raw else None)
            answer = server.next_answer(self.path)
            if answer is None:
                self._json(404, {"error": {"message": f"no route {self.path}"}})
                return
            server.enter()
            try:
                time.sleep(answer.delay)
                if answer.events is None:
                    self._json(answer.status, answer.body, answer.headers)
                else:
                    self._stream(answer)
            finally:
                server.leave()

        def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, answer: Canned) -> None:
            self.send_response(answer.status)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for index, event in enumerate(answer.events or ()):
                if answer.drop_after is not None and index >= answer.drop_after:
                    self.close_connection = True
                    self.wfile.flush()
                    self.connection.shutdown(2)  # abrupt: the chunked body never ends
                    return
                payload = f"data: {event}\n\n".encode()
                self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    return Handler
