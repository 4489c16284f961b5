"""The report of an evaluation run: a result per case and repeat, a summary, and its outputs.

Outputs:

    report.print_table()              # a terminal table and the summary
    report.to_json("report.json")     # EvalReport.from_json("report.json") reads it back
    report.to_html("report.html")     # one self-contained page
"""

from __future__ import annotations

import html
import json
import math
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Literal, TextIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentkit.errors import AgentkitError
from agentkit.tracing.evaluation.scorers import Score, input_text

__all__ = ["CaseResult", "EvalReport", "ReportError", "Summary", "percentile"]

FORMAT: Final = "agentkit.eval/1"


class ReportError(AgentkitError, ValueError):
    """A file is not a readable evaluation report."""


class CaseResult(BaseModel):
    """One run of one case: what went in and out, its scores, and what it cost."""

    model_config = ConfigDict(frozen=True)

    case_id: str
    repeat: int = 0
    input: str | list[dict[str, Any]]
    output: str = ""
    expected: Any = None
    tags: list[str] = Field(default_factory=list)
    scores: list[Score] = Field(default_factory=list)
    passed: bool
    error: str | None = None
    """The agent's exception message, when it raised."""
    error_type: str | None = None
    rounds: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_seconds: float = 0.0
    trace_id: str = ""

    @property
    def status(self) -> Literal["passed", "failed", "error"]:
        """Passed or failed (all scores passed or not), or error when the agent raised."""
        if self.error_type is not None:
            return "error"
        return "passed" if self.passed else "failed"

    def score(self, name: str) -> Score | None:
        """The score of the named scorer, if it ran."""
        return next((score for score in self.scores if score.name == name), None)


@dataclass(frozen=True, slots=True)
class Summary:
    """Totals over every run of a report."""

    runs: int
    cases: int
    passed: int
    failed: int
    errors: int
    pass_rate: float
    mean_scores: dict[str, float]
    score_pass_rates: dict[str, float]
    prompt_tokens: int
    completion_tokens: int
    p50_latency_seconds: float
    p95_latency_seconds: float

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


