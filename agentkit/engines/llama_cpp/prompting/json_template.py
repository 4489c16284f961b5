"""JSON mode on a model's own chat template (SmolLM2's ChatML, and any template that does not
render tools).

Such a template knows only plain turns, so the conversation is reduced to them before
rendering: an assistant message with tool calls becomes the tool-call JSON the model wrote, and
the tool results of a round become one turn listing them (`calculator: 670592745`). That turn
has the `tool` role when the template renders one (ChatML does), else it is a user turn, as in
the built-in Gemma format, so templates that insist on alternating turns keep working.

Measured on SmolLM2-135M-Instruct, greedy, after a calculator call: with the result in a `tool`
turn it answers "12345 * 54321 = 670592745"; with it in a user turn ("Tool results: ...") it
writes another tool call, or "The calculator returns 6,705,927,450." when calls are forbidden.
"""

from __future__ import annotations

from collections.abc import Sequence

from agentkit.engines.llama_cpp.call_syntax import JSON_OBJECT, CallSyntax
from agentkit.engines.llama_cpp.prompting.formats import (
    PromptFormat,
    Segment,
    tool_calls_text,
    tool_results_text,
)
from agentkit.engines.llama_cpp.prompting.jinja import JinjaPromptFormat
from agentkit.errors import AgentkitError
from agentkit.messages import AssistantMessage, Message, ToolResultMessage, UserMessage

__all__ = ["JsonModeTemplate", "plain_turns"]


class JsonModeTemplate(PromptFormat):
    """A model's Jinja template rendering plain turns, for JSON-mode tool calls."""

    name = "template"

    def __init__(self, template: JinjaPromptFormat, call_syntax: CallSyntax = JSON_OBJECT) -> None:
        self.template = template
        self.call_syntax = call_syntax
        self.tool_role = _renders_tool_role(template)
        """Whether tool results go in a `tool` turn (else a user turn)."""

    def render(self, messages: Sequence[Message], preamble: str) -> list[Segment]:
        """Segments for the messages (reduced to plain turns) plus the reply's opening."""
        turns = plain_turns(messages, tool_role=self.tool_role, syntax=self.call_syntax)
        return self.template.render(turns, preamble)


def plain_turns(
    messages: Sequence[Message], *, tool_role: bool = False, syntax: CallSyntax = JSON_OBJECT
) -> list[Message]:
    """The conversation with tool calls as JSON text and each round's results as one turn."""
    turns: list[Message] = []
    pending: list[ToolResultMessage] = []

    def flush() -> None:
        if not pending:
            return
        if tool_role:
            lines = "\n".join(_result_line(result) for result in pending)
            first = pending[0]
            turns.append(ToolResultMessage(tool_call_id=first.tool_call_id, content=lines))
        else:
            turns.append(UserMessage(content=tool_results_text(pending)))
        pending.clear()

    for message in messages:
        if isinstance(message, ToolResultMessage):
            pending.append(message)
            continue
        flush()
        if isinstance(message, AssistantMessage) and message.tool_calls:
            turns.append(AssistantMessage(content=tool_calls_text(message, syntax)))
        else:
            turns.append(message)
    flush()
    return turns


def _result_line(result: ToolResultMessage) -> str:
    label = result.name or "tool"
    return f"{label} error: {result.content}" if result.is_error else f"{label}: {result.content}"


_PROBE = "agentkit-probe-result"


def _renders_tool_role(template: JinjaPromptFormat) -> bool:
    """Whether the template renders a `tool` message's content (some raise on the role, some
    drop it)."""
    probe: list[Message] = [
        UserMessage(content="q"),
        AssistantMessage(content="a"),
        ToolResultMessage(tool_call_id="probe", content=_PROBE),
    ]
    try:
        segments = template.render(probe, "")
    except AgentkitError:
        return False
    return any(_PROBE in segment.text for segment in segments)
