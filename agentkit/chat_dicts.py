"""Messages to and from OpenAI-style dicts, accepting the variants real servers send.

Anything malformed raises `ChatFormatError` naming the message index (and the tool call or
part within it); nothing valid is dropped.
"""

from __future__ import annotations

import json
import reprlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from agentkit.errors import ChatFormatError
from agentkit.messages import (
    MESSAGE_TYPES,
    AssistantMessage,
    Image,
    Message,
    SystemMessage,
    ToolCall,
    ToolResultMessage,
    UserMessage,
)

__all__ = [
    "call_names",
    "coerce_message",
    "message_from_dict",
    "message_to_dict",
    "tool_result_from",
]


def coerce_message(message: object, index: int, names_by_call_id: Mapping[str, str]) -> Message:
    if isinstance(message, MESSAGE_TYPES):
        return message
    if isinstance(message, Mapping):
        return message_from_dict(message, index, names_by_call_id)
    raise ChatFormatError(
        f"message {index}: expected a message model or a dict, got {type(message).__name__}"
    )


def call_names(messages: Iterable[Message]) -> dict[str, str]:
    """Tool names by tool call id, from the assistant messages' tool calls."""
    return {
        call.id: call.name
        for message in messages
        if isinstance(message, AssistantMessage)
        for call in message.tool_calls
    }


def tool_result_from(value: object, index: int, names: Mapping[str, str]) -> ToolResultMessage:
    if isinstance(value, ToolResultMessage):
        return value
    if isinstance(value, Mapping):
        data = dict(value)
        if "tool_call_id" not in data and "toolCallId" in data:
            data["tool_call_id"] = data.pop("toolCallId")
        data.setdefault("role", "tool")
        message = message_from_dict(data, index, names)
        if isinstance(message, ToolResultMessage):
            return message
        raise ChatFormatError(
            f"message {index}: expected a tool result, got a {message.role} message"
        )
    raise ChatFormatError(
        f"message {index}: expected a ToolResultMessage or a dict with tool_call_id and "
        f"content, got {type(value).__name__}"
    )


def message_to_dict(message: Message) -> dict[str, Any]:
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


def message_from_dict(
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


def _describe(error: ValidationError) -> str:
    """A pydantic error in one line: `field: problem; field: problem`."""
    return "; ".join(
        f"{'.'.join(map(str, item['loc']))}: {item['msg']}" if item["loc"] else item["msg"]
        for item in error.errors(include_url=False)
    )


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 60, 60


def _short(value: object, limit: int = 80) -> str:
    """A bounded repr, safe on data nested too deep for `repr` or with a raising `__repr__`."""
    try:
        text = _REPR.repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
