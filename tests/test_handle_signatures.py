"""The sync and async handles take identical, explicit keyword-only parameters."""

from __future__ import annotations

import inspect

import pytest

import agentkit as ak
from agentkit.testing import ScriptedModel

METHODS = ["act", "respond", "complete", "respond_stream", "complete_stream"]


@pytest.mark.parametrize("name", METHODS)
def test_sync_and_async_signatures_are_identical(name: str) -> None:
    sync = inspect.signature(getattr(ak.LLM, name))
    asynchronous = inspect.signature(getattr(ak.AsyncLLM, name))
    assert list(sync.parameters) == list(asynchronous.parameters)
    for key, parameter in sync.parameters.items():
        other = asynchronous.parameters[key]
        assert (parameter.kind, parameter.default) == (other.kind, other.default), key


@pytest.mark.parametrize("name", METHODS)
def test_no_catch_all_keywords(name: str) -> None:
    parameters = inspect.signature(getattr(ak.AsyncLLM, name)).parameters.values()
    assert all(p.kind is not p.VAR_KEYWORD for p in parameters)


def test_a_misspelled_keyword_is_a_type_error() -> None:
    model = ScriptedModel(["never used"])
    with pytest.raises(TypeError, match="on_mesage"):
        model.act("hi", on_mesage=print)  # type: ignore[call-arg]
    assert model.engine.requests == []  # type: ignore[attr-defined]
    assert model.act("hi", on_message=lambda m: None).final is not None


def test_act_options_documented_in_readme_exist() -> None:
    act = inspect.signature(ak.AsyncLLM.act).parameters
    for option in ["max_prediction_rounds", "on_message", "handle_invalid_tool_request"]:
        assert act[option].kind is inspect.Parameter.KEYWORD_ONLY
