"""Prompts rendered by a model's own Jinja chat template (GGUF `tokenizer.chat_template`).

The template runs in a sandbox set up like Hugging Face transformers' (trim_blocks,
lstrip_blocks, `raise_exception`, `strftime_now`, a `tojson` that keeps non-ASCII text), with
OpenAI-style messages, the tools as OpenAI tool specs and `add_generation_prompt=True`.

Message text never reaches the template: each content is replaced by a unique sentinel, and the
rendered text is split on the sentinels into template segments (special tokens on) and content
segments (special tokens off), so a user who types `<|im_end|>` cannot forge a turn. A sentinel
the template JSON-encoded (Llama 3.1 does so with tool results) is replaced by the content
JSON-encoded the same way.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from agentkit.chat_dicts import message_to_dict
from agentkit.engines.base import ToolDefinition
from agentkit.engines.llama_cpp.prompting.formats import PromptFormat, Segment
from agentkit.errors import ConfigurationError
from agentkit.messages import AssistantMessage, Message, SystemMessage, ToolResultMessage

__all__ = ["JinjaPromptFormat"]


class _TemplateRaised(Exception):
    """The template called `raise_exception(message)`."""


def _raise_exception(message: str) -> None:
    raise _TemplateRaised(message)


def _tojson(
    value: Any,
    indent: int | None = None,
    *,
    ensure_ascii: bool = False,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(pattern: str) -> str:
    return datetime.now().strftime(pattern)


def _environment() -> ImmutableSandboxedEnvironment:
    environment = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
    )
    environment.filters["tojson"] = _tojson
    environment.globals["raise_exception"] = _raise_exception
    environment.globals["strftime_now"] = _strftime_now
    return environment


class JinjaPromptFormat(PromptFormat):
    """A chat template from the model file; renders tools and tool calls as the model expects.

    A leading `bos_token` is dropped from the rendered text: the engine adds BOS itself.
    """

    name = "jinja"

    def __init__(self, template: str, bos_token: str = "", eos_token: str = "") -> None:
        self.bos_token = bos_token
        self.eos_token = eos_token
        try:
            self._template = _environment().from_string(template)
        except jinja2.TemplateSyntaxError as error:
            raise ConfigurationError(
                f"the model's chat template is not valid Jinja: {error.message} (line "
                f"{error.lineno}); pass chat_format= in the load config to use a built-in format"
            ) from error

    def render(
        self, messages: Sequence[Message], preamble: str, tools: Sequence[ToolDefinition] = ()
    ) -> list[Segment]:
        """Segments for the messages plus the opening of the model's reply.

        `preamble` (extra instructions, e.g. the answer's JSON schema) is appended to the first
        system message, or becomes a system message of its own.
        """
        nonce = secrets.token_hex(6)
        contents: list[str] = []

        def hide(text: str) -> str:
            if not text:
                return text  # templates test `if message.content`: keep empty text empty
            contents.append(text)
            return f"\x02{nonce}:{len(contents) - 1}\x03"

        context: dict[str, Any] = {
            "messages": _message_dicts(messages, preamble, hide),
            "add_generation_prompt": True,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
        }
        if tools:
            context["tools"] = [_tool_spec(tool) for tool in tools]
        try:
            text = self._template.render(context)
        except _TemplateRaised as error:
            raise ConfigurationError(
                f"the model's chat template rejected the conversation: {error}"
            ) from error
        except Exception as error:  # the template is foreign code: any failure is its own
            raise ConfigurationError(
                f"the model's chat template failed to render: {type(error).__name__}: {error}"
            ) from error
        if self.bos_token and text.startswith(self.bos_token):
            text = text[len(self.bos_token) :]
        return _split(text, nonce, contents)


def _message_dicts(
    messages: Sequence[Message], preamble: str, hide: Callable[[str], str]
) -> list[dict[str, Any]]:
    """OpenAI-style dicts as chat templates expect them, with every text hidden behind `hide`."""
    dicts: list[dict[str, Any]] = []
    pending = preamble
    for message in messages:
        data = message_to_dict(message)
        content = message.content
        if pending and isinstance(message, SystemMessage):
            content = f"{content}\n\n{pending}" if content else pending
            pending = ""
        data["content"] = hide(content)  # text only: images are not rendered
        if isinstance(message, AssistantMessage):
            if message.reasoning is not None:
                data["reasoning_content"] = hide(message.reasoning)
            if message.tool_calls:
                # `arguments` as a dict, as transformers passes it (templates apply `tojson`).
                data["tool_calls"] = [
                    {
                        "id": _short_id(call.id),
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    }
                    for call in message.tool_calls
                ]
        elif isinstance(message, ToolResultMessage):
            data["tool_call_id"] = _short_id(message.tool_call_id)
        dicts.append(data)
    if pending:
        dicts.insert(0, {"role": "system", "content": hide(pending)})
    return dicts


def _short_id(call_id: str) -> str:
    """A 9-character alphanumeric id (Mistral's templates reject others), stable per call id."""
    if len(call_id) == 9 and call_id.isascii() and call_id.isalnum():
        return call_id
    return hashlib.sha256(call_id.encode("utf-8")).hexdigest()[:9]


def _tool_spec(tool: ToolDefinition) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


def _split(text: str, nonce: str, contents: Sequence[str]) -> list[Segment]:
    """Template text as special segments, each hidden content as a non-special one."""
    pattern = re.compile(rf"\x02{nonce}:(\d+)\x03|\\u0002{nonce}:(\d+)\\u0003")
    segments: list[Segment] = []

    def add(piece: str, special: bool) -> None:
        if not piece:
            return
        if segments and segments[-1].special == special:
            segments[-1] = Segment(segments[-1].text + piece, special)
        else:
            segments.append(Segment(piece, special))

    position = 0
    for match in pattern.finditer(text):
        add(text[position : match.start()], special=True)
        if match.group(1) is not None:
            add(contents[int(match.group(1))], special=False)
        else:  # the template JSON-encoded the content
            add(json.dumps(contents[int(match.group(2))], ensure_ascii=False)[1:-1], special=False)
        position = match.end()
    add(text[position:], special=True)
    if any(nonce in segment.text for segment in segments if segment.special):
        raise ConfigurationError(
            "the model's chat template transforms message text in a way that cannot be kept "
            "apart from its special tokens; pass chat_format= in the load config"
        )
    return segments
