"""`InMemoryStore`: sessions in a dict, for tests and notebooks. Thread-safe; lost on exit."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from agentkit.errors import SessionConflict, SessionExistsError, SessionNotFoundError
from agentkit.messages import Message

from .codec import decode_messages, encode_metadata, encode_round, merged
from .sessions import (
    DEFAULT_MAX_MESSAGE_BYTES,
    BlockingStore,
    Session,
    SessionInfo,
    check_fork_point,
    check_limit,
    check_session_id,
    now,
)

__all__ = ["InMemoryStore"]


@dataclass(slots=True)
class _Record:
    messages: tuple[Message, ...] = ()
    revision: int = 0
    created_at: float = field(default_factory=now)
    updated_at: float = field(default_factory=now)
    metadata: dict[str, Any] = field(default_factory=dict)
    forked_from: str | None = None


class InMemoryStore(BlockingStore):
    """Sessions kept in this process's memory, with the same rules as the persistent stores.

    Messages go through the same JSON encoding as in SQLite and Postgres (so limits and
    round trips behave alike); its coroutines run directly, without a worker thread.
    """

    def __init__(self, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self.max_message_bytes = max_message_bytes
        self._sessions: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def load(self, session_id: str, *, missing_ok: bool = False) -> Session:
        check_session_id(session_id)
        with self._lock:
            record = self._sessions.get(session_id)
        if record is None:
            if missing_ok:
                return Session(session_id)
            raise SessionNotFoundError(session_id)
        return Session(session_id, record.messages, record.revision, dict(record.metadata))

    def append(
        self,
        session_id: str,
        messages: Iterable[Message | Mapping[str, Any]],
        *,
        expected_revision: int,
    ) -> int:
        texts = encode_round(session_id, messages, expected_revision, self.max_message_bytes)
        added = decode_messages(session_id, enumerate(texts))
        with self._lock:
            record = self._sessions.get(session_id)
            actual = 0 if record is None else record.revision
            if actual != expected_revision:
                raise SessionConflict(session_id, expected_revision, actual)
            if record is None:
                record = self._sessions[session_id] = _Record()
            record.messages += added
            record.revision += 1
            record.updated_at = now()
            return record.revision

    def list_sessions(self, *, limit: int = 100, offset: int = 0) -> list[SessionInfo]:
        check_limit(limit, offset)
        with self._lock:
            rows = [
                SessionInfo(
                    session_id,
                    r.revision,
                    len(r.messages),
                    r.created_at,
                    r.updated_at,
                    dict(r.metadata),
                    r.forked_from,
                )
                for session_id, r in self._sessions.items()
            ]
        rows.sort(key=lambda info: (-info.updated_at, info.id))
        return rows[offset : offset + limit]

    def delete(self, session_id: str) -> bool:
        check_session_id(session_id)
        with self._lock:
            return self._sessions.pop(session_id, None) is not None

    def fork(self, session_id: str, new_session_id: str, *, upto: int | None = None) -> Session:
        check_session_id(session_id)
        check_session_id(new_session_id)
        with self._lock:
            source = self._sessions.get(session_id)
            if source is None:
                raise SessionNotFoundError(session_id)
            if new_session_id in self._sessions:
                raise SessionExistsError(new_session_id)
            kept = source.messages[: check_fork_point(source.messages, upto)]
            fork = _Record(kept, 1, metadata=dict(source.metadata), forked_from=session_id)
            self._sessions[new_session_id] = fork
        return Session(new_session_id, kept, 1, dict(fork.metadata))

    def update_metadata(self, session_id: str, values: Mapping[str, Any]) -> dict[str, Any]:
        check_session_id(session_id)
        with self._lock:
            record = self._sessions.get(session_id)
            if record is None:
                raise SessionNotFoundError(session_id)
            metadata = merged(record.metadata, values)
            encode_metadata(session_id, metadata, self.max_message_bytes)
            self._sessions[session_id] = replace(record, metadata=metadata)
            return dict(metadata)

    def close(self) -> None:
        with self._lock:
            self._sessions.clear()

    # No I/O: the coroutines need no worker thread.

    async def aload(self, session_id: str, *, missing_ok: bool = False) -> Session:
        return self.load(session_id, missing_ok=missing_ok)

    async def aappend(
        self,
        session_id: str,
        messages: Iterable[Message | Mapping[str, Any]],
        *,
        expected_revision: int,
    ) -> int:
        return self.append(session_id, messages, expected_revision=expected_revision)
