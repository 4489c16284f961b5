"""Scorers: judge one run of a case, `(case, outcome) -> Score`.

    from agentkit.tracing.evaluation.scorers import contains, tool_called

    evaluate(cases, agent, [contains(), tool_called("calculator", {"expression": "2 + 2"})])

Every factory here returns a `NamedScorer` (a callable with a `name`); any other callable
works too, and may return a `Score`, a bool or a float from 0 to 1 (async ones are awaited).
A scorer that raises, or returns anything else, gives a failed score whose detail says why:
it never ends the evaluation. Scores are named after their scorer, so names must be unique
within one evaluation; each factory takes `name=` to tell two of a kind apart.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, overload

from pydantic import BaseModel

from agentkit import untrusted
from agentkit.chat import Chat
from agentkit.config import PredictionConfigInput
from agentkit.errors import ConfigurationError
from agentkit.handles import LLM, AsyncLLM
from agentkit.results import PredictionResult
from agentkit.structured import OutputFormat, OutputInvalid
from agentkit.tools import json_schema

if TYPE_CHECKING:
    from agentkit.tracing.evaluation.evaluate import Case, Outcome

__all__ = [
    "SCORER_SPECS",
    "AsyncNamedScorer",
    "NamedScorer",
    "Score",
    "Scorer",
    "ScorerSpec",
    "contains",
    "custom",
    "exact",
    "input_text",
    "json_schema_valid",
    "llm_judge",
    "max_rounds",
    "regex",
    "safe_score",
    "safe_score_async",
    "scorer_from_spec",
    "scorer_name",
    "scorer_spellings",
    "tool_called",
]


@dataclass(frozen=True, slots=True)
class Score:
    """One scorer's verdict on one run: a value from 0 to 1, pass or fail, and why."""

    name: str
    value: float
    passed: bool
    detail: str = ""

    def __post_init__(self) -> None:
        value: object = self.value
        if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:  # NaN fails too
            raise ValueError(
                f"score {self.name!r}: value must be a number from 0 to 1, got {value!r}"
            )
        if not isinstance(self.passed, bool):
            raise TypeError(f"score {self.name!r}: passed must be a bool, got {self.passed!r}")
        object.__setattr__(self, "value", float(value))


ScoreLike: TypeAlias = "Score | bool | float"
Scorer: TypeAlias = "Callable[[Case, Outcome], ScoreLike | Awaitable[ScoreLike]]"
Check: TypeAlias = "Callable[[Case, Outcome], Score]"


class NamedScorer:
    """A scorer with a name; calling it gives a `Score` under that name."""

    __slots__ = ("_check", "name")

    def __init__(self, name: str, check: Check) -> None:
        self.name = name
        self._check = check

    def __call__(self, case: Case, outcome: Outcome) -> Score:
        return self._check(case, outcome)

    def __repr__(self) -> str:
        return f"<scorer {self.name}>"


class AsyncNamedScorer:
    """A scorer with a name whose check is a coroutine (an `llm_judge` on an `AsyncLLM`)."""

    __slots__ = ("_check", "name")

    def __init__(self, name: str, check: Callable[[Case, Outcome], Awaitable[Score]]) -> None:
        self.name = name
        self._check = check

    async def __call__(self, case: Case, outcome: Outcome) -> Score:
        return await self._check(case, outcome)

    def __repr__(self) -> str:
        return f"<async scorer {self.name}>"


def scorer_name(scorer: object) -> str:
    """A scorer's `name`, else its function name."""
    name = getattr(scorer, "name", None) or getattr(scorer, "__name__", None)
    return str(name) if name else type(scorer).__name__


def safe_score(scorer: Scorer, case: Case, outcome: Outcome) -> Score:
    """`safe_score_async` without an event loop, for sync scorers (in a worker thread).

    An async scorer runs too as long as it never waits on the event loop; one that does is
    stopped and gives a failed `Score` saying so.
    """
    running = safe_score_async(scorer, case, outcome)
    try:
        running.send(None)
    except StopIteration as done:
        score: Score = done.value
        return score
    with contextlib.suppress(RuntimeError):  # a coroutine that ignores GeneratorExit
        running.close()  # it waited on an event loop there is none of
    return Score(
        scorer_name(scorer),
        0.0,
        False,
        "scorer error: an async scorer waited outside an event loop; run it with "
        "safe_score_async (evaluate() does for scorers defined with async def)",
    )


