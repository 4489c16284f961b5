"""agentkit.untrusted: limits on untrusted JSON and text fail typed, within bounded time."""

from __future__ import annotations

import json
import time

import pytest
from fuzzing import fuzz
from hypothesis import given
from hypothesis import strategies as st

from agentkit.errors import AgentkitError
from agentkit.untrusted import (
    MAX_DEPTH,
    MAX_INT_DIGITS,
    UntrustedDataError,
    check_depth,
    clean_text,
    clip,
    describe_exception,
    loads,
)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[" * 100_000, "nested deeper"),
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "nested deeper"),
        ("1" * (MAX_INT_DIGITS + 1), "digits"),
        ("1e400", "does not fit a float"),
        ("NaN", "not a JSON number"),
        ("-Infinity", "not a JSON number"),
        ('{"a": ', "not valid JSON"),
    ],
)
def test_hostile_json_is_a_typed_error(text: str, problem: str) -> None:
    with pytest.raises(UntrustedDataError, match=problem) as caught:
        loads(text, what="tool arguments")
    assert str(caught.value).startswith("tool arguments: ")
    assert isinstance(caught.value, AgentkitError)


def test_nesting_up_to_the_limit_parses() -> None:
    text = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert loads(text, what="x") == json.loads(text)


def test_lone_surrogates_are_replaced_and_pairs_kept() -> None:
    value = loads('{"a": "x\\ud800y", "\\udc00": "\\ud83d\\ude00"}', what="x")
    assert value == {"a": "x\ufffdy", "\ufffd": "\U0001f600"}
    json.dumps(value).encode()  # encodable again


def test_clean_text() -> None:
    assert clean_text("ok") == "ok"
    assert clean_text("a\udfffb") == "a\ufffdb"


def test_check_depth_walks_data_too_deep_for_recursion() -> None:
    deep: list[object] = []
    for _ in range(200_000):
        deep = [deep]
    with pytest.raises(UntrustedDataError):
        check_depth(deep, what="chat")
    check_depth({"a": [[1]]}, what="chat")


def test_clip_keeps_head_and_tail() -> None:
    text = "a" * 3000 + "b" * 3000
    clipped = clip(text, 1000)
    assert len(clipped) < 1100 and clipped.startswith("a") and clipped.endswith("b")
    assert "5000 characters elided" in clipped
    assert clip("short") == "short"


def test_describe_exception_survives_a_raising_str() -> None:
    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert describe_exception(Broken()) == "Broken (its message could not be read)"
    assert describe_exception(ValueError("x" * 100_000)).startswith("ValueError: x")
    assert len(describe_exception(ValueError("x" * 100_000))) < 5000


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=50,
)


@fuzz(300)
@given(st.one_of(st.text(), json_values.map(lambda v: json.dumps(v, allow_nan=True))))
def test_only_typed_errors_escape_and_results_encode(text: str) -> None:
    started = time.perf_counter()
    try:
        value = loads(text, what="x")
    except UntrustedDataError:
        pass
    else:
        json.dumps(value, allow_nan=False).encode("utf-8")
    assert time.perf_counter() - started < 5
