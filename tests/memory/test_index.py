"""MemoryIndex on real SQLite (sqlite-vec and FTS5), embedded through real agentkit handles.

The embeddings come from `agentkit.testing.ScriptedEngine` (a bag-of-letters vector per
text, 26 wide) behind `client.embedding.model()`, or from a subclass of it where a test needs
vectors of its own; tests/memory/test_index_llama.py runs the real llama.cpp engine.
"""

from __future__ import annotations

import math
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import agentkit as ak
from agentkit.errors import (
    ConfigurationError,
    DocumentNotFoundError,
    DocumentTooLargeError,
    EmbeddingMismatchError,
    IndexCorruptedError,
    InvalidDocumentError,
    InvalidEmbeddingError,
    MemoryIndexError,
)
from agentkit.memory import MemoryIndex
from agentkit.memory.index import keyword_query, reciprocal_rank_fusion
from agentkit.testing import ScriptedEngine

Vectors = Callable[[list[str]], list[list[float]]]


class VectorEngine(ScriptedEngine):
    """The scripted engine with embeddings chosen by the test; counts what it embeds."""

    def __init__(self, vectors: Vectors | None = None, *, model_key: str = "scripted-model"):
        super().__init__([], model_key=model_key)
        self.vectors = vectors
        self.embedded: list[str] = []

    async def embed(self, identifier: str, texts: Sequence[str]) -> list[list[float]]:
        self.embedded += texts
        if self.vectors is None:
            return await super().embed(identifier, texts)
        return self.vectors(list(texts))


def embedding(engine: ScriptedEngine) -> Iterator[ak.EmbeddingModel]:
    with ak.Client(engine=engine) as client:
        yield client.embedding.model()


@pytest.fixture
def engine() -> VectorEngine:
    return VectorEngine()


@pytest.fixture
def handle(engine: VectorEngine) -> Iterator[ak.EmbeddingModel]:
    yield from embedding(engine)


@pytest.fixture
def index(tmp_path: Path, handle: ak.EmbeddingModel) -> Iterator[MemoryIndex]:
    with MemoryIndex(tmp_path / "index.db", handle, chunk_tokens=16, overlap_tokens=4) as index:
        yield index


ZEBRAS = "Zebras graze on the savanna in large herds and sleep standing up."
SQLITE = "SQLite keeps a whole database in one file; FTS5 adds full-text search to it."
KIWIS = "Kiwi birds cannot fly; they live in New Zealand forests and eat insects."


def add_three(index: MemoryIndex) -> None:
    index.add("zebras", ZEBRAS, source="animals.md", metadata={"topic": "animals", "year": 2020})
    index.add("sqlite", SQLITE, source="tech.md", metadata={"topic": "tech", "year": 2024})
    index.add("kiwis", KIWIS, source="animals.md", metadata={"topic": "animals", "year": 2024})


# -- search ------------------------------------------------------------------------------------


def test_search_fuses_keyword_and_vector_rankings(index: MemoryIndex) -> None:
    add_three(index)
    hits = index.search("Where does the kiwi live?", k=3)
    assert hits[0].document_id == "kiwis"
    assert hits[0].citation == "animals.md#0"
    assert hits[0].text == KIWIS and (hits[0].start, hits[0].end) == (0, len(KIWIS))
    assert hits[0].keyword_rank == 1 and hits[0].vector_rank is not None
    assert hits[0].metadata == {"topic": "animals", "year": 2024}
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    assert index.dimension == 26 and index.model == "scripted-model"


def test_a_keyword_only_match_still_ranks(index: MemoryIndex) -> None:
    add_three(index)
    # Porter stemming: "databases" finds "database".
    hits = index.search("databases", k=3)
    assert hits[0].document_id == "sqlite"
    assert hits[0].keyword_rank == 1
    assert {hit.keyword_rank for hit in hits[1:]} == {None}


def test_vector_ranking_alone_finds_a_chunk_with_no_shared_word(index: MemoryIndex) -> None:
    index.add("z", "zzz zzzz zzzzz")
    index.add("a", "aaa aaaa aaaaa")
    hits = index.search("zz", k=2)
    assert [hit.document_id for hit in hits] == ["z", "a"]
    assert hits[0].keyword_rank is None and hits[0].vector_rank == 1