async def safe_score_async(scorer: Scorer, case: Case, outcome: Outcome) -> Score:
    """Run a scorer, sync or async; an exception or a wrong value gives a failed `Score`."""
    name = scorer_name(scorer)
    try:
        value = scorer(case, outcome)
        if inspect.isawaitable(value):
            value = await value
    except Exception as error:
        return _error_score(name, error)
    return _as_score(name, value)


def _error_score(name: str, error: Exception) -> Score:
    return Score(name, 0.0, False, f"scorer error: {type(error).__name__}: {error}")


def _as_score(name: str, value: object, threshold: float = 0.5) -> Score:
    try:
        if isinstance(value, Score):
            return value if value.name == name else replace(value, name=name)
        if isinstance(value, bool):
            return Score(name, float(value), value)
        if isinstance(value, int | float):
            return Score(name, float(value), value >= threshold)
    except (TypeError, ValueError) as error:
        return _error_score(name, error)
    return Score(
        name,
        0.0,
        False,
        f"scorer error: returned {type(value).__name__}; return a Score, a bool or a float",
    )


def _verdict(name: str, passed: bool, detail: str) -> Score:
    return Score(name, 1.0 if passed else 0.0, passed, detail)


def _short(text: str, limit: int = 80) -> str:
    return repr(text) if len(text) <= limit else repr(text[: limit - 3] + "...")


def _expected_texts(case: Case) -> list[str]:
    """The acceptable answers: `expected` as text, or each item when it is a list."""
    expected = case.expected
    if expected is None:
        return []
    items = expected if isinstance(expected, list | tuple) else [expected]
    return [item if isinstance(item, str) else json.dumps(item) for item in items]


def exact(*, strip: bool = True, casefold: bool = False, name: str = "exact") -> NamedScorer:
    """The final text equals the expected answer (any of them, when `expected` is a list)."""

    def norm(text: str) -> str:
        text = text.strip() if strip else text
        return text.casefold() if casefold else text

    def check(case: Case, outcome: Outcome) -> Score:
        wanted = _expected_texts(case)
        if not wanted:
            return _verdict(name, False, "the case has no expected answer")
        if norm(outcome.output) in {norm(text) for text in wanted}:
            return _verdict(name, True, "matches the expected answer")
        shown = ", ".join(_short(text) for text in wanted)
        return _verdict(name, False, f"expected {shown}, got {_short(outcome.output)}")

    return NamedScorer(name, check)


def contains(
    substring: str | None = None, *, casefold: bool = False, name: str = "contains"
) -> NamedScorer:
    """The final text contains `substring`, or else the expected answer (any, for a list)."""

    def check(case: Case, outcome: Outcome) -> Score:
        wanted = [substring] if substring is not None else _expected_texts(case)
        if not wanted:
            return _verdict(name, False, "no substring given and the case has no expected answer")
        output = outcome.output.casefold() if casefold else outcome.output
        for text in wanted:
            if (text.casefold() if casefold else text) in output:
                return _verdict(name, True, f"contains {_short(text)}")
        shown = " or ".join(_short(text) for text in wanted)
        return _verdict(name, False, f"{shown} not in {_short(outcome.output)}")

    return NamedScorer(name, check)


def regex(pattern: str | re.Pattern[str], *, flags: int = 0, name: str = "regex") -> NamedScorer:
    """The final text matches the pattern somewhere (`re.search`)."""
    compiled = re.compile(pattern, flags) if isinstance(pattern, str) else pattern

    def check(case: Case, outcome: Outcome) -> Score:
        found = compiled.search(outcome.output)
        if found:
            return _verdict(name, True, f"matched {_short(found.group(0))}")
        return _verdict(name, False, f"no match for /{compiled.pattern}/")

    return NamedScorer(name, check)


def json_schema_valid(schema: Mapping[str, Any], *, name: str = "json_schema") -> NamedScorer:
    """The answer is valid against the JSON Schema: the parsed answer when the run had a
    `response_format`, else the final text parsed as act() parses a structured answer (a
    ```json fence is allowed; JSON beyond `agentkit.untrusted`'s limits fails)."""
    try:
        answer_format = OutputFormat(schema)
        validator = json_schema.SchemaValidator(schema)  # compiled once, not per case
    except (ConfigurationError, json_schema.SchemaError) as error:
        raise ConfigurationError(f"json_schema_valid: {error}") from None

    def check(case: Case, outcome: Outcome) -> Score:
        value = outcome.parsed
        if value is None:
            try:
                answer_format.parse(outcome.output)
            except OutputInvalid as invalid:
                return _verdict(name, False, "; ".join(invalid.problems[:3]))
            return _verdict(name, True, "valid")
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        problems = validator.errors(value)
        if problems:
            return _verdict(name, False, "; ".join(problems[:3]))
        return _verdict(name, True, "valid")

    return NamedScorer(name, check)


