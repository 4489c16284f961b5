"""The JSONL record format of `agentkit.tracing.replay.engines` recordings.

Requests and prediction events to JSON-ready dicts and back (validating recorded ones), the
field-reading helpers that validation uses, reading a file's lines, and handling a final line
that an interrupted recording left incomplete.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from agentkit.chat import Chat, ToolCall
from agentkit.chat_dicts import message_to_dict
from agentkit.engines.base import (
    FirstToken,
    MalformedToolCall,
    PredictionDone,
    PredictionEvent,
    PredictionRequest,
    PromptProgress,
    TextDelta,
    ToolCallRequested,
)
from agentkit.errors import AgentkitError
from agentkit.results import Usage
from agentkit.tracing.replay.keys import clip

__all__ = [
    "RecordingFormatError",
    "as_floats",
    "as_ints",
    "drop_truncated_tail",
    "event_from_dict",
    "event_to_dict",
    "get_field",
    "read_lines",
    "request_to_dict",
    "stored_request",
]

T = TypeVar("T")


class RecordingFormatError(AgentkitError, ValueError):
    """A recording file holds a line that is not a valid record."""

    def __init__(self, path: Path, line: int, problem: str) -> None:
        super().__init__(f"{path}:{line}: {problem}")
        self.path = path
        self.line = line


# -- writing --------------------------------------------------------------------------------


def drop_truncated_tail(path: Path) -> None:
    """Create the file, and cut off a final line an interrupted recording left incomplete."""
    with path.open("ab+") as file:
        end = file.seek(0, os.SEEK_END)
        if end == 0:
            return
        file.seek(end - 1)
        if file.read(1) == b"\n":
            return
        position, start = end, 0
        while position > 0:
            chunk = _read_before(file, position)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                start = position - len(chunk) + newline + 1
                break
            position -= len(chunk)
        file.seek(start)
        if _is_json(file.read()):
            file.write(b"\n")  # a complete record that only lacks its newline
            return
        warnings.warn(
            f"{path}: removed an incomplete final line ({end - start} bytes) left by an "
            "interrupted recording",
            RuntimeWarning,
            stacklevel=3,
        )
        file.truncate(start)


def _read_before(file: BinaryIO, position: int) -> bytes:
    start = max(0, position - 65536)
    file.seek(start)
    chunk: bytes = file.read(position - start)
    return chunk


def _is_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


def request_to_dict(request: PredictionRequest) -> dict[str, Any]:
    config, spec = request.config, request.response_format
    return {
        "messages": [message_to_dict(message) for message in request.messages],
        "tools": [
            {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
            for tool in request.tools
        ],
        "config": {} if config is None else config.model_dump(mode="json", exclude_defaults=True),
        "response_format": None if spec is None else {"name": spec.name, "schema": spec.schema},
        "prompt": request.prompt,
        "round_index": request.round_index,
    }


def event_to_dict(event: PredictionEvent) -> dict[str, Any]:
    if isinstance(event, PromptProgress):
        return {"type": "prompt_progress", "fraction": event.fraction}
    if isinstance(event, FirstToken):
        return {"type": "first_token"}
    if isinstance(event, TextDelta):
        reasoning = {"reasoning": True} if event.reasoning else {}
        return {"type": "text", "text": event.text, **reasoning}
    if isinstance(event, ToolCallRequested):
        call = event.call
        return {"type": "tool_call", "name": call.name, "arguments": call.arguments, "id": call.id}
    if isinstance(event, MalformedToolCall):
        return {"type": "malformed_tool_call", "raw": event.raw, "reason": event.reason}
    usage = {
        "prompt_tokens": event.usage.prompt_tokens,
        "completion_tokens": event.usage.completion_tokens,
    }
    return {"type": "done", "usage": usage, "finish_reason": event.finish_reason}


# -- reading --------------------------------------------------------------------------------


def read_lines(path: Path) -> Iterator[tuple[int, object]]:
    """(line number, decoded JSON) of each non-blank line; skips a truncated final line."""
    lines = path.read_bytes().split(b"\n")
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except ValueError as error:
            if number == len(lines):  # no newline after it: cut short by a crash
                warnings.warn(
                    f"{path}:{number}: skipped an incomplete final line left by an "
                    "interrupted recording",
                    RuntimeWarning,
                    stacklevel=3,
                )
                continue
            raise RecordingFormatError(path, number, f"not valid JSON ({error})") from error
        yield number, value


def stored_request(data: dict[str, Any]) -> dict[str, Any]:
    """A recorded request in the form `request_to_dict` gives (validated on the way)."""
    messages = Chat.from_dict(get_field(data, "messages", list)).messages
    tools = get_field(data, "tools", list)
    for tool in tools:
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise ValueError(f"a tool must be an object with a 'name', got {clip(tool)}")
    response_format = data.get("response_format")
    if response_format is not None and not (
        isinstance(response_format, dict) and isinstance(response_format.get("schema"), dict)
    ):
        raise ValueError(
            "'response_format' must be null or an object with a 'schema' object, "
            f"got {clip(response_format)}"
        )
    prompt = data.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise ValueError(f"'prompt' must be a string or null, got {clip(prompt)}")
    return {
        "messages": [message_to_dict(message) for message in messages],
        "tools": tools,
        "config": get_field(data, "config", dict),
        "response_format": response_format,
        "prompt": prompt,
    }


def event_from_dict(data: object) -> PredictionEvent:
    if not isinstance(data, dict):
        raise ValueError(f"an event must be a JSON object, got {clip(data)}")
    kind = data.get("type")
    if kind == "prompt_progress":
        return PromptProgress(as_floats([data.get("fraction")])[0])
    if kind == "first_token":
        return FirstToken()
    if kind == "text":
        reasoning = data.get("reasoning", False)
        if not isinstance(reasoning, bool):
            raise ValueError(f"'reasoning' must be true or false, got {clip(reasoning)}")
        return TextDelta(get_field(data, "text", str), reasoning)
    if kind == "tool_call":
        name, call_id = get_field(data, "name", str), get_field(data, "id", str)
        return ToolCallRequested(ToolCall(name, data.get("arguments"), call_id))
    if kind == "malformed_tool_call":
        return MalformedToolCall(get_field(data, "raw", str), get_field(data, "reason", str))
    if kind == "done":
        usage = as_ints([get_field(data, "usage", dict).get(n) for n in _USAGE_FIELDS])
        return PredictionDone(Usage(*usage), get_field(data, "finish_reason", str))
    raise ValueError(f"unknown event type {kind!r}; expected one of {', '.join(_EVENT_TYPES)}")


_USAGE_FIELDS = ("prompt_tokens", "completion_tokens")
_EVENT_TYPES = (
    "prompt_progress",
    "first_token",
    "text",
    "tool_call",
    "malformed_tool_call",
    "done",
)
_TYPE_NAMES = {str: "a string", list: "a list", dict: "an object", int: "an integer"}


def get_field(data: Mapping[str, Any], name: str, kind: type[T]) -> T:
    value = data.get(name)
    if not isinstance(value, kind):
        wanted = _TYPE_NAMES.get(kind, kind.__name__)
        raise ValueError(f"{name!r} must be {wanted}, got {clip(value)}")
    return value


def as_ints(value: object) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(item, int) and not isinstance(item, bool) for item in value
    ):
        raise ValueError(f"expected integers, got {clip(value)}")
    return value


def as_floats(value: object) -> list[float]:
    if not isinstance(value, list) or not all(
        isinstance(item, int | float) and not isinstance(item, bool) for item in value
    ):
        raise ValueError(f"expected numbers, got {clip(value)}")
    return [float(item) for item in value]
