"""Token chunking: chunks cover the text, keep their offsets, fit the budget and overlap."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentkit.errors import ConfigurationError
from agentkit.memory.chunking import (
    approximate_token_count,
    chunk_text,
    split_pieces,
)

texts = st.lists(
    st.sampled_from([*list("ab cd\n\t.,!é漢"), "word ", "\n\n", "x" * 40, " " * 40]),
    max_size=200,
).map("".join)


@given(st.text(max_size=300))
def test_pieces_concatenate_to_the_text(text: str) -> None:
    pieces = split_pieces(text)
    assert "".join(pieces) == text
    assert all(len(piece) <= 64 for piece in pieces)


@settings(max_examples=200)
@given(texts, st.integers(8, 40), st.data())
def test_chunks_cover_the_text_within_budget(text: str, budget: int, data: st.DataObject) -> None:
    overlap = data.draw(st.integers(0, (budget - 1) // 2))
    chunks = chunk_text(text, chunk_tokens=budget, overlap_tokens=overlap)
    covered = [False] * len(text)
    for position, chunk in enumerate(chunks):
        assert chunk.position == position
        assert chunk.text == text[chunk.start : chunk.end]
        assert chunk.text == chunk.text.strip() and chunk.text
        assert approximate_token_count(chunk.text) <= chunk.tokens <= budget
        for i in range(chunk.start, chunk.end):
            covered[i] = True
    assert all(covered[i] for i, char in enumerate(text) if not char.isspace())
    starts = [chunk.start for chunk in chunks]
    assert starts == sorted(set(starts))  # every chunk moves forward


def test_a_piece_over_the_budget_is_cut_until_it_fits() -> None:
    text = "a.a.a..a." + " and " + "!" * 30  # runs of punctuation: a token a character
    chunks = chunk_text(text, chunk_tokens=8, overlap_tokens=0)
    assert all(chunk.tokens <= 8 for chunk in chunks)
    assert "".join(chunk.text for chunk in chunks).replace(" ", "") == text.replace(" ", "")


def test_consecutive_chunks_share_about_the_overlap() -> None:
    text = " ".join(f"w{i}" for i in range(200))
    chunks = chunk_text(text, chunk_tokens=40, overlap_tokens=10)
    assert len(chunks) > 5
    for before, after in itertools.pairwise(chunks):
        shared = text[after.start : before.end]
        assert after.start < before.end
        assert approximate_token_count(shared) == 10  # one token per word here
    assert all(chunk.tokens == 40 for chunk in chunks[:-1])


def test_a_full_chunk_ends_at_a_paragraph_break_in_its_second_half() -> None:
    first = " ".join(["alpha"] * 30)
    text = f"{first}\n\n{' '.join(['beta'] * 30)}"
    chunks = chunk_text(text, chunk_tokens=40, overlap_tokens=0)
    assert chunks[0].text == first
    assert chunks[1].text.startswith("beta")


def test_no_overlap_partitions_the_words() -> None:
    words = [f"w{i}" for i in range(101)]
    chunks = chunk_text(" ".join(words), chunk_tokens=10, overlap_tokens=0)
    assert " ".join(chunk.text for chunk in chunks).split() == words


def test_a_custom_counter_is_used() -> None:
    chunks = chunk_text("aaaa bbbb cccc dddd", lambda piece: 4, chunk_tokens=8, overlap_tokens=0)
    assert [chunk.text for chunk in chunks] == ["aaaa bbbb", "cccc dddd"]
    assert [chunk.tokens for chunk in chunks] == [8, 8]


def test_a_piece_over_the_budget_is_a_chunk_of_its_own() -> None:
    chunks = chunk_text("a b c", lambda piece: 100, chunk_tokens=8, overlap_tokens=0)
    assert [chunk.text for chunk in chunks] == ["a", "b", "c"]


def test_whitespace_makes_no_chunk() -> None:
    assert chunk_text(" \n\n\t ") == []


@pytest.mark.parametrize(
    ("tokens", "overlap"), [(7, 0), (16, 8), (16, -1), (16.0, 2), (True, 0), (16, "2")]
)
def test_bad_budgets_are_refused(tokens: object, overlap: object) -> None:
    with pytest.raises(ConfigurationError):
        chunk_text("text", chunk_tokens=tokens, overlap_tokens=overlap)  # type: ignore[arg-type]


def test_the_default_overlap_is_an_eighth() -> None:
    text = " ".join(f"w{i}" for i in range(100))
    chunks = chunk_text(text, chunk_tokens=16)
    assert approximate_token_count(text[chunks[1].start : chunks[0].end]) == 2
