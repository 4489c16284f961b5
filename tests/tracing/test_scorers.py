"""Scorers: each one's pass and fail, and what happens when a scorer goes wrong."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from pydantic import BaseModel

import agentkit as ak
from agentkit.errors import ConfigurationError
from agentkit.testing import AsyncScriptedModel, ReplyLike, ScriptedModel, ToolCall
from agentkit.tools import calculator
from agentkit.tracing.evaluation.evaluate import Case, Outcome
from agentkit.tracing.evaluation.scorers import (
    JUDGE_SCHEMA,
    SCORER_SPECS,
    Score,
    contains,
    custom,
    exact,
    json_schema_valid,
    llm_judge,
    max_rounds,
    regex,
    safe_score,
    safe_score_async,
    scorer_from_spec,
    tool_called,
)


def text(output: str) -> Outcome:
    return Outcome(output)


def acted(replies: Sequence[ReplyLike], **options: Any) -> Outcome:
    """The outcome of a real act() run on a scripted model."""
    result = ScriptedModel(replies).act("question", [calculator], **options)
    output = result.final.text if result.final is not None else ""
    return Outcome(output, result, result.parsed, result.rounds, result.usage)


CALC = [ToolCall("calculator", {"expression": "2 + 2"})]


def test_score_checks_its_value_and_passed() -> None:
    assert Score("s", 1, True).value == 1.0 and isinstance(Score("s", 1, True).value, float)
    with pytest.raises(ValueError, match="from 0 to 1"):
        Score("s", 1.5, True)
    with pytest.raises(ValueError, match="from 0 to 1"):
        Score("s", float("nan"), False)
    with pytest.raises(TypeError, match="passed must be a bool"):
        Score("s", 0.5, "yes")  # type: ignore[arg-type]


def test_exact_strips_and_optionally_casefolds() -> None:
    case = Case(input="q", expected="Paris")
    assert exact()(case, text("  Paris\n")) == Score(
        "exact", 1.0, True, "matches the expected answer"
    )
    miss = exact()(case, text("paris"))
    assert not miss.passed and miss.value == 0.0
    assert miss.detail == "expected 'Paris', got 'paris'"
    assert exact(casefold=True)(case, text("PARIS")).passed
    assert not exact(strip=False)(case, text("Paris ")).passed


def test_exact_accepts_any_expected_answer_of_a_list_and_needs_one() -> None:
    case = Case(input="q", expected=["4", "four"])
    assert exact()(case, text("four")).passed
    assert not exact()(case, text("five")).passed
    assert exact()(Case(input="q", expected=4), text("4")).passed  # non-text expected: as JSON
    none = exact()(Case(input="q"), text("4"))
    assert not none.passed and none.detail == "the case has no expected answer"


def test_contains_the_expected_answer_or_a_given_substring() -> None:
    case = Case(input="q", expected=670592745)
    assert contains()(case, text("The answer is 670592745.")).passed
    missed = contains()(case, text("The answer is 42."))
    assert not missed.passed and missed.detail == "'670592745' not in 'The answer is 42.'"
    assert contains("answer")(Case(input="q"), text("The answer is 42.")).passed
    assert not contains("ANSWER")(case, text("the answer")).passed
    assert contains("ANSWER", casefold=True)(case, text("the answer")).passed
    assert not contains()(Case(input="q"), text("anything")).passed


def test_regex_searches_the_final_text() -> None:
    case = Case(input="q")
    hit = regex(r"\d+")(case, text("it is 42"))
    assert hit.passed and hit.detail == "matched '42'"
    assert not regex(r"^\d+$")(case, text("it is 42")).passed
    assert regex("IT", flags=2)(case, text("it")).passed  # re.IGNORECASE


SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
}


def test_json_schema_valid_on_the_final_text() -> None:
    case = Case(input="q")
    scorer = json_schema_valid(SCHEMA)
    assert scorer(case, text('{"city": "Paris", "population": 2100000}')).passed
    assert scorer(case, text('```json\n{"city": "Paris", "population": 1}\n```')).passed
    wrong = scorer(case, text('{"city": "Paris", "population": "many"}'))
    assert not wrong.passed and wrong.detail == "$.population: expected integer, got string"
    not_json = scorer(case, text("Paris, about two million"))
    assert not not_json.passed and not_json.detail.startswith("the answer: not valid JSON")


def test_json_schema_valid_reads_the_text_within_the_untrusted_limits() -> None:
    scorer = json_schema_valid({"type": "array"})
    deep = scorer(Case(input="q"), text("[" * 5000 + "]" * 5000))
    assert not deep.passed and "nested deeper than 100 levels" in deep.detail
    huge = scorer(Case(input="q"), text("[1e400]"))
    assert not huge.passed and "does not fit a float" in huge.detail


class City(BaseModel):
    city: str
    population: int


def test_json_schema_valid_prefers_the_parsed_answer() -> None:
    outcome = acted(['{"city": "Paris", "population": 2100000}'], response_format=City)
    assert isinstance(outcome.parsed, City)
    assert json_schema_valid(SCHEMA)(Case(input="q"), outcome).passed
    strict = {**SCHEMA, "properties": {**SCHEMA["properties"], "population": {"maximum": 10}}}
    assert not json_schema_valid(strict)(Case(input="q"), outcome).passed


def test_json_schema_valid_rejects_a_bad_schema_at_once() -> None:
    with pytest.raises(ConfigurationError, match="not a JSON type"):
        json_schema_valid({"type": "int"})


def test_tool_called_looks_at_every_round_with_a_subset_match_on_arguments() -> None:
    outcome = acted([CALC, "4"])
    case = Case(input="q")
    assert tool_called("calculator")(case, outcome) == Score(
        "tool_called:calculator", 1.0, True, "calculator called 1x"
    )
    assert tool_called("calculator", {"expression": "2 + 2"})(case, outcome).passed
    wrong = tool_called("calculator", {"expression": "2+2"})(case, outcome)
    assert not wrong.passed and '{"expression": "2 + 2"}' in wrong.detail
    absent = tool_called("search")(case, outcome)
    assert not absent.passed and absent.detail == "search was not called (calls: ['calculator'])"
    assert tool_called("search", name="searched")(case, outcome).name == "searched"


def test_tool_called_fails_without_tool_calls_or_an_act_result() -> None:
    case = Case(input="q")
    assert not tool_called("calculator")(case, acted(["4"])).passed
    plain = tool_called("calculator")(case, text("4"))
    assert not plain.passed and "no ActResult" in plain.detail


def test_max_rounds() -> None:
    case = Case(input="q")
    two = acted([CALC, "4"])
    assert max_rounds(2)(case, two) == Score("max_rounds:2", 1.0, True, "2 rounds (limit 2)")
    assert not max_rounds(1)(case, two).passed
    assert not max_rounds(5)(case, text("4")).passed  # plain text records no rounds


def test_custom_takes_bools_floats_and_scores() -> None:
    case = Case(input="q", expected="4")
    short = custom(lambda c, o: len(o.output) < 10, "short")
    assert short(case, text("4")) == Score("short", 1.0, True)
    assert short(case, text("a long answer")) == Score("short", 0.0, False)
    overlap = custom(lambda c, o: 0.7, "overlap", threshold=0.8)
    assert overlap(case, text("4")) == Score("overlap", 0.7, False)
    renamed = custom(lambda c, o: Score("inner", 0.25, True, "why"), "outer")
    assert renamed(case, text("4")) == Score("outer", 0.25, True, "why")

    def named_function(case: Case, outcome: Outcome) -> bool:
        return True

    assert custom(named_function).name == "named_function"


def test_custom_out_of_range_float_is_a_failed_score() -> None:
    score = custom(lambda c, o: 3.0, "big")(Case(input="q"), text("4"))
    assert not score.passed and "from 0 to 1, got 3.0" in score.detail


def test_a_scorer_that_raises_gives_a_failed_score_with_the_error() -> None:
    def broken(case: Case, outcome: Outcome) -> Score:
        raise KeyError("missing")

    score = safe_score(broken, Case(input="q"), text("4"))
    assert score == Score("broken", 0.0, False, "scorer error: KeyError: 'missing'")
    # also inside a named scorer, e.g. custom()
    boom = safe_score(custom(lambda c, o: 1 / 0, "boom"), Case(input="q"), text("4"))
    assert not boom.passed and boom.name == "boom" and "ZeroDivisionError" in boom.detail


def test_a_scorer_returning_something_else_fails() -> None:
    score = safe_score(lambda c, o: "yes", Case(input="q"), text("4"))  # type: ignore[arg-type,return-value]
    assert not score.passed and "returned str" in score.detail


def test_safe_score_runs_an_async_scorer_that_never_waits_on_a_loop() -> None:
    async def coroutine_scorer(case: Case, outcome: Outcome) -> bool:
        return outcome.output == "4"

    assert safe_score(coroutine_scorer, Case(input="q"), text("4")) == Score(
        "coroutine_scorer", 1.0, True
    )


def test_safe_score_stops_an_async_scorer_that_waits_on_a_loop() -> None:
    finished = []

    async def waits(case: Case, outcome: Outcome) -> bool:
        try:
            await _Suspend()
        finally:
            finished.append("closed")  # the coroutine is closed, not left pending
        return True

    score = safe_score(waits, Case(input="q"), text("4"))
    assert score.name == "waits" and not score.passed
    assert "waited outside an event loop" in score.detail and finished == ["closed"]


class _Suspend:
    """An awaitable that suspends once, as waiting on an event loop does."""

    def __await__(self) -> Any:
        yield None


@pytest.mark.anyio
async def test_safe_score_async_awaits_and_reports_what_the_scorer_raises() -> None:
    async def broken(case: Case, outcome: Outcome) -> Score:
        await anyio.lowlevel.checkpoint()
        raise RuntimeError("judge offline")

    async def slow_pass(case: Case, outcome: Outcome) -> float:
        await anyio.lowlevel.checkpoint()
        return 0.75

    case, outcome = Case(input="q"), text("4")
    assert await safe_score_async(broken, case, outcome) == Score(
        "broken", 0.0, False, "scorer error: RuntimeError: judge offline"
    )
    assert await safe_score_async(slow_pass, case, outcome) == Score("slow_pass", 0.75, True)
    # sync scorers take the same path
    assert await safe_score_async(contains("4"), case, outcome) == safe_score(
        contains("4"), case, outcome
    )


def judge_model(verdict: dict[str, Any] | str) -> ScriptedModel:
    reply = verdict if isinstance(verdict, str) else json.dumps(verdict)
    return ScriptedModel([reply])


def test_llm_judge_asks_for_a_json_verdict_and_scores_with_it() -> None:
    model = judge_model({"score": 0.9, "reason": "correct and concise"})
    judge = llm_judge(model, "The answer must give the product.", config={"temperature": 0})
    case = Case(input="What is 6 times 7?", expected=42)
    score = judge(case, text("It is 42."))
    assert score == Score("llm_judge", 0.9, True, "correct and concise")
    request = model.engine.requests[0]
    assert request.response_format is not None
    assert request.response_format.schema == JUDGE_SCHEMA
    assert request.config.temperature == 0
    prompt = request.messages[-1].content
    assert "The answer must give the product." in prompt
    assert "What is 6 times 7?" in prompt and "Reference answer:\n42" in prompt
    assert "Answer to grade:\nIt is 42." in prompt


def test_llm_judge_low_score_fails_and_a_bad_verdict_is_an_error_score() -> None:
    low = llm_judge(judge_model({"score": 0.2, "reason": "wrong"}), "r")
    assert low(Case(input="q"), text("x")) == Score("llm_judge", 0.2, False, "wrong")
    strict = llm_judge(judge_model({"score": 0.6, "reason": "ok"}), "r", threshold=0.8)
    assert not strict(Case(input="q"), text("x")).passed
    garbled = llm_judge(judge_model("I think it is fine"), "r", name="judge")
    score = safe_score(garbled, Case(input="q"), text("x"))
    assert score.name == "judge" and not score.passed
    assert "StructuredOutputError" in score.detail


@pytest.mark.anyio
async def test_llm_judge_on_an_async_model_is_a_coroutine_scorer() -> None:
    model = AsyncScriptedModel([json.dumps({"score": 1, "reason": "exact"})])
    judge = llm_judge(model, "r")
    score = await safe_score_async(
        judge, Case(input=[{"role": "user", "content": "hi"}]), text("x")
    )
    assert score == Score("llm_judge", 1.0, True, "exact")
    assert "Question:\nuser: hi" in model.engine.requests[0].messages[-1].content


def test_scorer_from_spec(tmp_path: Path) -> None:
    case = Case(input="q", expected="42")
    assert scorer_from_spec("exact")(case, text("42")).passed
    assert scorer_from_spec("contains")(case, text("it is 42")).passed
    assert scorer_from_spec("contains:it is")(case, text("it is 42")).passed
    assert not scorer_from_spec("contains:it is")(case, text("42")).passed
    assert scorer_from_spec(r"regex:^\d+$")(case, text("42")).passed
    assert scorer_from_spec("tool_called:calculator").name == "tool_called:calculator"
    assert scorer_from_spec("max_rounds:3").name == "max_rounds:3"
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "integer"}))
    assert scorer_from_spec(f"json_schema:{schema}")(case, text("42")).passed
    assert not scorer_from_spec(f"json_schema:{schema}")(case, text('"42"')).passed
    for bad in ("nope", "regex", "max_rounds:x", "exact:1", f"json_schema:{tmp_path / 'no'}"):
        with pytest.raises(ConfigurationError):
            scorer_from_spec(bad)


def test_scorer_from_spec_names_the_spec_when_its_argument_is_bad(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"scorer 'regex:\(': .*missing \)"):
        scorer_from_spec("regex:(")
    with pytest.raises(ConfigurationError, match="scorer 'max_rounds:x': N must be a whole"):
        scorer_from_spec("max_rounds:x")
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(ConfigurationError, match="holds no JSON Schema object"):
        scorer_from_spec(f"json_schema:{listed}")
    bad_schema = tmp_path / "bad.json"
    bad_schema.write_text('{"type": "int"}')
    with pytest.raises(ConfigurationError, match="not a JSON type"):
        scorer_from_spec(f"json_schema:{bad_schema}")


def test_every_registered_spelling_builds_and_the_error_lists_them_all(tmp_path: Path) -> None:
    schema = tmp_path / "s.json"
    schema.write_text("{}")
    arguments = {"TEXT": "x", "PATTERN": "x+", "FILE": str(schema), "NAME": "calc", "N": "2"}
    usages = []
    for spec in SCORER_SPECS:
        spelled = spec.name if spec.argument is None else f"{spec.name}:{arguments[spec.argument]}"
        assert callable(scorer_from_spec(spelled)) and spec.help
        usages.append(spec.usage)
    assert usages[:3] == ["exact", "contains", "contains:TEXT"]
    with pytest.raises(ConfigurationError) as caught:
        scorer_from_spec("fuzzy")
    message = str(caught.value)
    assert message.startswith("unknown scorer 'fuzzy'; use exact, contains, contains:TEXT, ")
    assert message.endswith(" or max_rounds:N") and all(u in message for u in usages)


def test_every_scorer_works_on_a_real_act_result() -> None:
    """The scorers together on one calculator run, as evaluate() would call them."""
    outcome = acted([CALC, "The answer is 4."])
    case = Case(input="What is 2 plus 2?", expected="4")
    scores = [
        scorer(case, outcome)
        for scorer in (
            contains(),
            regex(r"answer is \d"),
            tool_called("calculator"),
            max_rounds(2),
            custom(lambda c, o: o.usage.total_tokens > 0, "tokens"),
        )
    ]
    assert all(score.passed for score in scores), scores
    assert outcome.tool_calls[0].result == "4" and isinstance(outcome.result, ak.ActResult)
