"""Memory for agents: session stores (in memory, SQLite, Postgres), context-window policies and
hybrid vector memory.

    from agentkit.memory import SQLiteStore

    store = SQLiteStore("chats.db")
    session = store.load("session-42", missing_ok=True)
    store.append("session-42", round_messages, expected_revision=session.revision)

`PostgresStore` needs `pip install "agentkit[postgres]"`; it is imported on first use.
`MemoryIndex` (hybrid vector + keyword search, `retrieval_tool` for act()) needs
`pip install "agentkit[memory]"`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from agentkit.errors import ContextOverflowError

from .context import (
    Block,
    ContextPolicy,
    ElideToolResults,
    KeepLastTurns,
    Pin,
    Pipeline,
    TokenBudget,
)
from .context_summary import InMemorySummaries, SessionSummaries, Summarize, Summary, SummaryStore
from .context_tokens import ContextModel, TokenCounter
from .in_memory import InMemoryStore
from .sessions import Session, SessionInfo, SessionStore
from .sqlite_store import SQLiteStore

if TYPE_CHECKING:
    from .chunking import Chunk, chunk_text
    from .index import DocumentInfo, Hit, MemoryIndex
    from .postgres_store import PostgresStore
    from .retrieval import retrieval_tool

__all__ = [
    "Block",
    "Chunk",
    "ContextModel",
    "ContextOverflowError",
    "ContextPolicy",
    "DocumentInfo",
    "ElideToolResults",
    "Hit",
    "InMemoryStore",
    "InMemorySummaries",
    "KeepLastTurns",
    "MemoryIndex",
    "Pin",
    "Pipeline",
    "PostgresStore",
    "SQLiteStore",
    "Session",
    "SessionInfo",
    "SessionStore",
    "SessionSummaries",
    "Summarize",
    "Summary",
    "SummaryStore",
    "TokenBudget",
    "TokenCounter",
    "chunk_text",
    "retrieval_tool",
]

_INDEX_EXPORTS = {
    "Chunk": "chunking",
    "chunk_text": "chunking",
    "DocumentInfo": "index",
    "Hit": "index",
    "MemoryIndex": "index",
    "retrieval_tool": "retrieval",
}
"""Hybrid vector memory, imported on first use (`import agentkit` stays light)."""


def __getattr__(name: str) -> Any:
    if name == "PostgresStore":  # psycopg is an optional dependency
        from .postgres_store import PostgresStore

        return PostgresStore
    if name in _INDEX_EXPORTS:
        module = importlib.import_module(f".{_INDEX_EXPORTS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
