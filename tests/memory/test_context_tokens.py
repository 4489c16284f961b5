"""Token budgets counted with the real tokenizer of the default model (llama.cpp engine)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

import agentkit as ak
from agentkit.memory import (
    ContextModel,
    ContextPolicy,
    ElideToolResults,
    InMemoryStore,
    Pin,
    Summarize,
    TokenBudget,
    TokenCounter,
)
from agentkit.memory.context_summary import METADATA_KEY
from agentkit.memory.context_tokens import DEFAULT_MESSAGE_OVERHEAD, message_text
from agentkit.messages import (
    AssistantMessage,
    Message,
    SystemMessage,
    ToolCall,
    ToolResultMessage,
    UserMessage,
)


@pytest.fixture(scope="module")
def client() -> Iterator[ak.Client]:
    with ak.Client() as client:
        yield client


@pytest.fixture(scope="module")
def model(client: ak.Client) -> ak.LLM:
    return client.llm.model()


def apply(model: ak.LLM, policy: ContextPolicy, history: Sequence[Message]) -> list[Message]:
    async def run() -> list[Message]:
        return await policy.apply(history, model)

    return model._portal.call(run)  # the engine's loop, as act() would run it


def tokens(model: ak.LLM, message: Message) -> int:
    return model.count_tokens(message_text(message)) + DEFAULT_MESSAGE_OVERHEAD


def long_history(turns: int) -> list[Message]:
    history: list[Message] = [SystemMessage(content="You are a terse assistant.")]
    for i in range(turns):
        history.append(UserMessage(content=f"Question {i}: what is {i} times {i + 3}? Ünïcødé ✓"))
        call = ToolCall("multiply", {"a": i, "b": i + 3}, id=f"call_{i}")
        history.append(AssistantMessage(tool_calls=(call,)))
        history.append(ToolResultMessage(tool_call_id=call.id, name="multiply", content=str(i)))
        history.append(AssistantMessage(content=f"{i} times {i + 3} is {i * (i + 3)}."))
    return history


def test_counts_are_the_model_tokenizers(model: ak.LLM) -> None:
    history = long_history(3)
    counter = TokenCounter()

    async def count() -> list[int]:
        return await counter.count(history, ContextModel.of(model))

    counts = model._portal.call(count)
    assert counts == [tokens(model, message) for message in history]
    # Not a word count: the tokenizer splits these differently.
    assert counts[1] != len(history[1].content.split()) + DEFAULT_MESSAGE_OVERHEAD


def test_a_budget_over_the_context_length_keeps_the_newest(model: ak.LLM) -> None:
    history = long_history(120)
    context = model.get_context_length()
    assert sum(tokens(model, m) for m in history) > context  # the whole would not fit
    policy = TokenBudget(reply_tokens=256)
    sent = apply(model, policy, history)
    assert sent[0] == history[0] and sent[-1] == history[-1]
    assert sent == [history[0], *history[len(history) - len(sent) + 1 :]]
    assert sum(tokens(model, m) for m in sent) <= context - 256
    # The block before the kept ones would not have fitted.
    end = len(history) - len(sent) + 1
    start = end - 1
    while isinstance(history[start], ToolResultMessage):
        start -= 1
    dropped = sum(tokens(model, m) for m in history[start:end])
    assert sum(tokens(model, m) for m in sent) + dropped > context - 256


def test_after_the_first_prediction_only_new_messages_are_tokenized(model: ak.LLM) -> None:
    counter = TokenCounter()
    policy = TokenBudget(2000, reply_tokens=100, counter=counter)
    history = long_history(60)
    apply(model, policy, history)
    assert counter.tokenized == len({message_text(m) for m in history})
    first = counter.tokenized
    history += [UserMessage(content="One more?"), AssistantMessage(content="No.")]
    apply(model, policy, history)
    assert counter.tokenized == first + 2


def test_the_prompt_sent_fits_the_budget(model: ak.LLM) -> None:
    """A real prediction on a history longer than the budget, trimmed by the policy: the
    engine's own prompt count (chat template included) stays within max_tokens - reply."""
    chat = ak.Chat.from_dict(long_history(40))
    chat.add_user_message("What is 2 times 5?")
    budget, reply = 800, 16
    result = model.act(
        chat,
        context=Pin(last_user=True) | TokenBudget(budget, reply_tokens=reply),
        config={"max_tokens": reply, "temperature": 0},
        max_prediction_rounds=1,
    )
    assert budget // 2 < result.usage.prompt_tokens <= budget - reply


def test_elided_results_let_more_history_fit(model: ak.LLM) -> None:
    history = long_history(10)
    history[35] = ToolResultMessage(tool_call_id="call_8", name="multiply", content="7 " * 3000)
    budget = TokenBudget(1000, reply_tokens=0)
    plain = apply(model, budget, history)
    assert plain == [history[0], *history[36:]]  # the big result stopped the budget
    elided = apply(model, ElideToolResults(500) | budget, history)
    assert len(elided) > len(plain) and elided[-5:] == history[-5:]
    shortened = [m for m in elided if m.content.endswith("the first 200 shown]")]
    assert len(shortened) == 1 and shortened[0].tool_call_id == "call_8"  # type: ignore[union-attr]
    assert sum(tokens(model, m) for m in elided) <= 1000


def test_the_model_summarises_its_own_history_inside_a_blocking_act(model: ak.LLM) -> None:
    """The README's shape on the real engine: the writer is the blocking handle whose act() is
    running (it must not deadlock), and the summary lands in the session's metadata."""
    chat = ak.Chat("You are a helpful assistant.")
    for fact in ["My name is Ada.", "I live in Oslo.", "My cat is called Pixel."]:
        chat.add_user_message(fact)
        chat.add_assistant_response("Noted.")
    chat.add_user_message("What is my cat called?")
    store = InMemoryStore()
    store.append("s", chat.messages, expected_revision=0)
    summarize = Summarize(model, keep_turns=1, max_turns=2, summary_words=20)
    policy = (Pin(last_user=True) | summarize | TokenBudget(reply_tokens=16)).for_session(
        store, "s"
    )
    result = model.act(chat, context=policy, config={"max_tokens": 16, "temperature": 0})
    assert result.final is not None
    stored = store.load("s").metadata[METADATA_KEY]
    assert stored["covered"] == 5 and stored["model"] == model.model_key and stored["text"]
    assert len(chat.messages) == 8  # the chat itself is untouched
