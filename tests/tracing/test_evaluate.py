"""evaluate(): datasets, agents of every shape, concurrency, repeats, errors, traces, the CLI."""

from __future__ import annotations

import functools
import inspect
import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import agentkit as ak
from agentkit.cli import demo_responder, main
from agentkit.errors import ConfigurationError
from agentkit.testing import AsyncScriptedModel, ScriptedModel, ToolCall
from agentkit.tools import calculator
from agentkit.tracing.evaluation.evaluate import (
    Case,
    DatasetError,
    Outcome,
    as_cases,
    evaluate,
    evaluate_async,
    load_cases,
)
from agentkit.tracing.evaluation.report import EvalReport
from agentkit.tracing.evaluation.scorers import Score, contains, custom, tool_called

ROOT = Path(__file__).parent.parent.parent
QUESTIONS = [
    Case(input="What is 2 plus 2?", expected=4, tags=["add"]),
    Case(input="What is 6 times 7?", expected=42),
    Case(input="Tell me a story", expected="once upon a time"),
]


def calculator_agent(model: ScriptedModel | None = None) -> Any:
    scripted = model or ScriptedModel(demo_responder)
    return lambda case: scripted.act(case.input, [calculator])


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


# -- datasets ---------------------------------------------------------------------------------


def test_load_cases_from_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_text(
        '{"input": "What is 2 plus 2?", "expected": 4}\n'
        "\n"
        '{"id": "story", "input": "Tell me a story", "tags": ["open"], "metadata": {"k": 1}}\n'
        '{"id": 7, "input": [{"role": "system", "content": "Be brief."}, '
        '{"role": "user", "content": "hi"}]}\n'
    )
    cases = load_cases(path)
    assert [case.id for case in cases] == ["0", "story", "7"]
    assert cases[0].expected == 4 and cases[0].tags == []
    assert cases[1].tags == ["open"] and cases[1].metadata == {"k": 1}
    chat = cases[2].chat()
    assert isinstance(chat[0], ak.SystemMessage) and chat[1].content == "hi"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"input": "ok"', "invalid JSON"),
        ('["input"]', "a case must be a JSON object, got list"),
        ('{"expected": 1}', "input: Field required"),
        ('{"input": "q", "answer": 1}', "answer: Extra inputs are not permitted"),
        ('{"input": [{"role": "robot", "content": "x"}]}', "input"),
        ('{"id": "0", "input": "again"}', "duplicate case id '0' (first on line 1)"),
    ],
)
def test_load_cases_names_the_file_and_line_of_a_bad_line(
    tmp_path: Path, line: str, message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"input": "fine"}\n\n' + line + "\n")
    with pytest.raises(DatasetError) as caught:
        load_cases(path)
    assert str(caught.value).startswith(f"{path}:3: ")
    assert message in str(caught.value)


def test_load_cases_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="cannot read the dataset"):
        load_cases(tmp_path / "nope.jsonl")


def test_as_cases_takes_cases_dicts_and_prompts() -> None:
    cases = as_cases([Case(input="a", id="first"), {"input": "b", "expected": 1}, "c"])
    assert [(c.id, c.input) for c in cases] == [("first", "a"), ("1", "b"), ("2", "c")]
    with pytest.raises(DatasetError, match="case 1: duplicate case id 'x'"):
        as_cases([{"id": "x", "input": "a"}, {"id": "x", "input": "b"}])
    with pytest.raises(DatasetError, match="case 0: input: Field required"):
        as_cases([{"expected": 1}])


# -- runs -------------------------------------------------------------------------------------


def test_evaluate_runs_scores_and_reports_every_case() -> None:
    report = evaluate(
        QUESTIONS, calculator_agent(), [contains(), tool_called("calculator")], name="calc"
    )
    assert report.name == "calc" and report.scorers == ["contains", "tool_called:calculator"]
    add, multiply, story = report.results
    assert (add.case_id, add.output, add.expected, add.tags) == (
        "0",
        "The answer is 4.",
        4,
        ["add"],
    )
    assert add.passed and multiply.passed and not story.passed
    assert add.rounds == 2 and story.rounds == 1
    assert add.prompt_tokens > 0 and add.completion_tokens > 0 and add.latency_seconds > 0
    assert story.score("contains") == Score(
        "contains",
        0.0,
        False,
        "'once upon a time' not in 'I can only work out arithmetic questions in this demo.'",
    )
    assert story.error is None and story.status == "failed"
    summary = report.summary
    assert (summary.runs, summary.passed, summary.failed, summary.errors) == (3, 2, 1, 0)
    assert summary.mean_scores == {"contains": 2 / 3, "tool_called:calculator": 2 / 3}


