"""Agent events as AG-UI 1.0 events (https://docs.ag-ui.com), ready for Server-Sent Events.

`AGUIMapper` turns the events of one `agent.stream()` / `agent.stream_resume()` run into AG-UI
events: RUN_STARTED; per round a TEXT_MESSAGE_START/CONTENT/END (and REASONING_* for reasoning);
TOOL_CALL_START/ARGS/END per call and TOOL_CALL_RESULT per result; then RUN_FINISHED or
RUN_ERROR. A pause for approval is AG-UI's interrupt: RUN_FINISHED with
`outcome={"type": "interrupt", "interrupts": [...]}`, one interrupt per waiting call (its id is
the call's id, `reason="tool_approval"`); the client answers with resume entries
(`agentkit.web.resume_decisions`) on a new run.

`agui_events` and `agui_sse` wrap an event stream; the SSE strings come from the protocol
package's own encoder. `AGUIMapper.encode` gives the same bytes without building the models
(`sse_encoding`), for `AGUIResponse`.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable
from typing import Any, TypeVar

from ag_ui.core import (
    BaseEvent,
    Interrupt,
    ReasoningEndEvent,
    ReasoningMessageContentEvent,
    ReasoningMessageEndEvent,
    ReasoningMessageStartEvent,
    ReasoningStartEvent,
    RunErrorEvent,
    RunFinishedEvent,
    RunFinishedInterruptOutcome,
    RunFinishedSuccessOutcome,
    RunStartedEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)
from ag_ui.encoder import EventEncoder

from agentkit.agent_events import (
    AgentEvent,
    ApprovalRequested,
    ReasoningDelta,
    RoundFinished,
    RunFailed,
    RunFinished,
    RunStarted,
    TextDelta,
    ToolCallStarted,
    ToolResult,
)
from agentkit.errors import AgentkitError
from agentkit.messages import ToolCall
from agentkit.untrusted import clean_text
from agentkit.web.sse_encoding import sse_event

T = TypeVar("T")
_Event = tuple[type[BaseEvent], dict[str, Any]]  # an AG-UI event's class and fields
# run ids need to be unique, not secret: no urandom call per run (it releases the GIL, and
# under load the event loop then waits for a store thread to give it back)
_RUN_IDS = random.Random()

__all__ = [
    "APPROVAL_RESPONSE_SCHEMA",
    "AGUIMapper",
    "agui_events",
    "agui_sse",
    "approval_interrupts",
    "error_code",
]

APPROVAL_RESPONSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "approved": {"type": "boolean"},
        "arguments": {"type": "object", "description": "replaces the model's arguments"},
        "reason": {"type": "string", "description": "why it was denied; the model reads it"},
    },
    "required": ["approved"],
    "additionalProperties": False,
}
"""The payload a resolved approval interrupt takes (sent as `Interrupt.response_schema`)."""


def error_code(error: BaseException) -> str:
    """A machine-readable code for RUN_ERROR: the agentkit error's class name."""
    return type(error).__name__ if isinstance(error, AgentkitError) else "InternalError"


def approval_interrupts(calls: Iterable[ToolCall]) -> list[Interrupt]:
    """One AG-UI interrupt per call waiting for approval; the interrupt's id is the call's."""
    return [
        Interrupt(
            id=call.id,
            reason="tool_approval",
            message=f"Approve the call to {call.name}?",
            tool_call_id=call.id,
            response_schema=APPROVAL_RESPONSE_SCHEMA,
        )
        for call in calls
    ]


def _arguments_text(call: ToolCall) -> str:
    return call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)


