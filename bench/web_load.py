"""Load on the example web app: N concurrent sessions × T turns over HTTP, beside act() alone.

    python bench/web_load.py                 # 200 sessions × 5 turns (the issue's figures)
    python bench/web_load.py --sessions 20 --turns 3
    python bench/web_load.py --local 20      # 20 sessions at once on the local default model

The app (examples/web/webapp.py, scripted model, SQLiteStore) runs in a child process under
uvicorn on 127.0.0.1; one user per session, each with its own bearer token. Every turn is a
POST whose AG-UI stream is read to RUN_FINISHED: a tool round, then an answer that repeats the
message it answers. Checked: no errors, no cross-talk (each reply names its own session and
turn), nothing lost or doubled (each session's store holds exactly its 5 × 4 messages, in
order). Then the same load through `AsyncAgent.act()` alone (same model, same kind of store) in
this process, and both once more one turn at a time, where the difference is the framework's
cost per request (HTTP, auth, limits, AG-UI encoding, SSE) rather than waiting for a core.
Beside each latency: the CPU time a turn costs the app process (from /proc) and act() alone
(this process), since with every core busy the all-at-once latency is made of that.

`--http h11 --loop asyncio` runs the app on uvicorn's pure-Python stack instead of httptools
and uvloop (what uvicorn picks by default when they are installed, as the web extra does).
`--floor` puts the same load on a bare ASGI app that sends the same SSE chunks with no
framework, store or agent: uvicorn's own share of a turn, below which the app cannot go.

`--local N`: the app on the local engine with the default model, N sessions sending one
message each at once: how many complete, and whether the loaded instance generated the answers
one at a time (no overlap between one answer's first and last token and another's) and in the
order the requests arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib.util
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

import agentkit as ak
from agentkit.agent import AsyncAgent
from agentkit.memory import SQLiteStore
from agentkit.messages import AssistantMessage, ToolResultMessage, UserMessage
from agentkit.testing import AsyncScriptedModel, ToolCall

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples" / "web"))


def lookup(order: str) -> str:
    """Look up an order."""
    return f"order {order}: shipped"


def responder(chat: ak.Chat, index: int) -> Any:
    """A tool round, then an answer naming the message it answers."""
    text = next(m.content for m in reversed(list(chat)) if isinstance(m, UserMessage))
    if isinstance(chat[-1], UserMessage):
        return [ToolCall("lookup", {"order": text})]
    return f"answer to {text}"


def new_agent(db: Path) -> AsyncAgent:
    return AsyncAgent(AsyncScriptedModel(responder), tools=[lookup], store=SQLiteStore(db))


def serve(port: int, directory: Path, users: int, loop: str, http: str) -> None:
    """The child process: the example app under uvicorn."""
    import webapp

    from agentkit.web import ModelQueue, UserLimits

    config = webapp.WebConfig(
        {f"token-{n}": f"user-{n}" for n in range(users)},
        owners_path=directory / "owners.db",
        limits=UserLimits(max_message_chars=1000, messages_per_minute=1000),
        model_queue=ModelQueue(users * 2),
    )
    _run_uvicorn(webapp.create_app(new_agent(directory / "web.db"), config), port, loop, http)


def _run_uvicorn(app: Any, port: int, loop: str, http: str) -> None:
    """Serve `app` as every child does, so the app and the --floor app see the same server."""
    import uvicorn

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        backlog=4096,
        loop=loop,
        http=http,
    )


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The HTTP floor: an ASGI app with no framework, auth, store or agent that answers a
    turn with the same SSE chunks the example app sends (6, with their JSON), so what a turn
    costs it is uvicorn's share alone."""
    if scope["type"] != "http":
        return  # no lifespan events to answer (uvicorn's "auto" lifespan tolerates that)
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/api/sessions":
        created = json.dumps({"id": f"bare-{next(BARE_IDS)}"}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(created)),
        ]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": created})
        return
    text = json.loads(body)["message"]
    events = [
        [{"type": "RUN_STARTED", "threadId": "t", "runId": "r"}],
        [{"type": "TOOL_CALL_START", "toolCallId": "c", "toolCallName": "lookup"},
         {"type": "TOOL_CALL_ARGS", "toolCallId": "c", "delta": json.dumps({"order": text})},
         {"type": "TOOL_CALL_END", "toolCallId": "c"}],
        [{"type": "TOOL_CALL_RESULT", "messageId": "m", "toolCallId": "c",
          "content": f"order {text}: shipped", "role": "tool"}],
        [{"type": "TEXT_MESSAGE_START", "messageId": "t1", "role": "assistant"},
         {"type": "TEXT_MESSAGE_CONTENT", "messageId": "t1", "delta": f"answer to {text}"}],
        [{"type": "TEXT_MESSAGE_END", "messageId": "t1"}],
        [{"type": "RUN_FINISHED", "threadId": "t", "runId": "r", "outcome": {"type": "success"}}],
    ]  # fmt: skip
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for chunk in events:
        data = "".join(f"data: {json.dumps(event)}\n\n" for event in chunk).encode()
        await send({"type": "http.response.body", "body": data, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


BARE_IDS = itertools.count()


def serve_bare(port: int, loop: str, http: str) -> None:
    """The child process for --floor: `bare_app` under uvicorn."""
    _run_uvicorn(bare_app, port, loop, http)


def serve_local(port: int, directory: Path, users: int) -> None:
    """The child process for --local: the example app on the local default model."""
    import uvicorn
    import webapp

    async def run() -> None:
        async with ak.AsyncClient() as client:
            model = await client.llm.model()
            agent = AsyncAgent(
                model,
                store=SQLiteStore(directory / "local.db"),
                config=ak.PredictionConfig(max_tokens=24, temperature=0.0),
            )
            config = webapp.WebConfig(
                {f"token-{n}": f"user-{n}" for n in range(users)},
                owners_path=directory / "owners.db",
            )
            app = webapp.create_app(agent, config)
            server = uvicorn.Server(
                uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
            )
            await server.serve()

    asyncio.run(run())


async def local_load(port: int, sessions: int) -> dict[str, Any]:
    """`sessions` sessions at once, one turn each, on the local engine: all complete, and in
    which order their answers were generated (one loaded instance: one at a time)."""
    runs: list[dict[str, Any]] = []

    async def converse(n: int) -> None:
        token = f"token-{n}"
        connection = await Connection.open(port)
        try:
            status, body = await connection.request("POST", "/api/sessions", token)
            session = json.loads(body)["id"]
            stamps: list[tuple[float, bytes]] = []
            sent = time.perf_counter()
            status, body = await connection.request(
                "POST",
                f"/api/sessions/{session}/messages",
                token,
                {"message": f"Say hello to visitor number {n}."},
                stamps,
            )
            text = [t for t, chunk in stamps if b"TEXT_MESSAGE_CONTENT" in chunk]
            runs.append(
                {
                    "ok": status == 200 and b'"RUN_FINISHED"' in body,
                    "sent": sent,
                    "started": stamps[0][0] if stamps else sent,
                    "first": text[0] if text else None,
                    "last": text[-1] if text else None,
                    "done": time.perf_counter(),
                }
            )
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(converse(n) for n in range(sessions)))
    generating = sorted((r["first"], r["last"]) for r in runs if r["first"] is not None)
    overlaps = sum(1 for a, b in itertools.pairwise(generating) if b[0] < a[1])
    by_start = [r["started"] for r in sorted(runs, key=lambda r: r["first"] or 0)]
    inversions = sum(1 for a, b in itertools.pairwise(by_start) if b < a)
    return {
        "completed": sum(r["ok"] for r in runs),
        "wall": time.perf_counter() - started,
        "latencies": [r["done"] - r["sent"] for r in runs],
        "overlaps": overlaps,
        "inversions": inversions,
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values: list[float]) -> str:
    return (
        f"p50 {statistics.median(values) * 1000:6.1f} ms  "
        f"p99 {percentile(values, 0.99) * 1000:6.1f} ms"
    )


class Connection:
    """A minimal HTTP/1.1 keep-alive client: httpx's own per-request cost (~9 ms of CPU a
    streamed turn here) would make this process, not the app, the bottleneck."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def request(
        self,
        method: str,
        path: str,
        token: str,
        body: Any = None,
        stamps: list[tuple[float, bytes]] | None = None,
    ) -> tuple[int, bytes]:
        """Status and body; `stamps` gets (arrival time, chunk) for each chunk streamed."""
        payload = b"" if body is None else json.dumps(body).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        self.writer.write(head.encode() + payload)
        status = int((await self.reader.readline()).split()[1])
        headers = {}
        while (line := await self.reader.readline()) != b"\r\n":
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            return status, await self.reader.readexactly(int(headers["content-length"]))
        chunks = []  # chunked transfer encoding, as a streamed response comes
        while size := int((await self.reader.readline()).split(b";")[0], 16):
            chunks.append(await self.reader.readexactly(size))
            if stamps is not None:
                stamps.append((time.perf_counter(), chunks[-1]))
            await self.reader.readexactly(2)
        await self.reader.readexactly(2)
        return status, b"".join(chunks)

    def close(self) -> None:
        self.writer.close()


async def http_load(
    port: int, sessions: int, turns: int, offset: int, app_pid: int | None = None
) -> tuple[list[float], dict[str, Any]]:
    """Each session is its own client on its own connection, as browsers are.

    The turns start once every session is created; `cpu` in the outcome is the CPU time the
    app process (`app_pid`) and this process spent from then on.
    """
    latencies: list[float] = []
    errors: list[str] = []
    crosstalk: list[str] = []
    ids: dict[int, str] = {}
    created = 0
    go = asyncio.Event()
    cpu: dict[str, float] = {}

    def ready() -> None:
        nonlocal created
        created += 1
        if created == sessions:
            if app_pid is not None:
                cpu["app"] = -cpu_seconds(app_pid)
            cpu["client"] = -time.process_time()
            go.set()

    async def converse(n: int) -> None:
        token = f"token-{offset + n}"
        try:
            connection = await Connection.open(port)
        except OSError as error:
            errors.append(f"session {n}: {error!r}")
            ready()
            return
        try:
            status, body = await connection.request("POST", "/api/sessions", token)
            if status != 201:
                errors.append(f"session {n}: HTTP {status}")
                return
            session = ids[n] = json.loads(body)["id"]
            ready()
            await go.wait()
            for index in range(turns):
                message = f"S{n}-T{index}"
                started = time.perf_counter()
                status, body = await connection.request(
                    "POST", f"/api/sessions/{session}/messages", token, {"message": message}
                )
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    errors.append(f"{message}: HTTP {status}")
                    return
                events = [
                    json.loads(line[5:])
                    for line in body.decode().splitlines()
                    if line.startswith("data:")
                ]
                text = "".join(e["delta"] for e in events if e["type"] == "TEXT_MESSAGE_CONTENT")
                if events[-1]["type"] != "RUN_FINISHED":
                    errors.append(f"{message}: {events[-1]}")
                elif text != f"answer to {message}":
                    crosstalk.append(f"{message} got {text!r}")
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as error:
            errors.append(f"session {n}: {error!r}")
        finally:
            if n not in ids:
                ready()  # failed before its session existed: the others need not wait for it
            connection.close()

    await asyncio.gather(*(converse(n) for n in range(sessions)))
    if app_pid is not None and "app" in cpu:
        cpu["app"] += cpu_seconds(app_pid)
    if "client" in cpu:
        cpu["client"] += time.process_time()
    return latencies, {"errors": errors, "crosstalk": crosstalk, "ids": ids, "cpu": cpu}


async def act_load(agent: AsyncAgent, sessions: int, turns: int, prefix: str) -> list[float]:
    latencies: list[float] = []

    async def converse(n: int) -> None:
        for turn in range(turns):
            started = time.perf_counter()
            result = await agent.act(f"{prefix}{n}", f"S{n}-T{turn}")
            latencies.append(time.perf_counter() - started)
            assert result.final is not None and result.final.text == f"answer to S{n}-T{turn}"

    await asyncio.gather(*(converse(n) for n in range(sessions)))
    return latencies


async def serially(
    port: int, args: argparse.Namespace, app_pid: int
) -> tuple[list[float], dict[str, Any]]:
    """The same sessions of `args.turns` turns, one at a time: no wait for a free core."""
    latencies: list[float] = []
    errors: list[str] = []
    cpu = {"app": 0.0, "client": 0.0}
    for k in range(args.serial_sessions):
        more, outcome = await http_load(port, 1, args.turns, args.sessions + k, app_pid)
        latencies += more
        errors += outcome["errors"] + outcome["crosstalk"]
        for name in cpu:
            cpu[name] += outcome["cpu"].get(name, 0.0)
    return latencies, {"errors": errors, "cpu": cpu}


async def act_serially(agent: AsyncAgent, args: argparse.Namespace) -> list[float]:
    latencies: list[float] = []
    for k in range(args.serial_sessions):
        latencies += await act_load(agent, 1, args.turns, f"serial-{k}-")
    return latencies


def check_store(db: Path, ids: dict[int, str], turns: int, offset: int) -> list[str]:
    """Each session holds exactly what was sent and answered, in order."""
    problems = []
    store = SQLiteStore(db)
    for n, session in ids.items():
        messages = store.load(f"user-{offset + n}/{session}").messages
        expected: list[tuple[type, str]] = []
        for turn in range(turns):
            message = f"S{n}-T{turn}"
            expected += [
                (UserMessage, message),
                (AssistantMessage, ""),
                (ToolResultMessage, f"order {message}: shipped"),
                (AssistantMessage, f"answer to {message}"),
            ]
        got = [(type(m), m.content) for m in messages]
        if got != expected:
            problems.append(f"session {n}: {len(got)} messages, expected {len(expected)}")
    store.close()
    return problems


def cpu_seconds(pid: int) -> float:
    """A process's CPU time (user + system) from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_serving(
    child: subprocess.Popen[bytes], probe: Callable[[], object], seconds: float, what: str
) -> None:
    """Poll `probe` (an HTTP request to the child) until it connects; fail if the child dies."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            probe()
            return
        except httpx.TransportError:
            if time.monotonic() > deadline or child.poll() is not None:
                raise SystemExit(f"{what} did not start") from None
            time.sleep(0.1)


def start_app(mode: str, directory: Path, users: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    command = [sys.executable, __file__, mode, str(port), str(directory), str(users)]
    child = subprocess.Popen(command)
    try:
        wait_until_serving(
            child, lambda: httpx.get(f"http://127.0.0.1:{port}/", timeout=1), 120, "the app"
        )
    except SystemExit:
        child.kill()
        raise
    return child, port


def run_local(sessions: int) -> None:
    directory = Path(tempfile.mkdtemp(prefix="web_load_local_"))
    child, port = start_app("--serve-local", directory, sessions)
    try:
        print(
            f"{sessions} sessions at once on the local engine (default model, 24 tokens each), "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        outcome = asyncio.run(local_load(port, sessions))
    finally:
        child.terminate()
        child.wait(30)
    print(
        f"completed {outcome['completed']}/{sessions} in {outcome['wall']:.1f} s; "
        f"latency {summary(outcome['latencies'])}"
    )
    print(
        f"answers generated one at a time: {outcome['overlaps']} overlaps; "
        f"out of arrival order: {outcome['inversions']}"
    )


def run_floor(sessions: int, turns: int, loop: str, http: str) -> None:
    """The all-at-once load on `bare_app`: what uvicorn alone costs a turn."""
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve-bare", str(port), "--loop", loop, "--http", http]
    )
    try:
        probe = functools.partial(httpx.post, f"http://127.0.0.1:{port}/api/sessions", timeout=1)
        wait_until_serving(child, probe, 30, "the bare app")
        print(
            f"the HTTP floor: {sessions} sessions x {turns} turns at once on a bare ASGI app, "
            f"uvicorn with {http} and {loop}; load average {os.getloadavg()[0]:.1f} "
            f"on {os.cpu_count()} cores"
        )
        latencies, outcome = asyncio.run(http_load(port, sessions, turns, 0, app_pid=child.pid))
    finally:
        child.terminate()
        child.wait(10)
    problems = outcome["errors"] + outcome["crosstalk"]
    print(
        f"errors {len(problems)}; {summary(latencies)}; CPU per turn: app "
        f"{per_turn(outcome['cpu']['app'], len(latencies))} "
        f"(HTTP client {per_turn(outcome['cpu']['client'], len(latencies))})"
    )


def resolved_stack(loop: str, http: str) -> tuple[str, str]:
    """What uvicorn's "auto" picks here: uvloop and httptools when they are installed."""
    if loop == "auto":
        loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    if http == "auto":
        http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return loop, http


