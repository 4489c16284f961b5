"""Who owns which session: the example app's registry, one SQLite table.

Sessions are created by the server (`POST /api/sessions`), with an unguessable id, for the user
who asked; every other request names a session and is refused with 404 unless that user owns it,
so an unknown id and another user's id look the same.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from pathlib import Path


class Owners:
    """The (owner, session id) pairs, in a SQLite file of their own."""

    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS web_sessions ("
            " id TEXT PRIMARY KEY, owner TEXT NOT NULL, created_at REAL DEFAULT (unixepoch()))"
        )

    def create(self, owner: str) -> str:
        """A new session id owned by `owner`."""
        session_id = "s_" + secrets.token_urlsafe(16)
        with self._lock:
            self._db.execute(
                "INSERT INTO web_sessions (id, owner) VALUES (?, ?)", (session_id, owner)
            )
        return session_id

    def owns(self, owner: str, session_id: str) -> bool:
        """Whether `session_id` exists and belongs to `owner`."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM web_sessions WHERE id = ? AND owner = ?", (session_id, owner)
            ).fetchone()
        return row is not None

    def sessions(self, owner: str) -> list[str]:
        """`owner`'s session ids, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM web_sessions WHERE owner = ? ORDER BY rowid", (owner,)
            ).fetchall()
        return [row[0] for row in rows]

    def close(self) -> None:
        """Close the database."""
        self._db.close()
