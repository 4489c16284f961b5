"""`MemoryIndex`: hybrid (vector + keyword) search over documents, in one SQLite file.

    from agentkit.memory import MemoryIndex

    with ak.Client() as client, MemoryIndex("docs.db", client.embedding.model()) as index:
        index.add("README.md", Path("README.md").read_text())
        for hit in index.search("how do tools time out?", k=5):
            print(hit.citation, hit.text[:80])

Documents are cut into overlapping chunks of at most `chunk_tokens` tokens (counted with the
embedding model's tokenizer where the engine has one), each chunk is embedded, and a search
ranks chunks twice, by cosine distance in sqlite-vec and by bm25 in FTS5, then fuses the two
rankings with reciprocal rank fusion: a chunk's score is the sum of 1 / (rrf_k + rank) over the
rankings it appears in. The query's words are matched as quoted FTS5 terms, so no user text is
ever read as FTS5 syntax.

The index records its embedding model and width and refuses another (`EmbeddingMismatchError`).
Every method exists blocking and as a coroutine (`add` / `aadd`, ...); the blocking ones need a
blocking `EmbeddingModel`, the coroutines take either kind.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from agentkit.errors import (
    ConfigurationError,
    DocumentNotFoundError,
    DocumentTooLargeError,
    EmbeddingMismatchError,
    InvalidDocumentError,
)

from .blocking import in_thread
from .chunking import (
    DEFAULT_CHUNK_TOKENS,
    Chunk,
    check_chunking,
    chunk_text,
    split_pieces,
)
from .index_embed import Embedder, EmbeddingHandle, check_vectors
from .index_sql import (
    DocumentInfo,
    Filter,
    IndexDatabase,
    MetadataValue,
    check_metadata,
)

__all__ = [
    "DEFAULT_MAX_DOCUMENT_CHARS",
    "DocumentInfo",
    "Hit",
    "MemoryIndex",
    "keyword_query",
    "reciprocal_rank_fusion",
]


DEFAULT_MAX_DOCUMENT_CHARS = 4_000_000
"""Longest document `add` takes unless told otherwise (about a million tokens)."""
MAX_ID_CHARS = 512
MAX_QUERY_CHARS = 2_000
MAX_K = 1_000
MAX_QUERY_TERMS = 64
MAX_CANDIDATES = 4_096
"""sqlite-vec's largest k."""

_STOP_WORDS = (
    "a about after all also an and any are as at be been but by can could do does did for from "
    "had has have he her his how i if in into is it its just me my no not of on or our she so "
    "than that the their them then there these they this those to too up us was we were what "
    "when where which while who whom why will with would you your"
)
STOP_WORDS = frozenset(_STOP_WORDS.split())
"""Words the keyword ranking skips (the vector ranking still reads the whole query)."""

_TERM = re.compile(r"[^\W_]+")  # FTS5 (unicode61) splits words at "_" too


@dataclass(frozen=True, slots=True)
class Hit:
    """One chunk a search found: where it comes from, its text and how it ranked.

    `score` is its fused score; `vector_rank` and `keyword_rank` its places (from 1) in the two
    rankings, None where it was not among a ranking's candidates.
    """

    document_id: str
    source: str
    position: int
    text: str
    start: int
    end: int
    score: float
    vector_rank: int | None
    keyword_rank: int | None
    metadata: Mapping[str, MetadataValue]

    @property
    def citation(self) -> str:
        """`source#position`: which document and which of its chunks."""
        return f"{self.source}#{self.position}"


