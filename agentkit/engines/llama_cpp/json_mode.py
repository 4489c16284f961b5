"""JSON-mode tool calling for models without a tool-aware chat template.

Each round the model's output is constrained by a grammar built from that round's offer:

- tools offered: either a call list in the model family's syntax (see call_syntax; agentkit's
  own is `{"tool_calls": [{"name": ..., "arguments": {...}}]}`, SmolLM2's
  `<tool_call>[{"name": ..., "arguments": {...}}]`), at most `MAX_CALLS` calls, names limited to
  the offered tools, arguments following each tool's schema; or the final answer;
- the final answer is free text, or JSON following `response_format` when one is given.

So every tool call parses and validates by construction, even on tiny models. Free-text answers
stay unconstrained apart from not starting like a call (`{`, or `<` with a tag syntax), which
keeps them fast and streamable.
`OutputSplitter` decides, while tokens arrive, whether the output is a tool call (buffered, then
parsed) or answer text (streamed).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from agentkit.engines.base import (
    MalformedToolCall,
    ResponseFormatSpec,
    TextDelta,
    ToolCallRequested,
    ToolDefinition,
)
from agentkit.engines.llama_cpp import output_json
from agentkit.engines.llama_cpp.call_syntax import JSON_OBJECT, CallSyntax
from agentkit.messages import ToolCall
from agentkit.untrusted import UntrustedDataError

__all__ = ["MAX_CALLS", "OutputSplitter", "grammar_for", "tool_instructions"]

MAX_CALLS = 8
_TEXT_ANSWER = "[^{ \\t\\n] [^\\x00]*"  # text that cannot be taken for a call
_TAG_TEXT_ANSWER = "[^<{ \\t\\n] [^\\x00]*"  # nor for a call written after a tag


def tool_call_schema(tools: Sequence[ToolDefinition]) -> dict[str, Any]:
    """The JSON Schema of a tool-call object for these tools."""
    return {
        "type": "object",
        "properties": {"tool_calls": call_list_schema(tools)},
        "required": ["tool_calls"],
        "additionalProperties": False,
    }


def call_list_schema(tools: Sequence[ToolDefinition]) -> dict[str, Any]:
    """The JSON Schema of a list of calls to these tools."""
    calls = []
    for tool in tools:
        parameters = dict(tool.parameters)
        calls.append(
            {
                "type": "object",
                "properties": {"name": {"const": tool.name}, "arguments": parameters},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    return {
        "type": "array",
        "items": calls[0] if len(calls) == 1 else {"anyOf": calls},
        "minItems": 1,
        "maxItems": MAX_CALLS,
    }


def grammar_for(
    tools: Sequence[ToolDefinition],
    response_format: ResponseFormatSpec | None,
    *,
    require_call: bool = False,
    text_answer: bool = False,
    syntax: CallSyntax = JSON_OBJECT,
) -> str | None:
    """The GBNF grammar for one round, or None when the output is unconstrained.

    `text_answer` keeps an answer without tools from opening like a call: after rounds of JSON
    calls in the history, a small model offered no tools (act()'s last round) otherwise writes
    one more call as its answer.
    """
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    def gbnf(schema: Any) -> str:
        return str(json_schema_to_gbnf(json.dumps(grammar_bounds(schema))))

    text = _TEXT_ANSWER if syntax.in_object else _TAG_TEXT_ANSWER
    if not tools:
        if response_format is None:
            return f"root ::= {text}\n" if text_answer else None
        return gbnf(response_format.schema)
    if syntax.in_object:
        calls = _renamed(gbnf(tool_call_schema(tools)), "calls")
    else:
        listed = _renamed(gbnf(call_list_schema(tools)), "calls-list")
        calls = f"calls-root ::= {json.dumps(syntax.prefix)} calls-list-root\n{listed}"
    if require_call:
        return f"root ::= calls-root\n{calls}\n"
    if response_format is None:
        answer = f"answer-root ::= {text}"
    else:
        answer = _renamed(gbnf(response_format.schema), "answer")
    return f"root ::= calls-root | answer-root\n{calls}\n{answer}\n"


MAX_GRAMMAR_REPEAT = 64
"""Largest length or item bound written into a grammar. llama.cpp expands a bound into that many
copies of a rule and refuses large ones ("exceeds sane defaults"): a tool with
`maxLength: 2000` made every prediction fail. Larger bounds are left out of the grammar; the
tool's own validation still applies them to what the model wrote."""

_REPEAT_BOUNDS = frozenset({"maxLength", "minLength", "maxItems", "minItems"})


def grammar_bounds(schema: Any) -> Any:
    """`schema` without length and item bounds over `MAX_GRAMMAR_REPEAT` (a copy)."""
    if isinstance(schema, list):
        return [grammar_bounds(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    return {
        key: grammar_bounds(value)
        for key, value in schema.items()
        if not (
            key in _REPEAT_BOUNDS
            and isinstance(value, int)
            and not isinstance(value, bool)
            and value > MAX_GRAMMAR_REPEAT
        )
    }


def _renamed(grammar: str, prefix: str) -> str:
    """Prefix every rule name so two converted grammars can share one file."""
    names = {line.split("::=")[0].strip() for line in grammar.splitlines() if "::=" in line}
    renamed = []
    for line in grammar.splitlines():
        if "::=" not in line:
            continue
        head, body = line.split("::=", 1)
        tokens = _rename_refs(body, names, prefix)
        renamed.append(f"{prefix}-{head.strip()} ::={tokens}")
    return "\n".join(renamed)


def _rename_refs(body: str, names: set[str], prefix: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char in '"[':
            end = _literal_end(body, index)
            out.append(body[index:end])
            index = end
        elif char.isalnum() or char == "-":
            end = index
            while end < len(body) and (body[end].isalnum() or body[end] == "-"):
                end += 1
            word = body[index:end]
            out.append(f"{prefix}-{word}" if word in names else word)
            index = end
        else:
            out.append(char)
            index += 1
    return "".join(out)


def _literal_end(body: str, start: int) -> int:
    closing = '"' if body[start] == '"' else "]"
    index = start + 1
    while index < len(body):
        if body[index] == "\\":
            index += 2
            continue
        if body[index] == closing:
            return index + 1
        index += 1
    return index


def tool_instructions(
    tools: Sequence[ToolDefinition],
    response_format: ResponseFormatSpec | None,
    syntax: CallSyntax = JSON_OBJECT,
    *,
    after_results: bool = False,
) -> str:
    """The text that tells the model how to call tools (and how to answer); `after_results`:
    the conversation has tool results already."""
    return syntax.instructions(tools, response_format, after_results)


class OutputSplitter:
    """Routes generated text: tool-call JSON is buffered and parsed, answer text streams.

    Small models, once they have written the right call, tend to write it again until the list
    bound or max_tokens ends them. So the splitter watches the calls as they complete, and when
    one repeats an earlier call of the list exactly, the list is closed before it and `complete`
    tells the generator to stop: the round keeps the distinct calls and wastes no more tokens.
    """

    __slots__ = ("_buffer", "_calls", "_mode", "_syntax", "_tools_offered", "complete")

    def __init__(self, tools_offered: bool, syntax: CallSyntax = JSON_OBJECT) -> None:
        self._tools_offered = tools_offered
        self._syntax = syntax
        self._buffer = ""
        self._mode: str | None = None if tools_offered else "text"
        self._calls = _CallScanner(syntax.list_depth + 1)
        self.complete = False
        """True once the output is whole and generating more would only be discarded."""

    def feed(self, text: str) -> list[TextDelta]:
        """Take new text; returns the text to stream now (nothing while it may be a call)."""
        if self._mode == "text":
            return [TextDelta(text)] if text else []
        if self.complete:
            return []
        if self._mode == "calls":
            self._take_calls(text)
            return []
        self._buffer += text
        head = self._buffer.lstrip()
        compact = head.replace(" ", "").replace("\n", "")
        key = self._syntax.marker
        if key.startswith(compact[: len(key)]) and len(compact) < len(key):
            return []
        if compact.startswith(key):
            self._mode = "calls"
            text, self._buffer = self._buffer, ""
            self._take_calls(text)
            return []
        self._mode = "text"
        flushed, self._buffer = self._buffer, ""
        return [TextDelta(flushed)]

    def _take_calls(self, text: str) -> None:
        start = len(self._buffer)
        self._buffer += text
        repeat_at = self._calls.feed(self._buffer, start)
        if repeat_at is not None:
            self._close_before(repeat_at)
            self.complete = True

    def _close_before(self, index: int) -> None:
        """End the call list just before the call starting at `index`."""
        self._buffer = self._buffer[:index].rstrip().rstrip(",") + self._syntax.close

    def finish(self) -> list[TextDelta | ToolCallRequested | MalformedToolCall]:
        """Everything still pending once generation ended.

        A call cut short (max_tokens) that so far repeats an earlier call is a repeat, not a
        malformed call: it is dropped and the list closed. So is a comma after the last call
        (the output stopped before another call began): only calls that are complete count.
        """
        if self._mode != "calls":
            flushed, self._buffer = self._buffer, ""
            return [TextDelta(flushed)] if flushed else []
        cut = self._calls.repeat_in_progress(self._buffer)
        if cut is None:
            cut = self._calls.dangling_comma(self._buffer)
        if not self.complete and cut is not None:
            self._close_before(cut)
        return list(parse_tool_calls(self._buffer, self._syntax))


class _CallScanner:
    """Finds the call objects of a call list as it grows (each opens at `call_depth`), and
    reports where a call that repeats an earlier one starts."""

    __slots__ = (
        "_call_depth",
        "_call_start",
        "_depth",
        "_escaped",
        "_in_string",
        "_seen",
        "_texts",
    )

    def __init__(self, call_depth: int) -> None:
        self._call_depth = call_depth
        self._depth = 0
        self._in_string = False
        self._escaped = False
        self._call_start = -1
        self._seen: set[str] = set()
        self._texts: list[str] = []  # each complete call without whitespace

    def repeat_in_progress(self, text: str) -> int | None:
        """Where the unfinished last call starts, if so far it spells an earlier call."""
        if self._call_start < 0:
            return None
        partial = "".join(text[self._call_start :].split())
        if any(earlier.startswith(partial) for earlier in self._texts):
            return self._call_start
        return None

    def dangling_comma(self, text: str) -> int | None:
        """Where the comma is if `text` ends with one after a complete call."""
        stripped = text.rstrip()
        if self._depth == self._call_depth - 1 and self._texts and stripped.endswith(","):
            return len(stripped) - 1
        return None

    def feed(self, text: str, start: int) -> int | None:
        """Scan `text[start:]` (the text before was scanned already); the index where a
        repeated call starts, if one just completed."""
        for index in range(start, len(text)):
            char = text[index]
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif char == "\\":
                    self._escaped = True
                elif char == '"':
                    self._in_string = False
            elif char == '"':
                self._in_string = True
            elif char in "{[":
                self._depth += 1
                if self._depth == self._call_depth:
                    self._call_start = index
            elif char in "}]":
                self._depth -= 1
                if self._depth == self._call_depth - 1 and self._call_start >= 0:
                    call = text[self._call_start : index + 1]
                    key = _call_key(call)
                    if key in self._seen:
                        return self._call_start
                    self._seen.add(key)
                    self._texts.append("".join(call.split()))
                    self._call_start = -1
        return None


def _call_key(text: str) -> str:
    """The call in a canonical form, so that spacing and key order do not hide a repeat."""
    try:
        return json.dumps(output_json.loads(text), sort_keys=True)
    except (json.JSONDecodeError, UntrustedDataError):
        return "".join(text.split())


def parse_tool_calls(
    text: str, syntax: CallSyntax = JSON_OBJECT
) -> list[ToolCallRequested | MalformedToolCall]:
    """Tool calls from a call list in `syntax`; anything unparseable is reported, not dropped.

    Output cut short (max_tokens) still yields the calls that were complete; the cut tail is
    reported as malformed.
    """
    listed = syntax.list_text(text)
    if not syntax.in_object and listed is None:
        return [MalformedToolCall(text, f"a call list must start with {syntax.prefix}")]
    try:
        data = output_json.loads(text if listed is None else listed)
    except json.JSONDecodeError as error:
        return _salvage(text, f"invalid JSON: {error}")
    except UntrustedDataError as error:  # past a limit: the calls before it still count
        return _salvage(text, error.problem)
    calls = data.get("tool_calls") if isinstance(data, dict) and listed is None else data
    if not isinstance(calls, list) or not calls:
        what = '"tool_calls"' if listed is None else "the call list"
        return [MalformedToolCall(text, f"{what} must be a non-empty list")]
    return [_call_event(call) for call in calls]


def _call_event(call: object) -> ToolCallRequested | MalformedToolCall:
    name = call.get("name") if isinstance(call, dict) else None
    if not isinstance(call, dict) or not isinstance(name, str):
        return MalformedToolCall(json.dumps(call), "a tool call needs a string name")
    arguments = call.get("arguments", {})
    return ToolCallRequested(
        ToolCall(name, arguments if isinstance(arguments, dict) else json.dumps(arguments))
    )


def _salvage(text: str, reason: str) -> list[ToolCallRequested | MalformedToolCall]:
    """The complete calls at the start of a cut-off tool-call object, then the rest."""
    start = text.find("[")
    events: list[ToolCallRequested | MalformedToolCall] = []
    position = start + 1
    while start >= 0:
        while position < len(text) and text[position] in " \t\n\r,":
            position += 1
        try:
            call, position = output_json.raw_decode(text, position)
        except (json.JSONDecodeError, UntrustedDataError):
            break
        events.append(_call_event(call))
    tail = text[position:] if events else text
    return [*events, MalformedToolCall(tail, reason)]