def test_evaluate_reads_a_dataset_path(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_text('{"input": "What is 3 plus 4?", "expected": 7}\n')
    report = evaluate(path, calculator_agent(), [contains()])
    assert [(r.case_id, r.passed) for r in report.results] == [("0", True)]


def test_agents_of_every_shape() -> None:
    model = AsyncScriptedModel(demo_responder)

    async def async_agent(case: Case) -> ak.ActResult:  # async, takes the case
        return await model.act(case.input, [calculator])

    def text_agent(question: str) -> str:  # sync, takes the input, answers text
        return f"echo: {question}"

    scripted = ScriptedModel(["plain reply"])

    def respond_agent(prompt: str) -> ak.PredictionResult:
        return scripted.respond(prompt)

    cases = [Case(input="What is 2 plus 2?", expected=4)]
    assert evaluate(cases, async_agent, [contains()]).results[0].output == "The answer is 4."
    text = evaluate(cases, text_agent).results[0]
    assert text.output == "echo: What is 2 plus 2?" and text.rounds == 0 and text.passed
    coroutine = evaluate(cases, lambda q: model.act(q, [calculator]), [contains()])  # returns one
    assert coroutine.results[0].passed and coroutine.results[0].rounds == 2
    responded = evaluate(cases, respond_agent).results[0]
    assert responded.output == "plain reply" and responded.rounds == 1
    assert responded.completion_tokens == 2


def test_the_agent_gets_the_case_when_it_asks_for_one() -> None:
    seen: list[object] = []

    def annotated(item: Case) -> str:
        seen.append(item)
        return "x"

    def by_name(case: object) -> str:
        seen.append(case)
        return "x"

    evaluate(["q"], annotated)
    evaluate(["q"], by_name)
    evaluate(["q"], lambda item: seen.append(item) or "x")
    assert isinstance(seen[0], Case) and isinstance(seen[1], Case) and seen[2] == "q"


def test_an_agent_that_raises_is_recorded_and_the_run_goes_on() -> None:
    def agent(case: Case) -> str:
        if case.id == "1":
            raise ValueError("no such question")
        return "fine"

    report = evaluate(["a", "b", "c"], agent, [contains("fine")])
    assert [r.status for r in report.results] == ["passed", "error", "passed"]
    errored = report.results[1]
    assert (errored.error_type, errored.error, errored.passed) == (
        "ValueError",
        "no such question",
        False,
    )
    assert errored.scores == [
        Score("contains", 0.0, False, "not scored: the agent raised ValueError")
    ]
    assert report.summary.errors == 1 and report.summary.pass_rate == 2 / 3


def test_an_act_error_keeps_the_partial_run_usage() -> None:
    @ak.tool(retries=1)
    def flaky(x: int) -> int:
        """Always fails."""
        raise RuntimeError("down")

    model = ScriptedModel(lambda chat, i: [ToolCall("flaky", {"x": 1})])
    report = evaluate(["q"], lambda case: model.act(case.input, [flaky]))
    result = report.results[0]
    assert result.error_type == "ToolRetriesExceededError"
    assert result.rounds == 1 and result.prompt_tokens > 0 and result.completion_tokens > 0


def test_an_agent_returning_something_else_is_an_error() -> None:
    result = evaluate(["q"], lambda question: 42).results[0]
    assert result.error_type == "TypeError"
    assert result.error is not None and "returned int" in result.error


def test_a_failing_scorer_fails_its_score_only() -> None:
    def broken(case: Case, outcome: Outcome) -> Score:
        raise RuntimeError("scorer bug")

    report = evaluate(["q"], lambda q: "answer", [broken, contains("answer")])
    result = report.results[0]
    assert result.error is None and not result.passed
    assert result.scores[0] == Score("broken", 0.0, False, "scorer error: RuntimeError: scorer bug")
    assert result.scores[1].passed


def test_async_scorers_are_awaited_in_order() -> None:
    async def slow(case: Case, outcome: Outcome) -> Score:
        await anyio.sleep(0.01)
        return Score("slow", 0.5, True, "awaited")

    report = evaluate(["q"], lambda q: "a", [slow, custom(lambda c, o: True, "sync")])
    assert [s.name for s in report.results[0].scores] == ["slow", "sync"]
    assert report.results[0].scores[0].detail == "awaited"


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ConfigurationError, match="scorer names must be unique"):
        evaluate(["q"], lambda q: "a", [contains(), contains("x")])
    with pytest.raises(ConfigurationError, match="at least 1"):
        evaluate(["q"], lambda q: "a", concurrency=0)
    with pytest.raises(ConfigurationError, match="at least 1"):
        evaluate(["q"], lambda q: "a", repeats=0)