def test_long_documents_are_chunked_with_positions(index: MemoryIndex) -> None:
    text = " ".join(f"word{i}" for i in range(100)) + " needle"
    info = index.add("long", text)
    assert info.chunk_count == index.counts()[1] > 5
    hit = index.search("needle", k=1)[0]
    assert hit.position == info.chunk_count - 1
    assert text[hit.start : hit.end] == hit.text and "needle" in hit.text


def test_k_limits_the_hits(index: MemoryIndex) -> None:
    for i in range(12):
        index.add(f"d{i}", f"document number {i} about cats")
    assert len(index.search("cats", k=5)) == 5
    assert len(index.search("cats", k=50)) == 12


def test_an_empty_index_finds_nothing(index: MemoryIndex, engine: VectorEngine) -> None:
    assert index.search("anything") == []
    assert engine.embedded == []  # nothing to compare with: the query is not embedded


# -- filters -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"topic": "animals"}, {"zebras", "kiwis"}),
        ({"topic": "animals", "year": 2024}, {"kiwis"}),
        ({"year": [2020, 2024]}, {"zebras", "kiwis", "sqlite"}),
        ({"year": []}, set()),
        ({"source": "tech.md"}, {"sqlite"}),
        ({"id": ["zebras", "sqlite"]}, {"zebras", "sqlite"}),
        ({"missing": None}, {"zebras", "kiwis", "sqlite"}),
        ({"topic": "x') OR 1=1 --"}, set()),
    ],
)
def test_filters(index: MemoryIndex, where: dict[str, object], expected: set[str]) -> None:
    add_three(index)
    hits = index.search("zebra kiwi sqlite", k=10, where=where)  # type: ignore[arg-type]
    assert {hit.document_id for hit in hits} == expected


def test_a_narrow_filter_still_fills_k_from_the_vector_scan(index: MemoryIndex) -> None:
    for i in range(100):
        index.add(f"other{i}", "nothing " * (i % 5 + 1), metadata={"group": "other"})
    info = index.add("rare", "zzz qqq xxx jjj " * 12, metadata={"group": "rare"})
    assert info.chunk_count >= 3
    # The rare chunks share no word with the query, and no letter (the scripted embedding
    # counts letters): they are the farthest of 100+ chunks, beyond the 40 candidates an
    # unfiltered scan would take. Only a filter inside the vec0 scan finds them.
    hits = index.search("nothing", k=3, where={"group": "rare"})
    assert [(hit.document_id, hit.vector_rank) for hit in hits] == [
        ("rare", 1),
        ("rare", 2),
        ("rare", 3),
    ]
    assert all(hit.keyword_rank is None for hit in hits)


@pytest.mark.parametrize(
    "where",
    [
        {"bad key": 1},
        {"k": {"nested": 1}},
        {"k": [None]},
        {"k": float("nan")},
        {'a"b': 1},
        "topic = 'x'",
    ],
)
def test_bad_filters_are_refused(index: MemoryIndex, where: object) -> None:
    add_three(index)
    with pytest.raises(ConfigurationError):
        index.search("zebra", where=where)  # type: ignore[arg-type]


# -- update and delete ---------------------------------------------------------------------------


def test_update_text_reembeds_and_metadata_only_does_not(
    index: MemoryIndex, engine: VectorEngine
) -> None:
    add_three(index)
    embedded = len(engine.embedded)
    info = index.update("kiwis", metadata={"topic": "birds"})
    assert len(engine.embedded) == embedded
    assert info.metadata == {"topic": "birds"} and info.source == "animals.md"
    assert {h.document_id for h in index.search("kiwi", where={"topic": "birds"})} == {"kiwis"}

    embedded = len(engine.embedded)
    index.update("kiwis", text="Penguins swim in cold seas.")
    assert engine.embedded[embedded:] == ["Penguins swim in cold seas."]
    assert index.search("kiwi", where={"topic": "birds"})[0].keyword_rank is None
    assert index.search("penguins", k=1)[0].document_id == "kiwis"
    assert index.get("kiwis") is not None and index.get("kiwis").source == "animals.md"  # type: ignore[union-attr]


def test_adding_unchanged_text_again_does_not_embed(
    index: MemoryIndex, engine: VectorEngine
) -> None:
    index.add("doc", ZEBRAS)
    embedded = len(engine.embedded)
    info = index.add("doc", ZEBRAS, source="new.md")
    assert len(engine.embedded) == embedded and info.source == "new.md"
    assert index.counts() == (1, 1)


