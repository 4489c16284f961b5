"""The built-in calculator: exact arithmetic without eval(), and everything it refuses."""

import math
import time

import anyio
import pytest

from agentkit.errors import ToolArgumentsError
from agentkit.tools import Tool, Toolset, calculator
from agentkit.tools.builtin import evaluate_arithmetic

# --- the tool ------------------------------------------------------------------------------


def test_calculator_is_a_tool_with_a_documented_schema() -> None:
    assert isinstance(calculator, Tool)
    assert calculator.name == "calculator"
    assert calculator.description.startswith("Evaluate an arithmetic expression exactly")
    assert calculator.parameters == {
        "type": "object",
        "properties": {
            "expression": {
                "type": "string",
                "description": "the expression, using numbers, + - * / // % ** and parentheses.",
            }
        },
        "required": ["expression"],
        "additionalProperties": False,
    }
    assert calculator.is_async is False
    assert Toolset([calculator]).get("calculator") is calculator


def test_calculator_computes_exactly() -> None:
    assert calculator("12345*54321") == "670592745"
    assert calculator("12345 * 54321") == str(12345 * 54321)
    assert calculator("2**100") == "1267650600228229401496703205376"
    assert calculator("99999999999999999 + 1") == "100000000000000000"
    # the largest results allowed still render (Python refuses str() of over 4300 digits)
    assert calculator("2 ** 9999 * 2 ** 4000") == str(2**13999)


def test_calculator_runs_through_bind_and_run() -> None:
    bound = calculator.bind({"expression": "12345 * 54321"})
    assert anyio.run(calculator.run, bound) == "670592745"


def test_calculator_rejects_bad_arguments() -> None:
    with pytest.raises(ToolArgumentsError) as caught:
        calculator.bind({"expr": "1+1"})
    assert caught.value.problems == (
        "expression: Field required",
        "expr: Extra inputs are not permitted",
    )


def test_calculator_reports_errors_as_value_errors() -> None:
    with pytest.raises(ValueError, match="not allowed"):
        calculator("os.system('ls')")


# --- what it computes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2", 3),
        ("7 - 10", -3),
        ("6 * 7", 42),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-7 // 2", -4),
        ("7 % 3", 1),
        ("2 ** 10", 1024),
        ("2 ^ 10", 1024),
        ("3 × 4", 12),
        ("-(2 + 3) * +4", -20),
        ("(1 + 2) * (3 + 4)", 21),
        ("2 ** -1", 0.5),
        ("1.5e3 + 0.5", 1500.5),
        ("1_000 * 3", 3000),
        ("sqrt(16)", 4.0),
        ("abs(-3)", 3),
        ("round(2.567, 2)", 2.57),
        ("round(2.5)", 2),
        ("floor(2.7)", 2),
        ("ceil(2.1)", 3),
        ("log(e)", 1.0),
        ("log(8, 2)", 3.0),
        ("exp(0)", 1.0),
        ("2 * pi", 2 * math.pi),
        ("sqrt(sqrt(sqrt(256)))", 2.0),
        ("+".join(["1"] * 500), 500),
        ("7 ** 4000 // 7 ** 3999", 7),
    ],
)
def test_evaluates(expression: str, expected: float) -> None:
    result = evaluate_arithmetic(expression)
    assert result == expected
    assert type(result) is type(expected)


def test_integer_arithmetic_is_exact() -> None:
    assert evaluate_arithmetic("12345*54321") == 670592745
    assert evaluate_arithmetic("123456789 * 987654321") == 121932631112635269
    assert evaluate_arithmetic("3 ** 200") == 3**200
    assert evaluate_arithmetic("2 ** 64 - 1") == 18446744073709551615
    assert evaluate_arithmetic("2 ** 10000") == 2**10000
    assert evaluate_arithmetic("-2 ** 10000") == -(2**10000)
    assert evaluate_arithmetic("(-2) ** 9999") == (-2) ** 9999
    assert evaluate_arithmetic("1 ** 10000 + 0 ** 10000") == 1


