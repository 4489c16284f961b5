"""lmstudio-python's `Chat` inputs as agentkit messages, so LM Studio code ports unchanged.

lmstudio's builders take strings, its structs (`TextData`, `FileHandle`, `ToolCallRequest`,
`ToolCallResultData`, a `PredictionResult`), their dicts, and lists of parts; this module turns
each into agentkit's message fields. lmstudio is never imported here: its structs are read
through their public `to_dict()` (see `chat_dicts.plain`), and an lmstudio `Chat` only exists
once the caller has imported lmstudio, which is when `history_data` looks for it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

from agentkit import untrusted
from agentkit.chat_dicts import file_of, plain, tool_call_of, user_messages
from agentkit.errors import ChatFormatError
from agentkit.messages import (
    AssistantMessage,
    FileHandle,
    Image,
    ToolCall,
    UserMessage,
    to_images,
)
from agentkit.results import PredictionResult

__all__ = ["assistant_fields", "history_data", "system_text", "tool_calls_of", "user_turn"]


def system_text(prompt: object, index: int) -> str:
    """A system prompt: a string, lmstudio's `TextData`, `{"text": ...}`, or a list of those."""
    prompt = plain(prompt, f"message {index}")
    parts = prompt if isinstance(prompt, list | tuple) else [prompt]
    texts = []
    for number, part in enumerate(parts):
        text = _text_part(part, index)
        if text is None:
            raise ChatFormatError(
                f"message {index}: a system prompt is text, got {_kind(part)} (part {number})"
            )
        texts.append(text)
    return "".join(texts)


def user_turn(content: object, images: object, index: int) -> list[UserMessage]:
    """The user message(s) for `add_user_message(content, images=...)`.

    `content` is text, a part (`TextData`, `FileHandle`, their dicts, an `Image`) or a list of
    parts; `images` holds agentkit images (`Image`, bytes, paths, URLs) and lmstudio
    `FileHandle`s or their dicts. Text parts after the first start new messages, as in
    `chat_dicts.user_messages`; the images go with the last.
    """
    content = plain(content, f"message {index}")
    if isinstance(content, Mapping | Image | FileHandle):
        content = [content]
    elif not isinstance(content, str | list | tuple) and isinstance(content, Iterable):
        content = list(content)
    messages = user_messages(content, index, split=True)
    found_images, files = _attachments(images, index)
    if found_images or files:
        last = messages[-1]
        messages[-1] = last.model_copy(
            update={"images": last.images + found_images, "files": last.files + files}
        )
    return messages


def _attachments(images: object, index: int) -> tuple[tuple[Image, ...], tuple[FileHandle, ...]]:
    single = isinstance(images, str | bytes | bytearray | memoryview | Mapping | Image)
    items = [images] if single or not isinstance(images, Iterable) else list(images)
    found: list[Image] = []
    files: list[FileHandle] = []
    for number, item in enumerate(items):
        item = plain(item, f"message {index}")
        if isinstance(item, FileHandle | Mapping):
            files.append(file_of(item, f"message {index}: image {number}"))
        else:
            found += to_images([item])  # type: ignore[list-item]  # to_images names bad types
    return tuple(found), tuple(files)


def assistant_fields(response: object, index: int) -> tuple[str, list[ToolCall], str | None]:
    """Text, tool calls and reasoning of `add_assistant_response(response)`.

    `response` is text, an agentkit `PredictionResult` or `AssistantMessage` (text, tool calls
    and reasoning kept), lmstudio's `PredictionResult` (its text, as lmstudio keeps it),
    `TextData` or `{"text": ...}`, or a list of text and tool call request parts (lmstudio's
    `add_entry("assistant", [...])` shape).
    """
    if isinstance(response, PredictionResult):
        response = response.message
    if isinstance(response, AssistantMessage):
        return response.content, list(response.tool_calls), response.reasoning
    if type(response).__module__.startswith("lmstudio.") and not hasattr(response, "to_dict"):
        content = getattr(response, "content", None)  # lmstudio's PredictionResult
        if isinstance(content, str):
            return content, [], None
    response = plain(response, f"message {index}")
    parts = response if isinstance(response, list | tuple) else [response]
    texts: list[str] = []
    calls: list[ToolCall] = []
    for number, part in enumerate(parts):
        part = plain(part, f"message {index}")
        text = _text_part(part, index)
        if text is not None:
            texts.append(text)
        elif isinstance(part, ToolCall) or (isinstance(part, Mapping) and not _is_file(part)):
            calls.append(tool_call_of(part, f"message {index}, tool call {len(calls)}"))
        else:
            raise ChatFormatError(
                f"message {index}: an assistant response is text or tool call requests, got "
                f"{_kind(part)} (part {number}); agentkit's assistant messages hold no files"
            )
    return "".join(texts), calls, None


def tool_calls_of(requests: object, index: int) -> list[ToolCall]:
    """Tool calls from `ToolCall`s, OpenAI-style dicts, or lmstudio's requests and dicts."""
    if isinstance(requests, str | bytes | Mapping | ToolCall) or not isinstance(requests, Iterable):
        raise ChatFormatError(
            f"message {index}: tool calls must be a list, got {type(requests).__name__}"
        )
    return [
        tool_call_of(request, f"message {index}, tool call {number}")
        for number, request in enumerate(requests)
    ]


def history_data(history: object) -> object:
    """An lmstudio `Chat` or `ChatHistoryData` as its wire dict; anything else unchanged."""
    lmstudio = sys.modules.get("lmstudio")
    if lmstudio is not None and isinstance(history, lmstudio.Chat):
        from agentkit.engines.lmstudio import sdk  # only reachable once lmstudio is imported

        try:
            return sdk.chat_history(history)
        except (RecursionError, ValueError, TypeError) as error:
            raise ChatFormatError(
                f"cannot read the lmstudio Chat: {untrusted.describe_exception(error, 200)}"
            ) from None
    return plain(history, "chat history")


def _text_part(part: object, index: int) -> str | None:
    """The text of a text part (a string, `TextData` or `{"text": ...}`); None if not one."""
    part = plain(part, f"message {index}")
    if isinstance(part, str):
        return part
    if isinstance(part, Mapping) and (
        part.get("type") == "text" or ("type" not in part and "text" in part)
    ):
        text: Any = part.get("text")
        if not isinstance(text, str):
            raise ChatFormatError(f"message {index}: a text part needs a 'text' string")
        return text
    return None


def _is_file(part: Mapping[str, Any]) -> bool:
    kind = part.get("type")
    return kind == "file" or (kind is None and "identifier" in part)


def _kind(value: object) -> str:
    if isinstance(value, Mapping):
        kind = value.get("type")
        return f"a {kind[:40]!r} part" if isinstance(kind, str) else "a dict"
    return f"a {type(value).__name__}"
