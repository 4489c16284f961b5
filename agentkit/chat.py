"""Chat history: typed messages and the `Chat` container.

`Chat` follows lmstudio-python's `Chat` (same constructors and `add_*` methods) and adds list-like
editing and an OpenAI-style dict form. Messages are frozen pydantic models, so `copy()` can share
them between chats without one chat's edits showing up in another.

The dict form is the OpenAI chat-completions message list, with two additions that only appear
when they carry information: `reasoning_content` on assistant messages (as llama.cpp and
DeepSeek servers send it) and `is_error` on tool results. That keeps `to_dict` / `from_dict` and
`to_json` / `from_json` exact round trips while staying readable by OpenAI-compatible servers.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentkit.errors import ChatFormatError

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


def new_call_id() -> str:
    """A fresh tool call id in the OpenAI style (`call_` and 24 hex digits)."""
    return "call_" + os.urandom(12).hex()


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Image(_Frozen):
    """An image attached to a user message, as a URL (usually a `data:` URL)."""

    url: str

    @classmethod
    def from_bytes(cls, data: bytes, mime_type: str | None = None) -> Image:
        """An image from raw bytes; the type is sniffed from the bytes when not given."""
        mime = mime_type or _sniff_image_type(data)
        return cls(url=f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}")

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> Image:
        """An image read from a file."""
        data = Path(path).read_bytes()
        guessed, _ = mimetypes.guess_type(str(path))
        return cls.from_bytes(data, guessed if guessed and guessed.startswith("image/") else None)


ImageInput: TypeAlias = "Image | bytes | str | os.PathLike[str]"

_IMAGE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def _sniff_image_type(data: bytes) -> str:
    for signature, mime in _IMAGE_SIGNATURES:
        if data.startswith(signature):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    raise ChatFormatError(
        "cannot tell the image type from its bytes (PNG, JPEG, GIF and WebP are recognised); "
        "pass mime_type= to Image.from_bytes"
    )


def _to_image(value: ImageInput) -> Image:
    if isinstance(value, Image):
        return value
    if isinstance(value, bytes):
        return Image.from_bytes(value)
    if isinstance(value, str) and value.startswith(("data:", "http://", "https://")):
        return Image(url=value)
    return Image.from_path(value)


class ToolCall(_Frozen):
    """A tool call requested by the model.

    `arguments` is the decoded JSON object. When the model's arguments text was not a JSON
    object, it is kept verbatim as a `str`, so the chat records exactly what the model said.
    """

    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)
    id: str = Field(default_factory=new_call_id)

    def __init__(
        self,
        name: str,
        arguments: Mapping[str, Any] | str | None = None,
        id: str | None = None,  # noqa: A002 - mirrors the OpenAI field name
    ) -> None:
        super().__init__(
            name=name,
            arguments={} if arguments is None else arguments,
            id=id if id is not None else new_call_id(),
        )


class SystemMessage(_Frozen):
    """Instructions for the model."""

    role: Literal["system"] = "system"
    content: str


class UserMessage(_Frozen):
    """A message from the user, optionally with images."""

    role: Literal["user"] = "user"
    content: str
    images: tuple[Image, ...] = ()


class AssistantMessage(_Frozen):
    """A model response: text, tool calls, and reasoning kept apart from the text."""

    role: Literal["assistant"] = "assistant"
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: str | None = None

    @property
    def text(self) -> str:
        """The response text (alias of `content`)."""
        return self.content


class ToolResultMessage(_Frozen):
    """The result of one tool call, sent back to the model."""

    role: Literal["tool"] = "tool"
    tool_call_id: str
    name: str = ""
    content: str
    is_error: bool = False


Message: TypeAlias = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolResultMessage,
    Field(discriminator="role"),
]
_MESSAGE_TYPES = (SystemMessage, UserMessage, AssistantMessage, ToolResultMessage)


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
        """A chat from `{"messages": [...]}` or a bare list of OpenAI-style messages."""
        if isinstance(data, Mapping):
            if "messages" not in data:
                raise ChatFormatError('chat data must be a list of messages or {"messages": [...]}')
            data = data["messages"]
        if isinstance(data, str | bytes) or not isinstance(data, Sequence):
            raise ChatFormatError(f"chat messages must be a list, got {type(data).__name__}")
        chat = cls()
        names_by_call_id: dict[str, str] = {}
        for index, item in enumerate(data):
            message = (
                item
                if isinstance(item, _MESSAGE_TYPES)
                else _message_from_dict(item, index, names_by_call_id)
            )
            if isinstance(message, AssistantMessage):
                names_by_call_id.update((call.id, call.name) for call in message.tool_calls)
            chat._messages.append(message)
        return chat

    @classmethod
    def from_json(cls, text: str | bytes) -> Chat:
        """A chat from the JSON text `to_json` produces (or any OpenAI-style message list)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ChatFormatError(f"chat JSON is not valid JSON: {error}") from error
        return cls.from_dict(data)

    # -- the lmstudio-compatible builders -----------------------------------------------------

    def add_system_prompt(self, prompt: str) -> SystemMessage:
        """Append a system message."""
        return self._add(SystemMessage(content=prompt))

    def add_user_message(self, content: str, images: Iterable[ImageInput] = ()) -> UserMessage:
        """Append a user message; images may be `Image`s, bytes, file paths or URLs."""
        return self._add(UserMessage(content=content, images=tuple(map(_to_image, images))))

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

    def add_tool_results(self, results: Iterable[ToolResultMessage]) -> list[ToolResultMessage]:
        """Append tool results (one message each, as OpenAI-style histories hold them)."""
        added = [self._add(_checked(result, ToolResultMessage)) for result in results]
        return added

    def add_tool_result(
        self, tool_call_id: str, content: str, *, name: str = "", is_error: bool = False
    ) -> ToolResultMessage:
        """Append the result of one tool call."""
        return self._add(
            ToolResultMessage(
                tool_call_id=tool_call_id, name=name, content=content, is_error=is_error
            )
        )

    def append(self, message: Message | Mapping[str, Any]) -> None:
        """Append a message (a message model or its OpenAI-style dict).

        Use `on_message=chat.append` with act() to collect the messages a run adds.
        """
        self._messages.append(self._coerce(message))

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
        self._messages.insert(index, self._coerce(message))

    def replace(self, index: int, message: Message | Mapping[str, Any]) -> Message:
        """Replace the message at `index`; returns the message it replaced."""
        old = self._messages[index]
        self._messages[index] = self._coerce(message)
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
        return {"messages": [_message_to_dict(message) for message in self._messages]}

    def to_json(self, *, indent: int | None = None) -> str:
        """The dict form as JSON text."""
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    # -- helpers -------------------------------------------------------------------------------

    def _add(self, message: Any) -> Any:
        self._messages.append(message)
        return message

    def _coerce(self, message: Message | Mapping[str, Any]) -> Message:
        if isinstance(message, _MESSAGE_TYPES):
            return message
        if isinstance(message, Mapping):
            names = {
                call.id: call.name
                for earlier in self._messages
                if isinstance(earlier, AssistantMessage)
                for call in earlier.tool_calls
            }
            return _message_from_dict(message, len(self._messages), names)
        raise ChatFormatError(
            f"a chat message must be a message model or a dict, got {type(message).__name__}"
        )


