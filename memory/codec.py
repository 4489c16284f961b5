"""Messages and metadata as the JSON text stores keep: agentkit's own message form, exact.

A message is stored as its pydantic JSON (`{"role": "assistant", "tool_calls": [...], ...}`) and
read back into an equal message. Everything is checked before a store writes anything, so a bad
message in a round leaves the whole round unwritten.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from agentkit.chat_dicts import call_names, coerce_messages
from agentkit.errors import ConfigurationError, MessageTooLargeError, StoreCorruptedError
from agentkit.messages import DECODING_STORED, Message
from agentkit.untrusted import UntrustedDataError, loads

from .sessions import check_revision, check_session_id

__all__ = [
    "decode_messages",
    "decode_metadata",
    "encode_messages",
    "encode_metadata",
    "encode_round",
    "merged",
]

_MESSAGE: TypeAdapter[Message] = TypeAdapter(Message)


def encode_round(
    session_id: str,
    messages: Iterable[Message | Mapping[str, Any]],
    expected_revision: int,
    limit: int,
) -> list[str]:
    """What every store checks before an append: the id, the revision, and each message's
    JSON text (see `encode_messages`)."""
    check_session_id(session_id)
    check_revision(expected_revision)
    return encode_messages(session_id, messages, limit)


def encode_messages(
    session_id: str, messages: Iterable[Message | Mapping[str, Any]], limit: int
) -> list[str]:
    """The JSON text of each message; refuses an empty round and any message over `limit`."""
    coerced: list[Message] = []
    for index, item in enumerate(messages):
        coerced += coerce_messages(item, index, call_names(coerced))
    if not coerced:
        raise ConfigurationError("append() needs at least one message")
    texts = []
    for index, message in enumerate(coerced):
        text = _MESSAGE.dump_json(message).decode("utf-8")
        if len(text) * 4 > limit:  # UTF-8 takes at most 4 bytes a character: encode only then
            size = len(text.encode("utf-8"))
            if size > limit:
                raise MessageTooLargeError(session_id, f"message {index} of the round", size, limit)
        texts.append(text)
    return texts


def decode_messages(
    session_id: str, rows: Iterable[tuple[int, str | bytes]]
) -> tuple[Message, ...]:
    """Stored messages from (position, JSON) rows; a row agentkit could not have written is
    `StoreCorruptedError`."""
    token = DECODING_STORED.set(True)
    try:
        return tuple(_decoded(session_id, position, text) for position, text in rows)
    finally:
        DECODING_STORED.reset(token)


def _decoded(session_id: str, position: int, text: str | bytes) -> Message:
    try:
        return _MESSAGE.validate_json(text)
    except ValidationError as error:
        raise StoreCorruptedError(
            f"session {session_id!r}, message {position}: stored data is not an agentkit "
            f"message ({error.error_count()} problems, first: {error.errors()[0]['msg']})"
        ) from None


def encode_metadata(session_id: str, metadata: Mapping[str, Any], limit: int) -> str:
    """Metadata as JSON text: a JSON object with str keys, no NaN, within `limit` bytes."""
    try:
        text = json.dumps(dict(metadata), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as error:
        raise ConfigurationError(f"session metadata must be JSON data: {error}") from None
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise ConfigurationError("session metadata must be valid Unicode") from None
    if size > limit:
        raise MessageTooLargeError(session_id, "its metadata", size, limit)
    return text


def decode_metadata(session_id: str, text: str) -> dict[str, Any]:
    """Stored metadata; anything but a JSON object is `StoreCorruptedError`."""
    try:
        value = loads(text, what="session metadata")
    except UntrustedDataError as error:
        raise StoreCorruptedError(f"session {session_id!r}: metadata unreadable: {error}") from None
    if not isinstance(value, dict):
        raise StoreCorruptedError(f"session {session_id!r}: metadata is not a JSON object")
    return value


def merged(current: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """`current` updated with `values`; a None value removes its key."""
    if not all(isinstance(key, str) for key in values):
        raise ConfigurationError("metadata keys must be str")
    result = dict(current)
    for key, value in values.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result
