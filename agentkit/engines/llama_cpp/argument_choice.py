"""Whether a call's arguments end: an optional argument the request asks for is not dropped.

Once a call's required arguments are written, the model chooses with the token that ends a
value whether another argument follows (`,`) or the arguments end (`}`). SmolLM2-135M often
ends them where the user asked for an optional one ("... in San Diego next month (April
2022)": no `date`; "... that serve gluten-free options": no `diet`).

Whether to add one cannot be read from the key: after the calibration prompt (the same
instructions and tools, an empty user turn, see name_choice) the model writes every optional
key more readily than after any request, so adding always looks less likely than ending,
relative to it. The evidence is in the value: where the key is followed by what the model
would write for it, the request makes that value far likelier when it holds it (`"April 2022"`
after "April 2022" in the request) than when it does not (`"black"` for a colour nobody named).
So each optional argument left (the first `KEYS_WEIGHED` the grammar still allows) is written
out in an excursion with a value: each value its schema allows where it allows a few
(`true`/`false`, an enum's members), else the model's greedy value (up to `VALUE_TOKENS`
tokens). Each such path's log-probability after the live prompt less the same after the
calibration prompt (pointwise mutual information) is compared with the same for ending the
arguments as the model's token does; where the best path wins, its key is written, with its
value where that was one of a few, else the model then writes the value itself under the
grammar. It only adds: an argument the model chose to write is kept.

Measured on BFCL (README, "Tool-call accuracy").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from agentkit.engines.llama_cpp.jump_forward import ArgumentOpening
from agentkit.engines.llama_cpp.name_choice import NameScorer

__all__ = ["ARGUMENT_ROOM", "KEYS_WEIGHED", "VALUE_TOKENS", "argument_to_add"]

ARGUMENT_ROOM = 16
"""Tokens left below which no argument is added: a key, a short value and the closes of the
call and the list (an argument added where it cannot be finished cuts the whole call)."""

KEYS_WEIGHED = 4
"""How many of the optional arguments left are weighed (each costs a short excursion)."""

VALUE_TOKENS = 10
"""How many tokens of a value are written out to weigh it."""


def argument_to_add(
    scorer: NameScorer,
    calibration: Sequence[int],
    ending: str,
    openings: Sequence[ArgumentOpening],
    call: str,
) -> tuple[int, str | None] | None:
    """Which of `openings` (optional arguments that may follow where the model ended the
    arguments with `ending`, each `text` led by the value's end as that token writes it) to
    write instead, by the calibrated likelihood of it with a value against that of `ending`:
    (its index, the value weighed where the schema allows a few, else None); None to keep
    `ending`. A string the model would write that `call` (the call's text so far) holds
    already is no evidence (`"diet": "Thai"` after `"cuisine": "Thai"`): not weighed.

    Expects the context's last logits to be the next token's; `calibration`: the calibration
    prompt with the same output. The context holds the same tokens afterwards, its last
    logits the next token's."""
    openings = openings[:KEYS_WEIGHED]
    end = scorer.tokenize(ending)
    heads = [scorer.tokenize(opening.text) for opening in openings]
    if not end or not heads or not scorer.fits(max(map(len, heads)) + VALUE_TOKENS):
        return None
    here = scorer.next_log_probs()
    paths = [end]
    owners: list[tuple[int, str | None]] = []  # (opening, value) of each path after `end`
    for index, (opening, head) in enumerate(zip(openings, heads, strict=True)):
        if opening.values:
            for value in opening.values:
                paths.append(scorer.tokenize(opening.text + value))
                owners.append((index, value))
        else:
            written = scorer.greedy(head, VALUE_TOKENS, _value_end(scorer, opening))
            if opening.text.endswith('"') and f'"{scorer.text(written)}"' in call:
                continue
            paths.append(head + written)
            owners.append((index, None))
    if not owners or not scorer.fits(max(map(len, paths))):
        return None
    live = [scorer.log_prob(path, here) for path in paths]
    with scorer.elsewhere(calibration) as there:
        prior = [scorer.log_prob(path, there) for path in paths]
    pmi = np.subtract(live, prior)
    best = int(np.argmax(pmi[1:]))
    return owners[best] if pmi[1 + best] > pmi[0] else None


def _value_end(scorer: NameScorer, opening: ArgumentOpening) -> Callable[[int], bool]:
    """Whether a token ends the value `opening` starts: it holds a `,`, `}` or `]`, or the
    quote that closes the (first) string."""
    quotes = opening.text[opening.text.rindex(":") :].count('"')

    def ends(token: int) -> bool:
        nonlocal quotes
        piece = scorer.piece(token)
        if any(char in piece for char in ",}]"):
            return True
        quotes += piece.count('"')
        return quotes >= 2

    return ends
