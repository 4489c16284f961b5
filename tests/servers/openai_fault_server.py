"""A tiny OpenAI-compatible server with canned answers and injectable faults, for tests.

Each POST path has a queue of `Canned` answers served in order (the last one repeats). Every
request is recorded (path, headers, JSON body), and the server tracks the most requests it
had in flight at once.

Faults a hostile or broken server commits: a connection dropped mid-stream (`drop_after`),
bytes dripped one at a time (`drip`), a connection held open after the answer (`hold_open`),
an endless flood of one event (`flood`), any bytes at all as the body (`raw`, e.g. a
`gzip_bomb` with a `Content-Encoding: gzip` header).
"""

from __future__ import annotations

import functools
import json
import sys
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "Canned",
    "FaultServer",
    "RecordedRequest",
    "chunk",
    "gzip_bomb",
    "gzipped",
    "sse",
    "text_stream",
]


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
    raw: bytes | None = None
    """Send exactly these bytes as the (chunked) body, instead of `events` or `body`."""
    content_type: str | None = None
    """The Content-Type (default: text/event-stream for events and raw, else JSON)."""
    drip: float = 0.0
    """Send the body one byte at a time, this many seconds apart."""
    hold_open: float = 0.0
    """After the body, keep the connection open this long before ending the chunked body."""
    flood: str | None = None
    """After the events, send this event over and over until the client goes away."""


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


def gzipped(data: bytes) -> bytes:
    """`data` as a gzip body (send it with `headers={"Content-Encoding": "gzip"}`)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    return compressor.compress(data) + compressor.flush()


@functools.lru_cache(maxsize=4)
def gzip_bomb(megabytes: int, prefix: bytes = b'data: {"choices": "', fill: bytes = b"a") -> bytes:
    """A gzip body of a few hundred KB that expands to `prefix` and `megabytes` MiB of `fill`
    (by default one SSE line that never ends)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = fill * ((1 << 20) // len(fill))
    parts = [compressor.compress(prefix)]
    parts += [compressor.compress(block) for _ in range(megabytes)]
    parts.append(compressor.flush())
    return b"".join(parts)


class FaultServer:
    """`with FaultServer() as server: server.url` is an OpenAI base URL ending in /v1."""

    def __init__(self, models: Sequence[str] = ("test-model",)) -> None:
        self.models = list(models)
        self.routes: dict[str, list[Canned]] = {}
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.stopping = threading.Event()
        """Set at exit: held-open, dripping and flooding answers end."""
        self._lock = threading.Lock()
        self._httpd = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

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
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __iter__(self) -> Iterator[RecordedRequest]:
        return iter(self.requests)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer is expected here; anything else is printed."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


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
                if answer.events is None and answer.raw is None:
                    self._json(answer.status, answer.body, answer.headers)
                else:
                    self._stream(answer)
            except OSError:
                self.close_connection = True  # the client went away: nothing more to send
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
            self.send_header("content-type", answer.content_type or "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if answer.raw is not None:
                self._send_bytes(answer.raw, answer.drip)
            for index, event in enumerate(answer.events or ()):
                if answer.drop_after is not None and index >= answer.drop_after:
                    self.close_connection = True
                    self.wfile.flush()
                    self.connection.shutdown(2)  # abrupt: the chunked body never ends
                    return
                self._send_bytes(f"data: {event}\n\n".encode(), answer.drip)
            if answer.flood is not None:
                payload = f"data: {answer.flood}\n\n".encode() * 64
                while not server.stopping.is_set():
                    self._send_bytes(payload, 0.0)
            if answer.hold_open:
                server.stopping.wait(answer.hold_open)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _send_bytes(self, payload: bytes, drip: float) -> None:
            if drip:
                for index in range(len(payload)):
                    if server.stopping.wait(drip):
                        raise ConnectionAbortedError("the server is stopping")
                    self._chunk(payload[index : index + 1])
            else:
                for start in range(0, len(payload), 1 << 16):
                    self._chunk(payload[start : start + (1 << 16)])

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler
