"""Request keys for `agentkit.tracing.replay.engines`, and the diagnostics of a replay miss.

A request's key hashes its matched content (model key, messages with tool call ids normalised,
tools, config, response format, prompt). On a miss, the diagnostics describe what was asked and
how the closest recording differs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

__all__ = [
    "canonical",
    "clip",
    "describe_ask",
    "difference",
    "request_content",
    "request_key",
    "similarity",
]

_KEYED_FIELDS = ("tools", "config", "response_format", "prompt")


def request_content(model_key: str, request: Mapping[str, Any]) -> dict[str, Any]:
    """The matched content of a request: tool call ids become `call_0`, `call_1`..."""
    aliases: dict[str, str] = {}

    def alias(call_id: object) -> str:
        return aliases.setdefault(str(call_id), f"call_{len(aliases)}")

    messages = []
    for message in request["messages"]:
        message = dict(message)
        if "tool_calls" in message:
            message["tool_calls"] = [{**c, "id": alias(c["id"])} for c in message["tool_calls"]]
        if "tool_call_id" in message:
            message["tool_call_id"] = alias(message["tool_call_id"])
        messages.append(message)
    return {
        "model": model_key,
        "messages": messages,
        **{name: request[name] for name in _KEYED_FIELDS},
    }


def canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def request_key(content: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(content).encode()).hexdigest()


def similarity(asked: Mapping[str, Any], recorded: Mapping[str, Any]) -> tuple[int, ...]:
    asked_messages, recorded_messages = asked["messages"], recorded["messages"]
    prefix = 0
    while prefix < min(len(asked_messages), len(recorded_messages)):
        if canonical(asked_messages[prefix]) != canonical(recorded_messages[prefix]):
            break
        prefix += 1
    same = [canonical(asked[name]) == canonical(recorded[name]) for name in _KEYED_FIELDS]
    return (
        asked["model"] == recorded["model"],
        prefix,
        -abs(len(asked_messages) - len(recorded_messages)),
        sum(same),
    )


def difference(asked: Mapping[str, Any], recorded: Mapping[str, Any]) -> str:
    if asked["model"] != recorded["model"]:
        return f"was recorded for model {recorded['model']!r}"
    pairs = zip(asked["messages"], recorded["messages"], strict=False)
    for index, (mine, theirs) in enumerate(pairs):
        if canonical(mine) != canonical(theirs):
            return (
                f"differs at message {index}: recorded {_describe_message(theirs)}, "
                f"asked {_describe_message(mine)}"
            )
    counts = len(asked["messages"]), len(recorded["messages"])
    if counts[0] != counts[1]:
        return f"has {counts[1]} messages where this request has {counts[0]}"
    for name in _KEYED_FIELDS:
        if canonical(asked[name]) != canonical(recorded[name]):
            if name == "tools":
                names = [[tool["name"] for tool in c["tools"]] for c in (recorded, asked)]
                if names[0] != names[1]:
                    return f"offered tools {names[0]}, this request {names[1]}"
            return (
                f"differs in {name}: recorded {clip(recorded[name], 160)}, "
                f"asked {clip(asked[name], 160)}"
            )
    return "is identical"  # unreachable: identical content has the same key


def describe_ask(content: Mapping[str, Any]) -> str:
    """The newest input of a request: its prompt, or the messages after the last answer."""
    if content["prompt"] is not None:
        return f"prompt {clip(content['prompt'])}"
    messages: list[dict[str, Any]] = content["messages"]
    if not messages:
        return "an empty chat"
    tail: list[dict[str, Any]] = []
    for message in reversed(messages):
        if message["role"] == "assistant" and tail:
            break
        tail.insert(0, message)
    tail = [message for message in tail if message["role"] != "system"] or tail
    shown = ", ".join(_describe_message(message) for message in tail[-3:])
    if len(tail) > 3:
        shown = f"{len(tail) - 3} messages, then {shown}"
    if all(message["role"] != "user" for message in tail):
        users = [message for message in messages if message["role"] == "user"]
        if users:
            shown += f" (after {_describe_message(users[-1])})"
    return shown


def _describe_message(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):  # text and image parts
        content = " ".join(p.get("text", "[image]") for p in content if isinstance(p, dict))
    text = str(content or "")
    role = message.get("role")
    if role == "tool":
        return f"tool result of {message.get('name') or '?'} {clip(text)}"
    if role == "assistant" and message.get("tool_calls"):
        calls = ", ".join(str(c["function"]["name"]) for c in message["tool_calls"])
        return f"assistant calling {calls}" + (f" {clip(text)}" if text else "")
    return f"{role} {clip(text)}"


def clip(value: object, limit: int = 100) -> str:
    text = value if isinstance(value, str) else canonical(value)
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")
