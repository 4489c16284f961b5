"""Chat history: typed messages and the `Chat` container.

`Chat` follows lmstudio-python's `Chat` (same constructors and `add_*` methods) and adds list-like
editing and an OpenAI-style dict form. Messages are frozen pydantic models, so `copy()` can share
them between chats without one chat's edits showing up in another.

The dict form is the OpenAI chat-completions message list, with two additions that only appear
when they carry information: `reasoning_content` on assistant messages (as llama.cpp and
DeepSeek servers send it) and `is_error` on tool results. That keeps `to_dict` / `from_dict` and
`to_json` / `from_json` exact round trips while staying readable by OpenAI-compatible servers.

Data from users and servers is checked as it comes in: anything malformed raises
`ChatFormatError` naming the message index, and nothing valid is dropped (tool-call arguments
that are not a JSON object are kept verbatim as text).
"""

from __future__ import annotations

import base64
import json
import math
import mimetypes
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias, TypeVar, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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
    """An image attached to a user message, as a URL (usually a `data:` URL).

    `detail` is OpenAI's optional `image_url.detail` ("auto", "low" or "high"), kept when given.
    """

    url: str
    detail: str | None = None

    @classmethod
    def from_bytes(cls, data: bytes, mime_type: str | None = None) -> Image:
        """An image from raw bytes; the type is sniffed from the bytes when not given."""
        mime = mime_type or _sniff_image_type(data)
        return cls(url=f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}")

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> Image:
        """An image read from a file; the type comes from its bytes, else from its name."""
        data = Path(path).read_bytes()
        mime = _image_type_of(data)
        if mime is None:
            guessed, _ = mimetypes.guess_type(os.fspath(path))
            if guessed is None or not guessed.startswith("image/"):
                raise ChatFormatError(
                    f"cannot tell the image type of {os.fspath(path)!r} (PNG, JPEG, GIF and WebP "
                    "are recognised from their bytes); use Image.from_bytes(data, mime_type=...)"
                )
            mime = guessed
        return cls.from_bytes(data, mime)


ImageInput: TypeAlias = "Image | bytes | bytearray | memoryview | str | os.PathLike[str]"

_IMAGE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def _image_type_of(data: bytes) -> str | None:
    for signature, mime in _IMAGE_SIGNATURES:
        if data.startswith(signature):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _sniff_image_type(data: bytes) -> str:
    mime = _image_type_of(data)
    if mime is None:
        raise ChatFormatError(
            "cannot tell the image type from its bytes (PNG, JPEG, GIF and WebP are recognised); "
            "pass mime_type= to Image.from_bytes"
        )
    return mime


def _to_image(value: object) -> Image:
    if isinstance(value, Image):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return Image.from_bytes(bytes(value))
    if isinstance(value, str) and value.startswith(("data:", "http://", "https://")):
        return Image(url=value)
    if isinstance(value, str | os.PathLike):
        return Image.from_path(value)
    raise ChatFormatError(
        f"an image must be an Image, bytes, a file path or a URL, got {type(value).__name__}"
    )


def _to_images(images: Iterable[ImageInput] | ImageInput) -> tuple[Image, ...]:
    # A single image (a path is a str, and bytes are iterable) counts as one, not as many.
    if isinstance(images, Image | str | bytes | bytearray | memoryview | os.PathLike):
        return (_to_image(images),)
    return tuple(map(_to_image, images))


class ToolCall(_Frozen):
    """A tool call requested by the model.

    `arguments` is the decoded JSON object. When the model's arguments text was not a JSON
    object, it is kept verbatim as a `str`, so the chat records exactly what the model said.
    Text that does encode a JSON object is decoded, and `None` or blank text means `{}`.
    """

    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)
    id: str = Field(default_factory=new_call_id)

    def __init__(
        self,
        name: str,
        arguments: Mapping[str, Any] | str | None = None,
        id: str | None = None,  # mirrors the OpenAI field name
    ) -> None:
        # BaseModel's own __init__: the type checker sees no fields on `_Frozen`'s.
        BaseModel.__init__(
            self,
            name=name,
            arguments={} if arguments is None else arguments,
            id=id if id is not None else new_call_id(),
        )

    @field_validator("arguments", mode="before")
    @classmethod
    def _normalise_arguments(cls, value: Any) -> dict[str, Any] | str:
        return decode_arguments(value)


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
_M = TypeVar("_M", SystemMessage, UserMessage, AssistantMessage, ToolResultMessage)