def test_an_edited_document_embeds_only_its_new_chunks(
    index: MemoryIndex, engine: VectorEngine
) -> None:
    paragraphs = [" ".join(f"p{p}w{i}" for i in range(12)) for p in range(6)]
    index.add("doc", "\n\n".join(paragraphs))
    embedded = len(engine.embedded)
    edited = "\n\n".join([*paragraphs, "zebras at the end"])
    info = index.add("doc", edited)
    new = engine.embedded[embedded:]
    assert new and len(new) < info.chunk_count  # the chunks before the edit were reused
    assert all("zebras" in text for text in new)
    assert index.search("zebras", k=1)[0].position == info.chunk_count - 1
    raw = sqlite3.connect(index.path)
    assert raw.execute("SELECT count(*) FROM agentkit_vectors_rowids").fetchone() == (
        info.chunk_count,
    )
    raw.close()


def test_adding_an_id_again_replaces_the_document(index: MemoryIndex) -> None:
    index.add("doc", " ".join(["zebra"] * 40))
    index.add("doc", "kiwi")
    assert index.counts() == (1, 1)
    assert [hit.text for hit in index.search("zebra kiwi", k=10)] == ["kiwi"]


def test_delete_removes_chunks_from_both_rankings(index: MemoryIndex) -> None:
    add_three(index)
    assert index.delete("kiwis") is True
    assert index.delete("kiwis") is False
    assert index.get("kiwis") is None
    assert "kiwis" not in {hit.document_id for hit in index.search("kiwi", k=10)}
    assert index.counts() == (2, 2)
    raw = sqlite3.connect(index.path)
    assert raw.execute("SELECT count(*) FROM agentkit_vectors_rowids").fetchone() == (2,)
    raw.close()


def test_update_of_a_missing_document(index: MemoryIndex) -> None:
    with pytest.raises(DocumentNotFoundError, match="no document 'nope'") as caught:
        index.update("nope", metadata={})
    assert isinstance(caught.value, KeyError) and caught.value.document_id == "nope"


def test_documents_lists_in_id_order(index: MemoryIndex) -> None:
    add_three(index)
    assert [d.id for d in index.documents()] == ["kiwis", "sqlite", "zebras"]
    assert [d.id for d in index.documents(limit=1, offset=1)] == ["sqlite"]
    with pytest.raises(ConfigurationError):
        index.documents(limit=-1)


def test_the_index_persists(tmp_path: Path, handle: ak.EmbeddingModel) -> None:
    with MemoryIndex(tmp_path / "kept.db", handle) as index:
        add_three(index)
    with MemoryIndex(tmp_path / "kept.db", handle) as index:
        assert index.dimension == 26
        assert index.search("kiwi", k=1)[0].document_id == "kiwis"


def test_many_threads_add_and_search(index: MemoryIndex) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                index.add(f"t{n}-{i}", f"thread {n} document {i} zebra")
                index.search("zebra", k=3)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert index.counts() == (40, 40)


# -- embedding model checks ----------------------------------------------------------------------


def test_another_model_is_refused(tmp_path: Path, handle: ak.EmbeddingModel) -> None:
    with MemoryIndex(tmp_path / "index.db", handle) as index:
        index.add("doc", ZEBRAS)
    for other in embedding(VectorEngine(model_key="other-model")):
        with pytest.raises(EmbeddingMismatchError) as caught:
            MemoryIndex(tmp_path / "index.db", other)
    error = caught.value
    assert (error.expected_model, error.expected_dimension) == ("scripted-model", 26)
    assert error.actual_model == "other-model"
    assert "other-model" in str(error) and "26 dimensions" in str(error)


