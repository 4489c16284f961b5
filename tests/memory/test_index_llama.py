"""MemoryIndex on the real local engine: the default model (SmolLM2-135M-Instruct) loaded as an
embedding model, 576 wide, and its tokenizer for chunking."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import agentkit as ak
from agentkit.errors import EmbeddingMismatchError
from agentkit.memory import MemoryIndex, chunk_text
from agentkit.testing import ScriptedEngine

README = Path(__file__).parent.parent.parent / "README.md"
DOCS = {
    "pasta": "Cook the noodles in salted boiling water for ten minutes, then drain them and "
    "add tomato sauce.",
    "python": "A Python function is defined with the def keyword and returns a value with return.",
    "weather": "Tomorrow will be rainy and cold, with strong winds from the north and snow in "
    "the mountains.",
}


@pytest.fixture(scope="module")
def handle() -> Iterator[ak.EmbeddingModel]:
    with ak.Client() as client:
        yield client.embedding.model()


@pytest.fixture(scope="module")
def index(handle: ak.EmbeddingModel) -> Iterator[MemoryIndex]:
    with MemoryIndex(":memory:", handle, chunk_tokens=64) as index:
        for document_id, text in DOCS.items():
            index.add(document_id, text, source=f"{document_id}.md")
        yield index


def test_the_default_model_embeds_576_wide(index: MemoryIndex, handle: ak.EmbeddingModel) -> None:
    assert index.dimension == 576 == len(handle.embed("hello")[0])
    assert index.model == handle.model_key


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("writing code in a programming language", "python"),
        ("how do I make spaghetti for dinner", "pasta"),
    ],
)
def test_search_on_real_embeddings(index: MemoryIndex, query: str, expected: str) -> None:
    hits = index.search(query, k=3)
    assert hits[0].document_id == expected
    assert hits[0].vector_rank == 1  # the embedding alone ranks it first too
    assert hits[0].citation == f"{expected}.md#0"


def test_chunks_are_counted_with_the_models_tokenizer(handle: ak.EmbeddingModel) -> None:
    text = README.read_text(encoding="utf-8")[:3_000]
    chunks = chunk_text(text, handle.count_tokens, chunk_tokens=128, overlap_tokens=16)
    assert len(chunks) > 3
    for chunk in chunks:
        assert chunk.tokens <= 128
        # Pieces are counted one by one; BPE splits at whitespace first, so the sum is the
        # model's count of the whole chunk to within a token or two.
        assert abs(handle.count_tokens(chunk.text) - chunk.tokens) <= 2
    with MemoryIndex(":memory:", handle, chunk_tokens=128, overlap_tokens=16) as index:
        assert index.add("readme", text).chunk_count == len(chunks)


def test_an_index_of_another_model_refuses_it(tmp_path: Path, handle: ak.EmbeddingModel) -> None:
    with (
        ak.Client(engine=ScriptedEngine([])) as client,
        MemoryIndex(tmp_path / "index.db", client.embedding.model()) as index,
    ):
        index.add("doc", "text")
    with pytest.raises(EmbeddingMismatchError, match="scripted-model"):
        MemoryIndex(tmp_path / "index.db", handle)