@pytest.mark.anyio
async def test_the_blocking_evaluate_refuses_to_run_inside_an_event_loop() -> None:
    with pytest.raises(ConfigurationError, match="use await evaluate_async"):
        evaluate(["q"], lambda q: q)
    report = await evaluate_async(["q"], lambda q: q)
    assert report.results[0].output == "q"


def test_the_blocking_evaluate_takes_the_arguments_of_evaluate_async() -> None:
    assert inspect.signature(evaluate) == inspect.signature(evaluate_async)
    assert evaluate.__name__ == "evaluate" and "evaluate_async" in (evaluate.__doc__ or "")
    report = evaluate(["a", "b"], lambda q: q, [contains("a")], repeats=2, name="kw")
    assert (report.name, report.repeats, len(report.results)) == ("kw", 2, 4)


def test_async_scorers_behind_a_partial_run_on_the_event_loop() -> None:
    """`agentkit.callbacks.is_async_callable` sees through partials: the scorer is awaited on
    the loop, not called in the worker thread where it could not wait."""

    async def at_least(case: Case, outcome: Outcome, *, length: int) -> bool:
        await anyio.lowlevel.checkpoint()  # needs the event loop
        return len(outcome.output) >= length

    report = evaluate(["ab", "a"], lambda q: q, [functools.partial(at_least, length=2)])
    assert [r.passed for r in report.results] == [True, False]
    assert all("scorer error" not in s.detail for r in report.results for s in r.scores)


@pytest.mark.anyio
async def test_concurrency_bounds_async_agents() -> None:
    running = peak = 0

    async def agent(question: str) -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.02)
        running -= 1
        return question

    report = await evaluate_async([f"q{i}" for i in range(10)], agent, concurrency=3)
    assert peak == 3 and len(report.results) == 10
    assert [r.output for r in report.results] == [f"q{i}" for i in range(10)]
    assert report.concurrency == 3


def test_concurrency_bounds_sync_agents_in_worker_threads() -> None:
    lock = threading.Lock()
    running = peak = 0
    threads: set[int] = set()

    def agent(question: str) -> str:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            threads.add(threading.get_ident())
        time.sleep(0.02)
        with lock:
            running -= 1
        return question

    started = time.perf_counter()
    evaluate([f"q{i}" for i in range(8)], agent, concurrency=2)
    assert peak == 2 and len(threads) >= 2
    assert threading.get_ident() not in threads
    assert time.perf_counter() - started >= 4 * 0.02  # 8 runs, two at a time
    peak = 0
    evaluate([f"q{i}" for i in range(4)], agent, concurrency=1)
    assert peak == 1


def test_repeats_run_each_case_n_times() -> None:
    calls: list[str] = []

    def agent(case: Case) -> str:
        calls.append(case.id or "")
        return "ok" if len(calls) % 2 else "no"

    report = evaluate(["a", "b", "c"], agent, [contains("ok")], repeats=3, concurrency=1)
    assert sorted(calls) == ["0"] * 3 + ["1"] * 3 + ["2"] * 3
    assert [(r.case_id, r.repeat) for r in report.results] == [
        (case, repeat) for case in "012" for repeat in range(3)
    ]
    assert report.repeats == 3 and report.summary.runs == 9 and report.summary.cases == 3
    assert report.summary.passed == 5


