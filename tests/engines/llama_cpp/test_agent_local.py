"""The Agent runtime on the real local engine: many sessions on one loaded instance."""

from __future__ import annotations

from pathlib import Path

import anyio

import agentkit as ak
from agentkit.memory import SQLiteStore
from agentkit.messages import AssistantMessage, UserMessage


def test_twenty_concurrent_sessions_all_complete_on_one_instance(
    model: ak.LLM, tmp_path: Path
) -> None:
    store = SQLiteStore(tmp_path / "sessions.db")
    agent = ak.AsyncAgent(
        model.async_handle, store=store, instructions="Answer in one short sentence.",
        config={"temperature": 0, "max_tokens": 8},
    )  # fmt: skip
    finished: list[int] = []

    async def one(n: int) -> None:
        result = await agent.act(f"user-{n}", f"Say hello to user number {n}.")
        assert result.stop_reason == "answered"
        finished.append(n)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for n in range(20):
                group.start_soon(one, n)

    anyio.run(main)
    assert sorted(finished) == list(range(20))
    for n in range(20):
        messages = store.load(f"user-{n}").messages
        assert isinstance(messages[0], UserMessage)
        assert messages[0].content == f"Say hello to user number {n}."
        assert isinstance(messages[1], AssistantMessage) and messages[1].content
    stats = model.engine.stats(model.identifier)  # type: ignore[attr-defined]
    assert stats.predictions >= 20
