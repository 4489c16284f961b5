"""Limits for data agentkit does not control: model output, server responses, user files.

One module decides how deep, how long and how large untrusted data may be, so every reader
(engines, tool-call parsing, chat loading, schema compilation) fails the same typed way instead
of with RecursionError, ValueError, OverflowError or UnicodeEncodeError from deep inside the
standard library. Callers turn `UntrustedDataError` into the error of their layer: the
invalid-request path for model output, `EngineError` for server data, `ChatFormatError` for
chat data, `ToolDefinitionError` for schemas.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from agentkit.errors import AgentkitError

__all__ = [
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "MAX_MESSAGE_CHARS",
    "UntrustedDataError",
    "check_depth",
    "clean_text",
    "clean_value",
    "clip",
    "describe_exception",
    "loads",
]

MAX_DEPTH = 100
"""Deepest nesting of arrays and objects accepted in untrusted JSON (tool arguments, chunks)."""

MAX_INT_DIGITS = 400
"""Longest integer literal accepted; beyond it arithmetic and float conversion get costly."""

MAX_MESSAGE_CHARS = 4000
"""The most an error message meant for a model carries (see `clip`)."""

_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89abAB]|\\u[dD][c-fC-F]")


class UntrustedDataError(AgentkitError, ValueError):
    """Untrusted data broke a limit (depth, size, number range) or is not valid JSON."""

    def __init__(self, what: str, problem: str) -> None:
        super().__init__(f"{what}: {problem}")
        self.what = what
        self.problem = problem


def loads(text: str | bytes, *, what: str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse untrusted JSON within agentkit's limits.

    Rejects nesting deeper than `max_depth`, integers longer than `MAX_INT_DIGITS` digits,
    numbers that overflow a float and the non-standard `NaN`/`Infinity` literals. Lone UTF-16
    surrogates in strings are replaced by U+FFFD, so the result can always be encoded again.
    """
    try:
        value = json.loads(
            text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_no_constant
        )
    except json.JSONDecodeError as error:
        raise UntrustedDataError(
            what, f"not valid JSON ({error.msg} at position {error.pos})"
        ) from None
    except RecursionError:
        raise UntrustedDataError(what, f"nested deeper than {max_depth} levels") from None
    except UntrustedDataError as error:
        raise UntrustedDataError(what, error.problem) from None
    except (ValueError, TypeError) as error:
        raise UntrustedDataError(what, f"not valid JSON ({describe_exception(error)})") from None
    probe = text if isinstance(text, str) else text.decode("utf-8", "replace")
    if probe.count("[") + probe.count("{") > max_depth:
        check_depth(value, what=what, max_depth=max_depth)
    if _ESCAPED_SURROGATE.search(probe):
        value = clean_value(value)
    return value


def _parse_int(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_INT_DIGITS:
        raise UntrustedDataError("", f"an integer has more than {MAX_INT_DIGITS} digits")
    return int(literal)


def _parse_float(literal: str) -> float:
    if len(literal) > MAX_INT_DIGITS:
        raise UntrustedDataError("", f"a number has more than {MAX_INT_DIGITS} characters")
    value = float(literal)
    if not math.isfinite(value):
        raise UntrustedDataError("", f"the number {literal[:40]} does not fit a float")
    return value


def _no_constant(literal: str) -> float:
    raise UntrustedDataError("", f"{literal} is not a JSON number")


def check_depth(value: Any, *, what: str, max_depth: int = MAX_DEPTH) -> None:
    """Raise `UntrustedDataError` when lists, tuples and dicts nest deeper than `max_depth`.

    Iterative, so it works on data too deep for a recursive walk.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > max_depth:
            raise UntrustedDataError(what, f"nested deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in children)


def clean_text(text: str) -> str:
    """`text` with lone surrogates replaced by U+FFFD (valid pairs are joined)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def clean_value(value: Any) -> Any:
    """A JSON value with every string (keys included) passed through `clean_text`."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [clean_value(item) for item in value]
    if isinstance(value, dict):
        return {clean_text(key): clean_value(item) for key, item in value.items()}
    return value


def clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """At most about `limit` characters of text: its head and tail, with what was cut counted."""
    if len(text) <= limit:
        return text
    head = limit * 3 // 4
    tail = limit - head
    elided = len(text) - head - tail
    return f"{text[:head]} [... {elided} characters elided ...] {text[-tail:]}"


def describe_exception(error: BaseException, limit: int = MAX_MESSAGE_CHARS) -> str:
    """'Type: message' for an exception, even one whose `__str__` raises or never ends."""
    name = type(error).__name__
    try:
        message = str(error)
    except Exception:
        return f"{name} (its message could not be read)"
    if not isinstance(message, str):  # a broken __str__ may return anything
        return name
    return clip(f"{name}: {message}" if message else name, limit)