def _checked(value: object, expected: type[ToolResultMessage]) -> ToolResultMessage:
    if not isinstance(value, expected):
        raise ChatFormatError(f"expected {expected.__name__}, got {type(value).__name__}")
    return value


# -- OpenAI-style dict conversion ---------------------------------------------------------------


def _message_to_dict(message: Message) -> dict[str, Any]:
    if isinstance(message, UserMessage) and message.images:
        parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}]
        parts += [
            {"type": "image_url", "image_url": {"url": image.url}} for image in message.images
        ]
        return {"role": "user", "content": parts}
    if isinstance(message, AssistantMessage):
        data: dict[str, Any] = {"role": "assistant", "content": message.content}
        if message.tool_calls:
            data["tool_calls"] = [_tool_call_to_dict(call) for call in message.tool_calls]
        if message.reasoning is not None:
            data["reasoning_content"] = message.reasoning
        return data
    if isinstance(message, ToolResultMessage):
        data = {
            "role": "tool",
            "tool_call_id": message.tool_call_id,
            "name": message.name,
            "content": message.content,
        }
        if message.is_error:
            data["is_error"] = True
        return data
    return {"role": message.role, "content": message.content}


def _tool_call_to_dict(call: ToolCall) -> dict[str, Any]:
    arguments = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": arguments},
    }


