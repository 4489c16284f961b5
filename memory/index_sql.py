"""The SQLite side of `MemoryIndex`: schema, writes, and the two candidate searches.

One file holds documents, their chunks, an FTS5 table over the chunk texts (kept in step by
triggers) and a sqlite-vec `vec0` table of chunk vectors (cosine distance), all sharing the
chunk's rowid. The vector table is created once the embedding width is known: on the first
write. Every value reaches SQL as a bound parameter; the only SQL built from values is the
vector width (an int checked here) and `?` placeholders for filter lists.

One connection serves every thread, behind a lock: queries take milliseconds, and one
connection is what lets `":memory:"` work. A file index opens a second one for the keyword
ranking, so a search runs its two scans at once.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeAlias, cast

from agentkit.errors import (
    ConfigurationError,
    IndexCorruptedError,
    InvalidDocumentError,
    MemoryIndexError,
)

from .chunking import Chunk

__all__ = [
    "SCHEMA_VERSION",
    "ChunkRow",
    "DocumentInfo",
    "Filter",
    "IndexDatabase",
    "MetadataValue",
    "check_metadata",
]

SCHEMA_VERSION = 1

MetadataValue: TypeAlias = "str | int | float | bool | None"
Filter: TypeAlias = "Mapping[str, MetadataValue | Sequence[str | int | float | bool]]"

_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_RESERVED = frozenset({"id", "source"})
"""Filter keys that match the document's id and source rather than its metadata."""
MAX_METADATA_BYTES = 64 * 1024
MMAP_BYTES = 256 * 1024 * 1024

