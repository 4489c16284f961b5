"""JSON in model output, parsed within `agentkit.untrusted`'s limits.

Tool-call parsers need two things `untrusted.loads` does not give: where a value ends (to read
calls one after another) and where and why text is not JSON (`json.JSONDecodeError`'s `pos` and
`msg` tell output cut short by max_tokens from output that is wrong). So text is first scanned
by a decoder whose number hooks do nothing, then the value is parsed by `untrusted.loads`. Deep
nesting, integers of thousands of digits, 1e400 and NaN are `UntrustedDataError` (for the
caller a `MalformedToolCall`), never RecursionError, ValueError or a float infinity.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from agentkit import untrusted
from agentkit.untrusted import UntrustedDataError

__all__ = ["UntrustedDataError", "loads", "raw_decode"]

_WHAT = "the tool call"
# Numbers are only checked for syntax here; untrusted.loads parses them within limits.
_SCANNER = json.JSONDecoder(parse_int=len, parse_float=len, parse_constant=len)
_T = TypeVar("_T")


def loads(text: str) -> Any:
    """The JSON value `text` holds; JSONDecodeError if it is not JSON, UntrustedDataError past
    a limit."""
    _scanned(lambda: _SCANNER.decode(text))
    return untrusted.loads(text, what=_WHAT)


def raw_decode(text: str, position: int) -> tuple[Any, int]:
    """The JSON value starting at `position` and the index where it ends; JSONDecodeError if
    none starts there, UntrustedDataError past a limit."""
    end = _scanned(lambda: _SCANNER.raw_decode(text, position)[1])
    return untrusted.loads(text[position:end], what=_WHAT), end


def _scanned(scan: Callable[[], _T]) -> _T:
    try:
        return scan()
    except RecursionError:
        raise UntrustedDataError(
            _WHAT, f"nested deeper than {untrusted.MAX_DEPTH} levels"
        ) from None
