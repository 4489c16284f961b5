"""Memory for agents: session stores (in memory, SQLite, Postgres), context-window policies and
hybrid vector memory.

    from agentkit.memory import SQLiteStore

    store = SQLiteStore("chats.db")
    session = store.load("session-42", missing_ok=True)
    store.append("session-42", round_messages, expected_revision=session.revision)

`PostgresStore` needs `pip install "agentkit[postgres]"`; it is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .in_memory import InMemoryStore
from .sessions import Session, SessionInfo, SessionStore
from .sqlite_store import SQLiteStore

if TYPE_CHECKING:
    from .postgres_store import PostgresStore

__all__ = [
    "InMemoryStore",
    "PostgresStore",
    "SQLiteStore",
    "Session",
    "SessionInfo",
    "SessionStore",
]


def __getattr__(name: str) -> Any:
    if name == "PostgresStore":  # psycopg is an optional dependency
        from .postgres_store import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
