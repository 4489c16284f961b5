"""Load on the example web app: N concurrent sessions × T turns over HTTP, beside act() alone.

    python bench/web_load.py                 # 200 sessions × 5 turns (the issue's figures)
    python bench/web_load.py --sessions 20 --turns 3

The app (examples/web/webapp.py, scripted model, SQLiteStore) runs in a child process under
uvicorn on 127.0.0.1; one user per session, each with its own bearer token. Every turn is a
POST whose AG-UI stream is read to RUN_FINISHED: a tool round, then an answer that repeats the
message it answers. Checked: no errors, no cross-talk (each reply names its own session and
turn), nothing lost or doubled (each session's store holds exactly its 5 × 4 messages, in
order). Then the same load through `AsyncAgent.act()` alone (same model, same kind of store) in
this process, and both once more one turn at a time, where the difference is the framework's
cost per request (HTTP, auth, limits, AG-UI encoding, SSE) rather than waiting for a core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
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


def serve(port: int, directory: Path, users: int) -> None:
    """The child process: the example app under uvicorn."""
    import uvicorn
    import webapp

    from agentkit.web import ModelQueue, UserLimits

    config = webapp.WebConfig(
        {f"token-{n}": f"user-{n}" for n in range(users)},
        owners_path=directory / "owners.db",
        limits=UserLimits(max_message_chars=1000, messages_per_minute=1000),
        model_queue=ModelQueue(users * 2),
    )
    app = webapp.create_app(new_agent(directory / "web.db"), config)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", backlog=4096)


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
        self, method: str, path: str, token: str, body: Any = None
    ) -> tuple[int, bytes]:
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
            await self.reader.readexactly(2)
        await self.reader.readexactly(2)
        return status, b"".join(chunks)

    def close(self) -> None:
        self.writer.close()


async def http_load(
    port: int, sessions: int, turns: int, offset: int
) -> tuple[list[float], dict[str, Any]]:
    """Each session is its own client on its own connection, as browsers are."""
    latencies: list[float] = []
    errors: list[str] = []
    crosstalk: list[str] = []
    ids: dict[int, str] = {}

    async def converse(n: int) -> None:
        token = f"token-{offset + n}"
        try:
            connection = await Connection.open(port)
        except OSError as error:
            errors.append(f"session {n}: {error!r}")
            return
        try:
            status, body = await connection.request("POST", "/api/sessions", token)
            if status != 201:
                errors.append(f"session {n}: HTTP {status}")
                return
            session = ids[n] = json.loads(body)["id"]
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
            connection.close()

    await asyncio.gather(*(converse(n) for n in range(sessions)))
    return latencies, {"errors": errors, "crosstalk": crosstalk, "ids": ids}


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


async def serially(port: int, args: argparse.Namespace) -> tuple[list[float], dict[str, Any]]:
    """The same sessions of `args.turns` turns, one at a time: no wait for a free core."""
    latencies: list[float] = []
    errors: list[str] = []
    for k in range(args.serial_sessions):
        more, outcome = await http_load(port, 1, args.turns, args.sessions + k)
        latencies += more
        errors += outcome["errors"] + outcome["crosstalk"]
    return latencies, {"errors": errors}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--serial-sessions", type=int, default=40)
    parser.add_argument(
        "--serve", nargs=3, metavar=("PORT", "DIR", "USERS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), Path(args.serve[1]), int(args.serve[2]))
        return

    directory = Path(tempfile.mkdtemp(prefix="web_load_"))
    port = free_port()
    users = args.sessions + args.serial_sessions
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), str(directory), str(users)]
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the app did not start"
                time.sleep(0.1)
        print(
            f"{args.sessions} sessions x {args.turns} turns, load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )

        started = time.perf_counter()
        latencies, outcome = asyncio.run(http_load(port, args.sessions, args.turns, 0))
        http_wall = time.perf_counter() - started
        lost = check_store(directory / "web.db", outcome["ids"], args.turns, 0)
        agent = new_agent(directory / "act.db")
        started = time.perf_counter()
        act_latencies = asyncio.run(act_load(agent, args.sessions, args.turns, "act-"))
        act_wall = time.perf_counter() - started

        server_cpu = cpu_seconds(child.pid)
        client_cpu = time.process_time()
        serial, serial_outcome = asyncio.run(serially(port, args))
        server_cpu = cpu_seconds(child.pid) - server_cpu
        client_cpu = time.process_time() - client_cpu
        act_cpu = time.process_time()
        serial_act = asyncio.run(act_serially(agent, args))
        act_cpu = time.process_time() - act_cpu
    finally:
        child.terminate()
        child.wait(10)

    turns = args.sessions * args.turns
    print(
        f"errors {len(outcome['errors']) + len(serial_outcome['errors'])}, "
        f"cross-talk {len(outcome['crosstalk'])}, lost or doubled (sessions) {len(lost)}"
    )
    for problem in (outcome["errors"] + outcome["crosstalk"] + lost)[:10]:
        print("  ", problem)
    print(f"concurrent  HTTP   {summary(latencies)}  {turns / http_wall:6.0f} turns/s")
    print(f"concurrent  act()  {summary(act_latencies)}  {turns / act_wall:6.0f} turns/s")
    print(f"one at a time HTTP {summary(serial)}")
    print(f"one at a time act() {summary(serial_act)}")
    added50 = (statistics.median(serial) - statistics.median(serial_act)) * 1000
    added99 = (percentile(serial, 0.99) - percentile(serial_act, 0.99)) * 1000
    print(
        f"framework added (one at a time): p50 {added50:.1f} ms, p99 {added99:.1f} ms "
        "(target p99 <= 20 ms)"
    )
    per_turn = 1000 / (args.serial_sessions * args.turns)
    print(
        f"CPU per turn (one at a time): app process {server_cpu * per_turn:.1f} ms, "
        f"HTTP client {client_cpu * per_turn:.1f} ms, act() alone {act_cpu * per_turn:.1f} ms"
    )


if __name__ == "__main__":
    main()
