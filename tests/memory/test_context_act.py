"""act(..., context=policy): the policy decides what each round's prediction sees.

The scripted model records every request, so the tests see exactly what was sent; the run's own
history, its result and the caller's chat must stay whole.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

import agentkit as ak
from agentkit.errors import ContextOverflowError
from agentkit.memory import (
    ContextModel,
    ContextPolicy,
    KeepLastTurns,
    Pin,
    TokenBudget,
)
from agentkit.memory.context import Block
from agentkit.messages import AssistantMessage, Message, ToolResultMessage, UserMessage
from agentkit.testing import AsyncScriptedModel, ScriptedModel, ToolCall, scripted_engine


def lookup(word: str) -> str:
    """Look a word up."""
    return f"{word} means " + "something rather long " * 20


def old_chat(turns: int) -> ak.Chat:
    chat = ak.Chat("You answer questions.")
    for i in range(turns):
        chat.add_user_message(f"old question {i}")
        chat.add_assistant_response(f"old answer {i}")
    chat.add_user_message("What does zyzzyva mean?")
    return chat


def calls_then_answer(chat: ak.Chat, round_index: int) -> object:
    if round_index < 3:
        return [ToolCall("lookup", {"word": f"w{round_index}"})]
    return "It is a weevil."


def test_the_policy_applies_to_every_round_and_the_history_stays_whole() -> None:
    model = ScriptedModel(calls_then_answer)
    chat = old_chat(6)
    before = list(chat.messages)
    added: list[Message] = []
    result = model.act(chat, [lookup], context=KeepLastTurns(1), on_message=added.append)
    requests = scripted_engine(model).requests
    assert len(requests) == 4
    for index, request in enumerate(requests):
        sent = list(request.messages)
        # The system prompt, the newest user question, then this run's rounds so far.
        assert sent[0] == before[0]
        assert sent[1:] == [before[-1], *result.messages[: 2 * index]]
    assert list(chat.messages) == before  # act() never mutates the chat
    assert added == result.messages and len(added) == 7


def test_a_token_budget_trims_more_each_round_as_results_pile_up() -> None:
    model = ScriptedModel(calls_then_answer)
    chat = old_chat(3)
    result = model.act(
        chat, [lookup], context=Pin(last_user=True) | TokenBudget(150, reply_tokens=0)
    )
    sent = [list(r.messages) for r in scripted_engine(model).requests]
    # Round 0 sends the whole (short) chat; later rounds drop old turns, then old rounds.
    assert sent[0] == list(chat.messages)
    assert len(sent[1]) < len(chat.messages) + 2
    for messages in sent:
        assert messages[0] == chat.messages[0]
        assert chat.messages[-1] in messages  # the pinned question
        for index, message in enumerate(messages):
            if isinstance(message, ToolResultMessage):
                owner = messages[index - 1]
                assert isinstance(owner, AssistantMessage) and owner.tool_calls
    # The newest round is always sent: the model sees the result it asked for.
    for index in range(1, 4):
        assert sent[index][-2:] == result.messages[2 * index - 2 : 2 * index]
    assert result.final is not None and result.final.text == "It is a weevil."


class Recording(ContextPolicy):
    """A policy that keeps everything and records each history it was given."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, tuple[str, ...]]] = []

    async def fit(self, blocks: Sequence[Block], model: ContextModel) -> Sequence[Block]:
        self.seen.append((sum(len(b.messages) for b in blocks), tuple(t.name for t in model.tools)))
        return blocks


def test_the_policy_sees_the_model_and_the_tools_offered_each_round() -> None:
    model = ScriptedModel(calls_then_answer)
    policy = Recording()
    model.act(old_chat(0), [lookup], context=policy, max_prediction_rounds=3)
    # Round sizes grow by a call and its result; the final round offers no tools.
    assert policy.seen == [(2, ("lookup",)), (4, ("lookup",)), (6, ())]


@pytest.mark.anyio
async def test_async_act_with_a_policy() -> None:
    model = AsyncScriptedModel(calls_then_answer)
    result = await model.act(old_chat(4), [lookup], context=KeepLastTurns(1))
    assert result.final is not None and result.final.text == "It is a weevil."
    first = scripted_engine(model).requests[0]
    assert [m.content for m in first.messages if isinstance(m, UserMessage)] == [
        "What does zyzzyva mean?"
    ]


def test_no_policy_sends_the_whole_history() -> None:
    model = ScriptedModel(calls_then_answer)
    chat = old_chat(5)
    result = model.act(chat, [lookup])
    last = scripted_engine(model).requests[-1]
    assert list(last.messages) == [*chat.messages, *result.messages[:-1]]


def test_overflow_ends_the_run_and_the_chat_keeps_its_complete_rounds() -> None:
    model = ScriptedModel(calls_then_answer)
    chat = old_chat(1)
    before = list(chat.messages)
    # Room for the chat, but not for the system prompt, the question and a long tool result.
    with pytest.raises(ContextOverflowError) as caught:
        model.act(
            chat,
            [lookup],
            context=Pin(last_user=True) | TokenBudget(60, reply_tokens=0),
            on_message=chat.append,
        )
    assert caught.value.budget < 60  # the tool definition took its share
    assert caught.value.newest > caught.value.budget - caught.value.pinned
    assert list(chat.messages)[: len(before)] == before
    assert len(chat.messages) == len(before) + 2  # round 0 was committed before the overflow