def keyword_query(text: str) -> str | None:
    """An FTS5 expression matching any of the words of `text`, each a quoted term.

    Quoting makes every word a plain term: AND, NEAR, `*`, `^`, column filters and quotes in
    the user's text are never FTS5 syntax. English stop words are left out unless there is
    nothing else (each matches most chunks, and ranking them all costs more than the rest of
    the search). None when the text has no words.
    """
    words = list(dict.fromkeys(term.lower() for term in _TERM.findall(text)))
    terms = [word for word in words if word not in STOP_WORDS] or words
    if not terms:
        return None
    # \w+ never contains a double quote, so the quoting cannot be closed early.
    return " OR ".join(f'"{term}"' for term in terms[:MAX_QUERY_TERMS])


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]], rrf_k: float = 60.0
) -> list[tuple[int, float]]:
    """Ids by fused score, best first: each id scores the sum of 1 / (rrf_k + rank) over the
    rankings it is in (rank from 1). Ties go to the id ranked better in the earlier ranking."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, id_ in enumerate(ranking, start=1):
            scores[id_] = scores.get(id_, 0.0) + 1.0 / (rrf_k + rank)
    return sorted(scores.items(), key=lambda item: -item[1])


@dataclass(frozen=True, slots=True)
class _Plan:
    """A checked document, ready to be chunked and embedded (or left as it is)."""

    document_id: str
    text: str
    source: str
    metadata: dict[str, MetadataValue]
    fingerprint: str
    unchanged: bool
    exists: bool


class MemoryIndex:
    """Documents, chunked and embedded, searchable by meaning and by keyword at once.

    Args:
        path: the SQLite file (created if missing), or ":memory:".
        embedding: an agentkit embedding handle (`client.embedding.model(...)`).
        chunk_tokens, overlap_tokens: chunk size and how much consecutive chunks share
            (default: an eighth of chunk_tokens).
        max_document_chars: longer documents raise `DocumentTooLargeError`.
        rrf_k: reciprocal rank fusion's constant (60 is the usual choice).
        busy_timeout: seconds a write waits for another process's write.

    Raises:
        EmbeddingMismatchError: the file was built with another embedding model.
        IndexCorruptedError: the file is not a readable index.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        embedding: EmbeddingHandle,
        *,
        chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
        overlap_tokens: int | None = None,
        max_document_chars: int = DEFAULT_MAX_DOCUMENT_CHARS,
        rrf_k: float = 60.0,
        busy_timeout: float = 30.0,
    ) -> None:
        overlap_tokens = check_chunking(chunk_tokens, overlap_tokens)
        if isinstance(max_document_chars, bool) or not isinstance(max_document_chars, int):
            raise ConfigurationError(f"max_document_chars is an int, got {max_document_chars!r}")
        if isinstance(rrf_k, bool) or not isinstance(rrf_k, int | float) or not 0 < rrf_k < 1e9:
            raise ConfigurationError(f"rrf_k is a number > 0, got {rrf_k!r}")
        self._embedder = Embedder(embedding)
        self.chunk_tokens = chunk_tokens
        self.overlap_tokens = overlap_tokens
        self.max_document_chars = max_document_chars
        self.rrf_k = float(rrf_k)
        self._db = IndexDatabase(path, busy_timeout=busy_timeout)
        self.path = self._db.path
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        if self._db.model is not None and self._db.model != self._embedder.model:
            self._db.close()
            raise EmbeddingMismatchError(
                self.path,
                (self._db.model, self._db.dimension),
                (self._embedder.model, None),
            )

    @property
    def model(self) -> str:
        """The embedding model's key."""
        return self._embedder.model

    @property
    def dimension(self) -> int | None:
        """The embedding width, once the index holds a vector."""
        return self._db.dimension

    def __repr__(self) -> str:
        return f"MemoryIndex({self.path!r}, model={self.model!r})"

    # -- blocking API --------------------------------------------------------------------------

    def add(
        self,
        document_id: str,
        text: str,
        *,
        source: str | None = None,
        metadata: Mapping[str, MetadataValue] | None = None,
    ) -> DocumentInfo:
        """Index a document, replacing any with the same id.

        `source` (default: the id) is what citations name; `metadata` is a flat dict of
        str/int/float/bool/None that `search(where=...)` filters on. A document whose text
        and chunking are unchanged is not embedded again (only its source and metadata are
        updated).

        Raises:
            InvalidDocumentError: empty or non-text document, bad id or metadata.
            DocumentTooLargeError: the text is over `max_document_chars`.
            InvalidEmbeddingError, EmbeddingMismatchError: the embedding model misbehaved.
        """
        plan = self._plan(document_id, text, source, metadata)
        if plan.unchanged:
            return self._keep(plan)
        pieces = split_pieces(plan.text)
        chunks = self._chunk(plan.text, self._embedder.counter(), pieces)
        known = self._known_vectors(plan)
        new = self._embedder.embed(_missing(chunks, known))
        return self._write(plan, chunks, _vectors(chunks, known, new))

    def add_embedded(
        self,
        document_id: str,
        chunks: Sequence[str],
        vectors: Sequence[Sequence[float]],
        *,
        source: str | None = None,
        metadata: Mapping[str, MetadataValue] | None = None,
    ) -> DocumentInfo:
        """Index a document already chunked and embedded (by this index's model, elsewhere).

        Chunk i gets position i; offsets count as if the chunks were joined by blank lines.
        """
        plan, cut = self._plan_embedded(document_id, chunks, source, metadata)
        return self._write(plan, cut, check_vectors(vectors, len(cut), self.model))

    def update(
        self,
        document_id: str,
        *,
        text: str | None = None,
        source: str | None = None,
        metadata: Mapping[str, MetadataValue] | None = None,
    ) -> DocumentInfo:
        """Change a document's text, source or metadata (what is not given stays).

        Only a new text is chunked and embedded again. Raises `DocumentNotFoundError`.
        """
        current = self._existing(document_id)
        if text is not None:
            return self.add(
                document_id,
                text,
                source=current.source if source is None else source,
                metadata=current.metadata if metadata is None else metadata,
            )
        return self._update_fields(current, source, metadata)

    def delete(self, document_id: str) -> bool:
        """Remove a document and its chunks; False if there was none."""
        return self._db.delete(_check_id(document_id))

    def get(self, document_id: str) -> DocumentInfo | None:
        """The document with this id, or None."""
        return self._db.document(_check_id(document_id))

    def documents(self, *, limit: int = 100, offset: int = 0) -> list[DocumentInfo]:
        """Documents in id order."""
        for name, value in (("limit", limit), ("offset", offset)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigurationError(f"{name} is an int >= 0, got {value!r}")
        return self._db.documents(limit, offset)

    def counts(self) -> tuple[int, int]:
        """How many documents and chunks the index holds."""
        return self._db.counts()

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        where: Filter | None = None,
        vector: Sequence[float] | None = None,
    ) -> list[Hit]:
        """The `k` chunks that best match `query`, by meaning and by keyword, best first.

        `where` keeps documents whose metadata equals the given values (a list means any of
        them; the keys "id" and "source" match the document's id and source). `vector` is the
        query's embedding if you already have it.
        """
        query, k = _check_query(query, k)
        self._db.check_open()
        if self._db.dimension is None:
            return []  # nothing was ever embedded
        if vector is None:
            query_vector = self._embedder.embed([query])[0]
        else:
            query_vector = check_vectors([vector], 1, self.model)[0]
        return self._search(query, k, where, query_vector)

    def close(self) -> None:
        """Close the file; idempotent."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown()
        self._db.close()

    def _scans(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="agentkit-index-scan")
            return self._pool

    def __enter__(self) -> MemoryIndex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- async API -----------------------------------------------------------------------------

    async def aadd(
        self,
        document_id: str,
        text: str,
        *,
        source: str | None = None,
        metadata: Mapping[str, MetadataValue] | None = None,
    ) -> DocumentInfo:
        """`add` as a coroutine."""
        plan = await in_thread(self._plan, document_id, text, source, metadata)
        if plan.unchanged:
            return await in_thread(self._keep, plan)
        pieces = split_pieces(plan.text)
        counter = await self._embedder.acounter(pieces)
        chunks = self._chunk(plan.text, counter, pieces)
        known = await in_thread(self._known_vectors, plan)
        new = await self._embedder.aembed(_missing(chunks, known))
        return await in_thread(self._write, plan, chunks, _vectors(chunks, known, new))

    async def aadd_embedded(
        self,
        document_id: str,
        chunks: Sequence[str],
        vectors: Sequence[Sequence[float]],
        *,
        source: str | None = None,
        metadata: Mapping[str, MetadataValue] | None = None,
    ) -> DocumentInfo:
        """`add_embedded` as a coroutine."""
        return await in_thread(
            self.add_embedded, document_id, chunks, vectors, source=source, metadata=metadata
        )

    async def aupdate(
        self,
        document_id: str,
        *,
        text: str | None = None,
        source: str | None = None,
        metadata: Mapping[str, MetadataValue] | None = None,
    ) -> DocumentInfo:
        """`update` as a coroutine."""
        current = await in_thread(self._existing, document_id)
        if text is not None:
            return await self.aadd(
                document_id,
                text,
                source=current.source if source is None else source,
                metadata=current.metadata if metadata is None else metadata,
            )
        return await in_thread(self._update_fields, current, source, metadata)

    async def adelete(self, document_id: str) -> bool:
        """`delete` as a coroutine."""
        return await in_thread(self.delete, document_id)

    async def aget(self, document_id: str) -> DocumentInfo | None:
        """`get` as a coroutine."""
        return await in_thread(self.get, document_id)

    async def adocuments(self, *, limit: int = 100, offset: int = 0) -> list[DocumentInfo]:
        """`documents` as a coroutine."""
        return await in_thread(self.documents, limit=limit, offset=offset)

    async def acounts(self) -> tuple[int, int]:
        """`counts` as a coroutine."""
        return await in_thread(self.counts)

    async def asearch(
        self,
        query: str,
        *,
        k: int = 10,
        where: Filter | None = None,
        vector: Sequence[float] | None = None,
    ) -> list[Hit]:
        """`search` as a coroutine."""
        query, k = _check_query(query, k)
        self._db.check_open()
        if self._db.dimension is None:
            return []
        if vector is None:
            query_vector = (await self._embedder.aembed([query]))[0]
        else:
            query_vector = check_vectors([vector], 1, self.model)[0]
        return await in_thread(self._search, query, k, where, query_vector)

    async def aclose(self) -> None:
        """`close` as a coroutine."""
        await in_thread(self.close)

    async def __aenter__(self) -> MemoryIndex:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- shared steps --------------------------------------------------------------------------

    def _plan(
        self,
        document_id: str,
        text: str,
        source: str | None,
        metadata: Mapping[str, MetadataValue] | None,
    ) -> _Plan:
        document_id = _check_id(document_id)
        self._check_text(document_id, text)
        return self._planned(document_id, text, source, metadata)

    def _check_text(self, document_id: str, text: object) -> None:
        if not isinstance(text, str):
            raise InvalidDocumentError(
                f"document {document_id!r}: the text is a str, not {type(text).__name__}"
            )
        if len(text) > self.max_document_chars:
            raise DocumentTooLargeError(document_id, len(text), self.max_document_chars)
        if not text.strip():
            raise InvalidDocumentError(f"document {document_id!r} has no text to index")
        if "\x00" in text or not _encodable(text):
            raise InvalidDocumentError(
                f"document {document_id!r} is not text: it holds NUL characters or lone "
                "surrogates (binary data read as text?)"
            )

    def _plan_embedded(
        self,
        document_id: str,
        chunks: Sequence[str],
        source: str | None,
        metadata: Mapping[str, MetadataValue] | None,
    ) -> tuple[_Plan, list[Chunk]]:
        document_id = _check_id(document_id)
        if isinstance(chunks, str) or not all(isinstance(c, str) and c.strip() for c in chunks):
            raise InvalidDocumentError(
                f"document {document_id!r}: chunks are a list of non-empty strs"
            )
        if not chunks:
            raise InvalidDocumentError(f"document {document_id!r} has no chunks")
        text = "\n\n".join(chunks)
        self._check_text(document_id, text)
        cut, start = [], 0
        for position, chunk in enumerate(chunks):
            cut.append(Chunk(chunk, position, start, start + len(chunk), 0))
            start += len(chunk) + 2
        return self._planned(document_id, text, source, metadata, embedded=True), cut

    def _planned(
        self,
        document_id: str,
        text: str,
        source: str | None,
        metadata: Mapping[str, MetadataValue] | None,
        *,
        embedded: bool = False,
    ) -> _Plan:
        if source is None:
            source = document_id
        elif not isinstance(source, str) or not source or not _encodable(source):
            raise InvalidDocumentError(f"document {document_id!r}: source is a non-empty str")
        checked = check_metadata(document_id, metadata)
        how = "embedded" if embedded else f"{self.chunk_tokens}/{self.overlap_tokens}"
        digest = hashlib.sha256(f"{self.model}\n{how}\n".encode())
        digest.update(text.encode("utf-8"))
        fingerprint = digest.hexdigest()
        current = self._db.document(document_id)
        unchanged = current is not None and current.fingerprint == fingerprint
        exists = current is not None
        return _Plan(document_id, text, source, checked, fingerprint, unchanged, exists)

    def _chunk(self, text: str, counter: Callable[[str], int], pieces: list[str]) -> list[Chunk]:
        return chunk_text(
            text,
            counter,
            chunk_tokens=self.chunk_tokens,
            overlap_tokens=self.overlap_tokens,
            pieces=pieces,
        )

    def _known_vectors(self, plan: _Plan) -> dict[str, array[float]]:
        """The vectors of the chunks the document has now, by text: an edited document's
        unchanged chunks are not embedded again (same text, same model, same vector)."""
        if not plan.exists or self._db.dimension is None:
            return {}
        known = {}
        for text, blob in self._db.vectors_by_text(plan.document_id).items():
            vector = array("f")
            vector.frombytes(blob)
            known[text] = vector
        return known

    def _keep(self, plan: _Plan) -> DocumentInfo:
        self._db.update_fields(plan.document_id, plan.source, plan.metadata)
        return self._existing(plan.document_id)

    def _write(
        self, plan: _Plan, chunks: Sequence[Chunk], vectors: Sequence[array[float]]
    ) -> DocumentInfo:
        width = len(vectors[0])
        dimension = self._db.dimension
        if dimension is None:
            with self._lock:
                model, dimension = self._db.bind(self.model, width)
            if model != self.model:
                raise EmbeddingMismatchError(self.path, (model, dimension), (self.model, width))
        if width != dimension:
            raise EmbeddingMismatchError(self.path, (self.model, dimension), (self.model, width))
        document = DocumentInfo(
            plan.document_id,
            plan.source,
            plan.metadata,
            plan.fingerprint,
            len(chunks),
            len(plan.text),
            time.time(),
        )
        self._db.replace(document, chunks, [vector.tobytes() for vector in vectors])
        return document

    def _existing(self, document_id: str) -> DocumentInfo:
        current = self._db.document(_check_id(document_id))
        if current is None:
            raise DocumentNotFoundError(document_id)
        return current

    def _update_fields(
        self,
        current: DocumentInfo,
        source: str | None,
        metadata: Mapping[str, MetadataValue] | None,
    ) -> DocumentInfo:
        if source is not None and (not isinstance(source, str) or not source):
            raise InvalidDocumentError(f"document {current.id!r}: source is a non-empty str")
        new_source = current.source if source is None else source
        checked = check_metadata(current.id, current.metadata if metadata is None else metadata)
        if not self._db.update_fields(current.id, new_source, checked):
            raise DocumentNotFoundError(current.id)
        return self._existing(current.id)

    def _search(self, query: str, k: int, where: Filter | None, vector: array[float]) -> list[Hit]:
        if len(vector) != self._db.dimension:
            raise EmbeddingMismatchError(
                self.path, (self.model, self._db.dimension), (self.model, len(vector))
            )
        candidates = min(max(4 * k, 40), MAX_CANDIDATES)
        expression = keyword_query(query)
        if expression is None or self._db.in_memory:
            nearest = self._db.nearest(vector.tobytes(), candidates, where)
            matching = (
                [] if expression is None else self._db.matching(expression, candidates, where)
            )
        else:
            # The two scans on two connections at once: SQLite lets go of the GIL, so each
            # takes a core (the search costs the longer scan, not both).
            scan = self._scans().submit(self._db.nearest, vector.tobytes(), candidates, where)
            try:
                matching = self._db.matching(expression, candidates, where)
            finally:
                nearest = scan.result()
        fused = reciprocal_rank_fusion([nearest, matching], self.rrf_k)[:k]
        rows = self._db.chunks([id_ for id_, _ in fused])
        vector_ranks = {id_: rank for rank, id_ in enumerate(nearest, start=1)}
        keyword_ranks = {id_: rank for rank, id_ in enumerate(matching, start=1)}
        hits = []
        for id_, score in fused:
            row = rows.get(id_)
            if row is None:  # deleted between the two queries
                continue
            chunk = row.chunk
            hits.append(
                Hit(
                    row.document_id,
                    row.source,
                    chunk.position,
                    chunk.text,
                    chunk.start,
                    chunk.end,
                    score,
                    vector_ranks.get(id_),
                    keyword_ranks.get(id_),
                    row.metadata,
                )
            )
        return hits


def _missing(chunks: Sequence[Chunk], known: Mapping[str, array[float]]) -> list[str]:
    """The chunk texts that need embedding, each once."""
    return list(dict.fromkeys(c.text for c in chunks if c.text not in known))


def _vectors(
    chunks: Sequence[Chunk], known: Mapping[str, array[float]], new: Sequence[array[float]]
) -> list[array[float]]:
    """One vector per chunk, from the known ones and the new ones (in `_missing` order)."""
    found = dict(known)
    found.update(zip(_missing(chunks, known), new, strict=True))
    return [found[chunk.text] for chunk in chunks]


def _check_id(document_id: object) -> str:
    if (
        not isinstance(document_id, str)
        or not document_id
        or len(document_id) > MAX_ID_CHARS
        or "\x00" in document_id
        or not _encodable(document_id)
    ):
        shown = repr(document_id)[:60]
        raise InvalidDocumentError(
            f"a document id is a str of 1 to {MAX_ID_CHARS} characters with no NUL, got {shown}"
        )
    return document_id


def _check_query(query: object, k: object) -> tuple[str, int]:
    if not isinstance(query, str):
        raise ConfigurationError(f"a query is a str, not {type(query).__name__}")
    if not query.strip():
        raise ConfigurationError("the query is empty")
    if len(query) > MAX_QUERY_CHARS:
        raise ConfigurationError(
            f"the query is {len(query):,} characters; the most a search takes is "
            f"{MAX_QUERY_CHARS:,}"
        )
    if not _encodable(query):
        raise ConfigurationError("the query is not valid Unicode (it has lone surrogates)")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ConfigurationError(f"k is an int from 1 to {MAX_K}, got {k!r}")
    return query, k


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
