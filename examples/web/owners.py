"""Who owns which session: the example app's registry, one SQLite table.

Sessions are created by the server (`POST /api/sessions`), with an unguessable id, for the user
who asked; every other request names a session and is refused with 404 unless that user owns it,
so an unknown id and another user's id look the same. A session's owner never changes, so the
owners of recently used sessions are kept in memory: a turn costs no query here.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections import OrderedDict
from pathlib import Path

CACHED = 65_536  # owners of this many recently used sessions are kept in memory


class Owners:
    """The (owner, session id) pairs, in a SQLite file of their own."""

    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._owners: OrderedDict[str, str] = OrderedDict()  # session id -> owner, recent last
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
            self._remember(session_id, owner)
        return session_id

    def owns(self, owner: str, session_id: str) -> bool:
        """Whether `session_id` exists and belongs to `owner`."""
        with self._lock:
            known = self._owners.get(session_id)
            if known is None:
                row = self._db.execute(
                    "SELECT owner FROM web_sessions WHERE id = ?", (session_id,)
                ).fetchone()
                if row is None:
                    return False  # not remembered: another process may create it later
                known = row[0]
            self._remember(session_id, known)
        return known == owner

    def _remember(self, session_id: str, owner: str) -> None:
        self._owners[session_id] = owner
        self._owners.move_to_end(session_id)
        if len(self._owners) > CACHED:
            self._owners.popitem(last=False)

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
