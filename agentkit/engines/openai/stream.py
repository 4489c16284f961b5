"""OpenAI-style answers (server-sent events, or one JSON body) turned into prediction events.

Everything here treats the server as untrusted. Bytes pass through `ContentDecoder` (gzip and
deflate decompressed in bounded steps, so a compression bomb never expands in one piece), then
`SSEParser` (lines and events capped in bytes), then `StreamAssembler`, which parses each event
with `agentkit.untrusted.loads` and reads it through strict pydantic models: a field of the
wrong JSON type anywhere is an `EngineError` naming the field, never a `TypeError` or
`KeyError` from deep inside. Tool-call arguments are the model's output, not the server's:
arguments that break the untrusted-data limits become a `MalformedToolCall`, which act()
reports back to the model.

Tool calls arrive as fragments keyed by `index` (id, function name and arguments text in
pieces) and are only complete once the stream is.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentkit import untrusted
from agentkit.engines.base import (
    FirstToken,
    MalformedToolCall,
    PredictionDone,
    PredictionEvent,
    TextDelta,
    ToolCallRequested,
)
from agentkit.errors import EngineError, describe_validation_errors
from agentkit.messages import ToolCall
from agentkit.results import PredictionStats, Usage

__all__ = [
    "DONE",
    "ContentDecoder",
    "Count",
    "SSEParser",
    "ServerObject",
    "StreamAssembler",
    "parse_json",
    "read_model",
    "server_error",
]

DONE = "[DONE]"
DECODE_STEP = 64 * 1024
"""The most bytes one decompression step produces."""
MAX_COUNT = 2**53
"""The largest token count or index accepted from a server."""

_EOL = re.compile(rb"\r\n|\r|\n")


# -- bytes -------------------------------------------------------------------------------------


class ContentDecoder:
    """A response body's `Content-Encoding` undone in steps of at most `DECODE_STEP` bytes.

    Identity, gzip (several members too) and deflate (zlib-wrapped or raw) are understood; any
    other encoding is an `EngineError` (agentkit asks only for gzip and deflate).
    """

    def __init__(self, encoding: str | None) -> None:
        codings = [c.strip().lower() for c in (encoding or "").split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
            shown = untrusted.clip(encoding or "", 80)
            raise EngineError(
                f"the server answered with Content-Encoding {shown!r}; "
                "agentkit understands only gzip and deflate"
            )
        self._coding = codings[0] if codings else None
        self._zlib: Any = None
        self._started = False
        if self._coding is not None:
            self._zlib = self._decompressor()

    def _decompressor(self, raw_deflate: bool = False) -> Any:
        if self._coding == "deflate":
            return zlib.decompressobj(-zlib.MAX_WBITS if raw_deflate else zlib.MAX_WBITS)
        return zlib.decompressobj(zlib.MAX_WBITS | 16)

    def decode(self, data: bytes) -> Iterator[bytes]:
        """The decoded bytes of `data`, in pieces of at most `DECODE_STEP` bytes."""
        if self._zlib is None:
            for start in range(0, len(data), DECODE_STEP):
                yield data[start : start + DECODE_STEP]
            return
        pending = data
        while True:
            try:
                out = self._zlib.decompress(pending, DECODE_STEP)
            except zlib.error as error:
                if self._coding == "deflate" and not self._started:
                    # Some servers send raw deflate data without the zlib wrapper.
                    self._zlib = self._decompressor(raw_deflate=True)
                    self._started = True
                    continue
                raise EngineError(
                    f"the server's {self._coding} body could not be decompressed ({error})"
                ) from None
            self._started = True
            pending = self._zlib.unconsumed_tail
            if out:
                yield out
            if self._zlib.eof and self._zlib.unused_data:
                rest = self._zlib.unused_data
                if self._coding == "deflate" or not rest.strip(b"\0"):
                    return  # trailing bytes after the compressed data: ignored, as httpx does
                self._zlib = self._decompressor()  # the next gzip member
                pending = rest
                continue
            if not pending and len(out) < DECODE_STEP:
                return


class SSEParser:
    """The data of each complete server-sent event, with lines and events capped in bytes.

    A line longer than `max_line_bytes` or an event whose data exceeds `max_event_bytes` is an
    `EngineError`; an event cut off before its blank line is dropped. Bytes that are not UTF-8
    become U+FFFD.
    """

    def __init__(self, max_line_bytes: int, max_event_bytes: int) -> None:
        self.max_line_bytes = max_line_bytes
        self.max_event_bytes = max_event_bytes
        self._buffer = bytearray()
        self._scanned = 0
        self._data: list[str] = []
        self._data_bytes = 0
        self._after_cr = False

    def feed(self, data: bytes) -> Iterator[str]:
        """The data of the events `data` completes."""
        if self._after_cr and data.startswith(b"\n"):
            data = data[1:]  # the second half of a CRLF split between reads
        self._after_cr = False
        buffer = self._buffer
        buffer += data
        start = 0
        position = self._scanned
        while True:
            match = _EOL.search(buffer, position)
            if match is None:
                break
            if match.start() - start > self.max_line_bytes:
                raise self._line_too_long()
            event = self._line(bytes(buffer[start : match.start()]))
            start = position = match.end()
            if event is not None:
                yield event
        # A CR ending this read ends its line now (the event may be [DONE] with nothing after).
        self._after_cr = start > 0 and buffer[start - 1 : start] == b"\r"
        del buffer[:start]
        self._scanned = len(buffer)
        if len(buffer) > self.max_line_bytes:
            raise self._line_too_long()

    def _line(self, raw: bytes) -> str | None:
        if not raw:
            if not self._data:
                return None
            event = "\n".join(self._data)
            self._data, self._data_bytes = [], 0
            return event
        name, _, value = raw.partition(b":")
        if name != b"data":
            return None  # comments, event names, ids and retry hints carry no data we use
        value = value.removeprefix(b" ")
        self._data_bytes += len(value) + 1
        if self._data_bytes > self.max_event_bytes:
            raise EngineError(
                f"the server streamed an event larger than {self.max_event_bytes} bytes "
                "(max_event_bytes)"
            )
        self._data.append(value.decode("utf-8", "replace"))
        return None

    def _line_too_long(self) -> EngineError:
        return EngineError(
            f"the server streamed a line longer than {self.max_line_bytes} bytes (max_line_bytes)"
        )


# -- typed access ------------------------------------------------------------------------------


class ServerObject(BaseModel):
    """A server object: known fields must have their JSON type (strictly: no "1" for 1, no
    true for 1), unknown fields are ignored. Read one with `read_model`."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


