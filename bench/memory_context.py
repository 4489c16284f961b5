"""What a context-window policy costs per prediction over a long history.

Run it from the repository root (it loads the default model for its tokenizer only):

    python bench/memory_context.py                # 500 messages, 200 predictions
    python bench/memory_context.py --messages 2000 --predictions 100

The target (issue 10): a token-budget policy over a 500-message history costs <= 5 ms per
prediction after the first, its counts cached per message.

The workload imitates a long agent conversation: a system prompt, then turns of a user
question, an assistant tool call, its result (every fifth one a 6,000-character page) and an
answer, until the history holds `--messages` messages. Each "prediction" then does what act()
does before a round: it appends the messages the previous round committed (an assistant call
and its result, or an answer and the next question, alternately) and applies the policy to the
whole history with the model's own tokenizer (SmolLM2's, via the llama.cpp engine; 4,096-token
context). Timed:

- first: the first application (every message tokenized once);
- after: each later application (p50 / p99 / max wall clock, and p50 / p99 of the thread's CPU
  time, which excludes time the process waited for a core), where only the two new messages
  are new;
- reloaded: the first application to the same history loaded afresh (equal messages, new
  objects, as a session store returns them), which the counts' text cache serves.

Policies: `TokenBudget(reply_tokens=512)` alone, and
`Pin(last_user=True) | ElideToolResults(2000) | TokenBudget(reply_tokens=512)`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable

import agentkit as ak
from agentkit.memory import ContextModel, ElideToolResults, Pin, TokenBudget
from agentkit.memory.context import ContextPolicy
from agentkit.messages import (
    AssistantMessage,
    Message,
    SystemMessage,
    ToolCall,
    ToolResultMessage,
    UserMessage,
)

PAGE = "The quick brown fox jumps over the lazy dog; numbers 12345 and ünïcødé. " * 80


def turn(i: int) -> list[Message]:
    call = ToolCall("search", {"query": f"topic {i}", "page": i % 7}, id=f"call_{i}")
    result = PAGE if i % 5 == 0 else f"Result {i}: the answer involves {i * 37} items."
    return [
        UserMessage(content=f"Question {i}: what do you know about topic {i}?"),
        AssistantMessage(tool_calls=(call,)),
        ToolResultMessage(tool_call_id=call.id, name="search", content=result),
        AssistantMessage(content=f"Topic {i} involves {i * 37} items, as the search shows."),
    ]


def history_of(size: int) -> list[Message]:
    history: list[Message] = [SystemMessage(content="You are a research assistant.")]
    i = 0
    while len(history) < size:
        history += turn(i)
        i += 1
    return history[:size]


def next_round(i: int) -> list[Message]:
    """What one act() round commits, alternating tool rounds and answers."""
    if i % 2 == 0:
        call = ToolCall("search", {"query": f"more {i}"}, id=f"more_{i}")
        return [
            AssistantMessage(tool_calls=(call,)),
            ToolResultMessage(tool_call_id=call.id, name="search", content=f"more {i}"),
        ]
    return [
        AssistantMessage(content=f"So far: {i}."),
        UserMessage(content=f"And follow-up {i}?"),
    ]


async def measure(
    make: Callable[[], ContextPolicy], model: ContextModel, size: int, predictions: int
) -> dict[str, float]:
    policy = make()
    history = history_of(size)
    started = time.perf_counter()
    sent = await policy.apply(history, model)
    first = time.perf_counter() - started
    after: list[float] = []
    cpu: list[float] = []
    for i in range(predictions):
        history += next_round(i)
        started, cpu_started = time.perf_counter(), time.thread_time()
        sent = await policy.apply(history, model)
        after.append(time.perf_counter() - started)
        cpu.append(time.thread_time() - cpu_started)
    reloaded = [m.model_copy() for m in history]
    started = time.perf_counter()
    await policy.apply(reloaded, model)
    again = time.perf_counter() - started
    after.sort()
    cpu.sort()
    return {
        "cpu p50": statistics.median(cpu),
        "cpu p99": cpu[min(len(cpu) - 1, round(0.99 * len(cpu)))],
        "first": first,
        "p50": statistics.median(after),
        "p99": after[min(len(after) - 1, round(0.99 * len(after)))],
        "max": after[-1],
        "reloaded": again,
        "sent": len(sent),
        "history": len(history),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--predictions", type=int, default=200)
    args = parser.parse_args()
    policies: dict[str, Callable[[], ContextPolicy]] = {
        "TokenBudget": lambda: TokenBudget(reply_tokens=512),
        "Pin | Elide | TokenBudget": lambda: (
            Pin(last_user=True) | ElideToolResults(2000) | TokenBudget(reply_tokens=512)
        ),
    }
    with ak.Client() as client:
        llm = client.llm.model()
        model = ContextModel.of(llm)
        print(f"model {llm.model_key}, context {llm.get_context_length():,} tokens")
        print(
            f"history {args.messages} messages, then {args.predictions} predictions "
            "(2 new messages each)\n"
        )
        print(
            f"{'policy':<28}{'first':>10}{'p50':>9}{'p99':>9}{'max':>9}{'cpu p50':>10}"
            f"{'cpu p99':>10}{'reloaded':>10}{'sent':>7}"
        )
        for name, make in policies.items():
            row = asyncio.run(measure(make, model, args.messages, args.predictions))
            print(
                f"{name:<28}{row['first'] * 1e3:>8.1f}ms{row['p50'] * 1e3:>7.2f}ms"
                f"{row['p99'] * 1e3:>7.2f}ms{row['max'] * 1e3:>7.2f}ms"
                f"{row['cpu p50'] * 1e3:>8.2f}ms{row['cpu p99'] * 1e3:>8.2f}ms"
                f"{row['reloaded'] * 1e3:>8.1f}ms{int(row['sent']):>7}"
            )
        print(
            "\ntarget: <= 5 ms per prediction after the first (p99: wall clock; cpu: this "
            "thread's CPU time, which a busy machine's scheduling does not inflate)"
        )


if __name__ == "__main__":
    main()
