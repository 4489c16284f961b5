"""Workflow ids: derived from what a request is, so a retried request finds its first run."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

__all__ = ["act_run_id", "agent_run_id", "resume_run_id"]


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:24]


def agent_run_id(agent: str, session_id: str, message: str, message_id: str | None) -> str:
    """A message's run: by its `message_id` when the caller has one, else by its text."""
    key = f"id:{message_id}" if message_id is not None else f"text:{message}"
    return f"agentkit:{agent}:{_digest(session_id, key)}"


def resume_run_id(agent: str, session_id: str, pending_call_ids: Iterable[str]) -> str:
    """A resume is keyed by the pause it ends: the ids of the calls decided on."""
    return f"agentkit:{agent}:resume:{_digest(session_id, *sorted(pending_call_ids))}"


def act_run_id(loop: str, chat: list[dict[str, object]], run_id: str | None) -> str:
    """A plain act() run: by the caller's `run_id`, else by the chat it starts from."""
    key = run_id if run_id is not None else json.dumps(chat, sort_keys=True)
    return f"agentkit:{loop}:act:{_digest(key)}"
