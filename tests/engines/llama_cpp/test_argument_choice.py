"""An optional argument the request asks for is not dropped: where the model ends a call's
arguments, adding one, with the value the model would write, is weighed against the
calibration prompt (llama_cpp/argument_choice.py)."""

from __future__ import annotations

from typing import Any

import numpy as np

import agentkit as ak
from agentkit.engines.llama_cpp.engine import LlamaCppEngine
from agentkit.engines.llama_cpp.name_choice import NameScorer


def _strings(descriptions: dict[str, str], required: list[str]) -> dict[str, Any]:
    """An object schema of string parameters, described."""
    properties = {
        key: {"type": "string", "description": text} for key, text in descriptions.items()
    }
    return {"type": "object", "properties": properties, "required": required}


# BFCL's restaurant_finder (simple_python_361) and concert.get_details (simple_python_286).
FINDER_SCHEMA = _strings(
    {
        "city": "City where you are looking for the restaurant.",
        "cuisine": "Type of cuisine you are interested in.",
        "diet": "Dietary preferences. e.g. 'Vegetarian', 'Gluten-free', etc. Default 'Vegetarian'.",
    },
    ["city", "cuisine"],
)
CONCERT_SCHEMA = _strings(
    {
        "artist": "Name of the artist/band who's performing.",
        "location": "City where the concert is taking place.",
        "date": "Date of the concert in 'mm-yyyy' format. Default is the current month if not "
        "specified.",
    },
    ["artist", "location"],
)


def _context_holding(client: ak.Client, model: ak.LLM, text: bytes) -> tuple[Any, list[int]]:
    """The model's llama.cpp context, made to hold `text` (its tokens returned)."""
    engine = client.async_client.engine
    assert isinstance(engine, LlamaCppEngine)
    llama = engine._instance(model.identifier).llama
    tokens: list[int] = llama.tokenize(text, add_bos=True, special=False)
    llama.n_tokens = 0
    llama.eval(tokens)
    return llama, tokens


def test_weighing_against_another_prompt_leaves_the_context_as_it_was(
    client: ak.Client, model: ak.LLM
) -> None:
    llama, live = _context_holding(client, model, b"The capital of France is")
    scorer = NameScorer(llama)
    before = scorer.next_log_probs()
    other = scorer.log_probs_after(llama.tokenize(b"My favourite colour is", add_bos=True))
    assert not np.allclose(other, before)  # it did read another context
    assert llama.input_ids[: llama.n_tokens].tolist() == live
    np.testing.assert_allclose(scorer.next_log_probs(), before, atol=1e-3)


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
    llama, live = _context_holding(client, model, b"The capital of France is")
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
