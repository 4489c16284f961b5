"""Scoring one model output against a BFCL case, and naming how it failed.

An output is the tool calls read from the model's text (with agentkit's JSON-mode reader, for
both paths of the benchmark), whether all of the text parsed, and why generation stopped. BFCL's
rules decide correctness: the calls go to BFCL's AST checker as `[{name: arguments}, ...]`, and
an output that is not a complete list of calls (a text answer, JSON cut by max_tokens) is an
invalid case, as BFCL's decoder failing on it makes it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bfcl_data import Case, openai_name

__all__ = [
    "FAILURE_KINDS",
    "Output",
    "Score",
    "Verdicts",
    "deduplicated",
    "failure_kind",
    "kind_counts",
    "score",
]

FAILURE_KINDS = (
    "correct",
    "cut_by_max_tokens",  # the call list was cut mid-way by max_tokens
    "unparseable",  # the call list does not parse, and max_tokens did not cut it
    "no_call",  # the model answered in text
    "wrong_function",  # the set of functions called is not the expected one
    "repeated_call",  # right functions, but identical calls repeated past the expected count
    "wrong_count",  # right functions, wrong number of calls, no identical repeats
    "wrong_args",  # right functions and count, arguments not accepted by BFCL
)


class Verdicts(Protocol):
    """What scores an output: BFCL's checker (`bfcl_data.Checker`)."""

    def check(self, case: Case, output: list[dict[str, Any]]) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Output:
    """What one path produced for one case."""

    calls: list[tuple[str, Any]]  # (name, arguments) of every complete call, in order
    complete: bool  # all of the output parsed (False: a malformed or cut call list)
    finish_reason: str  # "stop", "length", ...


@dataclass(frozen=True, slots=True)
class Score:
    """BFCL's verdict plus the failure kind and diagnostics."""

    valid: bool
    error_type: str
    error: list[Any]
    kind: str
    repeated: bool  # some call appears twice, identically
    valid_deduplicated: bool  # BFCL would accept the calls with identical repeats removed

    @property
    def parse_valid(self) -> bool:
        """The output is a complete, non-empty list of calls with object arguments."""
        return not self.error_type.startswith("ast_decoder:") and self.kind != "no_call"


def score(checker: Verdicts, case: Case, output: Output) -> Score:
    """Score an output by BFCL's AST rules and name its failure kind."""
    verdict = _verdict(checker, case, output, output.calls)
    repeated = len(deduplicated(output.calls)) < len(output.calls)
    if verdict["valid"] or not repeated:
        valid_deduplicated = bool(verdict["valid"])
    else:
        deduped = Output(deduplicated(output.calls), output.complete, output.finish_reason)
        valid_deduplicated = bool(_verdict(checker, case, deduped, deduped.calls)["valid"])
    return Score(
        valid=bool(verdict["valid"]),
        error_type=str(verdict.get("error_type", "")),
        error=list(verdict.get("error", [])),
        kind=failure_kind(case, output, bool(verdict["valid"])),
        repeated=repeated,
        valid_deduplicated=valid_deduplicated,
    )


def _verdict(
    checker: Verdicts, case: Case, output: Output, calls: list[tuple[str, Any]]
) -> dict[str, Any]:
    # BFCL's FC decoder json-loads each call's arguments: a cut or missing call list fails it.
    if not output.complete or not calls:
        return {
            "valid": False,
            "error": ["no complete list of calls"],
            "error_type": "ast_decoder:decoder_failed",
        }
    decoded = [{name: arguments} for name, arguments in calls]
    if any(not isinstance(arguments, dict) for _, arguments in calls):
        return {
            "valid": False,
            "error": ["arguments are not an object"],
            "error_type": "ast_decoder:decoder_wrong_output_format",
        }
    return checker.check(case, decoded)


def failure_kind(case: Case, output: Output, valid: bool) -> str:
    """The first kind in `FAILURE_KINDS` that describes the output."""
    if valid:
        return "correct"
    if not output.complete:
        return "cut_by_max_tokens" if output.finish_reason == "length" else "unparseable"
    if not output.calls:
        return "no_call"
    expected = [openai_name(next(iter(answer))) for answer in case.ground_truth]
    called = [name for name, _ in output.calls]
    if set(called) != set(expected):
        return "wrong_function"
    if len(called) != len(expected):
        unique = deduplicated(output.calls)
        return "repeated_call" if len(unique) < len(called) else "wrong_count"
    return "wrong_args"


def deduplicated(calls: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The calls with identical repeats (same name, same arguments) removed, order kept."""
    seen: set[str] = set()
    unique = []
    for name, arguments in calls:
        key = json.dumps([name, arguments], sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            unique.append((name, arguments))
    return unique


def kind_counts(kinds: Iterable[str]) -> dict[str, int]:
    """Count per failure kind, every kind present (zero when absent), in `FAILURE_KINDS` order."""
    counts = Counter(kinds)
    return {kind: counts.get(kind, 0) for kind in FAILURE_KINDS}
