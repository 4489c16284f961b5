"""An optional argument the request asks for is not dropped: where the model ends a call's
arguments, adding one is weighed against the calibration prompt (llama_cpp/argument_choice.py)."""

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


def test_an_optional_argument_the_user_asks_for_is_written(model: ak.LLM) -> None:
    # BFCL's simple_python_361, its wording. Greedy, the default model ends these arguments
    # after the required ones; weighed against the calibration prompt, the diet is added.
    finder = ak.define_tool(
        "restaurant_finder",
        "Locate restaurants based on certain criteria such as cuisine, city, and dietary "
        "preferences.",
        FINDER_SCHEMA,
        lambda **_: "ok",
    )
    result = model.act(
        "Find Italian restaurants near New York city that serves gluten-free options.",
        [finder],
        config={"temperature": 0, "max_tokens": 128, "tool_choice": "required"},
        max_prediction_rounds=2,
    )
    arguments = result.round_records[0].tool_calls[0].call.arguments
    assert isinstance(arguments, dict)
    assert str(arguments.get("diet", "")).lower().startswith("gluten")
