"""MemoryIndex's coroutines, on asyncio and trio, with async and blocking embedding handles."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

import agentkit as ak
from agentkit.errors import ConfigurationError, DocumentNotFoundError
from agentkit.memory import MemoryIndex
from agentkit.testing import ScriptedEngine

pytestmark = pytest.mark.anyio


async def test_the_async_api_with_an_async_handle(tmp_path: Path) -> None:
    async with ak.AsyncClient(engine=ScriptedEngine([])) as client:
        handle = await client.embedding.model()
        async with MemoryIndex(tmp_path / "index.db", handle, chunk_tokens=16) as index:
            info = await index.aadd("zebras", "Zebras graze on the savanna " * 10)
            assert info.chunk_count > 1
            await index.aadd("kiwis", "Kiwi birds live in New Zealand", metadata={"n": 1})
            hits = await index.asearch("kiwi", k=2)
            assert hits[0].document_id == "kiwis" and hits[0].keyword_rank == 1
            await index.aupdate("kiwis", metadata={"n": 2})
            assert (await index.aget("kiwis")).metadata == {"n": 2}  # type: ignore[union-attr]
            await index.aupdate("kiwis", text="Penguins swim")
            assert (await index.asearch("penguins", k=1))[0].document_id == "kiwis"
            assert [d.id for d in await index.adocuments()] == ["kiwis", "zebras"]
            assert await index.adelete("zebras") is True
            assert await index.acounts() == (1, 1)
            with pytest.raises(DocumentNotFoundError):
                await index.aupdate("zebras", metadata={})
            vectors = [[1.0] * 26, [0.5] * 26]
            await index.aadd_embedded("pre", ["first part", "second part"], vectors)
            assert (await index.asearch("second", k=1)).pop().citation == "pre#1"


async def test_the_blocking_methods_refuse_an_async_handle(tmp_path: Path) -> None:
    async with ak.AsyncClient(engine=ScriptedEngine([])) as client:
        handle = await client.embedding.model()
        with MemoryIndex(tmp_path / "index.db", handle) as index:
            with pytest.raises(ConfigurationError, match="async methods"):
                index.add("doc", "text")
            await index.aadd("doc", "text")
            with pytest.raises(ConfigurationError, match="async methods"):
                index.search("text")
            assert index.get("doc") is not None  # no embedding needed


def test_the_coroutines_take_a_blocking_handle(tmp_path: Path, anyio_backend: str) -> None:
    async def main(handle: ak.EmbeddingModel) -> None:
        async with MemoryIndex(tmp_path / "index.db", handle) as index:
            await index.aadd("doc", "zebras and kiwis " * 30)
            assert (await index.asearch("kiwis", k=1))[0].document_id == "doc"

    with ak.Client(engine=ScriptedEngine([])) as client:
        anyio.run(main, client.embedding.model(), backend=anyio_backend)
