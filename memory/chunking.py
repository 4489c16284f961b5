"""Chunking: a document cut into overlapping passages of at most N tokens.

Text is split into pieces (a run of whitespace and the word after it, words cut at 32
characters, and cut further while one is over the budget), each piece is counted with a token
counter, and pieces are packed greedily into chunks. A chunk that fills up ends at the last
paragraph break in its second half, if it has one, so passages keep whole paragraphs where they
can; the next chunk starts `overlap_tokens` back. Counting the pieces one by one with a model's
own tokenizer gives the model's count to within a token or two per chunk (BPE tokenizers split
at whitespace first); without a model, `approximate_token_count` counts words and punctuation
marks.

Chunks keep their character offsets in the document, so a citation can point at them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agentkit.errors import ConfigurationError

__all__ = [
    "DEFAULT_CHUNK_TOKENS",
    "Chunk",
    "approximate_token_count",
    "check_chunking",
    "chunk_text",
    "split_pieces",
]

DEFAULT_CHUNK_TOKENS = 256
MAX_PIECE_CHARS = 32
"""A word longer than this is cut (base64, minified code), so no piece outgrows a chunk."""

_PIECE = re.compile(r"\s{0,32}\S{1,32}|\s{1,32}")
_APPROXIMATE = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True, slots=True)
class Chunk:
    """One passage of a document: its text, its place among the document's chunks
    (`position`, from 0), its character offsets (`text == document[start:end]`) and its
    token count."""

    text: str
    position: int
    start: int
    end: int
    tokens: int


def split_pieces(text: str) -> list[str]:
    """The pieces chunks are made of; they concatenate to `text` exactly."""
    return _PIECE.findall(text)


def approximate_token_count(text: str) -> int:
    """Words and punctuation marks: a tokenizer-free stand-in for a token count."""
    return len(_APPROXIMATE.findall(text))


def check_chunking(chunk_tokens: int, overlap_tokens: int | None) -> int:
    """The overlap (None: chunk_tokens // 8); `ConfigurationError` unless 8 <= chunk_tokens
    and 0 <= overlap < chunk_tokens / 2."""
    if overlap_tokens is None and isinstance(chunk_tokens, int):
        overlap_tokens = chunk_tokens // 8
    for name, value in (("chunk_tokens", chunk_tokens), ("overlap_tokens", overlap_tokens)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigurationError(f"{name} is an int, got {value!r}")
    if chunk_tokens < 8:
        raise ConfigurationError(f"chunk_tokens must be at least 8, got {chunk_tokens}")
    if not 0 <= overlap_tokens < chunk_tokens / 2:
        raise ConfigurationError(
            f"overlap_tokens must be from 0 to less than half of chunk_tokens "
            f"({chunk_tokens}), got {overlap_tokens}"
        )
    return overlap_tokens


def chunk_text(
    text: str,
    count_tokens: Callable[[str], int] = approximate_token_count,
    *,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    overlap_tokens: int | None = None,
    pieces: Sequence[str] | None = None,
) -> list[Chunk]:
    """`text` cut into chunks of at most `chunk_tokens` tokens, consecutive chunks sharing
    about `overlap_tokens` tokens (default: an eighth of `chunk_tokens`). `count_tokens`
    counts one piece (see `split_pieces`; pass the pieces if you have them). Whitespace-only
    stretches make no chunk.

    A piece over the budget (a run of up to 32 characters a tokenizer spends more than
    `chunk_tokens` tokens on, such as punctuation) is cut in halves until its parts fit.
    """
    overlap_tokens = check_chunking(chunk_tokens, overlap_tokens)
    parts: list[str] = []
    counts: list[int] = []
    for piece in split_pieces(text) if pieces is None else pieces:
        _add_fitted(piece, count_tokens, chunk_tokens, parts, counts)
    offsets = [0]
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    chunks: list[Chunk] = []
    first = 0
    while first < len(parts):
        last, total, paragraph = first, 0, None
        while last < len(parts) and (last == first or total + counts[last] <= chunk_tokens):
            if last > first and "\n\n" in parts[last] and total >= chunk_tokens // 2:
                paragraph = last  # a paragraph starts here: a good place to end the chunk
            total += counts[last]
            last += 1
        if last < len(parts) and paragraph is not None:
            last = paragraph
        _append(chunks, text, offsets[first], offsets[last], sum(counts[first:last]))
        if last >= len(parts):
            break
        # Step back over whole pieces worth at most overlap_tokens, always moving forward.
        start, shared = last, 0
        while start - 1 > first and shared + counts[start - 1] <= overlap_tokens:
            start -= 1
            shared += counts[start]
        first = start
    return chunks


def _add_fitted(
    piece: str,
    count_tokens: Callable[[str], int],
    budget: int,
    parts: list[str],
    counts: list[int],
) -> None:
    """Append `piece` and its count, cut in halves while a part is over `budget` tokens."""
    count = count_tokens(piece)
    if count <= budget or len(piece) == 1:
        parts.append(piece)
        counts.append(count)
        return
    middle = len(piece) // 2
    _add_fitted(piece[:middle], count_tokens, budget, parts, counts)
    _add_fitted(piece[middle:], count_tokens, budget, parts, counts)


def _append(chunks: list[Chunk], text: str, start: int, end: int, tokens: int) -> None:
    passage = text[start:end]
    stripped = passage.strip()
    if not stripped:
        return
    start += len(passage) - len(passage.lstrip())
    chunks.append(Chunk(stripped, len(chunks), start, start + len(stripped), tokens))