def _message_from_dict(data: Any, index: int, names_by_call_id: Mapping[str, str]) -> Message:
    if not isinstance(data, Mapping):
        raise ChatFormatError(f"message {index}: expected a dict, got {type(data).__name__}")
    role = data.get("role")
    try:
        if role in ("system", "developer"):
            return SystemMessage(content=_text_of(data.get("content"), index))
        if role == "user":
            return _user_from_dict(data, index)
        if role == "assistant":
            return AssistantMessage(
                content=_text_of(data.get("content"), index),
                tool_calls=tuple(
                    _tool_call_from_dict(c, index) for c in data.get("tool_calls") or ()
                ),
                reasoning=data.get("reasoning_content", data.get("reasoning")),
            )
        if role == "tool":
            call_id = data.get("tool_call_id")
            if not isinstance(call_id, str):
                raise ChatFormatError(f"message {index}: a tool message needs a 'tool_call_id'")
            return ToolResultMessage(
                tool_call_id=call_id,
                name=data.get("name") or names_by_call_id.get(call_id, ""),
                content=_text_of(data.get("content"), index),
                is_error=bool(data.get("is_error", False)),
            )
    except ValidationError as error:
        raise ChatFormatError(f"message {index}: {error}") from error
    raise ChatFormatError(
        f"message {index}: unknown role {role!r}; expected system, user, assistant or tool"
    )


def _user_from_dict(data: Mapping[str, Any], index: int) -> UserMessage:
    content = data.get("content")
    if not isinstance(content, list):
        return UserMessage(content=_text_of(content, index))
    images = []
    for part in content:
        if isinstance(part, Mapping) and part.get("type") == "image_url":
            image_url = part.get("image_url")
            url = image_url.get("url") if isinstance(image_url, Mapping) else image_url
            if not isinstance(url, str):
                raise ChatFormatError(f"message {index}: an image_url part needs a url string")
            images.append(Image(url=url))
    return UserMessage(content=_text_of(content, index), images=tuple(images))


def _text_of(content: Any, index: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping) and part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            elif not (isinstance(part, Mapping) and part.get("type") == "image_url"):
                raise ChatFormatError(f"message {index}: unsupported content part {part!r}")
        return "".join(texts)
    raise ChatFormatError(
        f"message {index}: content must be a string or a list of parts, got {type(content).__name__}"
    )


def _tool_call_from_dict(data: Any, index: int) -> ToolCall:
    if not isinstance(data, Mapping):
        raise ChatFormatError(f"message {index}: a tool call must be a dict")
    function = data.get("function", data)
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(name, str):
        raise ChatFormatError(f"message {index}: a tool call needs a function name")
    raw = function.get("arguments", {})
    return ToolCall(name, decode_arguments(raw), data.get("id"))


def decode_arguments(raw: Any) -> dict[str, Any] | str:
    """Arguments as a dict when they are (or encode) a JSON object, else the text as given."""
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str):
        try:
            decoded = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError:
            return raw
        return decoded if isinstance(decoded, dict) else raw
    return json.dumps(raw)
