"""How a model family writes, is taught and reads back JSON-mode tool calls.

JSON mode constrains a call list by grammar whatever the model, but a small model calls far
better in the shape and wording it was fine-tuned on. Two syntaxes:

- `JSON_OBJECT`, agentkit's own (any model without a known format): the instructions list each
  tool with its JSON Schema, and the output is `{"tool_calls": [{"name": ..., "arguments":
  {...}}, ...]}`.
- `SMOLLM2`: SmolLM2-Instruct learned function calling from Argilla's Synth-APIGen data, with a
  system prompt of its own (the tools as JSON in `<tools>`) and the answer
  `<tool_call>[{"name": ..., "arguments": {...}}, ...]</tool_call>`. Its grammar ends with the
  list's `]`: the closing tag would only cost tokens, so it is written back into the history.

`JSON_OBJECT` is every model's default. With `LoadConfig(tool_call_syntax="trained")` the
engine asks `for_model`, which picks one from the GGUF's metadata
(`general.basename`/`general.name`): the trained prompt is longer (the main job: 491 prompt
tokens against 307, ~0.8 s more), so it is chosen, not imposed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentkit.engines.base import ResponseFormatSpec, ToolDefinition

__all__ = ["JSON_OBJECT", "SMOLLM2", "CallSyntax", "for_model"]

_NAME = '{"name": "'


@dataclass(frozen=True, slots=True)
class CallSyntax:
    """One family's call-list shape: `prefix` `[` calls `]` `suffix`, and its instructions.

    `prefix` ends where the list's `[` starts. A `{` in it opens an object the list sits in,
    whose `}` (in `suffix`) is generated; a tag suffix is not generated (see module doc).
    """

    name: str
    prefix: str
    suffix: str
    first_gap: str  # between `[` and the first call, as generated
    gap: str  # between `,` and the next call, as generated
    instructions: Callable[[Sequence[ToolDefinition], ResponseFormatSpec | None, bool], str]
    """(tools, response_format, whether tool results are in the conversation) -> the text."""
    history_lines: bool = False
    """Whether the history shows a call list one call a line, as the instructions do."""
    separator: str = ", "
    """Between a call's members (a value and the next key) where jump-forward writes it."""

    @property
    def in_object(self) -> bool:
        """Whether the list is a member of a JSON object (else it follows a tag)."""
        return self.prefix.lstrip().startswith("{")

    @property
    def list_depth(self) -> int:
        """The bracket depth inside the list (the object's, if any, counts)."""
        return 2 if self.in_object else 1

    @property
    def opening(self) -> str:
        """The text up to the first call's name, as jump-forward inserts it."""
        return f"{self.prefix}[{self.first_gap}{_NAME}"

    @property
    def next_call(self) -> str:
        """After a call: the comma and the text up to the next call's name."""
        return f",{self.gap}{_NAME}"

    @property
    def close(self) -> str:
        """What ends a call list in generated text."""
        return "]}" if self.in_object else "]"

    @property
    def marker(self) -> str:
        """How the output starts, spaces removed, once it is a call list."""
        return "".join(self.prefix.split()).rstrip(":")

    def calls_text(self, calls: Sequence[Mapping[str, Any]]) -> str:
        """A call list as the conversation history shows it."""
        # Spaced as jump-forward writes calls, so the history shows what the model wrote.
        separators = (self.separator, ": ")
        items = [json.dumps(call, ensure_ascii=False, separators=separators) for call in calls]
        if self.history_lines:
            listed = "[\n" + ",\n".join(items) + "\n]"
        else:
            listed = f"[{self.first_gap}{f',{self.gap}'.join(items)}]"
        return f"{self.prefix}{listed}{self.suffix}"

    def list_text(self, text: str) -> str | None:
        """The list's JSON in a complete output of this syntax (None: not this shape)."""
        if self.in_object:
            return None
        body = text.strip()
        if not body.startswith(self.prefix):
            return None
        body = body[len(self.prefix) :].rstrip()
        return body.removesuffix(self.suffix).rstrip()


