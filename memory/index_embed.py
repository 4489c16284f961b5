"""The index's side of an embedding handle: batched embedding, vector checks, token counts.

Any agentkit embedding handle works: `client.embedding.model(...)` on the local llama.cpp
engine, LM Studio or an OpenAI-compatible server, blocking (`EmbeddingModel`) or async
(`AsyncEmbeddingModel`). What comes back is checked before it reaches the index: one vector per
text, all of one width, every value a finite float32, none all zeros (cosine distance to a
zero vector is undefined).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Sequence

import anyio.to_thread

from agentkit.errors import ConfigurationError, InvalidEmbeddingError, NotSupportedError
from agentkit.model_handle import AsyncEmbeddingModel, EmbeddingModel

from .chunking import approximate_token_count

__all__ = ["EMBED_BATCH", "MAX_DIMENSION", "Embedder", "EmbeddingHandle", "check_vectors"]

EmbeddingHandle = EmbeddingModel | AsyncEmbeddingModel

EMBED_BATCH = 16
"""Texts per embed request: bounds one request's size and lets a cancel land between them."""

MAX_DIMENSION = 8192
"""The widest vector sqlite-vec's vec0 table takes."""

_COUNT_CACHE = 100_000


def check_vectors(vectors: object, count: int, model: str) -> list[array[float]]:
    """`vectors` as float32 arrays if they are `count` usable vectors of one width."""
    if not isinstance(vectors, Sequence) or len(vectors) != count:
        got = len(vectors) if isinstance(vectors, Sequence) else type(vectors).__name__
        raise InvalidEmbeddingError(f"{model!r} returned {got} vectors for {count} texts")
    checked: list[array[float]] = []
    for index, vector in enumerate(vectors):
        try:
            values = array("f", vector)
        except (TypeError, OverflowError) as error:
            raise InvalidEmbeddingError(
                f"{model!r} returned vector {index}, which is not a list of numbers: {error}"
            ) from None
        if not values or len(values) > MAX_DIMENSION:
            raise InvalidEmbeddingError(
                f"{model!r} returned a vector of {len(values)} values; an embedding has 1 to "
                f"{MAX_DIMENSION}"
            )
        if checked and len(values) != len(checked[0]):
            raise InvalidEmbeddingError(
                f"{model!r} returned vectors of {len(checked[0])} and {len(values)} values "
                "in one batch"
            )
        # float32 can overflow to inf where the float64 was finite: check after conversion.
        if not all(map(math.isfinite, values)):
            raise InvalidEmbeddingError(f"{model!r} returned a vector with NaN or infinite values")
        if not any(values):
            raise InvalidEmbeddingError(f"{model!r} returned an all-zero vector")
        checked.append(values)
    return checked


class Embedder:
    """Wraps one embedding handle: its model key, embeddings in batches, token counts."""

    def __init__(self, handle: EmbeddingHandle) -> None:
        if not isinstance(handle, EmbeddingModel | AsyncEmbeddingModel):
            raise ConfigurationError(
                "a MemoryIndex needs an agentkit embedding handle "
                f"(client.embedding.model(...)), got {type(handle).__name__}"
            )
        self.handle = handle
        self.model = handle.model_key
        self._counts: dict[str, int] = {}
        self._tokenizer: bool | None = None  # unknown until the first count

    # -- blocking ------------------------------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> list[array[float]]:
        """Vectors for `texts` (blocking handle only)."""
        handle = self._blocking("embedding")
        vectors: list[array[float]] = []
        for batch in _batches(texts):
            vectors += check_vectors(handle.embed(batch), len(batch), self.model)
        return vectors

    def counter(self) -> Callable[[str], int]:
        """A token counter for chunking: the model's tokenizer where the engine has one."""
        handle = self._blocking("token counting")

        def count(piece: str) -> int:
            known = self._counts.get(piece)
            if known is None:
                known = self._count(piece, handle.count_tokens)
            return known

        return count

    # -- async ---------------------------------------------------------------------------------

    async def aembed(self, texts: Sequence[str]) -> list[array[float]]:
        """Vectors for `texts`; a blocking handle runs in a worker thread."""
        vectors: list[array[float]] = []
        for batch in _batches(texts):
            if isinstance(self.handle, AsyncEmbeddingModel):
                raw = await self.handle.embed(batch)
            else:
                raw = await anyio.to_thread.run_sync(self.handle.embed, batch)
            vectors += check_vectors(raw, len(batch), self.model)
        return vectors

    async def acounter(self, pieces: Sequence[str]) -> Callable[[str], int]:
        """A token counter that knows `pieces` (counted now, with the model's tokenizer)."""
        handle = self.handle
        known: dict[str, int] = {}
        for piece in dict.fromkeys(pieces):
            tokens = self._counts.get(piece)
            if tokens is None:
                if not isinstance(handle, AsyncEmbeddingModel):
                    tokens = await anyio.to_thread.run_sync(self._count, piece, handle.count_tokens)
                elif self._tokenizer is False:
                    tokens = self._count(piece, approximate_token_count)
                else:
                    try:
                        tokens = await handle.count_tokens(piece)
                        self._tokenizer = True
                    except NotSupportedError:  # a remote server that does not tokenize
                        self._tokenizer = False
                        tokens = approximate_token_count(piece)
                    self._remember(piece, tokens)
            known[piece] = tokens
        return lambda piece: known[piece] if piece in known else approximate_token_count(piece)

    # -- helpers -------------------------------------------------------------------------------

    def _blocking(self, what: str) -> EmbeddingModel:
        if isinstance(self.handle, AsyncEmbeddingModel):
            raise ConfigurationError(
                f"{what} through an AsyncEmbeddingModel needs the index's async methods "
                "(aadd, asearch, ...); for the blocking ones pass a blocking EmbeddingModel"
            )
        return self.handle

    def _count(self, piece: str, count_tokens: Callable[[str], int]) -> int:
        if self._tokenizer is False:
            tokens = approximate_token_count(piece)
        else:
            try:
                tokens = count_tokens(piece)
                self._tokenizer = True
            except NotSupportedError:  # a remote server that does not tokenize
                self._tokenizer = False
                tokens = approximate_token_count(piece)
        self._remember(piece, tokens)
        return tokens

    def _remember(self, piece: str, tokens: int) -> None:
        if len(self._counts) >= _COUNT_CACHE:
            self._counts.clear()
        self._counts[piece] = tokens


def _batches(texts: Sequence[str]) -> list[list[str]]:
    return [list(texts[i : i + EMBED_BATCH]) for i in range(0, len(texts), EMBED_BATCH)]
