"""The `Chat` container: one conversation's history.

`Chat` follows lmstudio-python's `Chat` (same constructors and `add_*` methods) and adds list-like
editing and an OpenAI-style dict form (see `agentkit.chat_dicts`). The dict form adds two keys
only when they carry information: `reasoning_content` on assistant messages (as llama.cpp and
DeepSeek servers send it) and `is_error` on tool results. That keeps `to_dict` / `from_dict` and
`to_json` / `from_json` exact round trips while staying readable by OpenAI-compatible servers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, overload

from agentkit.chat_dicts import (
    call_names,
    coerce_message,
    message_to_dict,
    tool_result_from,
)
from agentkit.errors import ChatFormatError
from agentkit.messages import (
    AssistantMessage,
    Image,
    ImageInput,
    Message,
    MessageT,
    SystemMessage,
    ToolCall,
    ToolResultInput,
    ToolResultMessage,
    UserMessage,
    new_call_id,
    to_images,
)
from agentkit.untrusted import MAX_DEPTH, UntrustedDataError, check_depth, loads

__all__ = [
    "AssistantMessage",
    "Chat",
    "Image",
    "ImageInput",
    "Message",
    "SystemMessage",
    "ToolCall",
    "ToolResultMessage",
    "UserMessage",
    "new_call_id",
]

_CHAT_DEPTH = MAX_DEPTH + 6
"""Messages, message, tool calls, call, function and arguments wrap the arguments' own depth."""


