"""Messages to and from OpenAI-style dicts, accepting the variants real servers send.

lmstudio-python's history dicts are read too: content parts of type `text`, `file`,
`toolCallRequest` and `toolCallResult` (camelCase or snake_case keys), and lmstudio's own
structs (`TextData`, `FileHandle`, `ToolCallRequest`, ...) through their `to_dict()`. One
lmstudio tool message holding several results becomes one `ToolResultMessage` each.

Anything malformed raises `ChatFormatError` naming the message index (and the tool call or
part within it); nothing valid is dropped.
"""

from __future__ import annotations

import json
import reprlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from agentkit.errors import ChatFormatError, NotSupportedError
from agentkit.messages import (
    MESSAGE_TYPES,
    AssistantMessage,
    FileHandle,
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
    "coerce_messages",
    "describe",
    "file_of",
    "file_to_dict",
    "message_from_dict",
    "message_to_dict",
    "messages_from_dict",
    "plain",
    "refuse_files",
    "tool_call_of",
    "tool_result_from",
    "user_messages",
]


def plain(value: object, where: str = "") -> object:
    """An lmstudio struct as its wire dict (`to_dict()`); anything else unchanged.

    Recognised by the module its type comes from, so lmstudio is never imported here.
    """
    if not type(value).__module__.startswith("lmstudio."):
        return value
    to_dict = getattr(value, "to_dict", None)
    if not callable(to_dict):
        return value
    try:
        return to_dict()
    except (RecursionError, ValueError, TypeError) as error:
        prefix = f"{where}: " if where else ""
        raise ChatFormatError(
            f"{prefix}cannot read the {type(value).__name__}: {_short(str(error))}"
        ) from None


def coerce_message(message: object, index: int, names_by_call_id: Mapping[str, str]) -> Message:
    """One message from a model or a dict (a dict that holds several is an error)."""
    messages = coerce_messages(message, index, names_by_call_id)
    if len(messages) != 1:
        raise ChatFormatError(
            f"message {index}: the data holds {len(messages)} messages where one is expected; "
            "use append() or add_tool_results() for an lmstudio tool message with several results"
        )
    return messages[0]


def coerce_messages(
    message: object, index: int, names_by_call_id: Mapping[str, str], *, split: bool = False
) -> list[Message]:
    """The messages of a message model, an OpenAI-style or lmstudio dict, or an lmstudio struct.

    With `split`, user text parts are kept apart as lmstudio keeps them (see `user_messages`).
    """
    if isinstance(message, MESSAGE_TYPES):
        return [message]
    message = plain(message, f"message {index}")
    if isinstance(message, Mapping):
        return messages_from_dict(message, index, names_by_call_id, split=split)
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
    """A tool result from a model, a dict (agentkit's, OpenAI's or lmstudio's) or an lmstudio
    `ToolCallResultData`; lmstudio's `toolCallId` may be missing (an empty id)."""
    if isinstance(value, ToolResultMessage):
        return value
    value = plain(value, f"message {index}")
    if isinstance(value, Mapping):
        data = dict(value)
        if "tool_call_id" not in data:
            data["tool_call_id"] = data.pop("toolCallId", None)
            if data["tool_call_id"] is None and data.get("type") == "toolCallResult":
                data["tool_call_id"] = ""
        if data.get("type") == "toolCallResult":
            if not isinstance(data.get("content"), str):
                raise ChatFormatError(f"message {index}: a tool result needs a 'content' string")
            del data["type"]
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
    if isinstance(message, UserMessage) and (message.images or message.files):
        parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}]
        parts += [
            {"type": "image_url", "image_url": _image_to_dict(image)} for image in message.images
        ]
        parts += [file_to_dict(file) for file in message.files]
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


def refuse_files(messages: Iterable[Message], provider: str) -> None:
    """Raise `NotSupportedError` for an engine that cannot read LM Studio file handles."""
    for index, message in enumerate(messages):
        if isinstance(message, UserMessage) and message.files:
            raise NotSupportedError(
                provider,
                f"LM Studio file handles (message {index} attaches {message.files[0].name!r}); "
                "only the LM Studio engine reads them, other engines take images as `Image`s",
            )