# -- traces -----------------------------------------------------------------------------------


def spans_named(exporter: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name.startswith(prefix)]


def test_each_run_is_its_own_trace(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    def agent(case: Case) -> str:
        if case.id == "2":
            raise RuntimeError("boom")
        return "ok"

    cases = [Case(input="a", tags=["x", "y"]), "b", "c"]
    report = evaluate(cases, agent, [contains("ok")], repeats=2, tracer_provider=provider)
    ids = [result.trace_id for result in report.results]
    assert all(len(i) == 32 and int(i, 16) for i in ids)
    assert len(set(ids)) == 6  # distinct per case and repeat
    roots = spans_named(exporter, "eval_case")
    assert sorted(format(span.context.trace_id, "032x") for span in roots) == sorted(ids)
    assert all(span.parent is None for span in roots)
    first = next(
        s for s in roots if s.name == "eval_case 0" and s.attributes["agentkit.eval.repeat"] == 1
    )
    assert first.attributes is not None
    assert first.attributes["agentkit.eval.case_id"] == "0"
    assert first.attributes["agentkit.eval.tags"] == ("x", "y")
    assert first.attributes["agentkit.eval.passed"] is True
    assert first.attributes["agentkit.eval.score.contains"] == 1.0
    failed = next(s for s in roots if s.name == "eval_case 2")
    assert failed.status.status_code is trace.StatusCode.ERROR
    assert failed.events[0].name == "exception"


def test_spans_made_inside_the_agent_are_children_of_the_case_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = provider.get_tracer("test")

    def responder(chat: ak.Chat, round_index: int) -> str:
        with tracer.start_as_current_span("prediction"):  # on the model's own loop thread
            return "done"

    model = ScriptedModel(responder)

    def agent(case: Case) -> ak.ActResult:  # in a worker thread
        with tracer.start_as_current_span("agent"):
            return model.act(case.input)

    report = evaluate(["a", "b"], agent, tracer_provider=provider, concurrency=2)
    for result in report.results:
        root = next(s for s in spans_named(exporter, f"eval_case {result.case_id}"))
        agent_span = next(
            s
            for s in spans_named(exporter, "agent")
            if format(s.context.trace_id, "032x") == result.trace_id
        )
        prediction = next(
            s
            for s in spans_named(exporter, "prediction")
            if format(s.context.trace_id, "032x") == result.trace_id
        )
        assert agent_span.parent is not None and prediction.parent is not None
        assert agent_span.parent.span_id == root.context.span_id
        assert prediction.parent.span_id == agent_span.context.span_id


@pytest.mark.anyio
async def test_async_agent_spans_are_children_too(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = provider.get_tracer("test")

    async def agent(question: str) -> str:
        with tracer.start_as_current_span("agent"):
            await anyio.lowlevel.checkpoint()
            return question

    report = await evaluate_async(["a", "b"], agent, tracer_provider=provider)
    roots = {s.context.span_id: s for s in spans_named(exporter, "eval_case")}
    children = spans_named(exporter, "agent")
    assert len(children) == 2
    assert {c.parent.span_id for c in children if c.parent} == set(roots)
    assert {format(c.context.trace_id, "032x") for c in children} == {
        r.trace_id for r in report.results
    }


def test_no_trace_ids_without_an_sdk() -> None:
    report = evaluate(["a", "b"], lambda q: q, tracer_provider=trace.NoOpTracerProvider())
    assert [r.trace_id for r in report.results] == ["", ""]


# -- progress ---------------------------------------------------------------------------------


def test_progress_on_stderr_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    evaluate(["a", "b", "c", "d"], lambda q: q, [contains("a")], progress=True)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2  # not a terminal: a line at the start and one at the end, not per run
    assert err[0] == "eval..."
    assert err[1].startswith("eval: done in ") and err[1].endswith("; failed 3, errors 0")


def test_progress_names_the_evaluation_and_counts_errors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def agent(question: str) -> str:
        if question == "b":
            raise ValueError("no")
        return question

    evaluate(["a", "b", "c"], agent, [contains("a")], name="letters", progress=True)
    assert capsys.readouterr().err.splitlines()[-1].endswith("; failed 1, errors 1")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_a_bar_by_default_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    evaluate(["a", "b", "c", "d"], lambda q: q, [contains("a")], name="letters")
    drawn = terminal.getvalue()
    assert "eval letters" in drawn and "4/4" in drawn and "failed 3, errors 0" in drawn
    assert "eval letters..." not in drawn  # the bar, not the start/end lines of a log


def test_no_progress_by_default_when_stderr_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    evaluate(["a"], lambda q: q)
    assert capsys.readouterr().err == ""


# -- the command line -------------------------------------------------------------------------


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "arith.jsonl"
    lines = [
        {"id": "add", "input": "What is 2 plus 2?", "expected": 4},
        {"id": "mul", "input": "What is 12345 times 54321?", "expected": 670592745},
        {"id": "story", "input": "Tell me a story", "expected": "once"},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_cli_scripted_run_writes_json_and_html(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json, out_html = tmp_path / "out.json", tmp_path / "out.html"
    code = main(
        ["eval", str(dataset), "--scripted", "--json", str(out_json), "--html", str(out_html)]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith("case ") and "arith: 3 runs of 3 cases: 2 passed, 1 failed" in out
    assert f"wrote {out_json}" in out and f"wrote {out_html}" in out
    report = EvalReport.from_json(out_json)
    assert [(r.case_id, r.passed) for r in report.results] == [
        ("add", True),
        ("mul", True),
        ("story", False),
    ]
    assert report.scorers == ["contains"] and report.results[1].output == "The answer is 670592745."
    page = out_html.read_text()
    assert all(f"<td>{case}" in page for case in ("add", "mul", "story"))


def test_cli_scorers_repeats_and_concurrency(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json = tmp_path / "out.json"
    args = ["eval", str(dataset), "--scripted", "--scorer", "tool_called:calculator"]
    args += ["--scorer", "max_rounds:1", "--repeats", "2", "--concurrency", "1"]
    assert main([*args, "--json", str(out_json)]) == 0
    report = EvalReport.from_json(out_json)
    assert report.scorers == ["tool_called:calculator", "max_rounds:1"]
    assert (report.repeats, report.concurrency, len(report.results)) == (2, 1, 6)
    assert report.summary.mean_scores == {"tool_called:calculator": 2 / 3, "max_rounds:1": 1 / 3}
    assert "add#1" in capsys.readouterr().out


def test_cli_runs_an_agent_from_a_module(
    dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "my_agents.py").write_text("def shout(question):\n    return question.upper()\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "modules", dict(sys.modules))
    assert (
        main(["eval", str(dataset), "--agent", "my_agents:shout", "--scorer", "regex:STORY"]) == 0
    )
    out = capsys.readouterr().out
    assert "WHAT IS 2 PLUS 2?" in out and "1 passed, 2 failed" in out


def test_cli_errors(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(dataset), "--scripted", "--scorer", "fuzzy"]) == 2
    assert "unknown scorer 'fuzzy'" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n")
    assert main(["eval", str(bad), "--scripted"]) == 2
    assert f"{bad}:1: invalid JSON" in capsys.readouterr().err
    assert main(["eval", str(dataset), "--agent", "no_such_module_here:f"]) == 2
    assert "--agent no_such_module_here:f" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval"])
    assert "eval takes a DATASET or --compare" in capsys.readouterr().err


# -- the example, on the local engine ---------------------------------------------------------


def test_example_evaluates_the_calculator_agent_on_the_local_engine(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "evaluate_calculator.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,  # ~11 s alone; generous for a loaded 2-core machine
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("case ")
    assert "calculator agent: 4 runs of 4 cases" in done.stdout
    report = EvalReport.from_json(tmp_path / "eval_report.json")
    assert [r.case_id for r in report.results] == ["multiply", "add", "divide", "subtract"]
    assert report.scorers == ["contains", "tool_called:calculator"]
    for result in report.results:
        assert result.error is None and result.rounds >= 1
        assert result.prompt_tokens > 0 and result.completion_tokens > 0
    assert (
        report.summary.score_pass_rates["tool_called:calculator"] > 0
    )  # the first round must call
    page = (tmp_path / "eval_report.html").read_text()
    assert all(case in page for case in ("multiply", "add", "divide", "subtract"))