# --- what it refuses -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("x + 1", "'x' is not allowed"),
        ("__builtins__", "is not allowed"),
        ("(1).real", "is not allowed"),
        ("pi.__class__", "is not allowed"),
        ("(lambda: 1)()", "is not allowed"),
        ("lambda: 1", "is not allowed"),
        ("__import__('os')", "is not allowed"),
        ("eval('1')", "is not allowed"),
        ("print(1)", "is not allowed"),
        ("sqrt(x=4)", "is not allowed"),
        ("'a' * 3", "is not allowed"),
        ("b'a'", "is not allowed"),
        ("True + 1", "is not allowed"),
        ("None", "is not allowed"),
        ("1j * 2", "is not allowed"),
        ("[1, 2]", "is not allowed"),
        ("{1: 2}", "is not allowed"),
        ("1 < 2", "is not allowed"),
        ("1 if 1 else 2", "is not allowed"),
        ("1 | 2", "is not allowed"),
        ("1 << 2", "is not allowed"),
        ("~1", "is not allowed"),
        ("not 1", "is not allowed"),
        ("[x for x in (1,)]", "is not allowed"),
        ("f'{1}'", "is not allowed"),
        ("sqrt", "is not allowed"),
        ("(sqrt)(x)", "'x' is not allowed"),
        ("1 +", "not an arithmetic expression"),
        ("", "not an arithmetic expression"),
        ("import os", "not an arithmetic expression"),
        ("x = 1", "not an arithmetic expression"),
        ("1; 2", "not an arithmetic expression"),
    ],
)
def test_rejects_anything_but_arithmetic(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate_arithmetic(expression)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("2 ** 100000", "exponent 100000 is too large"),
        ("2 ** -100000", "exponent -100000 is too large"),
        ("2 ** 1e10", "exponent 10000000000.0 is too large"),
        ("10 ** 9999", "10 \\*\\* 9999 has too many digits"),
        ("3 ** 10 ** 4", "3 \\*\\* 10000 has too many digits"),
        ("(2 ** 9999 * 2 ** 9999 * 2 ** 9999 * 2 ** 9999) ** 9999", "too many digits"),
        ("2 ** 7000 * 2 ** 7000", "the result has too many digits"),
        ("2.0 ** 5000", "too large for floating point"),
        ("exp(1000)", "too large for floating point"),
        ("sqrt(10 ** 400)", "too large for floating point"),
        ("10 ** 400 / 3", "too large for floating point"),
        ("round(1e308 * 10)", "too large for floating point"),
    ],
)
def test_rejects_huge_numbers_quickly(expression: str, message: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ValueError, match=message):
        evaluate_arithmetic(expression)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        # round() with many digits computes 10**digits: round(7, -10**7) took 7.8 s.
        ("round(7, -10 ** 7)", "digits must be between -4300 and 4300"),
        ("round(1, -10 ** 9)", "digits must be between -4300 and 4300"),
        ("round(1.5, 10 ** 30)", "digits must be between -4300 and 4300"),
        ("round(2 ** 9000, -(10 ** 4))", "digits must be between"),
        ("round(1, 0.5)", "digits must be an integer"),
        # inf and nan are never results, whichever operation makes them.
        ("1e999", "infinite"),
        ("-1e999 + 1", "infinite"),
        ("1e308 * 10", "infinite"),
        ("1e308 + 1e308", "infinite"),
        ("-1e308 - 1e308", "infinite"),
        ("1e200 ** 2", "too large for floating point"),
        ("2.0 ** 10000", "too large for floating point"),
        ("floor(1e999)", "infinite"),
        ("exp(1e10)", "too large for floating point"),
        ("(2 ** 9999) / 0.5 ** 9999", "too large for floating point"),
        ("10 ** 400 * 1.5", "too large for floating point"),
        ("sqrt(2 ** 9999 * 2 ** 4000)", "too large for floating point"),
        ("log(1e999)", "infinite"),
        # huge exponents, towers and digit counts
        ("9 ** 9 ** 9", "too large"),
        ("2 ** 2 ** 2 ** 2 ** 2", "too large"),
        ("(10 ** 4000) ** 2", "too many digits"),
        ("10 ** 4000 * 10 ** 4000", "too many digits"),
        ("7 ** 9999", "too many digits"),
        ("(-3) ** 10000", "too many digits"),
        ("1.0000001 ** -(10 ** 9)", "too large"),
        # shifts and factorials are not offered at all
        ("1 << 10 ** 9", "is not allowed"),
        ("factorial(10 ** 6)", "is not allowed"),
        ("1 >> -1", "is not allowed"),
    ],
)
def test_every_operation_is_bounded(expression: str, message: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ValueError, match=message):
        evaluate_arithmetic(expression)
    assert time.perf_counter() - started < 2.0


def test_round_within_its_bounds() -> None:
    assert evaluate_arithmetic("round(123456, -3)") == 123000
    assert evaluate_arithmetic("round(1.23456, 4300)") == 1.23456
    assert evaluate_arithmetic("round(7, -4300)") == 0
    assert evaluate_arithmetic("round(2 ** 9000, -2000)") == round(2**9000, -2000)


def test_calculator_errors_reach_the_model_as_tool_failures() -> None:
    """The calculator raises ValueError: act() reports it to the model as the tool's failure."""
    bound = calculator.bind({"expression": "round(1, -10 ** 9)"})
    started = time.perf_counter()
    with pytest.raises(ValueError, match="digits must be between"):
        anyio.run(calculator.run, bound)
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("1 / 0", "division by zero"),
        ("1 // 0", "division by zero"),
        ("1 % 0", "division by zero"),
        ("1.0 / 0.0", "division by zero"),
        ("0 ** -1", "division by zero"),
        ("(-8) ** 0.5", "not a real number"),
        ("sqrt(-1)", "sqrt\\(-1\\): math domain error"),
        ("log(0)", "log\\(0\\): math domain error"),
        ("sqrt()", "sqrt\\(\\): .*argument"),
        ("round(1, 2, 3)", "round\\(1, 2, 3\\): .*argument"),
    ],
)
def test_arithmetic_errors_become_value_errors(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate_arithmetic(expression)


def test_rejects_over_long_input() -> None:
    longest = "+".join(["1"] * 500)
    assert len(longest) == 999
    assert evaluate_arithmetic(longest) == 500
    with pytest.raises(ValueError, match="longer than 1000 characters"):
        evaluate_arithmetic(longest + "+1")
    with pytest.raises(ValueError, match="longer than 1000 characters"):
        evaluate_arithmetic(" " * 1001)


@pytest.mark.parametrize(
    "expression",
    ["-" * 999 + "1", "-+" * 300 + "1", "(" * 300 + "1" + ")" * 300],
    ids=["minus", "signs", "parentheses"],
)
def test_deep_nesting_is_a_value_error_not_a_crash(expression: str) -> None:
    assert len(expression) <= 1000
    with pytest.raises(ValueError, match=r"nested|not an arithmetic expression"):
        evaluate_arithmetic(expression)


def test_moderate_nesting_is_fine() -> None:
    assert evaluate_arithmetic("-" * 400 + "1") == 1
    assert evaluate_arithmetic("(" * 50 + "2" + ")" * 50) == 2
    assert evaluate_arithmetic("abs(" * 150 + "-4" + ")" * 150) == 4
