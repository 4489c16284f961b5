"""Session store speed: append one round to, and load, 200-message sessions.

    python bench/memory.py                 # SQLite and Postgres (a server started for the run)
    python bench/memory.py --sessions 500  # more samples

Targets (issue 10): appending one round (an assistant message with 3 tool calls and the 3 tool
results) to a 200-message session, p99 <= 1 ms on SQLite and <= 5 ms on Postgres; loading a
200-message session, p99 <= 5 ms on SQLite.

The workload: `--sessions` sessions each filled with 200 messages (50 rounds like the one
measured), then one timed append per session and one timed load per session, sessions visited
in a shuffled order, SQLite and Postgres interleaved session by session so both see the same
machine noise. Blocking API (`store.append`, `store.load`); Postgres also through the async API
on its own loop. Postgres runs with its defaults (fsync and synchronous_commit on); SQLite with
agentkit's (WAL, synchronous=NORMAL). The context-policy and vector-search figures of issue 10
come from bench/memory_context.py and bench/memory_search.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "servers"))

from postgres_server import find_binaries, running_postgres

from agentkit import AssistantMessage, ToolCall, ToolResultMessage, UserMessage
from agentkit.memory import PostgresStore, SessionStore, SQLiteStore
from agentkit.messages import Message

HISTORY = 200


def a_round(index: int) -> list[Message]:
    """An assistant message with three tool calls and their results (~1 KB of JSON)."""
    calls = tuple(
        ToolCall("search_orders", {"customer": f"c{index}", "page": n, "query": "late parcel"})
        for n in range(3)
    )
    results = [
        ToolResultMessage(
            tool_call_id=call.id,
            name=call.name,
            content=f'{{"orders": [{{"id": {index * 10 + n}, "status": "shipped"}}]}}',
        )
        for n, call in enumerate(calls)
    ]
    return [AssistantMessage(content="Let me look that up.", tool_calls=calls), *results]


def fill(store: SessionStore, session_id: str) -> int:
    """A question, 49 rounds and 3 more user messages: 200 messages; returns the revision."""
    question = [UserMessage(content="Where is my order?")]
    revision = store.append(session_id, question, expected_revision=0)
    for index in range(49):
        revision = store.append(session_id, a_round(index), expected_revision=revision)
    return store.append(session_id, question * 3, expected_revision=revision)


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {p50 * 1e3:7.3f} ms   p99 {p99 * 1e3:7.3f} ms   max {ordered[-1] * 1e3:7.3f} ms"


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=300)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        stores: dict[str, SessionStore] = {"sqlite": SQLiteStore(Path(folder) / "bench.db")}
        server = running_postgres() if find_binaries() else None
        with server if server is not None else contextlib.nullcontext() as pg:
            if pg is not None:
                stores["postgres"] = PostgresStore(pg.dsn(), max_size=2)
            else:
                print("no Postgres binaries: Postgres skipped")
            ids = [f"session-{i}" for i in range(args.sessions)]
            revisions: dict[tuple[str, str], int] = {}
            started = time.perf_counter()
            for session_id in ids:
                for name, store in stores.items():
                    revisions[name, session_id] = fill(store, session_id)
            print(
                f"filled {len(ids)} sessions x {HISTORY} messages per store in "
                f"{time.perf_counter() - started:.1f} s"
            )

            appends: dict[str, list[float]] = {name: [] for name in stores}
            loads: dict[str, list[float]] = {name: [] for name in stores}
            random.Random(7).shuffle(ids)
            new_round = a_round(10_000)
            for session_id in ids:
                for name, store in stores.items():
                    revision = revisions[name, session_id]
                    append = functools.partial(
                        store.append, session_id, new_round, expected_revision=revision
                    )
                    appends[name].append(timed(append))
                    loads[name].append(timed(functools.partial(store.load, session_id)))
            assert all(len(s.load(ids[0]).messages) == HISTORY + 4 for s in stores.values())

            async_appends: list[float] = []
            if "postgres" in stores:
                async_store = stores["postgres"]

                async def async_run() -> None:
                    for session_id in ids:
                        revision = revisions["postgres", session_id] + 1
                        begun = time.perf_counter()
                        await async_store.aappend(session_id, new_round, expected_revision=revision)
                        async_appends.append(time.perf_counter() - begun)
                    await async_store.aclose()

                asyncio.run(async_run())

            print(f"\nappend one round (4 messages) to a {HISTORY}-message session, blocking API:")
            for name, samples in appends.items():
                target = 1.0 if name == "sqlite" else 5.0
                print(f"  {name:9} {percentiles(samples)}   (target p99 <= {target:g} ms)")
            if async_appends:
                print(f"  {'pg async':9} {percentiles(async_appends)}")
            print(f"\nload a {HISTORY + 4}-message session, blocking API:")
            for name, samples in loads.items():
                target = "   (target p99 <= 5 ms)" if name == "sqlite" else ""
                print(f"  {name:9} {percentiles(samples)}{target}")
            for store in stores.values():
                store.close()


if __name__ == "__main__":
    main()
