"""Compare two evaluation reports: what regressed, what improved, how the scores moved.

    comparison = compare(EvalReport.from_json("before.json"), EvalReport.from_json("after.json"))
    print(comparison)
    if comparison.regressions: ...

A case passes in a report when every one of its runs (repeats) passed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TextIO

from agentkit.tracing.evaluation.report import CaseResult, EvalReport

__all__ = ["Comparison", "ScoreDelta", "compare"]


@dataclass(frozen=True, slots=True)
class ScoreDelta:
    """A scorer's mean over the cases both reports ran; None where a report lacks it."""

    name: str
    before: float | None
    after: float | None

    @property
    def delta(self) -> float | None:
        """after - before, when both are known."""
        if self.before is None or self.after is None:
            return None
        return self.after - self.before


@dataclass(frozen=True, slots=True)
class Comparison:
    """Case ids sorted into regressions (passed in A, not in B), improvements, unchanged,
    new (only in B) and missing (only in A), and score deltas per scorer."""

    name_a: str
    name_b: str
    regressions: list[str] = field(default_factory=list)
    improvements: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    score_deltas: list[ScoreDelta] = field(default_factory=list)
    pass_rate_a: float = 0.0
    pass_rate_b: float = 0.0

    @property
    def has_regressions(self) -> bool:
        """True when some case passed in A and fails in B."""
        return bool(self.regressions)

    def format(self) -> str:
        """The comparison as text."""
        lines = [
            f"{self.name_a} -> {self.name_b}: pass rate {self.pass_rate_a:.1%} -> "
            f"{self.pass_rate_b:.1%}",
            _ids("regressions", self.regressions),
            _ids("improvements", self.improvements),
            f"unchanged: {len(self.unchanged)}",
        ]
        if self.new:
            lines.append(_ids("new", self.new))
        if self.missing:
            lines.append(_ids("missing", self.missing))
        for score in self.score_deltas:
            before = "-" if score.before is None else f"{score.before:.3f}"
            after = "-" if score.after is None else f"{score.after:.3f}"
            change = "" if score.delta is None else f" ({score.delta:+.3f})"
            lines.append(f"  {score.name}: {before} -> {after}{change}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()

    def print(self, file: TextIO | None = None) -> None:
        """Print `format()` (to stdout by default)."""
        print(self.format(), file=file or sys.stdout)


def _ids(label: str, ids: list[str]) -> str:
    return f"{label}: {len(ids)}" + (f"  {', '.join(ids)}" if ids else "")


def _by_case(results: Iterable[CaseResult]) -> dict[str, list[CaseResult]]:
    grouped: dict[str, list[CaseResult]] = {}
    for result in results:
        grouped.setdefault(result.case_id, []).append(result)
    return grouped


def _mean(results: dict[str, list[CaseResult]], cases: list[str], name: str) -> float | None:
    values = [
        score.value
        for case in cases
        for result in results[case]
        if (score := result.score(name)) is not None
    ]
    return sum(values) / len(values) if values else None


def compare(a: EvalReport, b: EvalReport) -> Comparison:
    """What changed from report `a` (before) to report `b` (after)."""
    runs_a, runs_b = _by_case(a.results), _by_case(b.results)
    common = [case for case in runs_a if case in runs_b]
    comparison = Comparison(
        a.name,
        b.name,
        new=[case for case in runs_b if case not in runs_a],
        missing=[case for case in runs_a if case not in runs_b],
        pass_rate_a=a.summary.pass_rate,
        pass_rate_b=b.summary.pass_rate,
    )
    for case in common:
        before = all(result.passed for result in runs_a[case])
        after = all(result.passed for result in runs_b[case])
        if before and not after:
            comparison.regressions.append(case)
        elif after and not before:
            comparison.improvements.append(case)
        else:
            comparison.unchanged.append(case)
    names = list(dict.fromkeys([*a.scorers, *b.scorers]))
    comparison.score_deltas.extend(
        ScoreDelta(
            name,
            _mean(runs_a, common, name) if name in a.scorers else None,
            _mean(runs_b, common, name) if name in b.scorers else None,
        )
        for name in names
    )
    return comparison