def test_another_width_from_the_same_model_is_refused(tmp_path: Path) -> None:
    widths = iter([26, 27])
    width = 26

    def vectors(texts: list[str]) -> list[list[float]]:
        return [[1.0] * width for _ in texts]

    for handle in embedding(VectorEngine(vectors)):
        with MemoryIndex(tmp_path / "index.db", handle) as index:
            width = next(widths)
            index.add("a", "first")
            width = next(widths)
            with pytest.raises(EmbeddingMismatchError, match="27 dimensions"):
                index.add("b", "second")
            with pytest.raises(EmbeddingMismatchError):
                index.search("first")
            with pytest.raises(EmbeddingMismatchError):
                index.search("first", vector=[1.0] * 5)
            assert index.counts() == (1, 1)
            assert index.search("first", vector=[1.0] * 26)[0].document_id == "a"


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        ([math.nan] * 4, "NaN or infinite"),
        ([1.0, math.inf, 0.0, 0.0], "NaN or infinite"),
        ([1e39, 1.0, 1.0, 1.0], "NaN or infinite"),  # finite as float64, inf as float32
        ([0.0] * 4, "all-zero"),
        ([], "0 values"),
        (["a", "b"], "not a list of numbers"),
        ([1.0] * 9000, "9000 values"),
    ],
)
def test_unusable_vectors_are_refused(tmp_path: Path, vector: list[float], message: str) -> None:
    for handle in embedding(VectorEngine(lambda texts: [vector for _ in texts])):
        with MemoryIndex(tmp_path / "index.db", handle) as index:
            with pytest.raises(InvalidEmbeddingError, match=message):
                index.add("doc", "some text")
            assert index.counts() == (0, 0) and index.dimension is None


@pytest.mark.parametrize(
    ("vectors", "message"),
    [
        (lambda texts: [], "returned 0 vectors for 1 texts"),
        (lambda texts: [[1.0, 2.0], [1.0, 2.0, 3.0]], "vectors for 1 texts"),
    ],
)
def test_the_wrong_number_of_vectors_is_refused(
    tmp_path: Path, vectors: Vectors, message: str
) -> None:
    for handle in embedding(VectorEngine(vectors)):
        with (
            MemoryIndex(tmp_path / "index.db", handle) as index,
            pytest.raises(InvalidEmbeddingError, match=message),
        ):
            index.add("doc", "text")


def test_ragged_vectors_in_one_batch_are_refused(tmp_path: Path) -> None:
    ragged = VectorEngine(lambda texts: [[1.0] * (2 + i) for i, _ in enumerate(texts)])
    for handle in embedding(ragged):
        with (
            MemoryIndex(tmp_path / "i.db", handle, chunk_tokens=8, overlap_tokens=0) as index,
            pytest.raises(InvalidEmbeddingError, match="vectors of 2 and 3 values"),
        ):
            index.add("doc", " ".join(["word"] * 20))


def test_a_query_vector_with_nan_is_refused(index: MemoryIndex) -> None:
    add_three(index)
    with pytest.raises(InvalidEmbeddingError):
        index.search("zebra", vector=[math.nan] * 26)


class NoTokenizerEngine(ScriptedEngine):
    """A scripted engine that cannot tokenize, as a remote server may not."""

    async def tokenize(self, identifier: str, text: str) -> list[int]:
        raise self.not_supported("tokenize")


def test_an_engine_without_a_tokenizer_chunks_by_words(tmp_path: Path) -> None:
    # 60 words and marks; the scripted tokenizer would count 30 (one per whitespace word).
    text = "one, two, three. " * 10
    for handle in embedding(NoTokenizerEngine([])):
        with MemoryIndex(tmp_path / "i.db", handle, chunk_tokens=8, overlap_tokens=0) as index:
            assert index.add("doc", text).chunk_count == 8
            best = index.search("three", k=1)[0].text
            assert best == "three. one, two, three."  # two of the word: bm25's favourite


def test_not_an_embedding_handle(tmp_path: Path) -> None:
    model = ak.LLM.standalone(ScriptedEngine([]))
    with pytest.raises(ConfigurationError, match="embedding handle"):
        MemoryIndex(tmp_path / "index.db", model)  # type: ignore[arg-type]


