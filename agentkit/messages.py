"""Chat messages: frozen pydantic models for system, user, assistant and tool-result turns.

Messages are immutable, so chats can share them freely. Tool-call arguments are normalised as
they come in: a JSON object becomes a dict, anything else is kept verbatim as text, so a chat
records exactly what a model said.
"""

from __future__ import annotations

import base64
import contextvars
import json
import mimetypes
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from agentkit.errors import ChatFormatError
from agentkit.untrusted import UntrustedDataError, check_depth, clean_text, clean_value, loads

__all__ = [
    "MESSAGE_TYPES",
    "AssistantMessage",
    "FileHandle",
    "FileType",
    "Image",
    "ImageInput",
    "Message",
    "MessageT",
    "SystemMessage",
    "ToolCall",
    "ToolResultInput",
    "ToolResultMessage",
    "UserMessage",
    "decode_arguments",
    "new_call_id",
    "to_images",
]


DECODING_STORED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "agentkit_decoding_stored", default=False
)
"""True while a session store decodes its own message JSON (memory/codec.py). A context
variable, not pydantic's validation context, which ToolCall's own __init__ does not pass on."""


def new_call_id() -> str:
    """A fresh tool call id in the OpenAI style (`call_` and 24 hex digits)."""
    return "call_" + os.urandom(12).hex()


Text: TypeAlias = Annotated[str, AfterValidator(clean_text)]
"""A message string: lone surrogates become U+FFFD, so every chat can be encoded and sent."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Image(_Frozen):
    """An image attached to a user message, as a URL (usually a `data:` URL).

    `detail` is OpenAI's optional `image_url.detail` ("auto", "low" or "high"), kept when given.
    """

    url: Text
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


FileType: TypeAlias = Literal[
    "image", "text/plain", "application/pdf", "application/word", "text/other", "unknown"
]

MAX_FILE_BYTES = 2**53
"""Largest file size a handle may state (beyond it a number is no real file's)."""


class FileHandle(_Frozen):
    """A file already uploaded to an LM Studio server (lmstudio's `FileHandle`).

    Attach one to a user message (`add_user_message(text, images=[handle])`) for the LM Studio
    engine; get it from lmstudio's `prepare_image` / `files.prepare_file`. `size_bytes` is -1
    while lmstudio's upload is pending. Other engines cannot read server-side files and refuse
    messages carrying them with `NotSupportedError`.
    """

    name: Text
    identifier: Text
    size_bytes: Annotated[int, Field(ge=-1, lt=MAX_FILE_BYTES, strict=True)]
    file_type: FileType


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


def to_images(images: Iterable[ImageInput] | ImageInput) -> tuple[Image, ...]:
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

    name: Text
    arguments: dict[str, Any] | str = Field(default_factory=dict)
    id: Text = Field(default_factory=new_call_id)

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
        if isinstance(value, dict) and DECODING_STORED.get():
            # A session store's own JSON, just parsed: a fresh dict within the parser's
            # depth limit, so the copy and depth walk of decode_arguments would change nothing.
            cleaned: dict[str, Any] = clean_value(value)
            return cleaned
        return decode_arguments(value)


class SystemMessage(_Frozen):
    """Instructions for the model."""

    role: Literal["system"] = "system"
    content: Text


class UserMessage(_Frozen):
    """A message from the user, optionally with images and (LM Studio) file handles.

    Engines send the text first, then the images, then the files.
    """

    role: Literal["user"] = "user"
    content: Text
    images: tuple[Image, ...] = ()
    files: tuple[FileHandle, ...] = ()


class AssistantMessage(_Frozen):
    """A model response: text, tool calls, and reasoning kept apart from the text."""

    role: Literal["assistant"] = "assistant"
    content: Text = ""
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: Text | None = None

    @property
    def text(self) -> str:
        """The response text (alias of `content`)."""
        return self.content


class ToolResultMessage(_Frozen):
    """The result of one tool call, sent back to the model."""

    role: Literal["tool"] = "tool"
    tool_call_id: Text
    name: Text = ""
    content: Text
    is_error: bool = False


Message: TypeAlias = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolResultMessage,
    Field(discriminator="role"),
]
MESSAGE_TYPES = (SystemMessage, UserMessage, AssistantMessage, ToolResultMessage)
MessageT = TypeVar("MessageT", SystemMessage, UserMessage, AssistantMessage, ToolResultMessage)

ToolResultInput: TypeAlias = "ToolResultMessage | Mapping[str, Any]"


def decode_arguments(raw: Any) -> dict[str, Any] | str:
    """Tool-call arguments as a dict when they are (or encode) a JSON object.

    `None` and blank text mean no arguments (`{}`). Text that is not a JSON object within
    agentkit's limits for untrusted JSON (invalid, too deep, integers too long, numbers that
    overflow, or another JSON value) is kept verbatim; other JSON values given as data (a list,
    a number) become their JSON text. Lone surrogates become U+FFFD. Raises `ValueError` for
    data that JSON cannot represent or that nests too deep.
    """
    if raw is None:
        return {}
    if isinstance(raw, str):
        if not raw.strip():
            return {}
        try:
            decoded = loads(raw, what="tool call arguments")
        except UntrustedDataError:
            return clean_text(raw)
        return decoded if isinstance(decoded, dict) else clean_text(raw)
    if isinstance(raw, Mapping):
        if not all(isinstance(key, str) for key in raw):
            raise ValueError("argument names must be strings")
        check_depth(raw, what="tool call arguments")
        copied: dict[str, Any] = clean_value(json.loads(_json_text(dict(raw))))  # a deep copy
        return copied
    return clean_text(_json_text(raw))


def _json_text(value: object) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as error:
        raise ValueError(f"arguments must be JSON data: {error}") from error