_SCHEMA = (
    "CREATE TABLE agentkit_index_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    """CREATE TABLE agentkit_documents (
        id TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        metadata TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        chunk_count INTEGER NOT NULL,
        characters INTEGER NOT NULL,
        updated_at REAL NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE agentkit_chunks (
        id INTEGER PRIMARY KEY,
        document_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        start_char INTEGER NOT NULL,
        end_char INTEGER NOT NULL,
        tokens INTEGER NOT NULL,
        text TEXT NOT NULL,
        UNIQUE (document_id, position)
    )""",
    """CREATE VIRTUAL TABLE agentkit_chunks_fts USING fts5(
        text, content='agentkit_chunks', content_rowid='id',
        tokenize='porter unicode61 remove_diacritics 2'
    )""",
    """CREATE TRIGGER agentkit_chunks_added AFTER INSERT ON agentkit_chunks BEGIN
        INSERT INTO agentkit_chunks_fts (rowid, text) VALUES (new.id, new.text);
    END""",
    """CREATE TRIGGER agentkit_chunks_removed AFTER DELETE ON agentkit_chunks BEGIN
        INSERT INTO agentkit_chunks_fts (agentkit_chunks_fts, rowid, text)
        VALUES ('delete', old.id, old.text);
    END""",
)


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """A document as the index keeps it (its text lives on in its chunks). `fingerprint`
    identifies the text and the chunking it was indexed with."""

    id: str
    source: str
    metadata: Mapping[str, MetadataValue]
    fingerprint: str
    chunk_count: int
    characters: int
    updated_at: float


@dataclass(frozen=True, slots=True)
class ChunkRow:
    """A chunk with its document's id, source and metadata."""

    id: int
    document_id: str
    source: str
    metadata: Mapping[str, MetadataValue]
    chunk: Chunk


def sqlite_module() -> ModuleType:
    """An sqlite3 module that can load extensions: sqlean.py's, else Python's own if it can."""
    with contextlib.suppress(ImportError):
        return importlib.import_module("sqlean")
    if hasattr(sqlite3.Connection, "enable_load_extension"):
        return sqlite3
    raise ConfigurationError(
        "MemoryIndex needs an sqlite3 that can load extensions, which this Python's cannot: "
        'pip install "agentkit[memory]" (sqlite-vec and sqlean.py)'
    )


def _vec_extension() -> str:
    try:
        vec = importlib.import_module("sqlite_vec")
    except ImportError:
        raise ConfigurationError(
            'MemoryIndex needs sqlite-vec: pip install "agentkit[memory]"'
        ) from None
    return str(vec.loadable_path())


def check_metadata(document_id: str, metadata: object) -> dict[str, MetadataValue]:
    """`metadata` if it is a flat JSON object with usable keys (see `Filter`)."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidDocumentError(
            f"document {document_id!r}: metadata is a dict, not {type(metadata).__name__}"
        )
    checked: dict[str, MetadataValue] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not _KEY.match(key) or key in _RESERVED:
            raise InvalidDocumentError(
                f"document {document_id!r}: metadata key {key!r} is not allowed; keys are 1-64 "
                "letters, digits, _ or -, and not 'id' or 'source'"
            )
        if not _is_scalar(value):
            raise InvalidDocumentError(
                f"document {document_id!r}: metadata {key!r} must be a str, int, finite float, "
                f"bool or None, got {type(value).__name__}"
            )
        checked[key] = value
    if len(_dumps(checked)) > MAX_METADATA_BYTES:
        raise InvalidDocumentError(
            f"document {document_id!r}: metadata is over {MAX_METADATA_BYTES:,} bytes of JSON"
        )
    return checked


def _is_scalar(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return _encodable(value)
    return value is None or (isinstance(value, bool | int) and abs(value) < 2**63)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def filter_sql(where: Filter | None) -> tuple[str, list[object]]:
    """`AND ...` conditions on documents `d` for a filter, and their parameters."""
    if where is None:
        return "", []
    if not isinstance(where, Mapping):
        raise ConfigurationError(f"where is a dict of metadata values, got {where!r}")
    parts: list[str] = []
    params: list[object] = []
    for key, wanted in where.items():
        if not isinstance(key, str) or not _KEY.match(key):
            raise ConfigurationError(f"where: {key!r} is not a metadata key")
        values: list[object]
        if isinstance(wanted, list | tuple):
            if not all(_is_scalar(item) and item is not None for item in wanted):
                raise ConfigurationError(f"where: {key!r} lists values that are not scalars")
            values = list(wanted)
        elif _is_scalar(wanted):
            values = [wanted]
        else:
            raise ConfigurationError(
                f"where: {key!r} must be a str, int, float, bool, None or a list of them"
            )
        if not values:
            parts.append("0")  # any of no values: nothing matches
            continue
        if key in _RESERVED:
            column = f"d.{key}"  # one of two fixed names, never user text
        else:
            column = "json_extract(d.metadata, ?)"
            params.append(f'$."{key}"')  # the key matched _KEY: no quote can end the path
        if isinstance(wanted, list | tuple):
            parts.append(f"{column} IN ({', '.join('?' * len(values))})")
        else:
            parts.append(f"{column} IS ?")
        params += values
    return "".join(f" AND {part}" for part in parts), params


class IndexDatabase:
    """The index file: schema checks, locked connections, the SQL `MemoryIndex` runs."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0) -> None:
        self.path = os.fspath(path)
        self._sql = sqlite_module()
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._reader_lock = threading.Lock()
        self._closed = False
        self.model: str | None = None
        self.dimension: int | None = None
        self.in_memory = self.path == ":memory:" or self.path.startswith("file::memory:")
        self._db = self._connect()
        try:
            with self._errors():
                self._open()
        except BaseException:
            self._db.close()
            raise
        self._reader: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        with self._errors():
            connection = cast(
                sqlite3.Connection,
                self._sql.connect(
                    self.path,
                    timeout=self._busy_timeout,
                    isolation_level=None,
                    check_same_thread=False,
                ),
            )
        try:
            with self._errors():
                connection.enable_load_extension(True)
                connection.load_extension(_vec_extension())
                connection.enable_load_extension(False)
                if not self.in_memory:
                    connection.execute("PRAGMA journal_mode=WAL")
                    connection.execute("PRAGMA synchronous=NORMAL")
                    # The vector scan reads every vector: mapped pages spare a copy of each
                    # (10,000 x 576 floats: 11 -> 7 ms of CPU a search).
                    connection.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        except BaseException:
            connection.close()
            raise
        return connection

    # -- schema --------------------------------------------------------------------------------

    def _open(self) -> None:
        with self._transaction():
            tables = self._tables()
            if "agentkit_index_meta" not in tables:
                if tables & {"agentkit_documents", "agentkit_chunks"}:
                    raise IndexCorruptedError(
                        f"{self.path!r} has agentkit index tables but no agentkit_index_meta"
                    )
                for statement in _SCHEMA:
                    self._db.execute(statement)
                self._set_meta("schema", str(SCHEMA_VERSION))
                tables = self._tables()
            meta = dict(self._db.execute("SELECT key, value FROM agentkit_index_meta"))
        try:
            version = int(meta.get("schema", ""))
            dimension = int(meta["dimension"]) if "dimension" in meta else None
        except ValueError:
            raise IndexCorruptedError(
                f"{self.path!r}: the index's meta table holds values agentkit did not write"
            ) from None
        if version > SCHEMA_VERSION:
            raise MemoryIndexError(
                f"{self.path!r} holds agentkit index schema {version}, written by a newer "
                f"agentkit; this one reads schema {SCHEMA_VERSION}: upgrade agentkit"
            )
        needed = {"agentkit_documents", "agentkit_chunks", "agentkit_chunks_fts"}
        if dimension is not None:
            needed.add("agentkit_vectors")
        if version < 1 or not needed <= tables:
            missing = ", ".join(sorted(needed - tables)) or f"schema {version}"
            raise IndexCorruptedError(f"{self.path!r} is not a complete agentkit index: {missing}")
        self.model = meta.get("model")
        self.dimension = dimension

    def _tables(self) -> set[str]:
        return {
            row[0]
            for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }

    def bind(self, model: str, dimension: int) -> tuple[str, int]:
        """Record the embedding model and width and create the vector table, unless a writer
        did first (another thread or process): returns what the file records now."""
        with self._transaction():
            meta = dict(self._db.execute("SELECT key, value FROM agentkit_index_meta"))
            if "dimension" not in meta:
                self._set_meta("model", model)
                self._set_meta("dimension", str(dimension))
                # DDL takes no parameters; `dimension` is the int width of a checked vector.
                self._db.execute(
                    "CREATE VIRTUAL TABLE agentkit_vectors USING "
                    f"vec0(embedding float[{int(dimension)}] distance_metric=cosine)"
                )
                meta = {"model": model, "dimension": str(dimension)}
        self.model, self.dimension = meta.get("model", ""), int(meta["dimension"])
        return self.model, self.dimension

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO agentkit_index_meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- documents -----------------------------------------------------------------------------

    def document(self, document_id: str) -> DocumentInfo | None:
        """The document with this id, if any."""
        with self._errors():
            row = self._db.execute(
                "SELECT id, source, metadata, fingerprint, chunk_count, characters, updated_at "
                "FROM agentkit_documents WHERE id = ?",
                (document_id,),
            ).fetchone()
        return None if row is None else self._document(row)

    def documents(self, limit: int, offset: int) -> list[DocumentInfo]:
        """Documents by id."""
        with self._errors():
            rows = self._db.execute(
                "SELECT id, source, metadata, fingerprint, chunk_count, characters, updated_at "
                "FROM agentkit_documents ORDER BY id LIMIT ? OFFSET ?",
                (limit, offset),
            ).fetchall()
        return [self._document(row) for row in rows]

    def vectors_by_text(self, document_id: str) -> dict[str, bytes]:
        """The document's chunk vectors (float32 bytes), by chunk text."""
        if self.dimension is None:
            return {}
        with self._errors():
            rows = self._db.execute(
                "SELECT c.text, v.embedding FROM agentkit_chunks c "
                "JOIN agentkit_vectors v ON v.rowid = c.id WHERE c.document_id = ?",
                (document_id,),
            ).fetchall()
        return {text: bytes(blob) for text, blob in rows}

    def counts(self) -> tuple[int, int]:
        """How many documents and chunks the index holds."""
        with self._errors():
            documents = self._db.execute("SELECT count(*) FROM agentkit_documents").fetchone()[0]
            chunks = self._db.execute("SELECT count(*) FROM agentkit_chunks").fetchone()[0]
        return int(documents), int(chunks)

    def replace(
        self,
        document: DocumentInfo,
        chunks: Sequence[Chunk],
        vectors: Sequence[bytes],
    ) -> None:
        """Write a document with its chunks and their vectors, replacing one with its id."""
        with self._transaction():
            self._delete(document.id)
            self._db.execute(
                "INSERT INTO agentkit_documents (id, source, metadata, fingerprint, chunk_count, "
                "characters, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    document.id,
                    document.source,
                    _dumps(document.metadata),
                    document.fingerprint,
                    len(chunks),
                    document.characters,
                    document.updated_at,
                ),
            )
            for chunk, vector in zip(chunks, vectors, strict=True):
                cursor = self._db.execute(
                    "INSERT INTO agentkit_chunks (document_id, position, start_char, end_char, "
                    "tokens, text) VALUES (?, ?, ?, ?, ?, ?)",
                    (document.id, chunk.position, chunk.start, chunk.end, chunk.tokens, chunk.text),
                )
                self._db.execute(
                    "INSERT INTO agentkit_vectors (rowid, embedding) VALUES (?, ?)",
                    (cursor.lastrowid, vector),
                )

    def update_fields(
        self, document_id: str, source: str, metadata: Mapping[str, MetadataValue]
    ) -> bool:
        """Change a document's source and metadata only; False if there is no such document."""
        with self._transaction():
            cursor = self._db.execute(
                "UPDATE agentkit_documents SET source = ?, metadata = ?, updated_at = ? "
                "WHERE id = ?",
                (source, _dumps(metadata), time.time(), document_id),
            )
        return cursor.rowcount > 0

    def delete(self, document_id: str) -> bool:
        """Remove a document, its chunks and vectors; False if there was none."""
        with self._transaction():
            return self._delete(document_id)

    def _delete(self, document_id: str) -> bool:
        ids = [
            (row[0],)
            for row in self._db.execute(
                "SELECT id FROM agentkit_chunks WHERE document_id = ?", (document_id,)
            )
        ]
        if ids and self.dimension is not None:
            self._db.executemany("DELETE FROM agentkit_vectors WHERE rowid = ?", ids)
        self._db.execute("DELETE FROM agentkit_chunks WHERE document_id = ?", (document_id,))
        cursor = self._db.execute("DELETE FROM agentkit_documents WHERE id = ?", (document_id,))
        return cursor.rowcount > 0

    # -- search --------------------------------------------------------------------------------

    def nearest(self, vector: bytes, count: int, where: Filter | None) -> list[int]:
        """Ids of the `count` chunks nearest to `vector` (cosine), among those `where` keeps.

        The filter goes into the vec0 scan (`rowid IN (...)`), so a narrow filter still
        returns `count` chunks when that many match.
        """
        if self.dimension is None:
            return []
        conditions, params = filter_sql(where)
        sql = "SELECT rowid FROM agentkit_vectors WHERE embedding MATCH ? AND k = ?"
        if conditions:
            sql += (
                " AND rowid IN (SELECT c.id FROM agentkit_chunks c JOIN agentkit_documents d "
                f"ON d.id = c.document_id WHERE 1{conditions})"
            )
        with self._errors():
            rows = self._db.execute(sql + " ORDER BY distance", [vector, count, *params])
            return [row[0] for row in rows]

    def matching(self, expression: str, count: int, where: Filter | None) -> list[int]:
        """Ids of the `count` chunks that best match an FTS5 expression (bm25).

        A file index runs this on a second connection (WAL lets it read while the first one
        works), so `MemoryIndex` can rank by keyword while the vector scan runs.
        """
        conditions, params = filter_sql(where)
        sql = "SELECT f.rowid FROM agentkit_chunks_fts f"
        if conditions:
            sql += (
                " JOIN agentkit_chunks c ON c.id = f.rowid"
                " JOIN agentkit_documents d ON d.id = c.document_id"
            )
        sql += f" WHERE agentkit_chunks_fts MATCH ?{conditions} ORDER BY f.rank LIMIT ?"
        if self.in_memory:
            with self._errors():
                return [row[0] for row in self._db.execute(sql, [expression, *params, count])]
        with self._errors(self._reader_lock):
            if self._reader is None:
                self._reader = self._connect()
            return [row[0] for row in self._reader.execute(sql, [expression, *params, count])]

    def chunks(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        """The chunks with these ids, with their documents' source and metadata."""
        if not ids:
            return {}
        placeholders = ", ".join("?" * len(ids))
        with self._errors():
            rows = self._db.execute(
                "SELECT c.id, c.document_id, d.source, d.metadata, c.text, c.position, "
                "c.start_char, c.end_char, c.tokens FROM agentkit_chunks c "
                f"JOIN agentkit_documents d ON d.id = c.document_id WHERE c.id IN ({placeholders})",
                list(ids),
            ).fetchall()
        found = {}
        for id_, document_id, source, metadata, *chunk in rows:
            found[id_] = ChunkRow(id_, document_id, source, self._json(metadata), Chunk(*chunk))
        return found

    # -- plumbing ------------------------------------------------------------------------------

    def _document(self, row: Sequence[Any]) -> DocumentInfo:
        id_, source, metadata, *rest = row
        return DocumentInfo(id_, source, self._json(metadata), *rest)

    def _json(self, text: str) -> dict[str, MetadataValue]:
        try:
            value = json.loads(text)
        except (TypeError, ValueError):
            value = None
        if not isinstance(value, dict):
            raise IndexCorruptedError(f"{self.path!r}: a document's metadata is not a JSON object")
        return value

    def check_open(self) -> None:
        """Raise `MemoryIndexError` if the index is closed."""
        with self._errors():
            pass

    def close(self) -> None:
        """Close the connections; idempotent."""
        with self._lock, self._reader_lock:
            if not self._closed:
                self._closed = True
                self._db.close()
                if self._reader is not None:
                    self._reader.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._errors():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextlib.contextmanager
    def _errors(self, lock: threading.Lock | threading.RLock | None = None) -> Iterator[None]:
        """Hold a connection's lock (the main one's by default) and turn SQLite errors into
        typed agentkit errors."""
        with self._lock if lock is None else lock:
            if self._closed:
                raise MemoryIndexError(f"the index {self.path!r} is closed")
            try:
                yield
            except self._sql.DatabaseError as error:
                text = str(error)
                if any(
                    sign in text
                    for sign in ("not a database", "malformed", "no such table", "no such column")
                ):
                    raise IndexCorruptedError(
                        f"{self.path!r} is not a readable agentkit index ({text}); "
                        "rebuild it from its documents"
                    ) from error
                raise MemoryIndexError(f"the index {self.path!r} failed: {text}") from error
            except self._sql.Error as error:
                raise MemoryIndexError(f"the index {self.path!r} failed: {error}") from error
