"""Admission limits: the per-user minute window slides, slots come back once, queues refuse."""

from __future__ import annotations

import pytest

from agentkit.errors import AgentkitError, ConfigurationError
from agentkit.web import LimitExceeded, ModelQueue, UserLimits


def test_the_message_window_slides_and_retry_after_says_when() -> None:
    now = [1000.0]
    limits = UserLimits(messages_per_minute=2, clock=lambda: now[0])
    limits.check_message("ann", "a")
    now[0] += 20
    limits.check_message("ann", "b")
    now[0] += 10
    with pytest.raises(LimitExceeded) as refused:
        limits.check_message("ann", "c")
    assert refused.value.status_code == 429 and refused.value.retry_after == 30
    assert isinstance(refused.value, AgentkitError)
    limits.check_message("bob", "other users have their own window")
    now[0] += 30  # the first message is a minute old
    limits.check_message("ann", "c")
    with pytest.raises(LimitExceeded):
        limits.check_message("ann", "d")


def test_size_is_checked_before_the_rate_and_costs_nothing() -> None:
    limits = UserLimits(max_message_chars=5, messages_per_minute=1)
    with pytest.raises(LimitExceeded) as refused:
        limits.check_message("ann", "too long")
    assert refused.value.status_code == 413 and refused.value.retry_after is None
    limits.check_message("ann", "ok")  # the refused message did not count


def test_a_message_taken_back_frees_its_place_in_the_minute() -> None:
    now = [1000.0]
    limits = UserLimits(messages_per_minute=1, clock=lambda: now[0])
    counted = limits.check_message("ann", "refused later")
    with pytest.raises(LimitExceeded):
        limits.check_message("ann", "over")
    counted.release()
    counted.release()  # twice is harmless: it frees one place, not two
    limits.check_message("ann", "fits again")
    with pytest.raises(LimitExceeded):
        limits.check_message("ann", "over again")
    now[0] += 61
    late = limits.check_message("ann", "a new minute")
    now[0] += 61
    late.release()  # already out of the window: nothing to take back
    limits.check_message("ann", "still one a minute")
    with pytest.raises(LimitExceeded):
        limits.check_message("ann", "over")


def test_slots_come_back_once() -> None:
    limits = UserLimits(max_concurrent_runs=1)
    slot = limits.start_run("ann")
    with pytest.raises(LimitExceeded):
        limits.start_run("ann")
    limits.start_run("bob").release()
    slot.release()
    slot.release()  # twice is harmless: it does not free someone else's place
    again = limits.start_run("ann")
    with pytest.raises(LimitExceeded):
        limits.start_run("ann")
    again.release()

    queue = ModelQueue(2, retry_after=7)
    first, second = queue.admit(), queue.admit()
    with pytest.raises(LimitExceeded) as busy:
        queue.admit()
    assert busy.value.status_code == 429 and busy.value.retry_after == 7
    first.release()
    first.release()
    third = queue.admit()
    assert queue.active == 2
    second.release()
    third.release()
    assert queue.active == 0
    with pytest.raises(ConfigurationError):
        ModelQueue(0)