ToolResultInput: TypeAlias = "ToolResultMessage | Mapping[str, Any]"


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
        chat = cls()
        names_by_call_id: dict[str, str] = {}
        for index, item in enumerate(data):
            message = _coerce(item, index, names_by_call_id)
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
            data = json.loads(text)
        except (ValueError, RecursionError) as error:  # includes JSON and UTF-8 decoding errors
            raise ChatFormatError(f"chat JSON is not valid JSON: {error}") from error
        return cls.from_dict(data)

    # -- the lmstudio-compatible builders -----------------------------------------------------

    def add_system_prompt(self, prompt: str) -> SystemMessage:
        """Append a system message."""
        return self._add(SystemMessage(content=prompt))

    def add_user_message(
        self, content: str, images: Iterable[ImageInput] | ImageInput = ()
    ) -> UserMessage:
        """Append a user message; images may be `Image`s, bytes, file paths or URLs."""
        return self._add(UserMessage(content=content, images=_to_images(images)))

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
        names = _call_names(self._messages)
        start = len(self._messages)
        added = [
            _tool_result(result, start + offset, names) for offset, result in enumerate(results)
        ]
        self._messages.extend(added)
        return added

    def add_tool_result(
        self, tool_call_id: str, content: str, *, name: str = "", is_error: bool = False
    ) -> ToolResultMessage:
        """Append the result of one tool call (`name` defaults to the matching call's)."""
        if not name:
            name = _call_names(self._messages).get(tool_call_id, "")
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
        return {"messages": [_message_to_dict(message) for message in self._messages]}

    def to_json(self, *, indent: int | None = None) -> str:
        """The dict form as JSON text."""
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    # -- helpers -------------------------------------------------------------------------------

    def _add(self, message: _M) -> _M:
        self._messages.append(message)
        return message

    def _coerce(self, message: object, position: int) -> Message:
        """`message` as a message model; `position` is where it will go (for errors, names)."""
        return _coerce(message, position, _call_names(self._messages[:position]))


def _coerce(message: object, index: int, names_by_call_id: Mapping[str, str]) -> Message:
    if isinstance(message, _MESSAGE_TYPES):
        return message
    if isinstance(message, Mapping):
        return _message_from_dict(message, index, names_by_call_id)
    raise ChatFormatError(
        f"message {index}: expected a message model or a dict, got {type(message).__name__}"
    )


def _call_names(messages: Iterable[Message]) -> dict[str, str]:
    """Tool names by tool call id, from the assistant messages' tool calls."""
    return {
        call.id: call.name
        for message in messages
        if isinstance(message, AssistantMessage)
        for call in message.tool_calls
    }


def _tool_result(value: object, index: int, names: Mapping[str, str]) -> ToolResultMessage:
    if isinstance(value, ToolResultMessage):
        return value
    if isinstance(value, Mapping):
        data = dict(value)
        if "tool_call_id" not in data and "toolCallId" in data:
            data["tool_call_id"] = data.pop("toolCallId")
        data.setdefault("role", "tool")
        message = _message_from_dict(data, index, names)
        if isinstance(message, ToolResultMessage):
            return message
        raise ChatFormatError(
            f"message {index}: expected a tool result, got a {message.role} message"
        )
    raise ChatFormatError(
        f"message {index}: expected a ToolResultMessage or a dict with tool_call_id and "
        f"content, got {type(value).__name__}"
    )


# -- OpenAI-style dict conversion ---------------------------------------------------------------


def _message_to_dict(message: Message) -> dict[str, Any]:
    if isinstance(message, UserMessage) and message.images:
        parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}]
        parts += [
            {"type": "image_url", "image_url": _image_to_dict(image)} for image in message.images
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


def _image_to_dict(image: Image) -> dict[str, str]:
    data = {"url": image.url}
    if image.detail is not None:
        data["detail"] = image.detail
    return data


def _tool_call_to_dict(call: ToolCall) -> dict[str, Any]:
    arguments = (
        call.arguments
        if isinstance(call.arguments, str)
        else json.dumps(call.arguments, ensure_ascii=False)
    )
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": arguments},
    }


def _message_from_dict(
    data: Mapping[str, Any], index: int, names_by_call_id: Mapping[str, str]
) -> Message:
    role = data.get("role")
    try:
        if role in ("system", "developer"):
            return SystemMessage(content=_text_of(data.get("content"), index))
        if role == "user":
            return _user_from_dict(data, index)
        if role == "assistant":
            return _assistant_from_dict(data, index)
        if role == "tool":
            return _tool_result_from_dict(data, index, names_by_call_id)
    except ValidationError as error:
        raise ChatFormatError(f"message {index}: {_describe(error)}") from error
    if role is None:
        raise ChatFormatError(f"message {index}: the message has no 'role'")
    raise ChatFormatError(
        f"message {index}: unknown role {_short(role)}; expected system, developer, user, "
        "assistant or tool"
    )


def _user_from_dict(data: Mapping[str, Any], index: int) -> UserMessage:
    content = data.get("content")
    images: list[Image] = []
    if isinstance(content, list | tuple):
        images += (
            _image_of(part.get("image_url"), index)
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "image_url"
        )
    extra = data.get("images")  # the images of a `UserMessage.model_dump()`
    if extra is not None:
        if not isinstance(extra, list | tuple):
            raise ChatFormatError(f"message {index}: images must be a list")
        images += (_image_of(image, index) for image in extra)
    return UserMessage(content=_text_of(content, index, images=True), images=tuple(images))