# -- bad documents and queries -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document_id", "text", "metadata", "error"),
    [
        ("doc", "", None, InvalidDocumentError),
        ("doc", " \n\t ", None, InvalidDocumentError),
        ("doc", b"bytes", None, InvalidDocumentError),
        ("doc", "binary\x00data", None, InvalidDocumentError),
        ("doc", "lone \ud800 surrogate", None, InvalidDocumentError),
        ("", "text", None, InvalidDocumentError),
        ("x" * 513, "text", None, InvalidDocumentError),
        ("nul\x00id", "text", None, InvalidDocumentError),
        (7, "text", None, InvalidDocumentError),
        ("doc", "text", {"nested": {"a": 1}}, InvalidDocumentError),
        ("doc", "text", {"source": "reserved"}, InvalidDocumentError),
        ("doc", "text", {"bad key!": 1}, InvalidDocumentError),
        ("doc", "text", {"n": math.nan}, InvalidDocumentError),
        ("doc", "text", {"big": 2**70}, InvalidDocumentError),
        ("doc", "text", ["not", "a", "dict"], InvalidDocumentError),
        ("doc", "text", {"k": "v" * 70_000}, InvalidDocumentError),
    ],
)
def test_bad_documents_are_refused_and_nothing_is_written(
    index: MemoryIndex, document_id: object, text: object, metadata: object, error: type
) -> None:
    with pytest.raises(error):
        index.add(document_id, text, metadata=metadata)  # type: ignore[arg-type]
    assert index.counts() == (0, 0)


def test_a_huge_document_is_refused_before_any_work(
    tmp_path: Path, handle: ak.EmbeddingModel, engine: VectorEngine
) -> None:
    with MemoryIndex(tmp_path / "i.db", handle, max_document_chars=1_000) as index:
        with pytest.raises(DocumentTooLargeError, match="1,001 characters") as caught:
            index.add("big", "x" * 1_001)
        assert (caught.value.size, caught.value.limit) == (1_001, 1_000)
        assert engine.embedded == [] and index.counts() == (0, 0)
        index.add("fits", "x " * 500)


def test_a_very_long_word_is_split_into_chunks(index: MemoryIndex) -> None:
    info = index.add("blob", "A" * 5_000)
    assert info.chunk_count > 1
    assert all(len(hit.text) <= 16 * 32 for hit in index.search("aaaa", k=100))


@pytest.mark.parametrize(
    ("query", "k"), [("", 10), ("   ", 10), ("x" * 2_001, 10), ("q", 0), ("q", 1_001), (3, 10)]
)
def test_bad_queries_are_refused(index: MemoryIndex, query: object, k: int) -> None:
    add_three(index)
    with pytest.raises(ConfigurationError):
        index.search(query, k=k)  # type: ignore[arg-type]


# -- the file ------------------------------------------------------------------------------------


def test_a_file_that_is_not_a_database(tmp_path: Path, handle: ak.EmbeddingModel) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not SQLite at all" * 100)
    with pytest.raises(IndexCorruptedError, match="not a readable agentkit index"):
        MemoryIndex(path, handle)


def test_a_truncated_index(tmp_path: Path, handle: ak.EmbeddingModel) -> None:
    path = tmp_path / "index.db"
    with MemoryIndex(path, handle) as index:
        for i in range(50):
            index.add(f"d{i}", f"document {i} " * 50)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])

    def read_everything() -> None:
        with MemoryIndex(path, handle) as index:
            index.search("document", k=50)
            for i in range(50):
                index.get(f"d{i}")

    with pytest.raises(IndexCorruptedError):
        read_everything()


def test_meta_the_index_did_not_write(tmp_path: Path, handle: ak.EmbeddingModel) -> None:
    path = tmp_path / "index.db"
    MemoryIndex(path, handle).close()
    raw = sqlite3.connect(path)
    raw.execute("UPDATE agentkit_index_meta SET value = 'many' WHERE key = 'schema'")
    raw.commit()
    raw.close()
    with pytest.raises(IndexCorruptedError, match="did not write"):
        MemoryIndex(path, handle)


def test_a_newer_schema(tmp_path: Path, handle: ak.EmbeddingModel) -> None:
    path = tmp_path / "index.db"
    MemoryIndex(path, handle).close()
    raw = sqlite3.connect(path)
    raw.execute("UPDATE agentkit_index_meta SET value = '99' WHERE key = 'schema'")
    raw.commit()
    raw.close()
    with pytest.raises(MemoryIndexError, match="newer agentkit"):
        MemoryIndex(path, handle)


def test_a_missing_vector_table(tmp_path: Path, handle: ak.EmbeddingModel) -> None:
    path = tmp_path / "index.db"
    MemoryIndex(path, handle).close()
    raw = sqlite3.connect(path)
    raw.execute("INSERT INTO agentkit_index_meta VALUES ('dimension', '26')")
    raw.commit()
    raw.close()
    with pytest.raises(IndexCorruptedError, match="agentkit_vectors"):
        MemoryIndex(path, handle)


