"""`SQLiteStore`: sessions in one SQLite file, the embedded default.

The file runs in WAL mode, so readers never wait for the writer, and every thread gets its own
connection. A commit takes SQLite's write lock first (`BEGIN IMMEDIATE`) and then checks the
revision, so writers in several threads or processes serialise and the loser of a race gets
`SessionConflict`. `synchronous=NORMAL`: a commit survives the process crashing at any point;
after a power cut the last commits before it may be lost (never half of one).

WAL checkpoints copy committed pages into the database file and fsync it. SQLite runs one inside
whichever commit crosses 1,000 pages of log, which made one append in ~100 take 5 ms instead of
0.25 ms; the store turns that off and checkpoints from a thread of its own, a second after
writes, so no commit waits for one.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from agentkit.errors import (
    ConfigurationError,
    SessionConflict,
    SessionExistsError,
    SessionNotFoundError,
    SessionStoreError,
    StoreCorruptedError,
    StoreVersionError,
)
from agentkit.messages import Message

from .codec import decode_messages, decode_metadata, encode_metadata, encode_round, merged
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

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

SCHEMA_VERSION = 1
"""Kept in the file's `PRAGMA user_version`."""

CHECKPOINT_DELAY = 1.0
"""Seconds between a write and the checkpoint after it (later writes join that checkpoint)."""

_SCHEMA = (
    """CREATE TABLE agentkit_sessions (
        id TEXT PRIMARY KEY,
        revision INTEGER NOT NULL,
        message_count INTEGER NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        metadata TEXT NOT NULL,
        forked_from TEXT
    )""",
    "CREATE INDEX agentkit_sessions_updated ON agentkit_sessions (updated_at DESC, id)",
    """CREATE TABLE agentkit_messages (
        session_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        revision INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (session_id, position)
    ) WITHOUT ROWID""",
)

_MIGRATIONS: dict[int, tuple[str, ...]] = {0: _SCHEMA}
"""Statements that take a file from a schema version to the next one."""


