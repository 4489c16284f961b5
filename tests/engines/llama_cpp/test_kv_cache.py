"""The saved-KV-state cache (no model needed)."""

from __future__ import annotations

from agentkit.engines.llama_cpp.kv_cache import SavedState, StateCache, shared_prefix


def test_saved_states_extended_by_a_newer_one_are_dropped() -> None:
    cache = StateCache(budget=100)
    cache.put(SavedState((1, 2), b"x" * 10))
    cache.put(SavedState((1, 2, 3), b"y" * 10))
    cache.put(SavedState((7,), b"z" * 10))
    best = cache.best([1, 2, 3, 4])
    assert best is not None and best[0] == 3 and best[1].data == b"y" * 10
    again = cache.best([1, 2])
    assert again is not None and again[1].tokens == (1, 2, 3)
    cache.put(SavedState((8,), b"w" * 95))  # evicts least recently used to fit the budget
    assert cache.best([7]) is None


def test_a_state_larger_than_the_budget_is_not_kept() -> None:
    cache = StateCache(budget=4)
    cache.put(SavedState((1,), b"12345"))
    assert cache.best([1]) is None


def test_shared_prefix() -> None:
    assert shared_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert shared_prefix([], [1]) == 0
    assert shared_prefix([5, 6], [5, 6]) == 2
