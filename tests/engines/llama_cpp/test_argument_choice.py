"""An optional argument the request asks for is not dropped: where the model ends a call's
arguments, adding one, with the value the model would write, is weighed against the
calibration prompt (llama_cpp/argument_choice.py)."""

from __future__ import annotations

from typing import Any

import numpy as np

import agentkit as ak
from agentkit.engines.llama_cpp.engine import LlamaCppEngine
from agentkit.engines.llama_cpp.name_choice import NameScorer

FINDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "City where you are looking for the restaurant."},
        "cuisine": {"type": "string", "description": "Type of cuisine you are interested in."},
        "diet": {
            "type": "string",
            "description": "Dietary preferences. e.g. 'Vegetarian', 'Gluten-free', etc. "
            "Default 'Vegetarian'.",
        },
    },
    "required": ["city", "cuisine"],
}


def test_weighing_against_another_prompt_leaves_the_context_as_it_was(
    client: ak.Client, model: ak.LLM
) -> None:
    engine = client.async_client.engine
    assert isinstance(engine, LlamaCppEngine)
    llama = engine._instance(model.identifier).llama
    live = llama.tokenize(b"The capital of France is", add_bos=True, special=False)
    llama.n_tokens = 0
    llama.eval(live)
    scorer = NameScorer(llama)
    before = scorer.next_log_probs()
    other = scorer.log_probs_after(llama.tokenize(b"My favourite colour is", add_bos=True))
    assert not np.allclose(other, before)  # it did read another context
    assert llama.input_ids[: llama.n_tokens].tolist() == live
    np.testing.assert_allclose(scorer.next_log_probs(), before, atol=1e-3)


CONCERT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "artist": {"type": "string", "description": "Name of the artist/band who's performing."},
        "location": {"type": "string", "description": "City where the concert is taking place."},
        "date": {
            "type": "string",
            "description": "Date of the concert in 'mm-yyyy' format. Default is the current "
            "month if not specified.",
        },
    },
    "required": ["artist", "location"],
}


def _first_call_arguments(model: ak.LLM, request: str, tool: ak.Tool[..., Any]) -> dict[str, Any]:
    result = model.act(
        request,
        [tool],
        config={"temperature": 0, "max_tokens": 128, "tool_choice": "required"},
        max_prediction_rounds=2,
    )
    arguments = result.round_records[0].tool_calls[0].call.arguments
    assert isinstance(arguments, dict)
    return arguments


def _tool(name: str, description: str, schema: dict[str, Any]) -> ak.Tool[..., Any]:
    return ak.define_tool(name, description, schema, lambda **_: "ok")


FINDER = _tool(
    "restaurant_finder",
    "Locate restaurants based on certain criteria such as cuisine, city, and dietary preferences.",
    FINDER_SCHEMA,
)
CONCERT = _tool(
    "concert_get_details",
    "Fetch the details for a particular concert based on the artist and location.",
    CONCERT_SCHEMA,
)


def test_a_greedy_excursion_matches_step_by_step_decoding(client: ak.Client, model: ak.LLM) -> None:
    engine = client.async_client.engine
    assert isinstance(engine, LlamaCppEngine)
    llama = engine._instance(model.identifier).llama
    live = llama.tokenize(b"The capital of France is", add_bos=True, special=False)
    llama.n_tokens = 0
    llama.eval(live)
    scorer = NameScorer(llama)
    first = scorer.next_log_probs()
    opening = scorer.tokenize(" the city of")
    written = scorer.greedy(opening, 4, lambda token: False)
    stops = scorer.greedy(opening, 4, lambda token: token == written[1])
    logp = scorer.log_prob([*opening, *written], first)
    assert llama.input_ids[: llama.n_tokens].tolist() == live  # the context's tokens kept
    # The same, a token at a time through llama.cpp's own eval.
    expected, total, log_probs = [], 0.0, first
    for token in opening:
        total += float(log_probs[token])
        llama.eval([token])
        log_probs = scorer.next_log_probs()
    for _ in range(4):
        token = int(np.argmax(log_probs))
        expected.append(token)
        total += float(log_probs[token])
        llama.eval([token])
        log_probs = scorer.next_log_probs()
    assert written == expected
    assert abs(logp - total) < 1e-2
    assert stops == expected[:1]  # up to the token that ends it, not included


def test_an_optional_argument_the_user_asks_for_is_written(model: ak.LLM) -> None:
    # BFCL's simple_python_286 and _361, their wording. Greedy, the default model ends the
    # concert's arguments after the required ones; the value it would write for the date is
    # the request's, so weighed against the calibration prompt, it is added. (It writes the
    # diet itself.)
    request = "Get concert details for the artist Beyonce performing in San Diego next month "
    request += "(April 2022)."
    assert "2022" in str(_first_call_arguments(model, request, CONCERT).get("date", ""))
    request = "Find Italian restaurants near New York city that serves gluten-free options."
    diet = _first_call_arguments(model, request, FINDER).get("diet", "")
    assert str(diet).lower().startswith("gluten")


def test_an_optional_argument_the_user_does_not_ask_for_is_left_out(model: ak.LLM) -> None:
    # The model ends both; the date it would write is not the request's, and the diet it
    # would write ("Thai") is a value the call holds already: no evidence either way.
    request = "Get concert details for the artist Beyonce performing in San Diego."
    assert "date" not in _first_call_arguments(model, request, CONCERT)
    assert "diet" not in _first_call_arguments(model, "Find Thai restaurants in Boston.", FINDER)