class SQLiteStore(BlockingStore):
    """Sessions in a SQLite file: safe from many threads and several processes on one machine.

    `busy_timeout` is how long a writer waits for another's commit before giving up with
    `SessionStoreError`. The file may hold other tables (agentkit's are prefixed `agentkit_`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        busy_timeout: float = 30.0,
    ) -> None:
        self.path = os.fspath(path)
        if self.path == ":memory:" or self.path.startswith("file::memory:"):
            raise ConfigurationError(
                "SQLiteStore needs a file (each thread gets its own connection); "
                "use InMemoryStore for sessions in memory"
            )
        self.max_message_bytes = max_message_bytes
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._connection()  # open and migrate now: a bad file fails here, not mid-request
        self._written = threading.Event()
        self._closing = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="agentkit-sqlite-checkpoint", daemon=True
        )
        self._checkpointer.start()

    # -- connections ---------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        with self._lock:
            if self._closed:
                raise SessionStoreError(f"the SQLite store {self.path!r} is closed")
        with self._errors():
            connection = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            try:
                self._use_wal(connection)
                connection.execute("PRAGMA synchronous=NORMAL")
                # Checkpoints (which fsync) run on the store's own thread, not in a commit.
                connection.execute("PRAGMA wal_autocheckpoint=0")
                self._migrate(connection)
            except BaseException:
                connection.close()
                raise
        with self._lock:
            self._connections.append(connection)
        self._local.connection = connection
        return connection

    def _use_wal(self, connection: sqlite3.Connection) -> None:
        """Put the file in WAL mode (it stays so). Switching needs the file to itself, and
        SQLite answers "locked" at once, without its busy handler, while another process opens
        the same new file: so retry until `busy_timeout`."""
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    def _migrate(self, connection: sqlite3.Connection) -> None:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        with self._transaction(connection):
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreVersionError(
                    f"{self.path!r} holds agentkit session schema {version}, written by a newer "
                    f"agentkit; this one reads schema {SCHEMA_VERSION}: upgrade agentkit"
                )
            while version < SCHEMA_VERSION:
                for statement in _MIGRATIONS[version]:
                    connection.execute(statement)
                version += 1
            # PRAGMA takes no parameters; the value is our own int.
            connection.execute(f"PRAGMA user_version = {int(version)}")

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """sqlite3's errors as agentkit's: a damaged file, a lock held too long."""
        try:
            yield
        except sqlite3.OperationalError as error:
            raise SessionStoreError(f"SQLite store {self.path!r}: {error}") from error
        except sqlite3.DatabaseError as error:
            raise StoreCorruptedError(
                f"{self.path!r} is not a readable SQLite store (not a database, or damaged): "
                f"{error}"
            ) from error

    @contextlib.contextmanager
    def _transaction(
        self, connection: sqlite3.Connection, *, write: bool = True
    ) -> Iterator[sqlite3.Connection]:
        connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._errors(), self._transaction(self._connection()) as connection:
            yield connection
        self._written.set()

    def _checkpoint_loop(self) -> None:
        """Checkpoint the log a second after writes, off the commit path, until closed."""
        with contextlib.closing(sqlite3.connect(self.path, timeout=self.busy_timeout)) as own:
            while True:
                self._written.wait()
                self._closing.wait(CHECKPOINT_DELAY)  # cut short by close()
                self._written.clear()
                with contextlib.suppress(sqlite3.Error):  # busy: the next one will do
                    own.execute("PRAGMA wal_checkpoint(PASSIVE)")
                if self._closing.is_set():
                    return

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._errors(), self._transaction(self._connection(), write=False) as connection:
            yield connection

    # -- the store -------------------------------------------------------------------------------

    def load(self, session_id: str, *, missing_ok: bool = False) -> Session:
        check_session_id(session_id)
        with self._read() as db:
            row = db.execute(
                "SELECT revision, metadata FROM agentkit_sessions WHERE id = ?", (session_id,)
            ).fetchone()
            rows = db.execute(
                "SELECT position, body FROM agentkit_messages WHERE session_id = ? "
                "ORDER BY position",
                (session_id,),
            ).fetchall()
        if row is None:
            if missing_ok:
                return Session(session_id)
            raise SessionNotFoundError(session_id)
        messages = decode_messages(session_id, rows)
        return Session(session_id, messages, row[0], decode_metadata(session_id, row[1]))

    def append(
        self,
        session_id: str,
        messages: Iterable[Message | Mapping[str, Any]],
        *,
        expected_revision: int,
    ) -> int:
        texts = encode_round(session_id, messages, expected_revision, self.max_message_bytes)
        with self._write() as db:
            row = db.execute(
                "SELECT revision, message_count FROM agentkit_sessions WHERE id = ?",
                (session_id,),
            ).fetchone()
            revision, start = (0, 0) if row is None else row
            if revision != expected_revision:
                raise SessionConflict(session_id, expected_revision, revision)
            stamp = now()
            if row is None:
                db.execute(
                    "INSERT INTO agentkit_sessions (id, revision, message_count, created_at, "
                    "updated_at, metadata) VALUES (?, 1, ?, ?, ?, '{}')",
                    (session_id, len(texts), stamp, stamp),
                )
            else:
                db.execute(
                    "UPDATE agentkit_sessions SET revision = revision + 1, "
                    "message_count = message_count + ?, updated_at = ? WHERE id = ?",
                    (len(texts), stamp, session_id),
                )
            db.executemany(
                "INSERT INTO agentkit_messages (session_id, position, revision, body) "
                "VALUES (?, ?, ?, ?)",
                [(session_id, start + i, revision + 1, text) for i, text in enumerate(texts)],
            )
        return revision + 1

    def list_sessions(self, *, limit: int = 100, offset: int = 0) -> list[SessionInfo]:
        check_limit(limit, offset)
        with self._read() as db:
            rows = db.execute(
                "SELECT id, revision, message_count, created_at, updated_at, metadata, "
                "forked_from FROM agentkit_sessions ORDER BY updated_at DESC, id "
                "LIMIT ? OFFSET ?",
                (limit, offset),
            ).fetchall()
        return [
            SessionInfo(sid, rev, count, created, updated, decode_metadata(sid, meta), forked)
            for sid, rev, count, created, updated, meta, forked in rows
        ]

    def delete(self, session_id: str) -> bool:
        check_session_id(session_id)
        with self._write() as db:
            db.execute("DELETE FROM agentkit_messages WHERE session_id = ?", (session_id,))
            gone = db.execute("DELETE FROM agentkit_sessions WHERE id = ?", (session_id,))
            return gone.rowcount > 0

    def fork(self, session_id: str, new_session_id: str, *, upto: int | None = None) -> Session:
        check_session_id(session_id)
        check_session_id(new_session_id)
        with self._write() as db:
            source = db.execute(
                "SELECT metadata FROM agentkit_sessions WHERE id = ?", (session_id,)
            ).fetchone()
            if source is None:
                raise SessionNotFoundError(session_id)
            taken = db.execute(
                "SELECT 1 FROM agentkit_sessions WHERE id = ?", (new_session_id,)
            ).fetchone()
            if taken is not None:
                raise SessionExistsError(new_session_id)
            rows = db.execute(
                "SELECT position, body FROM agentkit_messages WHERE session_id = ? "
                "ORDER BY position",
                (session_id,),
            ).fetchall()
            messages = decode_messages(session_id, rows)
            kept = check_fork_point(messages, upto)
            stamp = now()
            db.execute(
                "INSERT INTO agentkit_sessions (id, revision, message_count, created_at, "
                "updated_at, metadata, forked_from) VALUES (?, 1, ?, ?, ?, ?, ?)",
                (new_session_id, kept, stamp, stamp, source[0], session_id),
            )
            db.execute(
                "INSERT INTO agentkit_messages (session_id, position, revision, body) "
                "SELECT ?, position, 1, body FROM agentkit_messages "
                "WHERE session_id = ? AND position < ?",
                (new_session_id, session_id, kept),
            )
        return Session(new_session_id, messages[:kept], 1, decode_metadata(session_id, source[0]))

    def update_metadata(self, session_id: str, values: Mapping[str, Any]) -> dict[str, Any]:
        check_session_id(session_id)
        with self._write() as db:
            row = db.execute(
                "SELECT metadata FROM agentkit_sessions WHERE id = ?", (session_id,)
            ).fetchone()
            if row is None:
                raise SessionNotFoundError(session_id)
            metadata = merged(decode_metadata(session_id, row[0]), values)
            db.execute(
                "UPDATE agentkit_sessions SET metadata = ? WHERE id = ?",
                (encode_metadata(session_id, metadata, self.max_message_bytes), session_id),
            )
        return metadata

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        self._closing.set()
        self._written.set()  # wakes the checkpointer, which checkpoints once more and stops
        self._checkpointer.join()
        for connection in connections:
            connection.close()
        self._local = threading.local()