def _json_object_instructions(
    tools: Sequence[ToolDefinition],
    response_format: ResponseFormatSpec | None,
    after_results: bool = False,
) -> str:
    lines = []
    if tools:
        lines.append("You can call these tools:")
        for tool in tools:
            lines.append(
                f"- {tool.name}: {tool.description or 'no description'} "
                f"Arguments schema: {json.dumps(tool.parameters, separators=(',', ':'))}"
            )
        lines.append(
            'To call tools, reply with only {"tool_calls": [{"name": "<tool>", "arguments": '
            "{...}}]}. Tool results come back in the next message."
        )
    return _with_answer_line(lines, tools, response_format)


def _with_answer_line(
    lines: list[str], tools: Sequence[ToolDefinition], response_format: ResponseFormatSpec | None
) -> str:
    if response_format is not None:
        schema = json.dumps(response_format.schema, separators=(",", ":"))
        lines.append(f"Give your final answer as JSON matching this schema: {schema}")
    elif tools:
        lines.append("When you have what you need, answer in plain text.")
    return "\n".join(lines)


# The system prompt SmolLM2's function-calling data was made with (HuggingFaceTB's model card),
# line breaks and trailing spaces included.
_SMOLLM2_TASK = (
    "You are an expert in composing functions. You are given a question and a set of possible "
    "functions. \n"
    "Based on the question, you will need to make one or more function/tool calls to achieve "
    "the purpose. \n"
    "If none of the functions can be used, point it out and refuse to answer. \n"
    "If the given question lacks the parameters required by the function, also point it out."
)
_SMOLLM2_FORMAT = (
    "The output MUST strictly adhere to the following format, and NO other text MUST be "
    "included.\n"
    "The example format is as follows. Please make sure the parameter type is correct. If no "
    "function call is needed, please make the tool calls an empty list '[]'.\n"
    "<tool_call>[\n"
    '{"name": "func_name1", "arguments": {"argument1": "value1", "argument2": "value2"}},\n'
    "... (more tool calls as required)\n"
    "]</tool_call>"
)


def _smollm2_instructions(
    tools: Sequence[ToolDefinition],
    response_format: ResponseFormatSpec | None,
    after_results: bool = False,
) -> str:
    if not tools:
        return _with_answer_line([], tools, response_format)
    specs = [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters,
            },
        }
        for tool in tools
    ]
    listed = json.dumps(specs, ensure_ascii=False)
    text = f"{_SMOLLM2_TASK}\n\nYou have access to the following tools:\n<tools>{listed}</tools>"
    text += f"\n\n{_SMOLLM2_FORMAT}"
    # Its training data has no tool results: told nothing, after a result SmolLM2 answered "I'm
    # glad I could help!" instead of the result; told before any call, it answered without one.
    if response_format is not None or after_results:
        return _with_answer_line([text], tools, response_format)
    return text


JSON_OBJECT = CallSyntax(
    name="json",
    prefix='{"tool_calls": ',
    suffix="}",
    first_gap="",
    # No space after the commas jump-forward writes (between calls, before a key): a call
    # takes ~3 tokens fewer (`","` is one token, `", "` two), which fits a fourth call in
    # lists that stopped at three, and SmolLM2 writes `","` itself. The space after a colon
    # stays: without it SmolLM2 wrote `"number1":1` for 45 (BFCL: 30.0% against 29.2%; with
    # no spaces at all, 10.8%; README, "Tool-call accuracy").
    gap="",
    instructions=_json_object_instructions,
    separator=",",
)
SMOLLM2 = CallSyntax(
    name="smollm2",
    prefix="<tool_call>",
    suffix="</tool_call>",
    # Generated on one line: llama.cpp's JSON grammars allow a space, not a newline, there (a
    # grammar widened for one call a line, as the instructions show, did worse on BFCL: 30 of
    # 120 cases, not 31).
    first_gap="",
    gap=" ",
    instructions=_smollm2_instructions,
    # After `<tool_call>[{...}]</tool_call>` in the history the main job's answer was "I'm glad
    # I could help!"; after the call on a line of its own, "12345 * 54321 = 670592745".
    history_lines=True,
)

_BY_BASENAME = {"smollm2": SMOLLM2}


def for_model(metadata: Mapping[str, object]) -> CallSyntax:
    """The syntax a GGUF's model was trained on (by its basename or name), else JSON_OBJECT."""
    for key in ("general.basename", "general.name"):
        value = metadata.get(key)
        if isinstance(value, str):
            words = value.lower().replace("-", " ").replace("_", " ").split()
            for family, syntax in _BY_BASENAME.items():
                if family in words:
                    return syntax
    return JSON_OBJECT