def _image_of(value: object, index: int) -> Image:
    if isinstance(value, str):
        return Image(url=value)
    if isinstance(value, Mapping):
        url, detail = value.get("url"), value.get("detail")
        if isinstance(url, str) and (detail is None or isinstance(detail, str)):
            return Image(url=url, detail=detail)
    raise ChatFormatError(
        f"message {index}: an image needs a 'url' string (and an optional 'detail' string), "
        f"got {_short(value)}"
    )


def _assistant_from_dict(data: Mapping[str, Any], index: int) -> AssistantMessage:
    calls = data.get("tool_calls")
    if calls is None:
        calls = ()
    if isinstance(calls, str | bytes) or not isinstance(calls, Sequence):
        raise ChatFormatError(
            f"message {index}: tool_calls must be a list, got {type(calls).__name__}"
        )
    reasoning = data.get("reasoning_content")
    if reasoning is None:
        reasoning = data.get("reasoning")
    return AssistantMessage(
        content=_text_of(data.get("content"), index),
        tool_calls=tuple(_tool_call_from_dict(call, index, n) for n, call in enumerate(calls)),
        reasoning=reasoning,
    )


def _tool_result_from_dict(
    data: Mapping[str, Any], index: int, names_by_call_id: Mapping[str, str]
) -> ToolResultMessage:
    call_id = data.get("tool_call_id")
    if not isinstance(call_id, str):
        raise ChatFormatError(f"message {index}: a tool message needs a 'tool_call_id' string")
    name = data.get("name")
    if name is None:
        name = names_by_call_id.get(call_id, "")
    is_error = data.get("is_error")
    if is_error is None:
        is_error = False
    if not isinstance(is_error, bool):
        raise ChatFormatError(
            f"message {index}: is_error must be true or false, got {_short(is_error)}"
        )
    return ToolResultMessage(
        tool_call_id=call_id,
        name=name,
        content=_text_of(data.get("content"), index),
        is_error=is_error,
    )


def _text_of(content: object, index: int, *, images: bool = False) -> str:
    """The text of a message's content; image parts are allowed (and skipped) if `images`."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list | tuple):
        texts = []
        for number, part in enumerate(content):
            kind = part.get("type") if isinstance(part, Mapping) else None
            if isinstance(part, str):
                texts.append(part)
            elif kind == "text" and isinstance(part, Mapping):
                text = part.get("text")
                if not isinstance(text, str):
                    raise ChatFormatError(
                        f"message {index}: content part {number} needs a 'text' string"
                    )
                texts.append(text)
            elif not (images and kind == "image_url"):
                raise ChatFormatError(
                    f"message {index}: content part {number} is not supported here: {_short(part)}"
                )
        return "".join(texts)
    raise ChatFormatError(
        f"message {index}: content must be a string or a list of parts, "
        f"got {type(content).__name__}"
    )


def _tool_call_from_dict(data: object, index: int, number: int) -> ToolCall:
    where = f"message {index}, tool call {number}"
    if not isinstance(data, Mapping):
        raise ChatFormatError(f"{where}: expected a dict, got {type(data).__name__}")
    function = data.get("function", data)
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(function, Mapping) or not isinstance(name, str):
        raise ChatFormatError(f"{where}: a tool call needs a function name string")
    try:
        return ToolCall(name, function.get("arguments"), data.get("id"))
    except ValidationError as error:
        raise ChatFormatError(f"{where}: {_describe(error)}") from error


def decode_arguments(raw: Any) -> dict[str, Any] | str:
    """Tool-call arguments as a dict when they are (or encode) a JSON object.

    `None` and blank text mean no arguments (`{}`). Text that is not a JSON object (invalid
    JSON, NaN or infinite numbers, or another JSON value) is kept verbatim; other JSON values
    given as data (a list, a number) become their JSON text. Raises `ValueError` for data that
    JSON cannot represent.
    """
    if raw is None:
        return {}
    if isinstance(raw, str):
        if not raw.strip():
            return {}
        try:
            decoded = json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
        except (ValueError, RecursionError):
            return raw
        return decoded if isinstance(decoded, dict) else raw
    if isinstance(raw, Mapping):
        if not all(isinstance(key, str) for key in raw):
            raise ValueError("argument names must be strings")
        copied: dict[str, Any] = json.loads(_json_text(dict(raw)))  # also a deep copy
        return copied
    return _json_text(raw)


def _json_text(value: object) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as error:
        raise ValueError(f"arguments must be JSON data: {error}") from error


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def _describe(error: ValidationError) -> str:
    """A pydantic error in one line: `field: problem; field: problem`."""
    return "; ".join(
        f"{'.'.join(map(str, item['loc']))}: {item['msg']}" if item["loc"] else item["msg"]
        for item in error.errors(include_url=False)
    )


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