def per_turn(seconds: float, turns: int) -> str:
    return f"{seconds * 1000 / max(turns, 1):4.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--serial-sessions", type=int, default=40)
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    parser.add_argument("--http", choices=["auto", "h11", "httptools"], default="auto")
    parser.add_argument(
        "--local",
        type=int,
        metavar="N",
        default=0,
        help="instead: N sessions at once on the local engine with the default model",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="instead: the same HTTP load on a bare ASGI app (no framework, store or agent)",
    )
    parser.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-local", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    loop, http = resolved_stack(args.loop, args.http)
    if args.serve:
        serve(int(args.serve[0]), Path(args.serve[1]), int(args.serve[2]), loop, http)
        return
    if args.serve_bare:
        serve_bare(args.serve_bare, loop, http)
        return
    if args.floor:
        run_floor(args.sessions, args.turns, loop, http)
        return
    if args.serve_local:
        serve_local(int(args.serve_local[0]), Path(args.serve_local[1]), int(args.serve_local[2]))
        return
    if args.local:
        run_local(args.local)
        return

    directory = Path(tempfile.mkdtemp(prefix="web_load_"))
    port = free_port()
    users = args.sessions + args.serial_sessions
    command = [sys.executable, __file__, "--serve", str(port), str(directory), str(users)]
    child = subprocess.Popen([*command, "--loop", loop, "--http", http])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(child, lambda: httpx.get(url + "/", timeout=1), 30, "the app")
        print(
            f"{args.sessions} sessions x {args.turns} turns; the app on uvicorn with {http} and "
            f"{loop}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )

        started = time.perf_counter()
        latencies, outcome = asyncio.run(
            http_load(port, args.sessions, args.turns, 0, app_pid=child.pid)
        )
        http_wall = time.perf_counter() - started
        lost = check_store(directory / "web.db", outcome["ids"], args.turns, 0)
        agent = new_agent(directory / "act.db")
        act_cpu = time.process_time()
        started = time.perf_counter()
        act_latencies = asyncio.run(act_load(agent, args.sessions, args.turns, "act-"))
        act_wall = time.perf_counter() - started
        act_cpu = time.process_time() - act_cpu

        serial, serial_outcome = asyncio.run(serially(port, args, child.pid))
        serial_act_cpu = time.process_time()
        serial_act = asyncio.run(act_serially(agent, args))
        serial_act_cpu = time.process_time() - serial_act_cpu
    finally:
        child.terminate()
        child.wait(10)

    turns = args.sessions * args.turns
    serial_turns = args.serial_sessions * args.turns
    cpu, serial_cpu = outcome["cpu"], serial_outcome["cpu"]
    print(
        f"errors {len(outcome['errors']) + len(serial_outcome['errors'])}, "
        f"cross-talk {len(outcome['crosstalk'])}, lost or doubled (sessions) {len(lost)}"
    )
    for problem in (outcome["errors"] + outcome["crosstalk"] + lost)[:10]:
        print("  ", problem)
    print("                      wall latency              turns/s  CPU per turn")
    print(
        f"all at once    HTTP   {summary(latencies)}  {turns / http_wall:6.0f}   "
        f"app {per_turn(cpu['app'], turns)} (HTTP client {per_turn(cpu['client'], turns)})"
    )
    print(
        f"all at once    act()  {summary(act_latencies)}  {turns / act_wall:6.0f}   "
        f"{per_turn(act_cpu, turns)}"
    )
    print(
        f"one at a time  HTTP   {summary(serial)}           "
        f"app {per_turn(serial_cpu['app'], serial_turns)} "
        f"(HTTP client {per_turn(serial_cpu['client'], serial_turns)})"
    )
    print(
        f"one at a time  act()  {summary(serial_act)}           "
        f"{per_turn(serial_act_cpu, serial_turns)}"
    )
    for name, web, alone in (
        ("one at a time", serial, serial_act),
        ("all at once", latencies, act_latencies),
    ):
        added50 = (statistics.median(web) - statistics.median(alone)) * 1000
        added99 = (percentile(web, 0.99) - percentile(alone, 0.99)) * 1000
        print(
            f"framework added ({name}): p50 {added50:.1f} ms, p99 {added99:.1f} ms "
            "(target p99 <= 20 ms)"
        )
    extra = (cpu["app"] - act_cpu) * 1000 / turns
    print(
        f"all at once the app spends {extra:.2f} ms of CPU a turn more than act() alone: with "
        f"{args.sessions} turns waiting for its core, about {extra * args.sessions:.0f} ms more "
        f"each; <= 20 ms would need <= {20 / args.sessions:.2f} ms"
    )


if __name__ == "__main__":
    main()