def tool_called(
    tool: str, arguments: Mapping[str, Any] | None = None, *, name: str | None = None
) -> NamedScorer:
    """Some round called the tool; with `arguments`, a call whose arguments include these
    (a subset match: every given key present with an equal value)."""
    label = name or f"tool_called:{tool}"

    def check(case: Case, outcome: Outcome) -> Score:
        if outcome.result is None:
            return _verdict(label, False, "the agent returned no ActResult to inspect")
        calls = [record.call for record in outcome.tool_calls if record.call.name == tool]
        if not calls:
            made = sorted({record.call.name for record in outcome.tool_calls})
            return _verdict(label, False, f"{tool} was not called (calls: {made or 'none'})")
        if arguments is None:
            return _verdict(label, True, f"{tool} called {len(calls)}x")
        for call in calls:
            given = call.arguments
            if isinstance(given, dict) and all(
                key in given and given[key] == value for key, value in arguments.items()
            ):
                return _verdict(label, True, f"{tool} called with {json.dumps(given)}")
        seen = "; ".join(json.dumps(call.arguments) for call in calls)
        return _verdict(label, False, f"no {tool} call with {json.dumps(dict(arguments))}: {seen}")

    return NamedScorer(label, check)


def max_rounds(limit: int, *, name: str | None = None) -> NamedScorer:
    """The run took at most `limit` prediction rounds."""
    label = name or f"max_rounds:{limit}"

    def check(case: Case, outcome: Outcome) -> Score:
        if outcome.rounds == 0:
            return _verdict(label, False, "no rounds recorded (the agent returned plain text)")
        return _verdict(label, outcome.rounds <= limit, f"{outcome.rounds} rounds (limit {limit})")

    return NamedScorer(label, check)


def custom(
    fn: Callable[[Case, Outcome], ScoreLike], name: str | None = None, *, threshold: float = 0.5
) -> NamedScorer:
    """A scorer from a function returning a bool, a float from 0 to 1 (passes at `threshold`
    or above) or a `Score` (renamed to this scorer's name)."""
    label = name or scorer_name(fn)

    def check(case: Case, outcome: Outcome) -> Score:
        return _as_score(label, fn(case, outcome), threshold)

    return NamedScorer(label, check)


JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "reason": {"type": "string"},
    },
    "required": ["score", "reason"],
}
_JUDGE_INSTRUCTIONS = (
    "You grade an assistant's answer against a rubric. Reply with a JSON object: "
    '{"score": a number from 0 (fails the rubric) to 1 (fully meets it), '
    '"reason": one short sentence}.'
)


def judge_prompt(rubric: str, case: Case, outcome: Outcome) -> str:
    """The grading request an `llm_judge` sends: rubric, question, reference and answer."""
    parts = [f"Rubric:\n{rubric}", f"Question:\n{input_text(case.input)}"]
    if case.expected is not None:
        parts.append(f"Reference answer:\n{', '.join(_expected_texts(case))}")
    parts.append(f"Answer to grade:\n{outcome.output}")
    return "\n\n".join(parts)


def input_text(value: str | list[dict[str, Any]]) -> str:
    """A case input as text: the prompt, or one `role: content` line per chat message."""
    if isinstance(value, str):
        return value
    return "\n".join(f"{m.get('role', '?')}: {m.get('content') or ''}" for m in value)


def _judged(name: str, result: PredictionResult, threshold: float) -> Score:
    verdict = result.parsed
    if not isinstance(verdict, dict):
        raise ValueError(f"the judge gave no JSON verdict: {result.content!r}")
    return Score(name, float(verdict["score"]), verdict["score"] >= threshold, verdict["reason"])


