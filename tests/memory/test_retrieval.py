"""retrieval_tool: a MemoryIndex searched from act(), returning cited chunks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import agentkit as ak
from agentkit.errors import ConfigurationError
from agentkit.memory import MemoryIndex, retrieval_tool
from agentkit.memory.retrieval import NO_MATCH, format_hits, parse_citations
from agentkit.messages import ToolResultMessage
from agentkit.testing import AsyncScriptedModel, Responder, ScriptedEngine, ScriptedModel, ToolCall

KIWIS = "Kiwi birds cannot fly; they live in New Zealand forests and eat insects."
SQLITE = "SQLite keeps a whole database in one file; FTS5 adds full-text search to it."


@pytest.fixture
def index(tmp_path: Path) -> Iterator[MemoryIndex]:
    with (
        ak.Client(engine=ScriptedEngine([])) as client,
        MemoryIndex(tmp_path / "index.db", client.embedding.model()) as index,
    ):
        index.add("kiwis", KIWIS, source="animals.md", metadata={"topic": "animals"})
        index.add("sqlite", SQLITE, source="tech.md", metadata={"topic": "tech"})
        yield index


def search_then_cite(query: str) -> Responder:
    def reply(chat: ak.Chat, round_index: int) -> str | list[ToolCall]:
        if round_index == 0:
            return [ToolCall("search_documents", {"query": query})]
        cited = parse_citations(chat[-1].content)
        return f"Answer, from {cited[0][0]}#{cited[0][1]}" if cited else "I found nothing."

    return reply


def tool_results(result: ak.ActResult) -> list[ToolResultMessage]:
    return [m for m in result.messages if isinstance(m, ToolResultMessage)]


def test_the_model_gets_cited_chunks(index: MemoryIndex) -> None:
    tool = retrieval_tool(index, k=2)
    result = ScriptedModel(search_then_cite("Where do kiwis live?")).act("Q", [tool])
    (message,) = tool_results(result)
    assert not message.is_error
    assert message.content.startswith(f"[animals.md#0]\n{KIWIS}")
    assert parse_citations(message.content) == [("animals.md", 0), ("tech.md", 0)]
    assert result.final is not None and result.final.text == "Answer, from animals.md#0"


def test_the_filter_is_fixed_by_the_caller(index: MemoryIndex) -> None:
    tool = retrieval_tool(index, where={"topic": "tech"})
    result = ScriptedModel(search_then_cite("kiwi")).act("Q", [tool])
    assert parse_citations(tool_results(result)[0].content) == [("tech.md", 0)]


def test_nothing_found(index: MemoryIndex) -> None:
    tool = retrieval_tool(index, where={"topic": "none"})
    result = ScriptedModel(search_then_cite("kiwi")).act("Q", [tool])
    assert tool_results(result)[0].content == NO_MATCH
    assert result.final is not None and result.final.text == "I found nothing."


def test_a_bad_query_goes_back_to_the_model(index: MemoryIndex) -> None:
    result = ScriptedModel(search_then_cite("   ")).act("Q", [retrieval_tool(index)])
    message = tool_results(result)[0]
    assert message.is_error and "the query is empty" in message.content


def test_the_tool_schema(index: MemoryIndex) -> None:
    tool = retrieval_tool(index, name="docs", description="Search the manual.")
    assert (tool.name, tool.description) == ("docs", "Search the manual.")
    assert tool.parameters["required"] == ["query"]


@pytest.mark.parametrize("k", [0, 1_001, True, "4"])
def test_bad_k(index: MemoryIndex, k: object) -> None:
    with pytest.raises(ConfigurationError):
        retrieval_tool(index, k=k)  # type: ignore[arg-type]


def test_not_an_index() -> None:
    with pytest.raises(ConfigurationError, match="MemoryIndex"):
        retrieval_tool("docs.db")  # type: ignore[arg-type]


def test_citations_round_trip(index: MemoryIndex) -> None:
    hits = index.search("kiwi database", k=2)
    assert parse_citations(format_hits(hits)) == [(h.source, h.position) for h in hits]
    assert format_hits([]) == NO_MATCH


@pytest.mark.anyio
async def test_async_act_with_an_async_handle(tmp_path: Path) -> None:
    async with ak.AsyncClient(engine=ScriptedEngine([])) as client:
        handle = await client.embedding.model()
        async with MemoryIndex(tmp_path / "index.db", handle) as index:
            await index.aadd("kiwis", KIWIS, source="animals.md")
            model = AsyncScriptedModel(search_then_cite("kiwi"))
            result = await model.act("Q", [retrieval_tool(index)])
    assert parse_citations(tool_results(result)[0].content) == [("animals.md", 0)]