class Chat:
    """One conversation's history; pass it to `act()` / `respond()` and edit it freely.

    Compatible with lmstudio-python's `Chat`, plus `len()`, iteration, indexing, `pop`,
    `insert`, `replace`, `remove`, and conversion to and from OpenAI-style message lists.
    """

    __slots__ = ("_messages",)

    def __init__(self, initial_prompt: str | None = None) -> None:
        self._messages: list[Message] = []
        if initial_prompt is not None:
            self.add_system_prompt(initial_prompt)

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def from_history(
        cls, history: str | Chat | Mapping[str, Any] | Sequence[Message | Mapping[str, Any]]
    ) -> Chat:
        """A chat from a user prompt, another chat (copied), or message data.

        A `str` becomes a chat with that single user message. Dicts and lists go through
        `from_dict`.
        """
        if isinstance(history, Chat):
            return history.copy()
        if isinstance(history, str):
            chat = cls()
            chat.add_user_message(history)
            return chat
        return cls.from_dict(history)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | Sequence[Message | Mapping[str, Any]]) -> Chat:
        """A chat from `{"messages": [...]}` or a bare list of OpenAI-style messages.

        Accepts what OpenAI-compatible servers and clients send: `developer` messages (as
        system messages), `content` as `None` or a list of parts, tool-call arguments as a
        JSON string or an object, and tool messages without `name` (taken from the earlier
        tool call with the same id). Raises `ChatFormatError` naming the message at fault.
        """
        if isinstance(data, Mapping):
            if "messages" not in data:
                raise ChatFormatError(
                    'chat data must be a list of messages or {"messages": [...]}; '
                    'the dict has no "messages" key'
                )
            data = data["messages"]
        if isinstance(data, str | bytes | bytearray) or not isinstance(data, Sequence):
            raise ChatFormatError(f"chat messages must be a list, got {type(data).__name__}")
        try:
            check_depth(data, what="chat data", max_depth=_CHAT_DEPTH)
        except UntrustedDataError as error:
            raise ChatFormatError(str(error)) from None
        chat = cls()
        names_by_call_id: dict[str, str] = {}
        for index, item in enumerate(data):
            message = coerce_message(item, index, names_by_call_id)
            if isinstance(message, AssistantMessage):
                names_by_call_id.update((call.id, call.name) for call in message.tool_calls)
            chat._messages.append(message)
        return chat

    @classmethod
    def from_json(cls, text: str | bytes) -> Chat:
        """A chat from the JSON text `to_json` produces (or any OpenAI-style message list)."""
        if not isinstance(text, str | bytes | bytearray):
            raise ChatFormatError(f"chat JSON must be str or bytes, got {type(text).__name__}")
        try:
            data = loads(text, what="chat JSON", max_depth=_CHAT_DEPTH)
        except (UntrustedDataError, UnicodeDecodeError) as error:
            raise ChatFormatError(str(error)) from error
        return cls.from_dict(data)

    # -- the lmstudio-compatible builders -----------------------------------------------------

    def add_system_prompt(self, prompt: str) -> SystemMessage:
        """Append a system message."""
        return self._add(SystemMessage(content=prompt))

    def add_user_message(
        self, content: str, images: Iterable[ImageInput] | ImageInput = ()
    ) -> UserMessage:
        """Append a user message; images may be `Image`s, bytes, file paths or URLs."""
        return self._add(UserMessage(content=content, images=to_images(images)))

    def add_assistant_response(
        self,
        response: str,
        tool_calls: Iterable[ToolCall] = (),
        *,
        reasoning: str | None = None,
    ) -> AssistantMessage:
        """Append an assistant message."""
        return self._add(
            AssistantMessage(content=response, tool_calls=tuple(tool_calls), reasoning=reasoning)
        )

    def add_tool_results(self, results: Iterable[ToolResultInput]) -> list[ToolResultMessage]:
        """Append tool results (one message each, as OpenAI-style histories hold them).

        Each result is a `ToolResultMessage` or a dict with `tool_call_id` (or lmstudio's
        `toolCallId`) and `content`, plus optional `name` and `is_error`. Either every result
        is added or, when one is malformed, none is.
        """
        names = call_names(self._messages)
        start = len(self._messages)
        added = [
            tool_result_from(result, start + offset, names) for offset, result in enumerate(results)
        ]
        self._messages.extend(added)
        return added

    def add_tool_result(
        self, tool_call_id: str, content: str, *, name: str = "", is_error: bool = False
    ) -> ToolResultMessage:
        """Append the result of one tool call (`name` defaults to the matching call's)."""
        if not name:
            name = call_names(self._messages).get(tool_call_id, "")
        return self._add(
            ToolResultMessage(
                tool_call_id=tool_call_id, name=name, content=content, is_error=is_error
            )
        )

    def append(self, message: Message | Mapping[str, Any]) -> None:
        """Append a message (a message model or its OpenAI-style dict).

        Use `on_message=chat.append` with act() to collect the messages a run adds.
        """
        self._messages.append(self._coerce(message, len(self._messages)))

    def copy(self) -> Chat:
        """An independent chat with the same messages."""
        clone = Chat()
        clone._messages = self._messages.copy()
        return clone

    # -- list-like editing ---------------------------------------------------------------------

    @property
    def messages(self) -> tuple[Message, ...]:
        """The messages, oldest first (a snapshot; edit through the chat's methods)."""
        return tuple(self._messages)

    def __len__(self) -> int:
        return len(self._messages)

    def __iter__(self) -> Iterator[Message]:
        return iter(self._messages.copy())

    @overload
    def __getitem__(self, index: int) -> Message: ...
    @overload
    def __getitem__(self, index: slice) -> list[Message]: ...
    def __getitem__(self, index: int | slice) -> Message | list[Message]:
        return self._messages[index]

    def __delitem__(self, index: int | slice) -> None:
        del self._messages[index]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Chat) and self._messages == other._messages

    __hash__ = None  # type: ignore[assignment]  # mutable container

    def __repr__(self) -> str:
        return f"Chat({self._messages!r})"

    def pop(self, index: int = -1) -> Message:
        """Remove and return the message at `index` (the last by default)."""
        return self._messages.pop(index)

    def insert(self, index: int, message: Message | Mapping[str, Any]) -> None:
        """Insert a message before `index`."""
        size = len(self._messages)
        position = max(0, index + size) if index < 0 else min(index, size)
        self._messages.insert(position, self._coerce(message, position))

    def replace(self, index: int, message: Message | Mapping[str, Any]) -> Message:
        """Replace the message at `index`; returns the message it replaced."""
        old = self._messages[index]
        position = index + len(self._messages) if index < 0 else index
        self._messages[position] = self._coerce(message, position)
        return old

    def remove(self, message: Message) -> None:
        """Remove the first message equal to `message` (ValueError if absent)."""
        self._messages.remove(message)

    def clear(self) -> None:
        """Remove every message."""
        self._messages.clear()

    # -- serialisation -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, list[dict[str, Any]]]:
        """`{"messages": [...]}` with OpenAI-style message dicts."""
        return {"messages": [message_to_dict(message) for message in self._messages]}

    def to_json(self, *, indent: int | None = None) -> str:
        """The dict form as JSON text."""
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    # -- helpers -------------------------------------------------------------------------------

    def _add(self, message: MessageT) -> MessageT:
        self._messages.append(message)
        return message

    def _coerce(self, message: object, position: int) -> Message:
        """`message` as a message model; `position` is where it will go (for errors, names)."""
        return coerce_message(message, position, call_names(self._messages[:position]))
