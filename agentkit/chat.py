"""The `Chat` container: one conversation's history.

`Chat` follows lmstudio-python's `Chat`: the same constructors and `add_*` methods, taking the
same inputs (lmstudio's structs, history dicts and `Chat`s too, see `agentkit.chat_lmstudio`).
It adds list-like editing and an OpenAI-style dict form (see `agentkit.chat_dicts`). The dict
form adds two keys only when they carry information: `reasoning_content` on assistant messages
(as llama.cpp and DeepSeek servers send it) and `is_error` on tool results. That keeps
`to_dict` / `from_dict` and `to_json` / `from_json` exact round trips while staying readable by
OpenAI-compatible servers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, overload

from pydantic import ValidationError

from agentkit import chat_lmstudio
from agentkit.chat_dicts import (
    call_names,
    coerce_message,
    coerce_messages,
    describe,
    message_to_dict,
    tool_result_from,
)
from agentkit.errors import ChatFormatError
from agentkit.messages import (
    AssistantMessage,
    FileHandle,
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
)
from agentkit.untrusted import MAX_DEPTH, UntrustedDataError, check_depth, loads

__all__ = [
    "AssistantMessage",
    "Chat",
    "FileHandle",
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
    Where lmstudio keeps one message of several parts (consecutive user messages, the results
    of one `add_tool_results`), agentkit keeps one message per part; the LM Studio engine joins
    them again, so LM Studio receives what lmstudio's own `Chat` would send.
    """

    __slots__ = ("_messages",)

    def __init__(self, initial_prompt: object = None) -> None:
        self._messages: list[Message] = []
        if initial_prompt is not None:
            self.add_system_prompt(initial_prompt)

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def from_history(cls, history: object) -> Chat:
        """A chat from a user prompt, another chat (copied), or message data.

        A `str` becomes a chat with that single user message. Message data is what `from_dict`
        reads, plus lmstudio's own: its `Chat`, `ChatHistoryData`, history dicts and message
        structs, and `(role, content)` pairs (read as `add_entry` reads them).
        """
        if isinstance(history, Chat):
            return history.copy()
        if isinstance(history, str):
            chat = cls()
            chat.add_user_message(history)
            return chat
        return cls._from_data(chat_lmstudio.history_data(history), split=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | Sequence[Message | Mapping[str, Any]]) -> Chat:
        """A chat from `{"messages": [...]}` or a bare list of OpenAI-style messages.

        Accepts what OpenAI-compatible servers and clients send: `developer` messages (as
        system messages), `content` as `None` or a list of parts, tool-call arguments as a
        JSON string or an object, and tool messages without `name` (taken from the earlier
        tool call with the same id). Raises `ChatFormatError` naming the message at fault.
        """
        return cls._from_data(data, split=False)

    @classmethod
    def _from_data(cls, data: object, *, split: bool) -> Chat:
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
        names: dict[str, str] = {}
        for index, item in enumerate(data):
            start = len(chat._messages)
            if split and isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
                chat.add_entry(*item)  # lmstudio's (role, content) history entries
            else:
                chat._messages += coerce_messages(item, index, names, split=split)
            names.update(call_names(chat._messages[start:]))
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

    def add_system_prompt(self, prompt: object) -> SystemMessage:
        """Append a system message: text, lmstudio's `TextData`, `{"text": ...}` or a list."""
        text = chat_lmstudio.system_text(prompt, len(self._messages))
        return self._add(SystemMessage(content=text))

    def add_user_message(
        self, content: object, images: Iterable[ImageInput | object] | ImageInput = ()
    ) -> UserMessage:
        """Append a user message; returns it.

        `content` is text, or lmstudio's parts (`TextData`, `FileHandle`, their dicts, or a
        list of them). `images` may be `Image`s, bytes, file paths, URLs, and lmstudio
        `FileHandle`s (or their dicts) for the LM Studio engine. A list of several text parts
        becomes one message per text part (each with the attachments after it); the last is
        returned.
        """
        messages = chat_lmstudio.user_turn(content, images, len(self._messages))
        self._messages.extend(messages)
        return messages[-1]

    def add_assistant_response(
        self,
        response: object,
        tool_calls: Iterable[ToolCall | Mapping[str, Any] | object] = (),
        *,
        reasoning: str | None = None,
    ) -> AssistantMessage:
        """Append an assistant message; returns it.

        `response` is text, a `PredictionResult` (agentkit's keeps its tool calls and reasoning;
        lmstudio's gives its text), an `AssistantMessage`, lmstudio's `TextData` or
        `{"text": ...}`, or a list of text and tool call request parts. `tool_calls` are added
        after the response's own: `ToolCall`s, OpenAI-style dicts, or lmstudio's
        `ToolCallRequest`s and their dicts.
        """
        index = len(self._messages)
        text, calls, own_reasoning = chat_lmstudio.assistant_fields(response, index)
        calls += chat_lmstudio.tool_calls_of(tool_calls, index)
        return self._add(
            self._checked(
                index,
                AssistantMessage,
                content=text,
                tool_calls=tuple(calls),
                reasoning=own_reasoning if reasoning is None else reasoning,
            )
        )

    def add_entry(self, role: str, content: object) -> Message | list[ToolResultMessage]:
        """Append a message given as lmstudio's `add_entry` takes it: a role and its content.

        `user`, `system` and `assistant` content is what `add_user_message`,
        `add_system_prompt` and `add_assistant_response` take; `tool` content is a list of
        tool results (returned as a list, one message each).
        """
        if role == "user":
            return self.add_user_message(content)
        if role == "system":
            return self.add_system_prompt(content)
        if role == "assistant":
            return self.add_assistant_response(content)
        if role == "tool":
            single = isinstance(content, Mapping | ToolResultMessage) or "lmstudio." in (
                type(content).__module__
            )
            results = [content] if single else content
            return self.add_tool_results(results)  # type: ignore[arg-type]  # checked there
        raise ChatFormatError(
            f"message {len(self._messages)}: unknown role {str(role)[:40]!r}; expected user, "
            "system, assistant or tool"
        )

    def add_tool_results(self, results: Iterable[ToolResultInput]) -> list[ToolResultMessage]:
        """Append tool results (one message each, as OpenAI-style histories hold them).

        Each result is a `ToolResultMessage`, lmstudio's `ToolCallResultData`, or a dict with
        `tool_call_id` (or lmstudio's `toolCallId`) and `content`, plus optional `name` and
        `is_error`. Either every result is added or, when one is malformed, none is.
        """
        if isinstance(results, str | bytes | Mapping) or not isinstance(results, Iterable):
            raise ChatFormatError(
                f"message {len(self._messages)}: tool results must be a list, "
                f"got {type(results).__name__}"
            )
        names = call_names(self._messages)
        start = len(self._messages)
        added = [
            tool_result_from(result, start + offset, names) for offset, result in enumerate(results)
        ]
        self._messages.extend(added)
        return added

    def add_tool_result(
        self,
        tool_call_id: str | ToolResultInput | object,
        content: str | None = None,
        *,
        name: str = "",
        is_error: bool = False,
    ) -> ToolResultMessage:
        """Append the result of one tool call (`name` defaults to the matching call's).

        Takes agentkit's `(tool_call_id, content)` or lmstudio's single result: its
        `ToolCallResultData`, or a dict with `toolCallId` (or `tool_call_id`) and `content`.
        """
        index = len(self._messages)
        names = call_names(self._messages)
        if not isinstance(tool_call_id, str):
            if content is not None:
                raise ChatFormatError(
                    f"message {index}: pass either a tool call id and content, or one result"
                )
            result = tool_result_from(tool_call_id, index, names)
            if name or is_error:
                update = {"name": name or result.name, "is_error": is_error or result.is_error}
                result = result.model_copy(update=update)
            return self._add(result)
        if not isinstance(content, str):
            raise ChatFormatError(
                f"message {index}: a tool result's content must be a string, "
                f"got {type(content).__name__}"
            )
        return self._add(
            self._checked(
                index,
                ToolResultMessage,
                tool_call_id=tool_call_id,
                name=name or names.get(tool_call_id, ""),
                content=content,
                is_error=is_error,
            )
        )

    def append(self, message: Message | Mapping[str, Any] | object) -> None:
        """Append a message: a message model, its OpenAI-style dict, or lmstudio's message
        struct or history dict (an lmstudio tool message with several results appends one
        message per result).

        Use `on_message=chat.append` with act() to collect the messages a run adds.
        """
        self._extend(message, split=True)

    def copy(self) -> Chat:
        """An independent chat with the same messages (`copy.copy` and `copy.deepcopy` too)."""
        clone = Chat()
        clone._messages = self._messages.copy()
        return clone

    __copy__ = copy

    def __deepcopy__(self, memo: object) -> Chat:
        return self.copy()  # the messages are frozen: sharing them is safe

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

    def _extend(self, item: object, *, split: bool) -> None:
        position = len(self._messages)
        self._messages += coerce_messages(item, position, call_names(self._messages), split=split)

    @staticmethod
    def _checked(index: int, model: type[MessageT], **fields: Any) -> MessageT:
        """`model(**fields)`, with pydantic's errors as a `ChatFormatError` for the message."""
        try:
            return model(**fields)
        except ValidationError as error:
            raise ChatFormatError(f"message {index}: {describe(error)}") from None

    def _coerce(self, message: object, position: int) -> Message:
        """`message` as a message model; `position` is where it will go (for errors, names)."""
        return coerce_message(message, position, call_names(self._messages[:position]))