class AGUIMapper:
    """Maps the events of one run to AG-UI events; one mapper per run.

    Args:
        thread_id: the AG-UI thread (default: the session id of `RunStarted`). A web app whose
            public session ids differ from its store's passes the public one.
        run_id: the AG-UI run id (default: a fresh random id).
        expose_errors: put the text of non-agentkit errors in RUN_ERROR (default: only an
            agentkit error's text is shown; anything else reads "internal error", so server
            internals do not reach the browser).
    """

    def __init__(
        self,
        *,
        thread_id: str | None = None,
        run_id: str | None = None,
        expose_errors: bool = False,
    ) -> None:
        self.thread_id = None if thread_id is None else clean_text(thread_id)
        self.run_id = clean_text(run_id) if run_id else f"{_RUN_IDS.getrandbits(128):032x}"
        self.expose_errors = expose_errors
        self._text: str | None = None  # the open text message's id
        self._reasoning: str | None = None  # the open reasoning message's id
        self._round = 0

    def map(self, event: AgentEvent) -> list[BaseEvent]:
        """The AG-UI events for one agent event, in order (none for some)."""
        return [cls(**fields) for cls, fields in self._events(event)]

    def encode(self, event: AgentEvent) -> bytes:
        """The AG-UI events for one agent event as SSE bytes (`data: {json}` blocks; b"" for
        none): the same bytes as AG-UI's `EventEncoder` on `map(event)`, written without
        building the models where the fields are plain strings (`sse_encoding`)."""
        return b"".join([sse_event(cls, fields) for cls, fields in self._events(event)])

    # -- pieces: each AG-UI event as (class, fields), built as a model or encoded directly ----

    def _events(self, event: AgentEvent) -> list[_Event]:
        if isinstance(event, RunStarted):
            if self.thread_id is None:
                self.thread_id = clean_text(event.session_id)
            return [(RunStartedEvent, {"thread_id": self.thread_id, "run_id": self.run_id})]
        # deltas are the engine's text as it comes: a lone surrogate in one would make the
        # event unencodable, so it becomes U+FFFD, as in stored messages
        if isinstance(event, TextDelta):
            return [
                *self._close_reasoning(),
                *self._text_delta(clean_text(event.text), event.round),
            ]
        if isinstance(event, ReasoningDelta):
            text = clean_text(event.text)
            return [*self._close_text(), *self._reasoning_delta(text, event.round)]
        if isinstance(event, ToolCallStarted):
            if event.round < 0:
                return []  # a resumed call: announced by the run that paused for it
            return self._tool_call(event.call, event.round)
        if isinstance(event, ToolResult):
            message = event.message
            result = {
                "message_id": f"{self.run_id}-result-{message.tool_call_id}",
                "tool_call_id": message.tool_call_id,
                "content": message.content,
                "role": "tool",
            }
            return [*self._close(), (ToolCallResultEvent, result)]
        if isinstance(event, RoundFinished):
            self._round = event.round + 1
            return self._close()
        if isinstance(event, ApprovalRequested):
            announced: list[_Event] = []
            for call in event.calls:
                announced += self._tool_call(call, self._round)
            return announced
        if isinstance(event, RunFinished):
            return [*self._close(), self._finished(event)]
        if isinstance(event, RunFailed):
            error = event.error
            shown = isinstance(error, AgentkitError) or self.expose_errors
            failure = {
                "message": clean_text(str(error)) if shown else "internal error",
                "code": error_code(error),
            }
            return [*self._close(), (RunErrorEvent, failure)]
        raise TypeError(f"not an agent event: {event!r}")  # pragma: no cover

    def _message_id(self, kind: str, round_index: int) -> str:
        return f"{self.run_id}-{kind}-{round_index}"

    def _text_delta(self, text: str, round_index: int) -> list[_Event]:
        events: list[_Event] = []
        if self._text is None:
            self._text = self._message_id("text", round_index)
            events.append((TextMessageStartEvent, {"message_id": self._text, "role": "assistant"}))
        events.append((TextMessageContentEvent, {"message_id": self._text, "delta": text}))
        return events

    def _reasoning_delta(self, text: str, round_index: int) -> list[_Event]:
        events: list[_Event] = []
        if self._reasoning is None:
            self._reasoning = self._message_id("reasoning", round_index)
            events += [
                (ReasoningStartEvent, {"message_id": self._reasoning}),
                (ReasoningMessageStartEvent, {"message_id": self._reasoning}),
            ]
        events.append(
            (ReasoningMessageContentEvent, {"message_id": self._reasoning, "delta": text})
        )
        return events

    def _tool_call(self, call: ToolCall, round_index: int) -> list[_Event]:
        parent = self._message_id("text", round_index)
        start = {"tool_call_id": call.id, "tool_call_name": call.name, "parent_message_id": parent}
        return [
            *self._close(),
            (ToolCallStartEvent, start),
            (ToolCallArgsEvent, {"tool_call_id": call.id, "delta": _arguments_text(call)}),
            (ToolCallEndEvent, {"tool_call_id": call.id}),
        ]

    def _close_text(self) -> list[_Event]:
        if self._text is None:
            return []
        message_id, self._text = self._text, None
        return [(TextMessageEndEvent, {"message_id": message_id})]

    def _close_reasoning(self) -> list[_Event]:
        if self._reasoning is None:
            return []
        message_id, self._reasoning = self._reasoning, None
        return [
            (ReasoningMessageEndEvent, {"message_id": message_id}),
            (ReasoningEndEvent, {"message_id": message_id}),
        ]

    def _close(self) -> list[_Event]:
        return [*self._close_reasoning(), *self._close_text()]

    def _finished(self, event: RunFinished) -> _Event:
        assert self.thread_id is not None, "RUN_FINISHED before RUN_STARTED"
        result = event.result
        ids = {"thread_id": self.thread_id, "run_id": self.run_id}
        if result.pending_approvals:
            interrupts = approval_interrupts(result.pending_approvals)
            outcome = RunFinishedInterruptOutcome(interrupts=interrupts)
            return RunFinishedEvent, {**ids, "outcome": outcome}
        answer = {
            "text": result.final.text if result.final is not None else None,
            "stopReason": result.stop_reason,
            "rounds": result.rounds,
        }
        return RunFinishedEvent, {**ids, "result": answer, "outcome": RunFinishedSuccessOutcome()}


async def agui_events(
    events: AsyncIterable[AgentEvent], mapper: AGUIMapper | None = None
) -> AsyncGenerator[BaseEvent, None]:
    """AG-UI events for an agent event stream (`agent.stream(...)`)."""
    mapper = mapper or AGUIMapper()
    async with _closing(events):  # leaving early closes the agent's stream: cancels the run
        async for event in events:
            for mapped in mapper.map(event):
                yield mapped


async def agui_sse(
    events: AsyncIterable[AgentEvent], mapper: AGUIMapper | None = None
) -> AsyncGenerator[str, None]:
    """The same as Server-Sent Events (`data: {json}` blocks), from AG-UI's own encoder.

    The AG-UI events of one agent event come as one string (one write: a tool call's start,
    arguments and end together). Closing this iterator closes `events`, which cancels the
    agent's run between whole rounds.
    """
    encoder = EventEncoder()
    mapper = mapper or AGUIMapper()
    async with _closing(events):
        async for event in events:
            mapped = mapper.map(event)
            if mapped:
                yield "".join(encoder.encode(item) for item in mapped)


@contextlib.asynccontextmanager
async def _closing(iterable: AsyncIterable[T]) -> AsyncIterator[AsyncIterable[T]]:
    try:
        yield iterable
    finally:
        close = getattr(iterable, "aclose", None)
        if close is not None:
            await close()
