"""Whole-name likelihood for a call's name, on the real engine and the default model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from llama_cpp import llama_cpp as native

import agentkit as ak
from agentkit.engines.llama_cpp.engine import LlamaCppEngine
from agentkit.engines.llama_cpp.name_choice import NameScorer

PROMPT = 'Tools: get_weather, get_time. The user asks for the weather.\n{"name": "'
CALIBRATION = 'Tools: get_weather, get_time. The user asks.\n{"name": "'


@pytest.fixture(scope="module")
def llama(client: ak.Client, model: ak.LLM) -> Any:
    engine = client.async_client.engine
    assert isinstance(engine, LlamaCppEngine)
    worker = engine._instance(model.identifier)
    # The worker's thread owns the Llama between jobs only; nothing else is queued here.
    return worker.llama


def _prime(llama: Any, text: str) -> list[int]:
    tokens: list[int] = llama.tokenize(text.encode(), add_bos=True, special=False)
    llama.n_tokens = 0
    llama.eval(tokens)
    return tokens


def _log_probs(llama: Any) -> Any:
    pointer = native.llama_get_logits_ith(llama.ctx, -1)
    logits = np.ctypeslib.as_array(pointer, shape=(llama.n_vocab(),)).astype(np.float64)
    return logits - np.logaddexp.reduce(logits)


def _closing(llama: Any) -> Any:
    return np.array(
        [llama.detokenize([token]).startswith(b'"') for token in range(llama.n_vocab())]
    )


def test_a_name_s_score_is_its_tokens_log_probabilities_and_the_string_s_end(llama: Any) -> None:
    prompt = _prime(llama, PROMPT)
    scores = NameScorer(llama).scores(["get_weather", "get_time"])
    assert scores is not None
    closing = _closing(llama)
    # The same sums, token by token with ordinary evaluation.
    for name, score in zip(["get_weather", "get_time"], scores, strict=True):
        _prime(llama, PROMPT)
        expected = 0.0
        for token in llama.tokenize(name.encode(), add_bos=False, special=False):
            expected += float(_log_probs(llama)[token])
            llama.eval([token])
        expected += float(np.logaddexp.reduce(_log_probs(llama)[closing]))
        # A batch and single tokens take different kernels: they differ in rounding, not more
        # (a wrong position or token would be off by nats).
        assert score == pytest.approx(expected, rel=0.01)
    assert len(prompt) > 0


def test_scoring_leaves_the_context_s_tokens_as_they_were(llama: Any) -> None:
    prompt = _prime(llama, PROMPT)
    scorer = NameScorer(llama)
    assert scorer.scores(["get_weather", "get_time"]) is not None
    assert llama.n_tokens == len(prompt)
    assert llama.input_ids[: len(prompt)].tolist() == prompt
    # What follows is evaluated on the prompt alone: the same logits as without scoring.
    llama.eval(llama.tokenize(b"get", add_bos=False, special=False))
    after_scoring = _log_probs(llama)
    _prime(llama, PROMPT)
    llama.eval(llama.tokenize(b"get", add_bos=False, special=False))
    np.testing.assert_allclose(after_scoring, _log_probs(llama), atol=1e-3)


def test_a_name_that_prefixes_another_must_also_end_the_string(llama: Any) -> None:
    _prime(llama, PROMPT)
    scorer = NameScorer(llama)
    scores = scorer.scores(["get", "get_weather"])
    assert scores is not None
    # Without the end of the string, "get" would always score at least "get_weather"'s.
    assert scores[0] < scores[1]
    assert scorer.best(["get", "get_weather"]) == "get_weather"


def test_calibration_subtracts_the_scores_after_the_calibration_prompt(llama: Any) -> None:
    calibration = llama.tokenize(CALIBRATION.encode(), add_bos=True, special=False)
    names = ["get_weather", "get_time"]
    _prime(llama, CALIBRATION)
    unprompted = NameScorer(llama).scores(names)
    live = _prime(llama, PROMPT)
    scorer = NameScorer(llama)
    prior = scorer.prior(names, calibration)
    assert prior is not None and unprompted is not None
    assert prior == pytest.approx(unprompted, abs=1e-3)
    # The live context is back, its last logits those of the prompt's last token.
    assert llama.n_tokens == len(live) and llama.input_ids[: len(live)].tolist() == live
    after = _log_probs(llama)
    _prime(llama, PROMPT)
    np.testing.assert_allclose(after, _log_probs(llama), atol=1e-3)
    scores = scorer.scores(names)
    assert scores is not None
    calibrated = [s - p for s, p in zip(scores, prior, strict=True)]
    assert scorer.best(names, calibration) == names[int(np.argmax(calibrated))]
    # Kept for the next round with the same tools: no evaluation the second time.
    before = llama.n_tokens
    assert scorer.prior(names, calibration) == prior
    assert llama.n_tokens == before


def gym_find_nearby(location: str) -> str:
    """Find gyms near a location."""
    return f"Gyms in {location}."


def music_shop_find_nearby(location: str, instrument: str = "guitar") -> str:
    """Find music shops near a location that sell an instrument."""
    return f"Music shops in {location}."


def test_a_call_among_several_tools_takes_the_best_whole_name(
    client: ak.Client, model: ak.LLM
) -> None:
    # Greedy, token by token, the default model writes `gym_find_nearby` here (its first
    # token wins); as whole names, the music shop is the more likely one.
    config = {"temperature": 0, "max_tokens": 40, "tool_choice": "required"}
    result = model.act(
        "Find a guitar shop in Nashville.",
        [gym_find_nearby, music_shop_find_nearby],
        config=config,
        max_prediction_rounds=2,
    )
    calls = result.round_records[0].tool_calls
    assert [call.call.name for call in calls] == ["music_shop_find_nearby"]
    assert calls[0].error is None