_M = TypeVar("_M", bound=ServerObject)

Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
"""A token count or index: a non-negative JSON integer."""


class _Function(ServerObject):
    name: str | None = None
    arguments: str | None = None


_NO_INDEX = -1
"""A tool-call fragment without `index` (an explicit null is an error, like any non-integer)."""


class _ToolFragment(ServerObject):
    index: Count = _NO_INDEX
    id: str | None = None
    function: _Function | None = None


class _Delta(ServerObject):
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[_ToolFragment] | None = None


class _Choice(ServerObject):
    index: Count = 0
    delta: _Delta | None = None
    message: _Delta | None = None
    """The whole answer, in a non-streamed chat.completion."""
    text: str | None = None
    finish_reason: str | None = None


class _Usage(ServerObject):
    prompt_tokens: Count | None = None
    completion_tokens: Count | None = None


class _Chunk(ServerObject):
    choices: list[_Choice] | None = None
    usage: _Usage | None = None
    error: Any = None


def parse_json(data: str | bytes, what: str) -> Any:
    """Server JSON within agentkit's untrusted-data limits (`EngineError` otherwise)."""
    try:
        return untrusted.loads(data, what=what)
    except untrusted.UntrustedDataError as error:
        raise EngineError(f"the server sent bad data: {error}") from None


def read_model(model: type[_M], value: Any, what: str) -> _M:
    """`value` read as `model`; a field of the wrong type is an `EngineError` naming it."""
    if not isinstance(value, dict):
        raise EngineError(f"{what} is not a JSON object: {_show(value)}")
    try:
        return model.model_validate(value)
    except ValidationError as error:
        problems = describe_validation_errors(error.errors(include_url=False))
        shown = "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "")
        raise EngineError(f"{what} has a field of the wrong type: {shown}") from None


def server_error(error: Any) -> str:
    """The message of an `error` member the server sent (an object or any JSON value)."""
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return untrusted.clip(untrusted.clean_text(error["message"]), 500)
    return _show(error)


def _show(value: Any) -> str:
    return untrusted.clip(untrusted.clean_text(repr(value)), 200)


# -- assembly ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _CallParts:
    id: str | None = None
    name: list[str] = field(default_factory=list)
    arguments: list[str] = field(default_factory=list)
    size: int = 0


