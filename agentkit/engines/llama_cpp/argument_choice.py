"""Whether a call's arguments end: an optional argument the request asks for is not dropped.

Once a call's required arguments are written, the model chooses with the token that ends a
value whether another argument follows (`,`) or the arguments end (`}`). SmolLM2-135M often
ends them where the user asked for an optional one ("Italian restaurants ... that serve
gluten-free options": no `diet`). Where the model's token ends the arguments, the two choices
are weighed as the list end is (see list_end), over whole tokens since the choice comes merged
with the value's end (`"}`, `",`): each choice's probability is the sum over the likeliest next
tokens that make it, less the same sum after the calibration prompt; when adding an argument
wins, its likeliest token is taken. It only adds: an argument the model chose to write is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from agentkit.engines.llama_cpp.name_choice import NameScorer

__all__ = ["ARGUMENT_ROOM", "CANDIDATES", "more_arguments"]

ARGUMENT_ROOM = 16
"""Tokens left below which no argument is added: a key, a short value and the closes of the
call and the list (an argument added where it cannot be finished cuts the whole call)."""

CANDIDATES = 64
"""How many of the likeliest next tokens are read for the choice each makes."""


def more_arguments(
    scorer: NameScorer,
    calibration: Sequence[int],
    choice_of: Callable[[int], str],
) -> list[int]:
    """The tokens that add an argument, likeliest first, when the request makes adding one
    likelier than ending the arguments (relative to `calibration`, the calibration prompt with
    the same output); else []. The context is left as it was."""
    here = scorer.next_log_probs()
    classes: dict[str, list[int]] = {}
    for token in np.argsort(here)[-CANDIDATES:][::-1].tolist():
        choice = choice_of(int(token))
        if choice:
            classes.setdefault(choice, []).append(int(token))
    adding, ending = classes.get(",", []), classes.get("}", [])
    if not adding or not ending:
        return []
    prior = scorer.log_probs_after(calibration)

    def pmi(tokens: list[int]) -> float:
        return float(np.logaddexp.reduce(here[tokens]) - np.logaddexp.reduce(prior[tokens]))

    return adding if pmi(adding) > pmi(ending) else []
