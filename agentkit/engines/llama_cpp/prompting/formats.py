"""Chat prompt formats for the local engine.

A format renders messages as segments: template text (tokenized with special tokens on) and
content (tokenized with them off), so a user who types `<end_of_turn>` cannot forge a turn.

Gemma's GGUFs may carry no chat template; Gemma's turn format is built in for the gemma
architectures. It has no system role: the system prompt and the JSON-mode tool instructions
open the first user turn, as Gemma's own template does. Tool calls are rendered as the JSON the
model produced, and tool results as a user turn listing each result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agentkit.engines.llama_cpp.call_syntax import JSON_OBJECT, CallSyntax
from agentkit.errors import ConfigurationError
from agentkit.messages import (
    AssistantMessage,
    Message,
    SystemMessage,
    ToolResultMessage,
    UserMessage,
)

__all__ = [
    "GemmaFormat",
    "PromptFormat",
    "Segment",
    "format_for_architecture",
    "has_builtin_format",
    "tool_calls_text",
    "tool_results_text",
]


@dataclass(frozen=True, slots=True)
class Segment:
    """A piece of prompt text; `special` pieces may contain special tokens."""

    text: str
    special: bool


class PromptFormat:
    """Renders a conversation for one model family."""

    name = "base"
    call_syntax: CallSyntax = JSON_OBJECT
    """How JSON-mode tool calls are taught, written and read with this format."""

    def render(self, messages: Sequence[Message], preamble: str) -> list[Segment]:
        """Segments for the messages plus the opening of the model's reply."""
        raise NotImplementedError


class GemmaFormat(PromptFormat):
    """`<start_of_turn>user ... <end_of_turn>` turns, with `model` as the assistant role."""

    name = "gemma"

    def render(self, messages: Sequence[Message], preamble: str) -> list[Segment]:
        system = [m.content for m in messages if isinstance(m, SystemMessage)]
        opening = "\n\n".join(part for part in [*system, preamble] if part)
        segments: list[Segment] = []
        pending_results: list[ToolResultMessage] = []
        for message in messages:
            if isinstance(message, ToolResultMessage):
                pending_results.append(message)
                continue
            if pending_results:
                segments += _turn("user", tool_results_text(pending_results))
                pending_results = []
            if isinstance(message, UserMessage):
                text = f"{opening}\n\n{message.content}" if opening else message.content
                opening = ""
                segments += _turn("user", text)
            elif isinstance(message, AssistantMessage):
                segments += _turn("model", _assistant_turn_text(message))
        if pending_results:
            segments += _turn("user", tool_results_text(pending_results))
        if opening:  # a chat with no user message still gets its instructions
            segments += _turn("user", opening)
        segments.append(Segment("<start_of_turn>model\n", special=True))
        return segments


def _turn(role: str, text: str) -> list[Segment]:
    return [
        Segment(f"<start_of_turn>{role}\n", special=True),
        Segment(text, special=False),
        Segment("<end_of_turn>\n", special=True),
    ]


def _assistant_turn_text(message: AssistantMessage) -> str:
    return tool_calls_text(message) if message.tool_calls else message.content


def tool_calls_text(message: AssistantMessage, syntax: CallSyntax = JSON_OBJECT) -> str:
    """An assistant message's tool calls as the JSON-mode call list the model writes."""
    calls = [{"name": call.name, "arguments": call.arguments} for call in message.tool_calls]
    return syntax.calls_text(calls)


def tool_results_text(results: Sequence[ToolResultMessage]) -> str:
    """A round's tool results as the text of one user turn."""
    lines = ["Tool results:"]
    for result in results:
        status = "error" if result.is_error else "result"
        lines.append(f"- {result.name} {status}: {result.content}")
    return "\n".join(lines)


_BY_ARCHITECTURE: dict[str, type[PromptFormat]] = {
    "gemma": GemmaFormat,
    "gemma2": GemmaFormat,
    "gemma3": GemmaFormat,
    "gemma3n": GemmaFormat,
}
_BY_NAME: dict[str, type[PromptFormat]] = {"gemma": GemmaFormat}


def has_builtin_format(architecture: str) -> bool:
    """Whether a built-in prompt format exists for this architecture."""
    return architecture in _BY_ARCHITECTURE


def format_for_architecture(architecture: str, chat_format: str | None = None) -> PromptFormat:
    """The prompt format for a model: the named one, or the one its architecture implies."""
    if chat_format is not None:
        try:
            return _BY_NAME[chat_format]()
        except KeyError:
            raise ConfigurationError(
                f"unknown chat_format {chat_format!r}; known formats: {', '.join(_BY_NAME)}"
            ) from None
    try:
        return _BY_ARCHITECTURE[architecture]()
    except KeyError:
        raise ConfigurationError(
            f"no chat format is known for architecture {architecture!r}; pass "
            f"chat_format= (one of {', '.join(_BY_NAME)}) in the load config"
        ) from None
