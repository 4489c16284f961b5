"""Jump-forward decoding for JSON-mode tool calls: text the grammar leaves no choice about is
inserted instead of sampled.

A call list (agentkit's `{"tool_calls": [{"name": ..., "arguments": {...}}, ...]}` or a model
family's own, such as SmolLM2's `<tool_call>[...]`, see call_syntax) has long stretches that the
round's grammar fixes: the opening up to the first name, the rest of a name once its prefix
matches a single offered tool, `,"arguments": {` after a name, each required parameter's key
(the grammar emits required parameters first, in schema order), and the closing `}` after a list
that sits in an object. The grammar allows optional whitespace in some of those places; the
inserted text has a space after each colon and, after a comma, the syntax's `separator`
(agentkit's object: none, `{"name": "x","arguments": {"a": 1,"b": 2}}`, so more calls fit in
max_tokens; SmolLM2's trained format: a space, as its training data has it).

Inserted tokens skip sampling (they are evaluated in one batch, which is faster than one
forward pass each) and keep a small model from drifting where it has nothing to decide: offered
a schema, SmolLM2 wants to write `"type"` where the first parameter's key goes, and `...` after
`"arguments": {`, which the grammar then bends into whatever valid token the model ranks next.

`CallJumpForward` follows the generated text and answers `forced()`: the text to insert now, or
"" where the model chooses (a value, whether another call follows, an optional parameter).
Three choices are taken from token-by-token sampling: `name_choices()` tells where the first
call's name is open between several tools (the worker picks it by whole-name likelihood, see
name_choice), `forced(budget)` closes the list between calls when the tokens left could not
hold another call, and `list_end_open()` tells where the worker weighs whether another call
follows (see list_end).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agentkit.engines.base import ToolDefinition
from agentkit.engines.llama_cpp.call_syntax import JSON_OBJECT, CallSyntax

__all__ = ["OPENING", "ArgumentOpening", "CallJumpForward"]

OPENING = JSON_OBJECT.opening
# Enums longer than this are written out by the model, not weighed value by value.
_MAX_VALUES = 16


@dataclass(frozen=True, slots=True)
class _Tool:
    name: str
    required: tuple[str, ...]  # required parameters in the order the grammar emits them
    optional: tuple[str, ...]  # the other parameters, in the order the grammar allows them
    openers: dict[str, str]  # parameter -> how its value must start ('"', "[", "{" or "")
    values: dict[str, tuple[str, ...]]  # parameter -> its few values as JSON, if it has few


@dataclass(frozen=True, slots=True)
class ArgumentOpening:
    """An optional argument that may follow a value: `text`, the comma, its key and how its
    value must start; `values`, the rest of each value its schema allows when it allows a few
    (`true`/`false`, an enum's members), else ()."""

    text: str
    values: tuple[str, ...]


def _tool(definition: ToolDefinition) -> _Tool:
    schema = definition.parameters
    required = _required_keys(schema)
    properties = schema.get("properties")
    closed = schema.get("additionalProperties") in (None, False)  # no keys but these
    if not required and not (closed and isinstance(properties, dict) and _plain(schema)):
        return _Tool(definition.name, (), (), {}, {})
    assert isinstance(properties, dict)
    optional = tuple(key for key in properties if key not in required) if closed else ()
    openers = {key: _opener(value) for key, value in properties.items()}
    values = {key: _values(value) for key, value in properties.items()}
    return _Tool(definition.name, required, optional, openers, values)


def _plain(schema: dict[str, Any]) -> bool:
    """Whether llama.cpp's converter builds this object from its properties alone."""
    return schema.get("type", "object") == "object" and not any(
        key in schema for key in ("$ref", "allOf", "anyOf", "oneOf", "const", "enum")
    )


def _opener(schema: object) -> str:
    """The first character every value of `schema` starts with, if the converter's rule for it
    fixes one (strings, enums of strings, arrays, objects)."""
    if not isinstance(schema, dict) or any(
        key in schema for key in ("$ref", "allOf", "anyOf", "oneOf", "const")
    ):
        return ""
    if "enum" in schema:
        values = schema["enum"]
        fixed = isinstance(values, list) and values and all(isinstance(v, str) for v in values)
        return '"' if fixed else ""
    return {"string": '"', "array": "[", "object": "{"}.get(str(schema.get("type")), "")


def _values(schema: object) -> tuple[str, ...]:
    """A parameter's values as JSON where its schema allows only a few: a boolean, or an enum
    of scalars; else ()."""
    if not isinstance(schema, dict):
        return ()
    if schema.get("type") == "boolean" and "enum" not in schema:
        return ("true", "false")
    members = schema.get("enum")
    scalar = (str, int, float, bool, type(None))
    if not isinstance(members, list) or not 0 < len(members) <= _MAX_VALUES:
        return ()
    if not all(isinstance(member, scalar) for member in members):
        return ()
    return tuple(json.dumps(member, ensure_ascii=False) for member in members)


def _required_keys(schema: dict[str, Any]) -> tuple[str, ...]:
    """The keys the grammar must emit first, in its order (llama.cpp's converter: properties'
    order, required ones first); none where the converter builds the object another way."""
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not _plain(schema):
        return ()
    required = schema.get("required") or ()
    return tuple(key for key in properties if key in required)


def _key_text(tool: _Tool, key: str) -> str:
    """A parameter's key as inserted, with the colon and how its value must start."""
    return f"{json.dumps(key, ensure_ascii=False)}: {tool.openers.get(key, '')}"


class CallJumpForward:
    """Follows a tool-call object as it is generated and tells what the grammar forces next.

    `at_start`: the output must be a call list (tool_choice required), so its opening is
    forced before anything is generated; otherwise the opening is forced once the output starts
    with the opening's first character (an answer cannot, see json_mode).
    """

    __slots__ = (
        "_anchor",
        "_arguments",
        "_call",
        "_call_opened",
        "_call_start",
        "_calls_closed",
        "_canonical",
        "_depth",
        "_ends_settled",
        "_escaped",
        "_in_string",
        "_key",
        "_keys",
        "_last_call",
        "_last_optional",
        "_list",
        "_name",
        "_pieces",
        "_started",
        "_string",
        "_syntax",
        "_text",
        "_tools",
        "close_tokens",
        "done",
    )

    def __init__(
        self,
        tools: Sequence[ToolDefinition],
        *,
        at_start: bool,
        syntax: CallSyntax = JSON_OBJECT,
    ) -> None:
        self._tools = {tool.name: _tool(tool) for tool in tools}
        self._syntax = syntax
        # Nesting depth of each part of a call list.
        self._list = syntax.list_depth  # inside the list [...]
        self._call = self._list + 1  # inside one call {...}
        self._arguments = self._list + 2  # inside "arguments": {...}
        self._started = at_start
        self._text = ""
        self._depth = 0
        self._in_string = False
        self._escaped = False
        self._string: list[str] | None = None  # the name being written (None: not a name)
        self._key: list[str] | None = None  # the parameter key being written
        self._name: _Tool | None = None  # the tool of the call being written
        self._keys = 0  # keys written in the current arguments object
        self._last_optional = -1  # index of its last optional key written
        # The text expected from `_anchor` on (spaces optional), or None while the model chooses.
        self._anchor = 0
        self._canonical: str | None = syntax.opening if at_start else None
        self._pieces = 0  # pieces fed (the worker feeds one token at a time)
        self._call_opened = 0  # the piece that opened the current call
        self._call_start = 0  # where in the text the current call opened
        self._last_call = 0  # pieces of the last call closed
        self._calls_closed = 0  # calls of the list written so far
        self._ends_settled = 0  # calls after which whether another follows is settled
        self.done = False
        """True once the call list is closed: nothing but the end of generation follows."""
        self.close_tokens = len(syntax.close)
        """How many tokens the list's close takes: a token a character unless the worker,
        which knows the vocabulary, tells."""

    @property
    def opening(self) -> str:
        """The text up to the first call's name."""
        return self._syntax.opening

    def feed(self, text: str) -> None:
        """Take the next piece of generated (or inserted) text: one token's text, as the
        worker feeds it (the budget check counts pieces as tokens)."""
        self._pieces += 1
        start = len(self._text)
        self._text += text
        for index in range(start, len(self._text)):
            self._step(self._text[index], index)

    def forced(self, budget: int | None = None) -> str:
        """The text to insert now ("" when the model has a choice to make).

        `budget`: how many tokens may still be generated. Between two calls, where the model
        chooses whether another follows, the list is closed when the budget could not hold
        another call as long as the last one (see room_for_another_call): a call cut by
        max_tokens is lost anyway, and the cut would leave the whole list unparsed. Where the
        model wrote the comma already (a `},` token), nothing can close the list: `done` is
        set, generation stops, and the reader ends the list before the comma (see json_mode).
        """
        if self.done:
            return ""
        if budget is not None and self._between_calls() and not self.room_for_another_call(budget):
            if self._text.rstrip().endswith(","):
                self.done = True
                return ""
            return self._syntax.close
        if self._string is not None:
            return self._name_rest()
        rest = ""
        if self._canonical is not None:
            rest = _remaining(self._canonical, self._text[self._anchor :])
        if not rest and self._key is not None:
            rest = self._key_rest()
        return rest

    def room_for_another_call(self, budget: int) -> bool:
        """Whether `budget` tokens could hold a call as long as the last one, the comma before
        it unless written, and the list's close.

        The last call, not the longest: the calls of a list mostly differ in their values
        only, and the longest made a list of four short calls end after three, one token
        short."""
        comma = 0 if self._text.rstrip().endswith(",") else 1
        return budget >= self._last_call + comma + self.close_tokens

    def argument_choice_open(self) -> bool:
        """Whether every required argument of the call is written and optional ones are left,
        so the token that ends the value being written chooses whether another follows."""
        tool = self._name
        return not (
            tool is None
            or self.done
            or self._key is not None
            or self._keys + 1 < len(tool.required)
            or self._last_optional + 1 >= len(tool.optional)
        )

    def arguments_end_at(self, piece: str) -> int:
        """Where an argument choice is open and `piece` (a token's text) ends the value being
        written and the arguments with it: the index of that `}`; -1 where it does not (the
        value goes on, or a comma adds an argument)."""
        if not self.argument_choice_open():
            return -1
        in_string, escaped, depth = self._in_string, self._escaped, self._depth
        for index, char in enumerate(piece):
            if in_string:
                if escaped:
                    escaped = False
                elif char == "\\":
                    escaped = True
                elif char == '"':
                    in_string = False
            elif char == '"':
                in_string = True
            elif char in "{[":
                depth += 1
            elif char in ",}]" and depth == self._arguments:
                return index if char == "}" else -1
            elif char in "}]":
                depth -= 1
        return -1

    def argument_openings(self) -> tuple[ArgumentOpening, ...]:
        """Each optional argument the grammar still allows after a value, in its order."""
        tool = self._name
        if tool is None:
            return ()
        return tuple(
            ArgumentOpening(
                self._syntax.separator + _key_text(tool, key),
                tuple(value[len(tool.openers[key]) :] for value in tool.values[key]),
            )
            for key in tool.optional[self._last_optional + 1 :]
        )

    def call_text(self) -> str:
        """The text of the call being written, from its `{`."""
        return self._text[self._call_start :]

    def list_end_open(self) -> bool:
        """Whether a call just closed and whether another follows is not settled yet (the
        model's `,` may be written already, in a `},` token)."""
        return not self.done and self._between_calls() and self._calls_closed > self._ends_settled

    def settle_list_end(self) -> bool:
        """Mark whether another call follows after this one as settled; whether the model's
        comma is written already."""
        self._ends_settled = self._calls_closed
        return self._text.rstrip().endswith(",")

    @property
    def syntax(self) -> CallSyntax:
        """The call syntax followed."""
        return self._syntax

    def _between_calls(self) -> bool:
        """Whether a call just closed and no other call opened yet (the model's `,` or `]`
        next, or after its `,`)."""
        return (
            self._depth == self._list
            and not self._in_string
            and self._calls_closed > 0
            and self._text.rstrip()[-1:] in ("}", ",")
        )

    def _expect(self, canonical: str, after: int) -> None:
        self._canonical = canonical
        self._anchor = after

    def name_choices(self) -> tuple[str, ...]:
        """Where the first call's name is being written and more than one offered tool fits
        what is written so far: the rest of each fitting name (see name_choice); else ().

        Only the first call: a small model's later calls mostly repeat its first one, which
        ends the list (see json_mode), and a name chosen by likelihood there turned those
        repeats into calls to other tools."""
        if self.done or self._string is None or self._calls_closed > 0:
            return ()
        prefix = "".join(self._string)
        fits = tuple(name[len(prefix) :] for name in self._tools if name.startswith(prefix))
        return fits if len(fits) > 1 else ()

    def _name_rest(self) -> str:
        """The rest of the name being written when only one offered name fits its prefix."""
        assert self._string is not None
        prefix = "".join(self._string)
        fits = [name for name in self._tools if name.startswith(prefix)]
        if len(fits) != 1:
            return ""
        return fits[0][len(prefix) :] + '"'

    def _key_rest(self) -> str:
        """The rest of an optional parameter's key when only one allowed key fits its prefix
        (the grammar takes optional keys in schema order, each at most once)."""
        assert self._key is not None
        if self._name is None:
            return ""
        prefix = "".join(self._key)
        allowed = self._name.optional[self._last_optional + 1 :]
        fits = [key for key in allowed if key.startswith(prefix)]
        if len(fits) != 1:
            return ""
        return fits[0][len(prefix) :] + '"'

    def _step(self, char: str, index: int) -> None:
        if not self._started and not char.isspace():
            self._started = True
            if char == self._syntax.opening[0]:  # an answer cannot start so (see json_mode)
                self._expect(self._syntax.opening, index)
        if self._in_string:
            self._string_char(char, index)
            return
        if char == '"':
            self._in_string = True
            # The call's name value: the string after `"name":` in a call object.
            if self._depth == self._call and self._name is None and self._after_colon(index):
                self._string = []
            elif self._depth == self._arguments and self._text[:index].rstrip()[-1:] in ("{", ","):
                self._key = []
            return
        if char in "{[":
            self._depth += 1
            if self._depth == self._call:
                self._call_opened = self._pieces
                self._call_start = index
            if self._depth == self._arguments:
                self._keys = 0
                self._last_optional = -1
            return
        if char in "}]":
            self._depth -= 1
            if self._depth == self._list:
                self._name = None  # a call ended
                length = self._pieces - self._call_opened + 1
                self._last_call = length
                self._calls_closed += 1
            elif self._depth == self._list - 1 and char == "]" and self._depth > 0:
                self._expect(self._syntax.close[1:], index + 1)
            elif self._depth == 0:
                self.done = True
            return
        if char == ",":
            if self._depth == self._list:
                self._expect(self._syntax.next_call, index)
            elif self._depth == self._arguments and self._name is not None:
                self._keys += 1
                required = self._name.required
                if self._keys < len(required):
                    key = required[self._keys]
                    self._expect(self._syntax.separator + _key_text(self._name, key), index)

    def _string_char(self, char: str, index: int) -> None:
        if self._escaped:
            self._escaped = False
        elif char == "\\":
            self._escaped = True
        elif char == '"':
            self._in_string = False
            if self._string is not None:
                self._name = self._tools.get("".join(self._string))
                self._string = None
                if self._name is not None:
                    after = f'{self._syntax.separator}"arguments": {{'
                    if self._name.required:
                        after += _key_text(self._name, self._name.required[0])
                    self._expect(after, index + 1)
            elif self._key is not None:
                key, self._key = "".join(self._key), None
                if self._name is not None and key in self._name.openers:
                    self._expect(": " + self._name.openers[key], index + 1)
                    if key in self._name.optional:
                        self._last_optional = self._name.optional.index(key)
            return
        if self._string is not None and not self._escaped:
            self._string.append(char)
        elif self._key is not None and not self._escaped:
            self._key.append(char)

    def _after_colon(self, index: int) -> bool:
        """Whether the string opening at `index` is a value (follows a `:`)."""
        before = self._text[:index].rstrip()
        return before.endswith(":") and before[:-1].rstrip().endswith('"name"')


def _remaining(canonical: str, written: str) -> str:
    """What is left of `canonical` after `written`, matching whitespace loosely (the grammar's
    optional spaces); "" if `written` went another way."""
    position = 0
    for char in written:
        if position < len(canonical) and canonical[position] == char:
            position += 1
        elif char.isspace():
            continue  # whitespace the grammar allowed where the canonical text has none
        elif position < len(canonical) and canonical[position].isspace():
            position += 1
            if position < len(canonical) and canonical[position] == char:
                position += 1
            else:
                return ""
        else:
            return ""
    return canonical[position:]