def percentile(values: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile (0..1), interpolated linearly between ranks; 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class EvalReport(BaseModel):
    """What `evaluate()` found: every run (cases in order, repeats within) and how it ran."""

    format: Literal["agentkit.eval/1"] = "agentkit.eval/1"
    name: str = "eval"
    created_at: str = ""
    duration_seconds: float = 0.0
    concurrency: int = 1
    repeats: int = 1
    scorers: list[str] = Field(default_factory=list)
    results: list[CaseResult] = Field(default_factory=list)

    @property
    def summary(self) -> Summary:
        """Pass rate, mean score per scorer, token totals and latency percentiles."""
        results = self.results
        runs = len(results)
        passed = sum(r.passed for r in results)
        errors = sum(r.error_type is not None for r in results)
        means: dict[str, float] = {}
        rates: dict[str, float] = {}
        for name in self.scorers:
            scores = [s for r in results if (s := r.score(name)) is not None]
            means[name] = sum(s.value for s in scores) / len(scores) if scores else 0.0
            rates[name] = sum(s.passed for s in scores) / len(scores) if scores else 0.0
        latencies = [r.latency_seconds for r in results]
        return Summary(
            runs=runs,
            cases=len({r.case_id for r in results}),
            passed=passed,
            failed=runs - passed - errors,
            errors=errors,
            pass_rate=passed / runs if runs else 0.0,
            mean_scores=means,
            score_pass_rates=rates,
            prompt_tokens=sum(r.prompt_tokens for r in results),
            completion_tokens=sum(r.completion_tokens for r in results),
            p50_latency_seconds=percentile(latencies, 0.50),
            p95_latency_seconds=percentile(latencies, 0.95),
        )

    # -- JSON -------------------------------------------------------------------------------

    def to_json(self, path: str | os.PathLike[str] | None = None, *, indent: int = 2) -> str:
        """The report as JSON (with its summary, for other tools); written to `path` if given."""
        data = self.model_dump(mode="json")
        data["summary"] = asdict(self.summary)
        text = json.dumps(data, indent=indent, ensure_ascii=False)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> EvalReport:
        """Read a report `to_json` wrote (its summary is recomputed, not read)."""
        where = os.fspath(path)
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ReportError(f"{where}: cannot read the report: {error}") from error
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ReportError(f"{where}: not an agentkit evaluation report (format {FORMAT})")
        data.pop("summary", None)
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise ReportError(f"{where}: invalid report: {error}") from error

    # -- terminal ---------------------------------------------------------------------------

    def format_table(self, width: int | None = None) -> str:
        """The per-run table and the summary as text, at most `width` columns wide."""
        width = width or shutil.get_terminal_size((120, 24)).columns
        headers = ["case", "result", *self.scorers, "rounds", "tokens", "latency", "output"]
        rows = [self._row(result) for result in self.results]
        sizes = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]
        fixed = sum(sizes[:-1]) + 2 * (len(sizes) - 1)
        sizes[-1] = max(20, min(sizes[-1], width - fixed))
        lines = [_join(headers, sizes), _join(["-" * size for size in sizes], sizes)]
        lines += [_join(row, sizes) for row in rows]
        return "\n".join([*lines, "", *self.summary_lines()])

    def print_table(self, file: TextIO | None = None) -> None:
        """Print `format_table()` (to stdout by default)."""
        print(self.format_table(), file=file or sys.stdout)

    def summary_lines(self) -> list[str]:
        """The summary in a few lines of text."""
        s = self.summary
        lines = [
            f"{self.name}: {s.runs} runs of {s.cases} cases: {s.passed} passed, {s.failed} "
            f"failed, {s.errors} errors (pass rate {s.pass_rate:.1%})"
        ]
        if s.mean_scores:
            means = ", ".join(f"{name} {value:.2f}" for name, value in s.mean_scores.items())
            lines.append(f"mean scores: {means}")
        lines.append(
            f"tokens: {s.prompt_tokens} prompt + {s.completion_tokens} completion; latency "
            f"p50 {s.p50_latency_seconds:.2f} s, p95 {s.p95_latency_seconds:.2f} s; "
            f"wall time {self.duration_seconds:.2f} s"
        )
        return lines

    def _row(self, result: CaseResult) -> list[str]:
        case = result.case_id if self.repeats == 1 else f"{result.case_id}#{result.repeat}"
        cells = [case, {"passed": "pass", "failed": "FAIL", "error": "ERROR"}[result.status]]
        for name in self.scorers:
            score = result.score(name)
            cells.append("-" if score is None else _score_cell(score))
        text = f"{result.error_type}: {result.error}" if result.error_type else result.output
        return [
            *cells,
            str(result.rounds),
            str(result.prompt_tokens + result.completion_tokens),
            f"{result.latency_seconds:.2f}s",
            " ".join(text.split()),
        ]

    # -- HTML -------------------------------------------------------------------------------

    def to_html(self, path: str | os.PathLike[str] | None = None) -> str:
        """One self-contained HTML page (inline CSS, no scripts or external assets)."""
        page = _render_html(self)
        if path is not None:
            Path(path).write_text(page, encoding="utf-8")
        return page


def _score_cell(score: Score) -> str:
    verdict = "pass" if score.passed else "FAIL"
    return verdict if score.value in (0.0, 1.0) else f"{verdict} {score.value:.2f}"


def _join(cells: Sequence[str], sizes: Sequence[int]) -> str:
    fitted = [_fit(cell, size).ljust(size) for cell, size in zip(cells, sizes, strict=True)]
    return "  ".join(fitted).rstrip()


