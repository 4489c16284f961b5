"""OpenAI-style streaming responses (server-sent events) turned into prediction events.

`sse_data` yields the data of each complete event; `StreamAssembler` turns decoded chunks
into `TextDelta`s as they arrive and, at the end, the assembled tool calls and the single
`PredictionDone`. Tool calls arrive as fragments keyed by `index` (id, function name and
arguments text in pieces) and are only complete once the stream is.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from agentkit.engines.base import (
    FirstToken,
    MalformedToolCall,
    PredictionDone,
    PredictionEvent,
    TextDelta,
    ToolCallRequested,
)
from agentkit.errors import EngineError
from agentkit.messages import ToolCall
from agentkit.results import Usage

__all__ = ["DONE", "StreamAssembler", "sse_data"]

DONE = "[DONE]"


async def sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The data of each event; an event cut off before its blank line is dropped."""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value.removeprefix(" "))


@dataclass(slots=True)
class _CallParts:
    id: str | None = None
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class StreamAssembler:
    """Prediction events from the decoded chunks of one chat or text completion stream.

    When the server sends no usage, `completion_tokens` counts the chunks that carried output
    (llama.cpp-based servers send one per token) and `prompt_tokens` is 0.
    """

    finished: bool = False
    """A finish reason or `[DONE]` arrived: the stream was not cut off."""
    _started: bool = False
    _calls: dict[int, _CallParts] = field(default_factory=dict)
    _usage: Usage | None = None
    _finish_reason: str | None = None
    _output_chunks: int = 0

    def feed(self, data: str) -> list[PredictionEvent]:
        """Events for one event's data (a JSON chunk or `[DONE]`)."""
        if data.strip() == DONE:
            self.finished = True
            return []
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError as error:
            raise EngineError(
                f"the server streamed data that is not JSON: {data[:200]!r}"
            ) from error
        if not isinstance(chunk, dict):
            raise EngineError(f"the server streamed an unexpected chunk: {data[:200]!r}")
        if "error" in chunk:
            raise EngineError(f"the server reported an error mid-stream: {chunk['error']}")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._usage = Usage(
                int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            )
        events: list[PredictionEvent] = []
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                events += self._choice(choice)
        return events

    def _choice(self, choice: dict[str, Any]) -> list[PredictionEvent]:
        if choice.get("finish_reason"):
            self._finish_reason = str(choice["finish_reason"])
            self.finished = True
        delta = choice.get("delta")
        if not isinstance(delta, dict):  # text completions carry `text` on the choice
            return self._text(choice.get("text"), reasoning=False)
        events = self._text(delta.get("reasoning_content") or delta.get("reasoning"), True)
        events += self._text(delta.get("content"), reasoning=False)
        for fragment in delta.get("tool_calls") or ():
            events += self._tool_fragment(fragment)
        return events

    def _text(self, text: object, reasoning: bool) -> list[PredictionEvent]:
        if not isinstance(text, str) or not text:
            return []
        self._output_chunks += 1
        return [*self._first(), TextDelta(text, reasoning)]

    def _first(self) -> list[PredictionEvent]:
        if self._started:
            return []
        self._started = True
        return [FirstToken()]

    def _tool_fragment(self, fragment: object) -> list[PredictionEvent]:
        if not isinstance(fragment, dict):
            return []
        parts = self._calls.setdefault(int(fragment.get("index", len(self._calls))), _CallParts())
        if fragment.get("id"):
            parts.id = str(fragment["id"])
        function = fragment.get("function") or {}
        if isinstance(function, dict):
            parts.name += str(function.get("name") or "")
            if function.get("arguments"):
                parts.arguments.append(str(function["arguments"]))
        self._output_chunks += 1
        return self._first()

    def finish(self) -> list[PredictionEvent]:
        """The tool calls and the final `PredictionDone` (the stream must have finished)."""
        if not self.finished:
            raise EngineError(
                "the server's stream ended before the prediction finished (no finish reason "
                "and no [DONE]): the connection was probably dropped"
            )
        events: list[PredictionEvent] = []
        for _, parts in sorted(self._calls.items()):
            arguments = "".join(parts.arguments)
            if not parts.name:
                events.append(MalformedToolCall(arguments, "the tool call has no function name"))
            else:
                events.append(ToolCallRequested(ToolCall(parts.name, arguments, parts.id)))
        usage = self._usage or Usage(0, self._output_chunks)
        reason = self._finish_reason or ("tool_calls" if self._calls else "stop")
        events.append(PredictionDone(usage, reason))
        return events
