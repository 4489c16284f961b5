"""JSON mode on a model's own chat template (SmolLM2's ChatML, and any template that does not
render tools).

Such a template knows only plain turns, so the conversation is reduced to them before
rendering: an assistant message with tool calls becomes the tool-call JSON the model wrote, and
the tool results of a round become one user turn listing them, as the built-in Gemma format
does. Templates that insist on alternating user and assistant turns keep working, since a
round's results are one turn.
"""

from __future__ import annotations

from collections.abc import Sequence

from agentkit.engines.llama_cpp.prompting.formats import (
    PromptFormat,
    Segment,
    tool_calls_text,
    tool_results_text,
)
from agentkit.engines.llama_cpp.prompting.jinja import JinjaPromptFormat
from agentkit.messages import AssistantMessage, Message, ToolResultMessage, UserMessage

__all__ = ["JsonModeTemplate", "plain_turns"]


class JsonModeTemplate(PromptFormat):
    """A model's Jinja template rendering plain turns, for JSON-mode tool calls."""

    name = "template"

    def __init__(self, template: JinjaPromptFormat) -> None:
        self.template = template

    def render(self, messages: Sequence[Message], preamble: str) -> list[Segment]:
        """Segments for the messages (reduced to plain turns) plus the reply's opening."""
        return self.template.render(plain_turns(messages), preamble)


def plain_turns(messages: Sequence[Message]) -> list[Message]:
    """The conversation with tool calls as JSON text and each round's results as a user turn."""
    turns: list[Message] = []
    pending: list[ToolResultMessage] = []
    for message in messages:
        if isinstance(message, ToolResultMessage):
            pending.append(message)
            continue
        if pending:
            turns.append(UserMessage(content=tool_results_text(pending)))
            pending = []
        if isinstance(message, AssistantMessage) and message.tool_calls:
            turns.append(AssistantMessage(content=tool_calls_text(message)))
        else:
            turns.append(message)
    if pending:
        turns.append(UserMessage(content=tool_results_text(pending)))
    return turns
