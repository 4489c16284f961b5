"""Built-in tools."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from agentkit.tools.tool import tool

__all__ = ["calculator", "evaluate_arithmetic"]

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}


def _round(number: Any, ndigits: Any = None) -> Any:
    """`round`, refusing digit counts that would cost time (round(7, -10**7) takes seconds:
    it computes 10**10**7) or mean nothing (no result has more than ~4,300 digits)."""
    if ndigits is None:
        return round(number)
    if not isinstance(ndigits, int):
        raise ValueError(f"the number of digits must be an integer, got {ndigits!r}")
    if abs(ndigits) > _MAX_DIGITS:
        raise ValueError(f"the number of digits must be between {-_MAX_DIGITS} and {_MAX_DIGITS}")
    return round(number, ndigits)


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": _round,
    "floor": math.floor,
    "ceil": math.ceil,
    "log": math.log,
    "exp": math.exp,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}
_MAX_EXPONENT = 10_000
_MAX_BITS = 14_000  # about 4,200 digits, under Python's default limit for str(int)
_MAX_DIGITS = 4_300  # digits a round() may keep or drop
_MAX_LENGTH = 1_000
_MAX_DEPTH = _MAX_LENGTH // 2  # a sum of single digits as long as allowed still fits


def evaluate_arithmetic(expression: str) -> float | int:
    """Evaluate +, -, *, /, //, %, ** and a few math functions; nothing else is allowed.

    Raises ValueError with what was not allowed, so the model can correct the expression.
    """
    if len(expression) > _MAX_LENGTH:
        raise ValueError(f"expression is longer than {_MAX_LENGTH} characters")
    try:
        tree = ast.parse(expression.replace("^", "**").replace("×", "*"), mode="eval")
    except SyntaxError as error:
        raise ValueError(f"not an arithmetic expression: {error.msg}") from error
    try:
        result = _evaluate(tree.body, 0)
    except ZeroDivisionError as error:
        raise ValueError("division by zero") from error
    except OverflowError as error:
        raise ValueError(f"a number is too large for floating point: {error}") from error
    return result  # type: ignore[no-any-return]


def _evaluate(node: ast.expr, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise ValueError(f"expression is nested more than {_MAX_DEPTH} levels deep")
    depth += 1
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _checked(node.value)  # 1e999 is a float literal: inf
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left, depth), _evaluate(node.right, depth)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _checked(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand, depth))
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        args = [_evaluate(arg, depth) for arg in node.args]
        try:
            return _checked(_FUNCTIONS[node.func.id](*args))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{ast.unparse(node)}: {error}") from error
    raise ValueError(
        f"{ast.unparse(node)!r} is not allowed; use numbers, + - * / // % ** and "
        f"{', '.join(_FUNCTIONS)}"
    )


def _check_power(base: Any, exponent: Any) -> None:
    if abs(exponent) > _MAX_EXPONENT:
        raise ValueError(f"exponent {exponent} is too large")
    whole = isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1
    if whole and exponent * math.log2(abs(base)) > _MAX_BITS:
        raise ValueError(f"{base} ** {exponent} has too many digits")


def _checked(value: Any) -> Any:
    """Every intermediate result passes here: bounded integers, finite floats, no complex."""
    if isinstance(value, complex):
        raise ValueError("the result is not a real number")
    if isinstance(value, int) and value.bit_length() > _MAX_BITS:
        raise ValueError("the result has too many digits")
    if isinstance(value, float) and not math.isfinite(value):
        what = "not a number (nan)" if math.isnan(value) else "infinite"
        raise ValueError(f"a number is {what}: too large for floating point")
    return value


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression exactly, e.g. "12345 * 54321" or "sqrt(2) / 3".

    Args:
        expression: the expression, using numbers, + - * / // % ** and parentheses.
    """
    return str(evaluate_arithmetic(expression))