@dataclass(slots=True)
class StreamAssembler:
    """Prediction events from the data of one chat or text completion answer.

    Feed it the data of each SSE event (`feed`), or a whole non-streamed JSON answer
    (`feed_whole`). `done` turns true at `[DONE]`: nothing after it is read. When the server
    sends no usage, `completion_tokens` counts the chunks that carried output (llama.cpp-based
    servers send one per token) and `prompt_tokens` is 0.
    """

    max_event_bytes: int = 16 * 1024 * 1024
    """Caps a tool call's assembled name and arguments too."""
    finished: bool = False
    """A finish reason or `[DONE]` arrived: the stream was not cut off."""
    done: bool = False
    """`[DONE]` arrived: the answer is complete."""
    _started: bool = False
    _calls: dict[int, _CallParts] = field(default_factory=dict)
    _last_call: int | None = None
    _usage: Usage | None = None
    _counted: PredictionStats = field(default_factory=PredictionStats)
    _finish_reason: str | None = None
    _output_chunks: int = 0

    def feed(self, data: str) -> list[PredictionEvent]:
        """Events for one event's data (a JSON chunk or `[DONE]`)."""
        if data.strip() == DONE:
            self.finished = self.done = True
            return []
        return self._chunk(parse_json(data, "a streamed chunk"), "a streamed chunk")

    def feed_whole(self, data: bytes) -> list[PredictionEvent]:
        """Events for a non-streamed answer (`chat.completion` or `text_completion`)."""
        events = self._chunk(parse_json(data, "the answer"), "the answer")
        self.finished = self.done = True
        return events

    def _chunk(self, value: Any, what: str) -> list[PredictionEvent]:
        if isinstance(value, dict) and value.get("error") is not None:
            raise EngineError(f"the server reported an error: {server_error(value['error'])}")
        chunk: _Chunk = read_model(_Chunk, value, what)
        if chunk.usage is not None:
            self._usage = Usage(chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0)
            self._counted = PredictionStats(
                chunk.usage.prompt_tokens, chunk.usage.completion_tokens
            )
        events: list[PredictionEvent] = []
        for choice in chunk.choices or ():
            if choice.index == 0:
                events += self._choice(choice)
        return events

    def _choice(self, choice: _Choice) -> list[PredictionEvent]:
        if choice.finish_reason:
            self._finish_reason = choice.finish_reason
            self.finished = True
        delta = choice.delta or choice.message
        if delta is None:  # text completions carry `text` on the choice
            return self._text(choice.text, reasoning=False)
        events = self._text(delta.reasoning_content or delta.reasoning, True)
        events += self._text(delta.content, reasoning=False)
        for position, fragment in enumerate(delta.tool_calls or ()):
            whole = choice.message is not None and choice.delta is None
            events += self._tool_fragment(fragment, position if whole else None)
        return events

    def _text(self, text: str | None, reasoning: bool) -> list[PredictionEvent]:
        if not text:
            return []
        self._output_chunks += 1
        return [*self._first(), TextDelta(text, reasoning)]

    def _first(self) -> list[PredictionEvent]:
        if self._started:
            return []
        self._started = True
        return [FirstToken()]

    def _tool_fragment(
        self, fragment: _ToolFragment, position: int | None
    ) -> list[PredictionEvent]:
        index = fragment.index
        if index == _NO_INDEX:  # a new call when it opens one (or is listed whole), else the last
            if position is not None:
                index = position
            elif fragment.id is not None or self._last_call is None:
                index = max(self._calls, default=-1) + 1
            else:
                index = self._last_call
        parts = self._calls.setdefault(index, _CallParts())
        self._last_call = index
        if fragment.id:
            parts.id = fragment.id
        function = fragment.function
        if function is not None:
            for piece, into in ((function.name, parts.name), (function.arguments, parts.arguments)):
                if piece:
                    parts.size += len(piece)
                    into.append(piece)
            if parts.size > self.max_event_bytes:
                raise EngineError(
                    f"the server streamed a tool call larger than {self.max_event_bytes} "
                    "characters (max_event_bytes)"
                )
        self._output_chunks += 1
        return self._first()

    def finish(self) -> list[PredictionEvent]:
        """The tool calls and the final `PredictionDone` (the stream must have finished)."""
        if not self.finished:
            raise EngineError(
                "the server's stream ended before the prediction finished (no finish reason "
                "and no [DONE]): the connection was probably dropped"
            )
        events = [_tool_event(parts) for _, parts in sorted(self._calls.items())]
        usage = self._usage or Usage(0, self._output_chunks)
        reason = self._finish_reason or ("tool_calls" if self._calls else "stop")
        # The stats keep only what the server counted: chunks are not tokens on every server.
        return [*events, PredictionDone(usage, reason, self._counted)]


def _tool_event(parts: _CallParts) -> PredictionEvent:
    """A tool call, or `MalformedToolCall` when the model's arguments break the limits."""
    name = "".join(parts.name)
    raw = "".join(parts.arguments)
    if not name:
        return MalformedToolCall(raw, "the tool call has no function name")
    arguments: dict[str, Any] | str = raw
    if raw.strip():
        try:
            decoded = untrusted.loads(raw, what="the tool call's arguments")
        except untrusted.UntrustedDataError as error:
            if not error.problem.startswith("not valid JSON"):
                return MalformedToolCall(raw, error.problem)
            # Not JSON at all: passed on verbatim, act() tells the model what is wrong.
        else:
            if isinstance(decoded, dict):
                arguments = decoded
    try:
        return ToolCallRequested(ToolCall(name, arguments, parts.id))
    except (ValueError, TypeError) as error:
        return MalformedToolCall(raw, untrusted.describe_exception(error, 300))
