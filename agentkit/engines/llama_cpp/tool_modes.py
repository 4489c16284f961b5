"""How one round is prompted and read back: JSON mode or the model's native tool format.

- JSON mode (models whose template does not render tools, such as the default SmolLM2): tools
  are described in the prompt and the output is grammar-constrained to a call list or the
  answer (see `json_mode`), in the call syntax of the prompt format (see `call_syntax`).
- Native mode (a chat template that renders tools and teaches Hermes/Qwen, Llama 3.x or Mistral
  calls): the template renders the tools, the output is free, and the format's own parser reads
  the calls; malformed ones go through act()'s invalid-request path. Native mode cannot force a
  call, so `tool_choice="required"` falls back to JSON mode for that round, on the same template.

tool_choice is enforced by what the round offers (`offer_tools`): "none" offers no tools at
all, so the answer is text; a named tool offers that tool alone with a call required, so JSON
mode's grammar admits only calls to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from agentkit.config import PredictionConfig
from agentkit.engines.base import (
    MalformedToolCall,
    PredictionRequest,
    TextDelta,
    ToolCallRequested,
    ToolDefinition,
    offer_tools,
)
from agentkit.engines.llama_cpp import json_mode
from agentkit.engines.llama_cpp.call_syntax import CallSyntax
from agentkit.engines.llama_cpp.jump_forward import CallJumpForward
from agentkit.engines.llama_cpp.native_tools import LLAMA3, MISTRAL, ToolFormat
from agentkit.engines.llama_cpp.prompting.formats import PromptFormat, Segment
from agentkit.engines.llama_cpp.prompting.jinja import JinjaPromptFormat
from agentkit.messages import AssistantMessage, Message, SystemMessage, UserMessage

__all__ = ["NativeTemplate", "OutputRouter", "RoundPlan", "plan_round"]


class OutputRouter(Protocol):
    """Splits generated text into streamed text and, at the end, tool calls."""

    complete: bool
    """True once the output is whole: generation stops early (a repeated JSON-mode call)."""

    def feed(self, text: str) -> list[TextDelta]:
        """Text to stream now."""
        ...

    def finish(self) -> list[TextDelta | ToolCallRequested | MalformedToolCall]:
        """Everything pending once generation ended."""
        ...


@dataclass(frozen=True, slots=True)
class NativeTemplate:
    """A model's own chat template and the tool-call format it teaches."""

    prompt: JinjaPromptFormat
    tool_format: ToolFormat


@dataclass(frozen=True, slots=True)
class RoundPlan:
    """The prompt, the grammar and the output router of one prediction."""

    segments: list[Segment]
    grammar: str | None
    router: Callable[[], OutputRouter]
    # Llama 3's <|python_tag|> and Mistral's [TOOL_CALLS] are control tokens: the output must
    # be detokenized with special tokens for the parser to see them.
    special_output: bool = False
    # Inserts what the grammar leaves no choice about (JSON-mode calls); None: sample it all.
    jump_forward: Callable[[], CallJumpForward] | None = None
    # The same prompt with the conversation left out (the tools, an empty user turn): what the
    # model would write with no request, which name choice and the list end discount.
    calibration: Callable[[], list[Segment]] | None = None


def plan_round(
    request: PredictionRequest,
    config: PredictionConfig,
    prompt_format: PromptFormat,
    native: NativeTemplate | None,
) -> RoundPlan:
    """Decide how this request is prompted, constrained and parsed."""
    offer = offer_tools(request.tools, config.tool_choice)
    tools, required = offer.tools, offer.required
    response_format = request.response_format
    if request.prompt is not None:
        return RoundPlan(
            [Segment(request.prompt, special=False)],
            json_mode.grammar_for((), response_format),
            lambda: json_mode.OutputSplitter(False),
        )
    if native is None or required:
        renderer = prompt_format if native is None else native.prompt
        syntax = renderer.call_syntax
        after_results = _has_tool_calls(request.messages)
        preamble = json_mode.tool_instructions(
            tools, response_format, syntax, after_results=after_results
        )
        return RoundPlan(
            renderer.render(request.messages, preamble),
            json_mode.grammar_for(
                tools,
                response_format,
                require_call=required,
                text_answer=after_results,
                syntax=syntax,
            ),
            lambda: json_mode.OutputSplitter(bool(tools), syntax),
            jump_forward=_jump_forward(tools, required, response_format is None, syntax),
            calibration=_calibration(renderer, request.messages, preamble, tools),
        )
    tool_format = native.tool_format
    segments = native.prompt.render(
        request.messages, json_mode.tool_instructions((), response_format), tools
    )
    # With tools offered the output is free (the template taught the call syntax, not JSON
    # mode's); without tools a response_format still constrains the answer.
    grammar = None if tools else json_mode.grammar_for((), response_format)
    return RoundPlan(
        segments,
        grammar,
        lambda: tool_format.splitter(bool(tools), segments),
        special_output=tool_format in (LLAMA3, MISTRAL),
    )


def _jump_forward(
    tools: Sequence[ToolDefinition], required: bool, text_answer: bool, syntax: CallSyntax
) -> Callable[[], CallJumpForward] | None:
    """Jump-forward for a round whose output may be a call list: always when a call is
    required; otherwise only when an answer cannot start like a call (no response_format)."""
    if not tools or not (required or text_answer):
        return None
    return lambda: CallJumpForward(tools, at_start=required, syntax=syntax)


def _calibration(
    renderer: PromptFormat, messages: Sequence[Message], preamble: str, tools: Sequence[object]
) -> Callable[[], list[Segment]] | None:
    """The prompt without the conversation, for rounds that offer tools: name choice and the
    list end (see list_end) weigh the model's choices against it."""
    if not tools:
        return None
    kept = [m for m in messages if isinstance(m, SystemMessage)]
    return lambda: renderer.render([*kept, UserMessage(content="")], preamble)


def _has_tool_calls(messages: Sequence[Message]) -> bool:
    return any(isinstance(m, AssistantMessage) and m.tool_calls for m in messages)
