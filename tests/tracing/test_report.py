"""EvalReport (summary, JSON, HTML, table) and compare(), in code and on the command line."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from agentkit.cli import main
from agentkit.tracing.evaluation.compare import ScoreDelta, compare
from agentkit.tracing.evaluation.evaluate import Case, evaluate
from agentkit.tracing.evaluation.report import CaseResult, EvalReport, ReportError, percentile
from agentkit.tracing.evaluation.scorers import Score, contains, regex


def run(case_id: str, passed: bool, value: float | None = None, **fields: object) -> CaseResult:
    score = 1.0 if passed else 0.0
    scores = [Score("s", score if value is None else value, passed)]
    defaults: dict[str, object] = {"input": f"input {case_id}", "output": f"output {case_id}"}
    return CaseResult.model_validate(
        {"case_id": case_id, "passed": passed, "scores": scores, **defaults, **fields}
    )


def report_of(*results: CaseResult, name: str = "r", repeats: int = 1) -> EvalReport:
    return EvalReport(name=name, scorers=["s"], repeats=repeats, results=list(results))


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 0.5) == 0.0
    assert percentile([3.0], 0.95) == 3.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.5
    assert percentile([float(i) for i in range(1, 101)], 0.95) == pytest.approx(95.05)


def test_summary_totals() -> None:
    report = report_of(
        run("a", True, latency_seconds=1.0, prompt_tokens=10, completion_tokens=5),
        run("b", False, 0.25, latency_seconds=2.0, prompt_tokens=20, completion_tokens=5),
        run("c", False, 0.0, error="boom", error_type="RuntimeError", latency_seconds=4.0),
    )
    s = report.summary
    assert (s.runs, s.cases, s.passed, s.failed, s.errors) == (3, 3, 1, 1, 1)
    assert s.pass_rate == pytest.approx(1 / 3)
    assert s.mean_scores == {"s": pytest.approx(1.25 / 3)}
    assert s.score_pass_rates == {"s": pytest.approx(1 / 3)}
    assert (s.prompt_tokens, s.completion_tokens, s.total_tokens) == (30, 10, 40)
    assert s.p50_latency_seconds == 2.0 and s.p95_latency_seconds == pytest.approx(3.8)
    assert [r.status for r in report.results] == ["passed", "failed", "error"]


def test_json_round_trip(tmp_path: Path) -> None:
    cases = [
        Case(input="ok", expected="ok", tags=["t"]),
        Case(input=[{"role": "user", "content": "hi"}]),
    ]
    report = evaluate(cases, lambda q: q if isinstance(q, str) else "hello", [contains("o")])
    path = tmp_path / "report.json"
    text = report.to_json(path)
    assert path.read_text() == text + "\n"
    data = json.loads(text)
    assert data["format"] == "agentkit.eval/1" and data["summary"]["passed"] == 2
    back = EvalReport.from_json(path)
    assert back == report
    assert back.results[0].scores[0] == Score("contains", 1.0, True, "contains 'o'")
    assert back.results[1].input == [{"role": "user", "content": "hi"}]
    assert back.summary == report.summary


def test_json_keeps_values_json_cannot_hold_as_text(tmp_path: Path) -> None:
    report = evaluate([Case(input="q", expected={1, 2})], lambda q: "a")
    assert report.results[0].expected == "{1, 2}"
    path = tmp_path / "r.json"
    report.to_json(path)
    assert EvalReport.from_json(path).results[0].expected == "{1, 2}"


def test_from_json_rejects_other_files(tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text('{"results": []}')
    with pytest.raises(ReportError, match="not an agentkit evaluation report"):
        EvalReport.from_json(other)
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "agentkit.eval/1", "results": [{"case_id": 1}]}')
    with pytest.raises(ReportError, match="invalid report"):
        EvalReport.from_json(broken)
    with pytest.raises(ReportError, match="cannot read"):
        EvalReport.from_json(tmp_path / "missing.json")


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_is_self_contained_lists_every_case_and_escapes_content(tmp_path: Path) -> None:
    evil = "<script>alert('x')</script>"

    def agent(case: Case) -> str:
        if case.id == "err":
            raise ValueError(evil)
        return f"{evil} & more"

    cases = [Case(id=f"case-{i}", input=f"question {i} <marquee>", expected=evil) for i in range(3)]
    cases.append(Case(id="err", input="q", tags=[evil]))
    report = evaluate(cases, agent, [contains("more")], name=evil, repeats=2)
    path = tmp_path / "report.html"
    page = report.to_html(path)
    assert path.read_text() == page
    assert "<script" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "http://" not in page and "https://" not in page and "<link" not in page
    parsed = _Collector()
    parsed.feed(page)
    assert "style" in parsed.tags and "script" not in parsed.tags and "marquee" not in parsed.tags
    text = "".join(parsed.text)
    for case in ("case-0", "case-1", "case-2", "err"):
        assert case in text
    assert f"{evil} & more" in text and f"ValueError: {evil}" in text
    assert "question 0 <marquee>" in text and "not scored: the agent raised ValueError" in text
    assert "75.0%" in text  # 6 of 8 runs passed
    assert page.count('<tr class="passed">') == 6 and page.count('<tr class="error">') == 2


def test_html_shows_trace_ids_tokens_and_rounds() -> None:
    result = run("x", True, rounds=3, prompt_tokens=11, completion_tokens=7, trace_id="ab" * 16)
    page = report_of(result).to_html()
    assert "abababababababababababababababab" in page
    assert "<td class=num>3</td>" in page and "11 + 7" in page


def test_print_table(capsys: pytest.CaptureFixture[str]) -> None:
    long_output = "word " * 100
    report = report_of(
        run("alpha", True, 0.75),
        run("beta", False, output=long_output),
        run("gamma", False, error="boom\nline two", error_type="RuntimeError"),
    )
    report.print_table()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["case", "result", "s", "rounds", "tokens", "latency", "output"]
    assert lines[2].split()[:3] == ["alpha", "pass", "pass"] and "0.75" in lines[2]
    assert lines[3].split()[:3] == ["beta", "FAIL", "FAIL"] and lines[3].endswith("...")
    assert lines[4].split()[:2] == ["gamma", "ERROR"]
    assert lines[4].endswith("RuntimeError: boom line two")
    assert "r: 3 runs of 3 cases: 1 passed, 1 failed, 1 errors (pass rate 33.3%)" in lines
    assert report.format_table(width=80).splitlines()[3].__len__() <= 80


def test_table_marks_repeats() -> None:
    table = report_of(run("a", True, repeat=0), run("a", True, repeat=1), repeats=2).format_table()
    assert "a#0" in table and "a#1" in table


# -- compare ----------------------------------------------------------------------------------


def test_compare_finds_regressions_improvements_and_moved_scores() -> None:
    before = report_of(
        run("kept", True), run("broke", True), run("fixed", False), run("gone", True), name="A"
    )
    after = report_of(
        run("kept", True),
        run("broke", False),
        run("fixed", True, 0.5),
        run("added", False),
        name="B",
    )
    comparison = compare(before, after)
    assert comparison.regressions == ["broke"] and comparison.has_regressions
    assert comparison.improvements == ["fixed"]
    assert comparison.unchanged == ["kept"]
    assert comparison.new == ["added"] and comparison.missing == ["gone"]
    # means over the three cases both ran: A (1 + 1 + 0) / 3, B (1 + 0 + 0.5) / 3
    delta = comparison.score_deltas[0]
    assert delta.name == "s" and delta.delta == pytest.approx(-0.5 / 3)
    text = str(comparison)
    assert "A -> B: pass rate 75.0% -> 50.0%" in text
    assert "regressions: 1  broke" in text and "improvements: 1  fixed" in text
    assert "new: 1  added" in text and "missing: 1  gone" in text
    assert "s: 0.667 -> 0.500 (-0.167)" in text


def test_compare_with_repeats_needs_every_run_to_pass() -> None:
    before = report_of(run("a", True, repeat=0), run("a", True, repeat=1), repeats=2)
    after = report_of(run("a", True, repeat=0), run("a", False, repeat=1), repeats=2)
    assert compare(before, after).regressions == ["a"]
    assert compare(after, before).improvements == ["a"]
    assert not compare(before, before).has_regressions


def test_compare_with_a_scorer_only_one_side_has() -> None:
    a = report_of(run("x", True))
    b = EvalReport(scorers=["other"], results=[run("x", True)])
    assert compare(a, b).score_deltas == [
        ScoreDelta("s", 1.0, None),
        ScoreDelta("other", None, None),
    ]


def test_cli_compare_exits_1_on_regressions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = evaluate(["2 + 2", "3 + 3"], lambda q: "42", [regex(r"\d")], name="good")
    bad = evaluate(["2 + 2", "3 + 3"], lambda q: "42" if q == "2 + 2" else "?", [regex(r"\d")])
    good.to_json(tmp_path / "good.json")
    bad.to_json(tmp_path / "bad.json")
    assert main(["eval", "--compare", str(tmp_path / "good.json"), str(tmp_path / "bad.json")]) == 1
    out = capsys.readouterr().out
    assert "regressions: 1  1" in out and "regex: 1.000 -> 0.500 (-0.500)" in out
    assert main(["eval", "--compare", str(tmp_path / "bad.json"), str(tmp_path / "good.json")]) == 0
    assert "improvements: 1  1" in capsys.readouterr().out
    assert main(["eval", "--compare", str(tmp_path / "good.json"), str(tmp_path / "nope")]) == 2
    assert "cannot read the report" in capsys.readouterr().err