def file_to_dict(file: FileHandle) -> dict[str, Any]:
    """A file part as lmstudio writes it (its `FileHandle.to_dict()`)."""
    return {
        "type": "file",
        "name": file.name,
        "identifier": file.identifier,
        "sizeBytes": file.size_bytes,
        "fileType": file.file_type,
    }


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
    """One message from a dict (an lmstudio dict holding several is an error)."""
    return coerce_message(data, index, names_by_call_id)


def messages_from_dict(
    data: Mapping[str, Any], index: int, names_by_call_id: Mapping[str, str], *, split: bool
) -> list[Message]:
    role = data.get("role")
    try:
        if role in ("system", "developer"):
            return [SystemMessage(content=_text_of(data.get("content"), index))]
        if role == "user":
            return list(_user_from_dict(data, index, split=split))
        if role == "assistant":
            return [_assistant_from_dict(data, index)]
        if role == "tool":
            return _tool_results_from_dict(data, index, names_by_call_id)
    except ValidationError as error:
        raise ChatFormatError(f"message {index}: {describe(error)}") from error
    if role is None:
        raise ChatFormatError(f"message {index}: the message has no 'role'")
    raise ChatFormatError(
        f"message {index}: unknown role {_short(role)}; expected system, developer, user, "
        "assistant or tool"
    )


def _user_from_dict(data: Mapping[str, Any], index: int, *, split: bool) -> list[UserMessage]:
    messages = user_messages(data.get("content"), index, split=split)
    extra = data.get("images")  # the images of a `UserMessage.model_dump()`
    if extra is not None:
        if not isinstance(extra, list | tuple):
            raise ChatFormatError(f"message {index}: images must be a list")
        last = messages[-1]
        images = last.images + tuple(_image_of(image, index) for image in extra)
        messages[-1] = last.model_copy(update={"images": images})
    files = data.get("files")  # likewise
    if files is not None:
        if not isinstance(files, list | tuple):
            raise ChatFormatError(f"message {index}: files must be a list")
        last = messages[-1]
        added = tuple(file_of(file, f"message {index}") for file in files)
        messages[-1] = last.model_copy(update={"files": last.files + added})
    return messages


def user_messages(content: object, index: int, *, split: bool = False) -> list[UserMessage]:
    """The user message(s) of a content value: text, or a list of text, image and file parts.

    Without `split`, one message: the text parts joined, then the images and files. With
    `split` (lmstudio's inputs), each text part after the first starts another message, so
    `["a", file, "b"]` is `("a", file)` then `("b")`: LM Studio gets the same parts in the same
    order, since the LM Studio engine merges consecutive user messages as lmstudio does.
    """
    if content is None:
        return [UserMessage(content="")]
    content = plain(content, f"message {index}")
    if isinstance(content, str):
        return [UserMessage(content=content)]
    if not isinstance(content, list | tuple):
        raise ChatFormatError(
            f"message {index}: content must be a string or a list of parts, "
            f"got {type(content).__name__}"
        )
    segments: list[tuple[list[str], list[Image], list[FileHandle]]] = [([], [], [])]
    for number, part in enumerate(content):
        texts, images, files = segments[-1]
        value = _user_part(part, index, number)
        if isinstance(value, str):
            if split and (texts or images or files):
                segments.append(([value], [], []))
            else:
                texts.append(value)
        elif isinstance(value, Image):
            images.append(value)
        else:
            files.append(value)
    return [
        UserMessage(content="".join(texts), images=tuple(images), files=tuple(files))
        for texts, images, files in segments
    ]


def _user_part(part: object, index: int, number: int) -> str | Image | FileHandle:
    where = f"message {index}: content part {number}"
    part = plain(part, where)
    if isinstance(part, str | Image | FileHandle):
        return part
    kind = part.get("type") if isinstance(part, Mapping) else None
    if isinstance(part, Mapping):
        if kind == "text" or (kind is None and "text" in part):
            text = part.get("text")
            if not isinstance(text, str):
                raise ChatFormatError(f"{where} needs a 'text' string")
            return text
        if kind == "image_url":
            return _image_of(part.get("image_url"), index)
        if kind == "file" or (kind is None and "identifier" in part):
            return file_of(part, where)
    raise ChatFormatError(f"{where} is not supported here: {_short(part)}")


