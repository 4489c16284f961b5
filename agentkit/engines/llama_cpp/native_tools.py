"""Native tool calling: models whose own chat template renders tools, in the format they know.

`detect_tool_format(template)` names the tool-call format a chat template teaches (None: the
model gets JSON mode instead). The prompt is rendered by `JinjaPromptFormat` from that template,
and each round's output goes through the format's `splitter()`, which streams plain text,
buffers from the moment a tool-call marker may be starting, and parses the calls at the end:

- Hermes / Qwen 2.5 / Qwen 3: `<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`,
  possibly several;
- Llama 3.1-3.3: `{"name": ..., "parameters": {...}}` as the whole output, optionally after
  `<|python_tag|>` (several may be separated by `;`);
- Mistral v0.3 / Nemo: `[TOOL_CALLS] [{"name": ..., "arguments": {...}}, ...]`.

Templates that teach `<think>...</think>` reasoning (Qwen 3) get it streamed as reasoning text.
Calls that cannot be parsed are reported as `MalformedToolCall`, never dropped; output cut short
keeps the calls that were complete.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from pydantic import ValidationError

from agentkit.engines.base import MalformedToolCall, TextDelta, ToolCallRequested
from agentkit.engines.llama_cpp import output_json
from agentkit.engines.llama_cpp.prompting.formats import Segment
from agentkit.engines.llama_cpp.prompting.jinja import JinjaPromptFormat
from agentkit.messages import ToolCall
from agentkit.untrusted import UntrustedDataError

__all__ = [
    "HERMES",
    "LLAMA3",
    "MISTRAL",
    "TOOL_FORMATS",
    "JinjaPromptFormat",
    "NativeSplitter",
    "ToolFormat",
    "detect_tool_format",
]

Event: TypeAlias = TextDelta | ToolCallRequested | MalformedToolCall
_Mode: TypeAlias = Literal["start", "text", "reasoning", "calls", "json"]
_THINK = ("<think>", "</think>")
_TAGGED_CALL = re.compile(r"<tool_call>(.*?)(</tool_call>|\Z)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class ToolFormat:
    """How one model family writes tool calls.

    `call_markers` start the tool-call part of an output (text before them streams);
    `bare_opener` lets an output that starts with it be tool calls without a marker (the marker
    is a control token that detokenizing may drop); `think` holds reasoning tags.
    """

    name: str
    template_markers: tuple[str, ...]
    call_markers: tuple[str, ...]
    tagged: bool = False
    bare_opener: str | None = None
    think: tuple[str, str] | None = None

    def detect(self, template: str) -> bool:
        """Whether a chat template renders tools and teaches this format."""
        return "tools" in template and any(marker in template for marker in self.template_markers)

    def splitter(self, tools_offered: bool, prompt: Sequence[Segment] = ()) -> NativeSplitter:
        """A splitter for one round; `prompt` tells whether the template opened a think block."""
        tail = "".join(segment.text for segment in prompt[-2:]).rstrip()
        in_reasoning = self.think is not None and tail.endswith(self.think[0])
        return NativeSplitter(self, tools_offered, in_reasoning=in_reasoning)

    def parse(self, text: str) -> list[Event]:
        """The tool calls in an output from its first call marker on."""
        if self.tagged:
            return _parse_tagged(text)
        for marker in self.call_markers:
            if text.startswith(marker):
                return _parse_json(text[len(marker) :])
        return _parse_json(text)


HERMES = ToolFormat("hermes", ("<tool_call>",), ("<tool_call>",), tagged=True)
LLAMA3 = ToolFormat("llama3", ("<|python_tag|>", "ipython"), ("<|python_tag|>",), bare_opener="{")
MISTRAL = ToolFormat("mistral", ("[TOOL_CALLS]",), ("[TOOL_CALLS]",), bare_opener="[{")
TOOL_FORMATS = (HERMES, MISTRAL, LLAMA3)


def detect_tool_format(template: str) -> ToolFormat | None:
    """The tool-call format a chat template teaches, or None (use JSON mode)."""
    for tool_format in TOOL_FORMATS:
        if tool_format.detect(template):
            if _THINK[0] in template and _THINK[1] in template:
                return dataclasses.replace(tool_format, think=_THINK)
            return tool_format
    return None


class NativeSplitter:
    """Routes generated text: answer and reasoning text stream, tool calls are parsed at the end.

    Same interface as `json_mode.OutputSplitter`: `feed()` returns the text to stream now,
    `finish()` everything still pending (text, tool calls, malformed calls).
    """

    __slots__ = ("_buffer", "_calls", "_format", "_mode", "_strip")

    complete = False  # native output ends where the model ends it

    def __init__(
        self, tool_format: ToolFormat, tools_offered: bool, *, in_reasoning: bool = False
    ) -> None:
        self._format = tool_format
        self._calls = tool_format.call_markers if tools_offered else ()
        self._buffer = ""
        self._strip = True  # drop whitespace at the start of the answer and around think tags
        self._mode: _Mode = "text"
        if in_reasoning and tool_format.think is not None:
            self._mode = "reasoning"
        elif tools_offered and tool_format.bare_opener is not None:
            self._mode = "start"

    def feed(self, text: str) -> list[TextDelta]:
        """Take new text; returns the text to stream now."""
        self._buffer += text
        out: list[TextDelta] = []
        while self._step(out):
            pass
        return out

    def finish(self) -> list[Event]:
        """Everything still pending once generation ended."""
        buffer, self._buffer = self._buffer, ""
        if self._mode == "calls":
            return self._format.parse(buffer)
        if self._mode == "json":
            events = _bare_calls(buffer)
            if events is not None:
                return events
        out: list[TextDelta] = []
        self._emit(buffer, out, reasoning=self._mode == "reasoning")
        return list(out)

    def _step(self, out: list[TextDelta]) -> bool:
        """Move on to the next mode if the buffer shows it; False when waiting for more text."""
        think = self._format.think
        if self._mode == "start":
            return self._start()
        if self._mode == "text":
            opening = (*self._calls, think[0]) if think else self._calls
            marker = self._scan(opening, out, reasoning=False)
            if marker is None:
                return False
            if think and marker == think[0]:
                self._mode = "reasoning"
            else:
                self._mode = "calls"
                self._buffer = marker + self._buffer
            return True
        if self._mode == "reasoning" and think:
            if self._scan((think[1],), out, reasoning=True) is None:
                return False
            self._mode = "text"
            return True
        return False  # calls are buffered until the end

    def _start(self) -> bool:
        """At the start of the output: bare JSON tool calls, or text?"""
        opener = self._format.bare_opener or ""
        compact = "".join(self._buffer.split())
        if len(compact) < len(opener) and opener.startswith(compact):
            return False
        self._mode = "json" if compact.startswith(opener) else "text"
        return self._mode == "text"

    def _scan(self, markers: Sequence[str], out: list[TextDelta], *, reasoning: bool) -> str | None:
        """Emit text up to the first marker and consume it; None (and hold back) if none yet."""
        buffer = self._buffer
        found = [(buffer.index(marker), marker) for marker in markers if marker in buffer]
        if found:
            index, marker = min(found)
            self._emit(buffer[:index].rstrip(), out, reasoning=reasoning)
            self._buffer = buffer[index + len(marker) :]
            self._strip = True
            return marker
        held = _held_back(buffer, markers)
        self._emit(buffer[: len(buffer) - held], out, reasoning=reasoning)
        self._buffer = buffer[len(buffer) - held :]
        return None

    def _emit(self, text: str, out: list[TextDelta], *, reasoning: bool) -> None:
        if self._strip:
            text = text.lstrip()
            self._strip = not text
        if text:
            out.append(TextDelta(text, reasoning=reasoning))


def _held_back(buffer: str, markers: Sequence[str]) -> int:
    """How much of the buffer's end may begin a marker: a marker's prefix and the space before."""
    held = 0
    for marker in markers:
        for size in range(min(len(marker) - 1, len(buffer)), held, -1):
            if buffer.endswith(marker[:size]):
                held = size
                break
    rest = buffer[: len(buffer) - held]
    return held + len(rest) - len(rest.rstrip())


def _parse_tagged(text: str) -> list[Event]:
    """`<tool_call>{...}</tool_call>` blocks; a block missing its end tag was cut short."""
    events: list[Event] = []
    position = 0
    for match in _TAGGED_CALL.finditer(text):
        _add_text(text[position : match.start()], events)
        body, raw, closed = match.group(1), match.group(0), bool(match.group(2))
        if not closed:  # a cut end tag may follow complete JSON
            body = body[: len(body) - _held_back(body, ("</tool_call>",))]
        try:
            value = output_json.loads(body)
        except json.JSONDecodeError as error:
            events.append(MalformedToolCall(raw, _json_problem(error, cut=not closed)))
        except UntrustedDataError as error:
            events.append(MalformedToolCall(raw, error.problem))
        else:
            events.append(_call_event(value, raw))
        position = match.end()
    _add_text(text[position:], events)
    return events


def _parse_json(text: str) -> list[Event]:
    """A JSON array of calls, or call objects one after another (separated by `;` or space)."""
    text = text.strip()
    in_array = text.startswith("[")
    events: list[Event] = []
    position = 1 if in_array else 0
    while True:
        while position < len(text) and text[position] in " \t\r\n,;":
            position += 1
        if position >= len(text):
            break
        if in_array and text[position] == "]":
            _add_text(text[position + 1 :], events)
            break
        try:
            value, end = output_json.raw_decode(text, position)
        except json.JSONDecodeError as error:
            cut = error.pos >= len(text) or error.msg.startswith("Unterminated")
            events.append(MalformedToolCall(text[position:], _json_problem(error, cut=cut)))
            break
        except UntrustedDataError as error:
            events.append(MalformedToolCall(text[position:], error.problem))
            break
        items = value if isinstance(value, list) else [value]
        raw = text[position:end]
        events += [_call_event(item, raw if item is value else json.dumps(item)) for item in items]
        position = end
    if not any(isinstance(event, ToolCallRequested | MalformedToolCall) for event in events):
        events.append(MalformedToolCall(text, "no tool call followed the tool-call marker"))
    return events


def _bare_calls(text: str) -> list[Event] | None:
    """Calls from an output that opened like bare JSON calls, or None if it is an answer."""
    stripped = text.strip()
    try:
        value, _ = output_json.raw_decode(stripped, 0)
    except (json.JSONDecodeError, UntrustedDataError):
        compact = "".join(stripped.split())
        return _parse_json(stripped) if compact.startswith(('{"name":', '[{"name":')) else None
    items = value if isinstance(value, list) else [value]
    if items and all(_call_shaped(item) for item in items):
        return _parse_json(stripped)
    return None  # e.g. a JSON answer: not a call


def _call_shaped(value: object) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("name"), str)
        and ("arguments" in value or "parameters" in value)
    )


def _call_event(value: object, raw: str) -> ToolCallRequested | MalformedToolCall:
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not value["name"]:
        return MalformedToolCall(raw, 'a tool call needs a "name" string')
    arguments: Any = value.get("arguments", value.get("parameters"))
    try:
        return ToolCallRequested(ToolCall(value["name"], arguments))
    except (ValidationError, ValueError) as error:
        return MalformedToolCall(raw, f"unusable arguments: {error}")


def _json_problem(error: json.JSONDecodeError, *, cut: bool) -> str:
    if cut:
        return f"the tool call was cut short ({error.msg})"
    return f"invalid JSON: {error.msg} at position {error.pos}"


def _add_text(text: str, events: list[Event]) -> None:
    """Text between or after tool calls is kept as answer text."""
    if text.strip():
        events.append(TextDelta(text.strip()))