def _fit(text: str, size: int) -> str:
    return text if len(text) <= size else text[: max(size - 3, 0)] + "..."


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2330;
background:#f6f7f9}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.meta{color:#5b6475;margin:0 0 16px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:10px 16px;min-width:110px}
.card b{display:block;font-size:20px}.card span{color:#5b6475;font-size:12px}
table{border-collapse:collapse;background:#fff;border:1px solid #dde1e8;width:100%}
th,td{border-bottom:1px solid #e8ebf0;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600;white-space:nowrap}
td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
pre{margin:0;white-space:pre-wrap;word-break:break-word;max-height:16em;overflow:auto;
font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
code{font:11px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;color:#5b6475}
.badge{display:inline-block;border-radius:10px;padding:1px 8px;font-size:12px;font-weight:600}
.passed .badge{background:#dcf5e3;color:#17692f}.failed .badge{background:#fde2e1;color:#9b1c1c}
.error .badge{background:#fff0c2;color:#7a5300}
ul.scores{list-style:none;margin:0;padding:0}ul.scores li{margin:0 0 4px}
li.ok::before{content:"\\2713 ";color:#17692f}li.bad::before{content:"\\2717 ";color:#9b1c1c}
.detail{display:block;color:#5b6475;font-size:12px}.tag{color:#5b6475;font-size:12px}
"""


def _render_html(report: EvalReport) -> str:
    s = report.summary
    cards = [
        (f"{s.pass_rate:.1%}", "pass rate"),
        (f"{s.passed} / {s.failed} / {s.errors}", "passed / failed / errors"),
        (str(s.runs), f"runs of {s.cases} cases"),
        (f"{s.prompt_tokens} + {s.completion_tokens}", "prompt + completion tokens"),
        (f"{s.p50_latency_seconds:.2f} s", "p50 latency"),
        (f"{s.p95_latency_seconds:.2f} s", "p95 latency"),
    ]
    scorer_rows = "".join(
        f"<tr><td>{_e(name)}</td><td class=num>{s.mean_scores[name]:.3f}</td>"
        f"<td class=num>{s.score_pass_rates[name]:.1%}</td></tr>"
        for name in report.scorers
    )
    meta = (
        f"{_e(report.created_at)} &middot; {report.duration_seconds:.2f} s wall time &middot; "
        f"concurrency {report.concurrency} &middot; repeats {report.repeats}"
    )
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{_e(report.name)} - agentkit evaluation</title><style>{_CSS}</style></head>",
        f"<body><h1>{_e(report.name)}</h1><p class=meta>{meta}</p>",
        '<section class="cards">',
        *(f'<div class="card"><b>{_e(b)}</b><span>{_e(what)}</span></div>' for b, what in cards),
        "</section>",
    ]
    if report.scorers:
        parts.append(
            "<h2>Scorers</h2><table><thead><tr><th>scorer</th><th>mean score</th>"
            f"<th>passed</th></tr></thead><tbody>{scorer_rows}</tbody></table>"
        )
    parts += [
        "<h2>Runs</h2><table><thead><tr><th>case</th><th>outcome</th><th>input</th>"
        "<th>output</th><th>expected</th><th>scores</th><th>rounds</th><th>tokens</th>"
        "<th>latency</th><th>trace id</th></tr></thead><tbody>",
        *(_html_row(result, report.repeats) for result in report.results),
        "</tbody></table></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _html_row(result: CaseResult, repeats: int) -> str:
    case = _e(result.case_id)
    if repeats > 1:
        case += f" <span class=tag>#{result.repeat}</span>"
    if result.tags:
        case += "".join(f"<br><span class=tag>{_e(tag)}</span>" for tag in result.tags)
    question = input_text(result.input)
    if result.error_type is not None:
        output = f"{result.error_type}: {result.error}"
    else:
        output = result.output
    expected = "" if result.expected is None else json.dumps(result.expected, ensure_ascii=False)
    scores = "".join(
        f'<li class="{"ok" if score.passed else "bad"}">{_e(score.name)} {score.value:.2f}'
        f"<span class=detail>{_e(score.detail)}</span></li>"
        for score in result.scores
    )
    tokens = f"{result.prompt_tokens} + {result.completion_tokens}"
    return (
        f'<tr class="{result.status}"><td>{case}</td>'
        f'<td><span class="badge">{result.status}</span></td>'
        f"<td><pre>{_e(question)}</pre></td><td><pre>{_e(output)}</pre></td>"
        f"<td><pre>{_e(expected)}</pre></td><td><ul class=scores>{scores}</ul></td>"
        f"<td class=num>{result.rounds}</td><td class=num>{tokens}</td>"
        f"<td class=num>{result.latency_seconds:.2f} s</td>"
        f"<td><code>{_e(result.trace_id or '-')}</code></td></tr>"
    )
