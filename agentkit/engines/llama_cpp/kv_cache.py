"""Saved KV states: what lets interleaved chats on one instance skip re-evaluating their prompts.

A request evaluates only the tokens after the longest prefix it shares with what the context
holds. When chats interleave, the context holds another chat's tokens, so after each prediction
the worker saves the context state here (an LRU bounded in bytes) and restores the saved state
that shares the longest prefix with the next request when that beats the live context.
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agentkit.errors import EngineError

__all__ = [
    "DEFAULT_KV_CACHE_BYTES",
    "MIN_RESTORE_GAIN",
    "SavedState",
    "StateCache",
    "shared_prefix",
]

DEFAULT_KV_CACHE_BYTES = 256 * 1024 * 1024
# Restoring a state costs about as much as evaluating a few tokens (measured ~1-4 ms against
# ~3 ms per prompt token here): not worth it for a gain smaller than this.
MIN_RESTORE_GAIN = 4


@dataclass(frozen=True, slots=True)
class SavedState:
    """The KV cache of sequence 0 and the tokens it holds."""

    tokens: tuple[int, ...]
    data: bytes

    @classmethod
    def capture(cls, llama: Any) -> SavedState:
        from llama_cpp import llama_cpp as native

        size = native.llama_state_seq_get_size(llama.ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        written = native.llama_state_seq_get_data(llama.ctx, buffer, size, 0)
        tokens = tuple(llama.input_ids[: llama.n_tokens].tolist())
        return cls(tokens, bytes(memoryview(buffer)[:written]))

    def restore(self, llama: Any) -> None:
        from llama_cpp import llama_cpp as native

        llama._ctx.kv_cache_seq_rm(-1, 0, -1)
        buffer = (ctypes.c_uint8 * len(self.data)).from_buffer_copy(self.data)
        if native.llama_state_seq_set_data(llama.ctx, buffer, len(self.data), 0) == 0:
            raise EngineError("llama.cpp could not restore a saved KV state")
        llama.input_ids[: len(self.tokens)] = self.tokens
        llama.n_tokens = len(self.tokens)


class StateCache:
    """Saved KV states by token prefix, least recently used evicted past a byte budget."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._states: OrderedDict[tuple[int, ...], SavedState] = OrderedDict()
        self._bytes = 0

    def best(self, tokens: Sequence[int]) -> tuple[int, SavedState] | None:
        best: tuple[int, tuple[int, ...]] | None = None
        for key in self._states:
            shared = shared_prefix(key, tokens)
            if shared and (best is None or shared > best[0]):
                best = (shared, key)
        if best is None:
            return None
        self._states.move_to_end(best[1])
        return best[0], self._states[best[1]]

    def put(self, state: SavedState) -> None:
        if len(state.data) > self.budget:
            return
        # A held state that the new one extends can never be the best match again.
        for tokens in [t for t in self._states if state.tokens[: len(t)] == t]:
            self._bytes -= len(self._states.pop(tokens).data)
        self._states[state.tokens] = state
        self._bytes += len(state.data)
        while self._bytes > self.budget:
            _, evicted = self._states.popitem(last=False)
            self._bytes -= len(evicted.data)


def shared_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens `a` and `b` have in common."""
    limit = min(len(a), len(b))
    index = 0
    while index < limit and a[index] == b[index]:
        index += 1
    return index