def file_of(value: object, where: str) -> FileHandle:
    """A file handle from an agentkit or lmstudio `FileHandle` or its dict (either key case)."""
    value = plain(value, where)
    if isinstance(value, FileHandle):
        return value
    if not isinstance(value, Mapping):
        raise ChatFormatError(
            f"{where}: expected a FileHandle or its dict, got {type(value).__name__}"
        )

    def field(camel: str, snake: str) -> object:
        return value.get(camel, value.get(snake))

    try:
        return FileHandle.model_validate(
            {
                "name": value.get("name"),
                "identifier": value.get("identifier"),
                "size_bytes": field("sizeBytes", "size_bytes"),
                "file_type": field("fileType", "file_type"),
            }
        )
    except ValidationError as error:
        raise ChatFormatError(f"{where}: a file {describe(error)}") from None


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
    content = data.get("content")
    requests: list[object] = []
    if isinstance(content, list | tuple):  # lmstudio: text, then toolCallRequest parts
        parts = [plain(part, f"message {index}") for part in content]
        requests = [part for part in parts if _is_call_request(part)]
        content = [part for part in parts if not _is_call_request(part)]
    reasoning = data.get("reasoning_content")
    if reasoning is None:
        reasoning = data.get("reasoning")
    return AssistantMessage(
        content=_text_of(content, index),
        tool_calls=tuple(
            tool_call_of(call, f"message {index}, tool call {n}")
            for n, call in enumerate([*calls, *requests])
        ),
        reasoning=reasoning,
    )


def _is_call_request(part: object) -> bool:
    return isinstance(part, Mapping) and (
        part.get("type") == "toolCallRequest"
        or "toolCallRequest" in part
        or "tool_call_request" in part
    )


def _tool_results_from_dict(
    data: Mapping[str, Any], index: int, names_by_call_id: Mapping[str, str]
) -> list[Message]:
    content = data.get("content")
    if "tool_call_id" in data or not isinstance(content, list | tuple):
        return [_tool_result_from_dict(data, index, names_by_call_id)]
    # lmstudio's tool message: one toolCallResult part per result
    results: list[Message] = []
    for number, part in enumerate(content):
        part = plain(part, f"message {index}")
        if not isinstance(part, Mapping) or part.get("type", "toolCallResult") != "toolCallResult":
            raise ChatFormatError(
                f"message {index}: tool result part {number} must be a toolCallResult part, "
                f"got {_short(part)}"
            )
        results.append(
            tool_result_from({**part, "type": "toolCallResult"}, index, names_by_call_id)
        )
    return results


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


def _text_of(content: object, index: int) -> str:
    """The text of a message's content: a string or a list of text parts."""
    if content is None:
        return ""
    content = plain(content, f"message {index}")
    if isinstance(content, str):
        return content
    if isinstance(content, list | tuple):
        texts = []
        for number, part in enumerate(content):
            part = plain(part, f"message {index}")
            kind = part.get("type") if isinstance(part, Mapping) else None
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping) and (
                kind == "text" or (kind is None and "text" in part)
            ):
                text = part.get("text")
                if not isinstance(text, str):
                    raise ChatFormatError(
                        f"message {index}: content part {number} needs a 'text' string"
                    )
                texts.append(text)
            else:
                raise ChatFormatError(
                    f"message {index}: content part {number} is not supported here: {_short(part)}"
                )
        return "".join(texts)
    raise ChatFormatError(
        f"message {index}: content must be a string or a list of parts, "
        f"got {type(content).__name__}"
    )


def tool_call_of(data: object, where: str) -> ToolCall:
    """A tool call from a `ToolCall`, an OpenAI-style dict, or lmstudio's `ToolCallRequest`,
    `ToolCallRequestData` or their dicts (an lmstudio request without an id gets a new one)."""
    if isinstance(data, ToolCall):
        return data
    data = plain(data, where)
    if isinstance(data, Mapping):
        request = data.get("toolCallRequest", data.get("tool_call_request"))
        if request is not None:
            data = plain(request, where)
    if not isinstance(data, Mapping):
        raise ChatFormatError(f"{where}: expected a dict, got {type(data).__name__}")
    function = data.get("function", data)
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(function, Mapping) or not isinstance(name, str):
        raise ChatFormatError(f"{where}: a tool call needs a function name string")
    try:
        return ToolCall(name, function.get("arguments"), data.get("id"))
    except ValidationError as error:
        raise ChatFormatError(f"{where}: {describe(error)}") from error


def describe(error: ValidationError) -> str:
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