@pytest.mark.parametrize(
    "options",
    [
        {"chunk_tokens": 4},
        {"overlap_tokens": 200},
        {"max_document_chars": 1.5},
        {"rrf_k": 0},
        {"rrf_k": "60"},
        {"rrf_k": math.nan},
    ],
)
def test_bad_options(tmp_path: Path, handle: ak.EmbeddingModel, options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        MemoryIndex(tmp_path / "index.db", handle, **options)  # type: ignore[arg-type]


def test_a_closed_index(index: MemoryIndex) -> None:
    index.close()
    index.close()
    with pytest.raises(MemoryIndexError, match="closed"):
        index.search("x")
    with pytest.raises(MemoryIndexError, match="closed"):
        index.add("doc", "text")


def test_in_memory(handle: ak.EmbeddingModel) -> None:
    with MemoryIndex(":memory:", handle) as index:
        add_three(index)
        assert index.search("zebra", k=1)[0].document_id == "zebras"


# -- pieces --------------------------------------------------------------------------------------


def test_reciprocal_rank_fusion() -> None:
    fused = dict(reciprocal_rank_fusion([[1, 2, 3], [3, 1]], rrf_k=60))
    assert fused[1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[2] == pytest.approx(1 / 62)
    assert list(fused) == [1, 3, 2]


def test_keyword_query_quotes_every_word() -> None:
    assert keyword_query('NEAR("x" b) AND c* ^d col:e') == (
        '"near" OR "x" OR "b" OR "c" OR "d" OR "col" OR "e"'
    )
    # Stop words are left out, unless there is nothing else.
    assert keyword_query("How do I give a tool a timeout?") == '"give" OR "tool" OR "timeout"'
    assert keyword_query("to be or not to be") == '"to" OR "be" OR "or" OR "not"'
    assert keyword_query("*** ()") is None
    # "_" splits words, as in FTS5's tokenizer: a quoted "a_b" would be the phrase "a b".
    assert (
        keyword_query("tomato_planting_tips.html") == '"tomato" OR "planting" OR "tips" OR "html"'
    )


# -- hostile query text ----------------------------------------------------------------------------

FTS5_SYNTAX = st.sampled_from(
    ['"', "'", "*", "^", ":", "(", ")", "-", "+", "NEAR", "AND", "OR", "NOT", "{", "}", ",",
     "text:", "NEAR(a b, 2)", '""', "\\", ";", "--", "/*", "%", "_", "\x7f", "é", "漢", " "]
)  # fmt: skip


@pytest.fixture(scope="module")
def filled() -> Iterator[MemoryIndex]:
    for handle in embedding(ScriptedEngine([])):
        with MemoryIndex(":memory:", handle) as index:
            add_three(index)
            yield index


@settings(max_examples=150, deadline=None)
@given(st.lists(FTS5_SYNTAX | st.text(min_size=1, max_size=5), min_size=1, max_size=12))
def test_user_text_is_never_fts5_syntax(filled: MemoryIndex, parts: list[str]) -> None:
    query = "".join(parts)
    if not query.strip() or not _utf8(query):
        return
    # A fixed query vector: this is about the keyword side (and the letter-count embedding
    # of a query with no letters is all zeros, which the index refuses).
    hits = filled.search(query, k=3, vector=[1.0] * 26)
    assert len(hits) == 3  # the vector side always ranks all three chunks
    words = re.findall(r"\w+", query)
    assert all(hit.keyword_rank is None for hit in hits) or words


@pytest.mark.parametrize(
    "query",
    ['"unbalanced', "NEAR(", "zebras*", "^kiwi", "text:zebras", "a AND OR NOT b", "'); DROP"],
)
def test_fts5_operators_match_as_words(filled: MemoryIndex, query: str) -> None:
    hits = filled.search(query, k=3)
    assert hits  # no syntax error, and vector hits at least
    assert filled.counts() == (3, 3)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def test_importing_agentkit_loads_no_index_code() -> None:
    code = (
        "import sys, agentkit, agentkit.memory\n"
        "loaded = {'sqlite_vec', 'sqlean', 'agentkit.memory.index'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
        "agentkit.memory.MemoryIndex\n"
        "assert 'agentkit.memory.index' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