@overload
def llm_judge(
    model: LLM,
    rubric: str,
    *,
    threshold: float = 0.5,
    config: PredictionConfigInput = None,
    name: str = "llm_judge",
) -> NamedScorer: ...
@overload
def llm_judge(
    model: AsyncLLM,
    rubric: str,
    *,
    threshold: float = 0.5,
    config: PredictionConfigInput = None,
    name: str = "llm_judge",
) -> AsyncNamedScorer: ...
def llm_judge(
    model: LLM | AsyncLLM,
    rubric: str,
    *,
    threshold: float = 0.5,
    config: PredictionConfigInput = None,
    name: str = "llm_judge",
) -> NamedScorer | AsyncNamedScorer:
    """A model grades the answer against the rubric: it must reply with
    `{"score": 0..1, "reason": str}` (asked for with a JSON `response_format`); the score is
    the value, it passes at `threshold` or above, and the reason is the detail.

    On an `LLM` the scorer is sync (it blocks, so evaluate() runs it in a worker thread);
    on an `AsyncLLM` it is a coroutine.
    """
    if isinstance(model, AsyncLLM):
        async_model = model

        async def check_async(case: Case, outcome: Outcome) -> Score:
            prompt = judge_prompt(rubric, case, outcome)
            result = await async_model.respond(
                _judge_chat(prompt), response_format=JUDGE_SCHEMA, config=config
            )
            return _judged(name, result, threshold)

        return AsyncNamedScorer(name, check_async)

    sync_model = model

    def check(case: Case, outcome: Outcome) -> Score:
        prompt = judge_prompt(rubric, case, outcome)
        result = sync_model.respond(
            _judge_chat(prompt), response_format=JUDGE_SCHEMA, config=config
        )
        return _judged(name, result, threshold)

    return NamedScorer(name, check)


def _judge_chat(prompt: str) -> Chat:
    chat = Chat(_JUDGE_INSTRUCTIONS)
    chat.add_user_message(prompt)
    return chat


# -- command-line spellings --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScorerSpec:
    """One command-line spelling of a scorer: `name`, or `name:ARGUMENT` with `argument` set
    to the argument's metavar; `build` makes the scorer from the argument ("" when bare)."""

    name: str
    argument: str | None
    help: str
    build: Callable[[str], NamedScorer]

    @property
    def usage(self) -> str:
        """How it is spelled: `contains` or `contains:TEXT`."""
        return self.name if self.argument is None else f"{self.name}:{self.argument}"


def _schema_file_scorer(path: str) -> NamedScorer:
    try:
        schema = untrusted.loads(Path(path).read_text(encoding="utf-8"), what=path)
    except (OSError, ValueError) as error:
        raise ConfigurationError(f"cannot read the schema: {error}") from None
    if not isinstance(schema, dict):
        raise ConfigurationError(f"{path} holds no JSON Schema object")
    return json_schema_valid(schema)


def _max_rounds_scorer(limit: str) -> NamedScorer:
    if not limit.isdigit():
        raise ConfigurationError(f"N must be a whole number, got {limit!r}")
    return max_rounds(int(limit))


SCORER_SPECS: tuple[ScorerSpec, ...] = (
    ScorerSpec("exact", None, "the final text is the expected answer", lambda _: exact()),
    ScorerSpec(
        "contains", None, "the final text contains the expected answer", lambda _: contains()
    ),
    ScorerSpec("contains", "TEXT", "the final text contains TEXT", contains),
    ScorerSpec("regex", "PATTERN", "the final text matches the regular expression", regex),
    ScorerSpec(
        "json_schema", "FILE", "the answer is valid against the schema in FILE", _schema_file_scorer
    ),
    ScorerSpec("tool_called", "NAME", "some round called the tool NAME", tool_called),
    ScorerSpec("max_rounds", "N", "the run took at most N prediction rounds", _max_rounds_scorer),
)
"""Every spelling `scorer_from_spec` reads, in the order help lists them."""


def scorer_spellings() -> str:
    """The spellings as a list in prose: 'exact, contains, ... or max_rounds:N'."""
    usages = [spec.usage for spec in SCORER_SPECS]
    return f"{', '.join(usages[:-1])} or {usages[-1]}"


def scorer_from_spec(spec: str) -> NamedScorer:
    """A scorer from its command-line spelling, one of `SCORER_SPECS` (`regex:^\\d+$`...).

    Raises `ConfigurationError` for an unknown spelling or an argument its factory rejects.
    """
    kind, _, argument = spec.partition(":")
    for form in SCORER_SPECS:
        if form.name == kind and (form.argument is not None) == bool(argument):
            try:
                return form.build(argument)
            except (ConfigurationError, re.error) as error:
                raise ConfigurationError(f"scorer {spec!r}: {error}") from None
    raise ConfigurationError(f"unknown scorer {spec!r}; use {scorer_spellings()}")
