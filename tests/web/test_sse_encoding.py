"""The direct AG-UI encoding (`AGUIMapper.encode`) writes exactly what AG-UI's models and
`EventEncoder` write (`map()` + `encode`), for random runs."""

from __future__ import annotations

from typing import Any

import pytest
from ag_ui.core import RunFinishedEvent, TextMessageContentEvent, ToolCallResultEvent
from ag_ui.encoder import EventEncoder
from hypothesis import given, settings
from hypothesis import strategies as st

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
from agentkit.errors import ToolExecutionError
from agentkit.messages import AssistantMessage, ToolCall, ToolResultMessage
from agentkit.results import ActResult, Usage
from agentkit.web import AGUIMapper
from agentkit.web.sse_encoding import sse_event

# every code point, lone surrogates and controls included: JSON escaping must agree too
text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
names = st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
calls = st.builds(
    ToolCall,
    names,
    st.dictionaries(text, json_values, max_size=3) | text,
    id=st.from_regex(r"[A-Za-z0-9_-]{1,24}", fullmatch=True),
)
rounds = st.integers(-1, 5)


def results(calls_waiting: tuple[ToolCall, ...], answer: str | None, stop: Any) -> ActResult:
    final = None if answer is None else AssistantMessage(content=answer)
    return ActResult(
        rounds=3,
        total_time_seconds=0.1,
        final=final,
        stop_reason=stop,
        usage=Usage(),
        pending_approvals=calls_waiting,
    )


agent_events: st.SearchStrategy[AgentEvent] = st.one_of(
    st.builds(TextDelta, text, rounds),
    st.builds(ReasoningDelta, text, rounds),
    st.builds(ToolCallStarted, calls, rounds),
    st.builds(
        ToolResult,
        st.builds(ToolResultMessage, tool_call_id=names, name=names, content=text),
        rounds,
    ),
    st.builds(RoundFinished, st.integers(0, 5), st.integers(1, 20)),
    st.builds(ApprovalRequested, st.lists(calls, min_size=1, max_size=3).map(tuple)),
    st.builds(
        RunFailed,
        st.one_of(
            text.map(lambda m: ToolExecutionError("t", m)),
            text.map(RuntimeError),
        ),
    ),
)
finishes: st.SearchStrategy[AgentEvent] = st.builds(
    RunFinished,
    st.builds(
        results,
        st.lists(calls, max_size=2).map(tuple),
        st.none() | text,
        st.sampled_from(["answered", "max_rounds", "approval_required", None]),
    ),
)


def reference(mapper: AGUIMapper, event: AgentEvent) -> bytes | type[Exception]:
    try:
        return "".join(EventEncoder().encode(item) for item in mapper.map(event)).encode()
    except Exception as error:  # compared with what the direct path raises
        return type(error)


def fast(mapper: AGUIMapper, event: AgentEvent) -> bytes | type[Exception]:
    try:
        return mapper.encode(event)
    except Exception as error:
        return type(error)


@settings(max_examples=300, deadline=None)
@given(
    thread=text,
    run_id=st.none() | text,
    expose=st.booleans(),
    run=st.lists(agent_events, max_size=12),
    end=finishes,
)
def test_direct_encoding_equals_the_models_encoding(
    thread: str, run_id: str | None, expose: bool, run: list[AgentEvent], end: AgentEvent
) -> None:
    # twin mappers (same ids), fed the same run: one encodes directly, one through the models
    options: dict[str, Any] = {"thread_id": thread, "expose_errors": expose}
    direct = AGUIMapper(run_id=run_id, **options)
    models = AGUIMapper(run_id=direct.run_id, **options)
    for event in [RunStarted("s"), *run, end]:
        encoded = fast(direct, event)
        assert encoded == reference(models, event)
        assert isinstance(encoded, bytes)  # lone surrogates in deltas and errors: U+FFFD


def test_plain_strings_take_the_direct_path_and_anything_else_the_model() -> None:
    fields = {"message_id": "m-1", "delta": 'say "hi"\n\u2028'}
    expected = EventEncoder().encode(TextMessageContentEvent(**fields)).encode()
    assert sse_event(TextMessageContentEvent, fields) == expected
    # not strings (a list of content parts, a nested model): the model validates and encodes
    parts = {"message_id": "m", "tool_call_id": "c", "content": [{"type": "text", "text": "x"}]}
    assert b'"content":[{"type":"text","text":"x"}]' in sse_event(ToolCallResultEvent, parts)
    finished = {"thread_id": "t", "run_id": "r", "result": {"n": 1.5}}
    assert sse_event(RunFinishedEvent, finished) == (
        EventEncoder().encode(RunFinishedEvent(**finished)).encode()
    )
    # a field the event does not declare, or one missing: the model's answer, not a guess
    extra = {"message_id": "m", "delta": "d", "bogus": "x"}
    assert b'"bogus":"x"' in sse_event(TextMessageContentEvent, extra)
    with pytest.raises(ValueError, match="delta"):
        sse_event(TextMessageContentEvent, {"message_id": "m"})
