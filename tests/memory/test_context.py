"""Context-window policies on a scripted model, whose tokenizer counts words.

Every expectation is worked out from the messages themselves (words + the per-message overhead),
not from the policy's own arithmetic; the property tests run random histories through random
pipelines.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentkit.errors import ConfigurationError, ContextOverflowError
from agentkit.memory import (
    ContextModel,
    ContextPolicy,
    ElideToolResults,
    KeepLastTurns,
    Pin,
    Pipeline,
    Summarize,
    TokenBudget,
    TokenCounter,
)
from agentkit.memory.context import Block, split_blocks
from agentkit.memory.context_summary import SUMMARY_HEADING
from agentkit.memory.context_tokens import DEFAULT_MESSAGE_OVERHEAD
from agentkit.messages import (
    AssistantMessage,
    Message,
    SystemMessage,
    ToolCall,
    ToolResultMessage,
    UserMessage,
)
from agentkit.testing import AsyncScriptedModel

MODEL = ContextModel.of(AsyncScriptedModel(["unused"]))


def words(message: Message) -> int:
    """Tokens of a message on the scripted tokenizer, worked out independently."""
    text = message.content
    if isinstance(message, AssistantMessage) and message.tool_calls:
        calls = [{"name": c.name, "arguments": c.arguments} for c in message.tool_calls]
        text += " " + json.dumps({"tool_calls": calls})
    if isinstance(message, ToolResultMessage):
        text = f"{message.name}: {text}"
    return len(text.split()) + DEFAULT_MESSAGE_OVERHEAD


def run(policy: ContextPolicy, history: Sequence[Message], model: Any = MODEL) -> list[Message]:
    async def main() -> list[Message]:
        return await policy.apply(history, model)

    return anyio.run(main)


def call_round(name: str, *results: str) -> list[Message]:
    calls = tuple(ToolCall(name, {"n": i}, id=f"{name}-{i}") for i in range(len(results)))
    return [
        AssistantMessage(tool_calls=calls),
        *(
            ToolResultMessage(tool_call_id=call.id, name=name, content=result)
            for call, result in zip(calls, results, strict=True)
        ),
    ]


def conversation(turns: int) -> list[Message]:
    history: list[Message] = [SystemMessage(content="be brief")]
    for i in range(turns):
        history.append(UserMessage(content=f"question {i} about things"))
        history += call_round(f"tool{i}", f"result {i} a", f"result {i} b")
        history.append(AssistantMessage(content=f"answer {i}"))
    return history


def test_blocks_keep_a_call_with_its_results_and_pin_system_messages() -> None:
    history = conversation(2)
    blocks = split_blocks(history)
    assert [len(b.messages) for b in blocks] == [1, 1, 3, 1, 1, 3, 1]
    assert [b.pinned for b in blocks] == [True] + [False] * 6
    assert [b.starts_turn for b in blocks] == [False, True, False, False, True, False, False]
    assert [m for b in blocks for m in b.messages] == history


def test_keep_last_turns_keeps_system_and_whole_turns() -> None:
    history = conversation(4)
    kept = run(KeepLastTurns(2), history)
    assert kept == [history[0], *history[11:]]
    assert isinstance(kept[1], UserMessage) and kept[1].content == "question 2 about things"
    assert run(KeepLastTurns(9), history) == history


def test_pin_first_where_and_last_user() -> None:
    history = conversation(3)
    fact = UserMessage(content="FACT: the code is 7")
    history.insert(6, fact)  # in turn 0, after its answer
    policy = Pin(lambda m: m.content.startswith("FACT"), first=2) | KeepLastTurns(1)
    kept = run(policy, history)
    assert kept[:3] == [history[0], history[1], fact]
    assert kept[3:] == history[-5:]
    # last_user pins the question the newest turn started with
    budget = sum(map(words, history[-4:])) + words(history[0])
    plain = run(TokenBudget(budget, reply_tokens=0), history)
    assert plain == [history[0], *history[-4:]]
    pinned = run(Pin(last_user=True) | TokenBudget(budget, reply_tokens=0), history)
    assert history[-5] in pinned and history[-4] not in pinned


def test_pinning_a_tool_result_pins_its_call() -> None:
    history = conversation(3)
    result = history[3]  # the second result of turn 0
    assert isinstance(result, ToolResultMessage)
    policy = Pin(lambda m: m is result) | KeepLastTurns(1)
    kept = run(policy, history)
    assert kept[:4] == [history[0], *history[2:5]]


def test_token_budget_keeps_the_newest_blocks_that_fit() -> None:
    history = conversation(3)
    tail = history[-6:]  # user, call + 2 results, answer... of the last turn
    budget = words(history[0]) + sum(map(words, tail[1:])) + 1  # the user message won't fit
    kept = run(TokenBudget(budget, reply_tokens=0), history)
    assert kept == [history[0], *tail[1:]]
    assert sum(map(words, kept)) <= budget


def test_token_budget_leaves_room_for_the_reply_and_the_tools() -> None:
    history = conversation(3)
    whole = sum(map(words, history))
    assert run(TokenBudget(whole, reply_tokens=0), history) == history
    assert run(TokenBudget(whole + 100, reply_tokens=100), history) == history
    assert run(TokenBudget(whole + 99, reply_tokens=100), history) != history
    from agentkit.engines.base import ToolDefinition

    tool = ToolDefinition("lookup", "Look a word up.", {"type": "object", "properties": {}})
    with_tools = ContextModel(MODEL.engine, MODEL.identifier, MODEL.model_key, (tool,))
    assert run(TokenBudget(whole, reply_tokens=0), history, with_tools) != history


def test_token_budget_defaults_to_the_loaded_context_length() -> None:
    history = conversation(2)
    # The scripted engine's context is a million tokens: everything fits.
    assert run(TokenBudget(reply_tokens=1000), history) == history


def test_overflow_names_the_sizes() -> None:
    history = [SystemMessage(content="one two three"), UserMessage(content="a b c d e f g h")]
    pinned, newest = words(history[0]), words(history[1])
    with pytest.raises(ContextOverflowError) as caught:
        run(TokenBudget(pinned + newest - 1, reply_tokens=0), history)
    error = caught.value
    assert (error.budget, error.pinned, error.newest) == (pinned + newest - 1, pinned, newest)
    assert f"pinned messages take {pinned} tokens and the newest message block {newest}," in str(
        error
    )
    assert f"budget of {pinned + newest - 1:,} tokens" in str(error)
    assert "max_tokens" in str(error) and "for the reply" in str(error)
    # pinned messages alone over the budget
    with pytest.raises(ContextOverflowError) as caught:
        run(TokenBudget(pinned - 1, reply_tokens=0), history[:1])
    assert caught.value.newest == 0


def test_overflow_counts_the_whole_newest_call_block() -> None:
    history = conversation(1)  # system, user, call + 2 results, answer
    block = history[2:5]
    history = history[:5]  # ends with the call block
    need = words(history[0]) + sum(map(words, block))
    kept = run(TokenBudget(need, reply_tokens=0), history)
    assert kept == [history[0], *block]
    with pytest.raises(ContextOverflowError) as caught:
        run(TokenBudget(need - 1, reply_tokens=0), history)
    assert caught.value.newest == sum(map(words, block))


def test_elide_shortens_old_large_results_with_a_marker() -> None:
    big = "x" * 5000
    history: list[Message] = [
        UserMessage(content="go"),
        *call_round("fetch", big, "small"),
        *call_round("fetch2", big),
    ]
    kept = run(ElideToolResults(1000, keep_chars=10), history)
    assert kept[0] is history[0] and kept[1] is history[1]
    elided = kept[2]
    assert isinstance(elided, ToolResultMessage)
    assert elided.content.startswith("x" * 10 + "\n[agentkit elided this tool result: 5,000")
    assert len(elided.content) < 200
    assert elided.tool_call_id == history[2].tool_call_id  # type: ignore[union-attr]
    assert kept[3] is history[3]  # small result untouched
    assert kept[4:] == history[4:]  # the newest round stays whole
    again = run(ElideToolResults(1000, keep_chars=10), history)
    assert again[2] == elided
    everything = run(ElideToolResults(1000, keep_chars=10, keep_last=0), history)
    assert everything[5].content != big


def test_elided_copies_are_reused_so_counts_stay_cached() -> None:
    big = "word " * 3000
    history: list[Message] = [
        UserMessage(content="go"),
        *call_round("fetch", big),
        *call_round("fetch_more", "small"),
    ]
    counter = TokenCounter()
    policy = ElideToolResults(100) | TokenBudget(10_000, reply_tokens=0, counter=counter)
    first = run(policy, history)
    tokenized = counter.tokenized
    second = run(policy, history)
    assert first == second and first[2] is second[2]
    assert counter.tokenized == tokenized == len(history)


def test_counter_caches_by_identity_and_by_text() -> None:
    counter = TokenCounter()
    history = conversation(3)

    async def count(messages: Sequence[Message]) -> list[int]:
        return await counter.count(messages, MODEL)

    assert anyio.run(count, history) == list(map(words, history))
    assert counter.tokenized == len(history)
    anyio.run(count, history)
    assert counter.tokenized == len(history)  # by identity
    copies = [m.model_copy() for m in history]  # as loaded from a store: equal, not the same
    assert anyio.run(count, copies) == list(map(words, history))
    assert counter.tokenized == len(history)  # by text
    anyio.run(count, [UserMessage(content="something new")])
    assert counter.tokenized == len(history) + 1


def test_pipelines_flatten_and_reject_non_policies() -> None:
    first, second, third = Pin(), KeepLastTurns(2), TokenBudget(1000)
    pipeline = first | second | third
    assert isinstance(pipeline, Pipeline)
    assert pipeline.policies == (first, second, third)
    assert "KeepLastTurns(2)" in repr(pipeline)
    with pytest.raises(ConfigurationError, match="ContextPolicy"):
        Pipeline(first, "budget")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: KeepLastTurns(0), "turns"),
        (lambda: KeepLastTurns(True), "turns"),
        (lambda: TokenBudget(0), "max_tokens"),
        (lambda: TokenBudget(100, reply_tokens=-1), "reply_tokens"),
        (lambda: TokenBudget(100), "leaves no room"),
        (lambda: ElideToolResults(-1), "max_chars"),
        (lambda: ElideToolResults(10, keep_chars=11), "keep_chars"),
        (lambda: ElideToolResults(10, keep_last=-1), "keep_last"),
        (lambda: Pin(first=-1), "first"),
        (lambda: TokenBudget("100"), "max_tokens"),  # type: ignore[arg-type]
    ],
)
def test_bad_settings_are_configuration_errors(make: Any, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        make()


# -- properties ------------------------------------------------------------------------------

TEXT = st.lists(st.sampled_from(["alpha", "beta", "gamma", "δ", "word"]), max_size=12).map(" ".join)


@st.composite
def histories(draw: st.DrawFn) -> list[Message]:
    history: list[Message] = []
    if draw(st.booleans()):
        history.append(SystemMessage(content=draw(TEXT)))
    for turn in range(draw(st.integers(0, 8))):
        history.append(UserMessage(content=draw(TEXT)))
        for round_ in range(draw(st.integers(0, 3))):
            results = draw(st.lists(TEXT, min_size=1, max_size=3))
            history += call_round(f"t{turn}_{round_}", *results)
        if draw(st.booleans()):
            history.append(AssistantMessage(content=draw(TEXT)))
        if draw(st.integers(0, 9)) == 0:
            history.append(SystemMessage(content="note " + draw(TEXT)))
    return history


@st.composite
def pipelines(draw: st.DrawFn) -> tuple[ContextPolicy, int]:
    marker = draw(st.sampled_from(["alpha", "beta", "none"]))
    stages: list[ContextPolicy] = [
        Pin(
            lambda m: marker in m.content.split(),
            first=draw(st.integers(0, 3)),
            last_user=draw(st.booleans()),
        )
    ]
    if draw(st.booleans()):
        keep = draw(st.integers(1, 3))
        writer = AsyncScriptedModel(lambda chat, i: "summary " + chat.messages[-1].content[:30])
        stages.append(Summarize(writer, keep_turns=keep, max_turns=keep + draw(st.integers(0, 2))))
    if draw(st.booleans()):
        stages.append(KeepLastTurns(draw(st.integers(1, 4))))
    if draw(st.booleans()):
        stages.append(ElideToolResults(draw(st.integers(0, 30)), keep_last=draw(st.integers(0, 2))))
    budget = draw(st.integers(1, 250))
    stages.append(TokenBudget(budget, reply_tokens=0))
    return Pipeline(*stages), budget


def pinned_messages(policy: ContextPolicy, history: list[Message]) -> list[Message]:
    pin = next(p for p in policy.policies if isinstance(p, Pin))  # type: ignore[attr-defined]

    async def blocks() -> Sequence[Block]:
        return await pin.fit(split_blocks(history), MODEL)

    return [m for b in anyio.run(blocks) if b.pinned for m in b.messages]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(), case=pipelines())
def test_policies_keep_calls_whole_pins_and_budget_and_never_mutate(
    history: list[Message], case: tuple[ContextPolicy, int]
) -> None:
    policy, budget = case
    before = list(history)
    dumped = [m.model_dump() for m in history]
    pinned = pinned_messages(policy, history)
    sent, error = run_or_overflow(policy, history)
    if error is not None:
        assert error.pinned + error.newest > budget
        summarises = any(isinstance(p, Summarize) for p in policy.policies)  # type: ignore[attr-defined]
        if summarises:  # the summary is pinned too
            assert error.pinned >= sum(map(words, pinned))
        else:
            assert error.pinned == sum(map(words, pinned))
    assert history == before and all(a is b for a, b in zip(history, before, strict=True))
    assert [m.model_dump() for m in history] == dumped
    if error is not None:
        return
    assert sum(map(words, sent)) <= budget
    for message in pinned:
        assert any(m is message for m in sent)
    # Every call is followed by exactly its results; every result follows its call.
    for index, message in enumerate(sent):
        if isinstance(message, AssistantMessage) and message.tool_calls:
            ids = [c.id for c in message.tool_calls]
            following = sent[index + 1 : index + 1 + len(ids)]
            assert [getattr(m, "tool_call_id", None) for m in following] == ids
        if isinstance(message, ToolResultMessage):
            back = index - 1
            while isinstance(sent[back], ToolResultMessage):
                back -= 1
            owner = sent[back]
            assert isinstance(owner, AssistantMessage)
            assert message.tool_call_id in [c.id for c in owner.tool_calls]
    # What is sent is the history in order, some tool results shortened, maybe a summary.
    summaries = [m for m in sent if m.content.startswith(SUMMARY_HEADING)]
    assert len(summaries) <= 1
    position = 0
    for message in sent:
        if message in summaries:
            continue
        while not _same_or_elided(history[position], message):
            position += 1
        position += 1


def run_or_overflow(
    policy: ContextPolicy, history: list[Message]
) -> tuple[list[Message], ContextOverflowError | None]:
    try:
        return run(policy, history), None
    except ContextOverflowError as error:
        return [], error


def _same_or_elided(original: Message, sent: Message) -> bool:
    if original is sent:
        return True
    return (
        isinstance(original, ToolResultMessage)
        and isinstance(sent, ToolResultMessage)
        and sent.tool_call_id == original.tool_call_id
        and "[agentkit elided this tool result" in sent.content
    )
