"""Token sampling for the in-process llama.cpp engine, with fast grammar-constrained decoding.

`TokenSampler` picks the next token from the logits a `llama_cpp.Llama` context holds after
`llama.eval(...)`, with llama.cpp's own C samplers (logit bias, repetition penalty, top-k, top-p,
min-p, temperature, then a seeded draw or greedy) through llama-cpp-python's low-level bindings.
An optional GBNF grammar constrains the output.

Why not llama-cpp-python's grammar sampling: it puts the grammar sampler into the sampler chain,
so every step runs the grammar over every vocabulary entry before top-k. With Gemma 3's 262k-token
vocabulary that pass costs as much as one to three forward passes of the 270M model (25-85 ms
here, more inside JSON strings, where most tokens get far into the grammar), and constrained
decoding ran at a third to a half of the speed of free decoding.

The fast path is llama.cpp's own rejection sampling (`common_sampler_sample`, common/sampling.cpp):

1. Run the unconstrained chain over the logits and take its token.
2. Check only that token against the grammar: apply the grammar sampler to a one-element candidate
   array and see whether its logit became -inf.
3. If the grammar allows it, return it. The grammar touched one token instead of 262k.
4. Otherwise sample again from the logits with every token the grammar forbids masked
   (grammar first, then the chain): the "constrained pass".

Usually the model's own choice is valid (the prompt shows the format, and the grammar mostly
forbids what the model would not pick anyway), so steps 1-3 cost next to nothing. A constrained
pass is still needed a few times per generation (about 1 sample in 12 for a tool call: wherever
the model wants to go on and the grammar says stop; after the closing brace, for one, only
end-of-generation is left), and llama.cpp runs the grammar over the whole vocabulary there, which
alone costs a tool call 10-15% of its speed. So the constrained pass here first tries the 1024
most likely tokens (after logit bias and penalty): the grammar runs over those only, and their
valid tokens are sampled from when that provably gives what the whole-vocabulary pass would. It
does when greedy, or when at least top_k of them are valid (top-k then keeps the k best valid
tokens, all inside the prefix), or when every token outside the prefix lies below min-p's cut-off
and their total probability cannot move top-p's cut. Otherwise the grammar runs over the whole
vocabulary (`full_passes` counts those; `rejections` counts all constrained passes). The same
seed gives the same tokens either way.

With the fast path the token comes from the unconstrained distribution whenever the model's pick
is valid, and from the distribution renormalised over the grammar's tokens when it is not: the
behaviour of llama.cpp's sampler with `grammar_first = false` (its default), not the same as
masking first. The output always satisfies the grammar either way.

`accept(token)` advances the grammar and the penalty history; call it for every token kept, and
stop on an end-of-generation token (`llama_vocab_is_eog`, or `TokenSampler.is_eog`). The grammar
allows end-of-generation tokens only where the text it accepted is complete, and once it can take
no more text it allows nothing else, so a constrained generation ends.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeAlias, TypeVar

import numpy as np
import numpy.typing as npt
from llama_cpp import llama_cpp as _lib

if TYPE_CHECKING:
    import llama_cpp

    _Sampler: TypeAlias = _lib.llama_sampler_p
    _Vocab: TypeAlias = _lib.llama_vocab_p

__all__ = ["GrammarDeadEndError", "SamplingParams", "TokenSampler"]

_T = TypeVar("_T")

# `llama_sampler_init_dist(LLAMA_DEFAULT_SEED)` draws a random seed.
_RANDOM_SEED: Final = 0xFFFFFFFF
# How many recent tokens the repetition penalty looks at (llama-cpp-python's default).
_PENALTY_LAST_N: Final = 64
# How many of the most likely tokens a constrained pass checks before the whole vocabulary.
_PRESCREEN: Final = 1024
# Slack for float32 rounding in llama.cpp's top-p / min-p arithmetic.
_TOLERANCE: Final = 1e-4
_NEG_INF: Final = float("-inf")

# The C `llama_token_data` {int32 id; float logit; float p;} as a numpy record, so a candidate
# array can be filled from the logits with vectorised copies.
_TOKEN_DATA: Final = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
if _TOKEN_DATA.itemsize != ctypes.sizeof(_lib.llama_token_data):  # pragma: no cover
    raise ImportError("llama_token_data has an unexpected layout in this llama-cpp-python")


class GrammarDeadEndError(RuntimeError):
    """The grammar allows no token here (or the logit bias banned every token it allows)."""


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How to pick tokens. The defaults are llama-cpp-python's.

    temperature: 0 is greedy (always the most likely token, after logit bias and penalty).
    top_k: keep the k most likely tokens (0 keeps all). top_p: nucleus sampling (1.0 is off).
    min_p: drop tokens less likely than min_p times the most likely one (0.0 is off).
    repeat_penalty: shrink the logits of tokens among the last 64 accepted ones by this factor
    (1.0 is off). seed: the random seed; None draws one.
    logit_bias: token id -> value added to its logit before anything else (-inf bans it).
    """

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    seed: int | None = None
    logit_bias: Mapping[int, float] | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temperature) and self.temperature >= 0.0):
            raise ValueError(f"temperature must be finite and >= 0, not {self.temperature!r}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 disables it), not {self.top_k!r}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], not {self.top_p!r}")
        if not 0.0 <= self.min_p <= 1.0:
            raise ValueError(f"min_p must be in [0, 1], not {self.min_p!r}")
        if not (math.isfinite(self.repeat_penalty) and self.repeat_penalty > 0.0):
            raise ValueError(f"repeat_penalty must be finite and > 0, not {self.repeat_penalty!r}")
        if self.seed is not None and not 0 <= self.seed < _RANDOM_SEED:
            raise ValueError(f"seed must be in [0, 2**32 - 1) or None, not {self.seed!r}")
        for token, bias in (self.logit_bias or {}).items():
            if math.isnan(bias) or bias == math.inf:
                raise ValueError(f"logit_bias[{token}] must be a number or -inf, not {bias!r}")


class TokenSampler:
    """Samples tokens from a `llama_cpp.Llama` context, optionally under a GBNF grammar.

    In a decode loop::

        llama.reset()
        llama.eval(prompt_tokens)
        with TokenSampler(llama, SamplingParams(temperature=0.7, seed=1), grammar=gbnf) as s:
            while True:
                token = s.sample()
                if s.is_eog(token):
                    break
                s.accept(token)
                llama.eval([token])

    One sampler serves one generation: its grammar and penalty state advance with `accept`.
    It keeps the `Llama` alive; once `llama.close()` has run, `sample` raises RuntimeError.
    """

    def __init__(
        self, llama: llama_cpp.Llama, params: SamplingParams, grammar: str | None = None
    ) -> None:
        # First, so that close() and __del__ work however far __init__ gets.
        self._pre: _Sampler | None = None  # logit bias + penalty, over the whole vocabulary
        self._post: _Sampler | None = None  # top-k ... dist (or greedy): picks the token
        self._grammar: _Sampler | None = None
        self._top: _Sampler | None = None  # top-k(_PRESCREEN), for constrained passes
        self._closed = False
        self._samples = 0
        self._rejections = 0
        self._full_passes = 0
        self._checked = -1  # the last token sample() returned: known valid under the grammar

        self._llama = llama
        self._params = params
        model = llama.model
        vocab = _lib.llama_model_get_vocab(model) if model is not None else None
        if not vocab:
            raise ValueError("the Llama has no model loaded (was it closed?)")
        self._vocab: _Vocab = vocab
        self._n_vocab = int(_lib.llama_vocab_n_tokens(vocab))
        self._n_top = min(_PRESCREEN, self._n_vocab)

        bias = dict(params.logit_bias or {})
        for token in bias:
            if not 0 <= token < self._n_vocab:
                raise ValueError(
                    f"logit_bias names token {token}, outside the vocabulary [0, {self._n_vocab})"
                )

        if grammar is not None:
            self._grammar = _init_grammar(vocab, grammar)
            self._top = _checked(_lib.llama_sampler_init_top_k(self._n_top))
        self._pre = self._build_pre(params, bias)
        self._post = self._build_post(params)

        # The candidate array, reused every step, and the one-element array of the fast path.
        self._ids: npt.NDArray[np.int32] = np.arange(self._n_vocab, dtype=np.int32)
        self._cand: npt.NDArray[Any] = np.zeros(self._n_vocab, dtype=_TOKEN_DATA)
        self._cand_addr = int(self._cand.ctypes.data)
        # The C structs below are typed Any: the bindings' annotations for them are not accurate
        # (`llama_token_data_array.data` is declared an array, `id` a c_int32; they are a
        # pointer and an int).
        self._cand_ptr: Any = ctypes.cast(
            ctypes.c_void_p(self._cand_addr), ctypes.POINTER(_lib.llama_token_data)
        )
        self._cur: Any = _lib.llama_token_data_array()
        self._cur_p: Any = ctypes.pointer(self._cur)
        self._one: Any = _lib.llama_token_data()
        self._one_ptr: Any = ctypes.pointer(self._one)
        self._one_arr: Any = _lib.llama_token_data_array()
        self._one_arr_p: Any = ctypes.pointer(self._one_arr)

    def _build_pre(self, params: SamplingParams, bias: dict[int, float]) -> _Sampler | None:
        if not bias and params.repeat_penalty == 1.0:
            return None
        chain = _new_chain()
        try:
            if bias:
                entries = (_lib.llama_logit_bias * len(bias))(
                    *(_lib.llama_logit_bias(token, value) for token, value in bias.items())
                )
                _add(chain, _lib.llama_sampler_init_logit_bias(self._n_vocab, len(bias), entries))
            if params.repeat_penalty != 1.0:
                # This llama.cpp build still takes n_vocab first (so does its bundled llama.h).
                _add(
                    chain,
                    _lib.llama_sampler_init_penalties(
                        self._n_vocab, _PENALTY_LAST_N, params.repeat_penalty, 0.0, 0.0
                    ),
                )
        except BaseException:
            _lib.llama_sampler_free(chain)
            raise
        return chain

    @staticmethod
    def _build_post(params: SamplingParams) -> _Sampler:
        chain = _new_chain()
        try:
            if params.temperature == 0.0:
                _add(chain, _lib.llama_sampler_init_greedy())
            else:
                if params.top_k > 0:
                    _add(chain, _lib.llama_sampler_init_top_k(params.top_k))
                if params.top_p < 1.0:
                    _add(chain, _lib.llama_sampler_init_top_p(params.top_p, 1))
                if params.min_p > 0.0:
                    _add(chain, _lib.llama_sampler_init_min_p(params.min_p, 1))
                _add(chain, _lib.llama_sampler_init_temp(params.temperature))
                seed = _RANDOM_SEED if params.seed is None else params.seed
                _add(chain, _lib.llama_sampler_init_dist(seed))
        except BaseException:
            _lib.llama_sampler_free(chain)
            raise
        return chain

    # -- stats ----------------------------------------------------------------------------

    @property
    def samples(self) -> int:
        """How many tokens `sample` has returned."""
        return self._samples

    @property
    def rejections(self) -> int:
        """How many times the grammar rejected the model's own pick (a constrained pass ran)."""
        return self._rejections

    @property
    def full_passes(self) -> int:
        """How many constrained passes had to run the grammar over the whole vocabulary."""
        return self._full_passes

    @property
    def params(self) -> SamplingParams:
        return self._params

    # -- sampling -------------------------------------------------------------------------

    def sample(self) -> int:
        """A token for the context's last logits, valid under the grammar (if any).

        Advances no state but the random generator: call `accept` with the token you keep.
        Raises `GrammarDeadEndError` if the grammar allows no token here.
        """
        self._check_open()
        self._load_logits()
        self._apply_pre()
        token = self._pick()
        if self._grammar is not None:
            if not self._allowed(token):
                token = self._constrained()
            self._checked = token
        self._samples += 1
        return token

    def _constrained(self) -> int:
        """Sample among the tokens the grammar allows (the model's own pick was rejected)."""
        self._rejections += 1
        self._load_logits()
        self._apply_pre()
        token = self._constrained_top()
        if token is not None:
            return token
        self._full_passes += 1
        self._load_logits()
        self._apply_pre()
        _lib.llama_sampler_apply(self._grammar, self._cur_p)
        if not np.isfinite(self._cand["logit"]).any():
            raise GrammarDeadEndError(
                "the grammar allows no token here (not even end-of-generation), or the logit "
                "bias banned every token it allows"
            )
        return self._pick()

    def _constrained_top(self) -> int | None:
        """The constrained pass over the most likely tokens, or None where that could differ
        from the pass over the whole vocabulary. Expects fresh logits in the candidate array.
        """
        cur = self._cur
        n_top = self._n_top
        _lib.llama_sampler_apply(self._top, self._cur_p)  # sorts the top n_top to the front
        if cur.size != n_top or ctypes.addressof(cur.data.contents) != self._cand_addr:
            return None  # not what this llama.cpp's top-k is known to do: take the long way
        top = self._cand[:n_top]
        boundary = float(top["logit"][-1])  # every token outside `top` has a logit <= this
        _lib.llama_sampler_apply(self._grammar, self._cur_p)
        valid = top[np.isfinite(top["logit"])]  # still in descending order
        n_valid = len(valid)
        if n_valid == 0:
            return None
        if n_top < self._n_vocab and not self._prefix_decides(valid["logit"], boundary):
            return None
        top[:n_valid] = valid
        cur.data = self._cand_ptr
        cur.size = n_valid
        cur.selected = -1
        cur.sorted = True
        return self._pick()

    def _prefix_decides(self, logits: npt.NDArray[np.float32], boundary: float) -> bool:
        """Whether sampling among `logits` (the valid tokens in the prefix, descending) gives the
        same result as sampling among all valid tokens, each unseen one having a logit <= boundary.
        """
        params = self._params
        n_valid = len(logits)
        if params.temperature == 0.0:
            return True  # greedy: the best valid token is in the prefix
        if 0 < params.top_k <= n_valid:
            return True  # top-k keeps the k best valid tokens: all in the prefix
        # Unseen valid tokens would get through top-k. min-p must drop each of them ...
        best = float(logits[0])
        if params.min_p <= 0.0 or boundary >= best + math.log(params.min_p) - _TOLERANCE:
            return False
        if params.top_p >= 1.0:
            return True
        # ... and their probability mass must not move top-p's cut inside the prefix. With w_i
        # the prefix weights relative to the best token and Z their sum, the unseen mass is at
        # most n_unseen * exp(boundary - best); top-p keeps the first j whose
        # cumsum_j / (Z + unseen) >= p.
        n_unseen = params.top_k - n_valid if params.top_k > 0 else self._n_vocab - self._n_top
        weights = np.exp(logits.astype(np.float64) - best)
        total = float(weights.sum())
        slack = 1.0 + n_unseen * math.exp(boundary - best) / total
        cumulative = np.cumsum(weights)[:-1] / total
        p = params.top_p
        ambiguous = (cumulative >= p - _TOLERANCE) & (cumulative < p * slack + _TOLERANCE)
        return not bool(ambiguous.any())

    def _load_logits(self) -> None:
        ctx = self._llama.ctx
        if ctx is None:
            raise RuntimeError("the Llama context is closed")
        if self._llama.n_tokens == 0:
            raise RuntimeError("the context has no logits: call llama.eval(tokens) first")
        logits_p = _lib.llama_get_logits_ith(ctx, -1)
        if not logits_p:
            raise RuntimeError("the context has no logits: call llama.eval(tokens) first")
        cand = self._cand
        cand["id"] = self._ids  # samplers reorder the array in place
        cand["logit"] = np.ctypeslib.as_array(logits_p, shape=(self._n_vocab,))
        cand["p"] = 0.0
        cur = self._cur
        cur.data = self._cand_ptr  # samplers may repoint it
        cur.size = self._n_vocab
        cur.selected = -1
        cur.sorted = False

    def _apply_pre(self) -> None:
        if self._pre is not None:
            _lib.llama_sampler_apply(self._pre, self._cur_p)

    def _pick(self) -> int:
        cur = self._cur
        _lib.llama_sampler_apply(self._post, self._cur_p)
        selected = int(cur.selected)
        if not 0 <= selected < cur.size:
            raise RuntimeError(f"the sampler chain selected no token (selected={selected})")
        return int(cur.data[selected].id)

    def _allowed(self, token: int) -> bool:
        """Whether the grammar allows `token` next: the grammar sampler on one candidate."""
        one = self._one
        one.id = token
        one.logit = 1.0
        one.p = 0.0
        arr = self._one_arr
        arr.data = self._one_ptr
        arr.size = 1
        arr.selected = -1
        arr.sorted = False
        _lib.llama_sampler_apply(self._grammar, self._one_arr_p)
        return bool(arr.size == 1 and arr.data[0].logit != _NEG_INF)

    def allows(self, token: int) -> bool:
        """Whether the grammar (if any) allows `token` next."""
        self._check_open()
        if not 0 <= token < self._n_vocab:
            return False
        return self._grammar is None or self._allowed(token)

    def accept(self, token: int) -> None:
        """Advance the grammar and the penalty history past `token`.

        Raises ValueError if the grammar does not allow `token` here (llama.cpp itself would
        abort the process).
        """
        self._check_open()
        if not 0 <= token < self._n_vocab:
            raise ValueError(f"token {token} is outside the vocabulary [0, {self._n_vocab})")
        if self._grammar is not None:
            if token != self._checked and not self._allowed(token):
                raise ValueError(f"token {token} is not allowed by the grammar here")
            _lib.llama_sampler_accept(self._grammar, token)
        self._checked = -1
        if self._pre is not None:
            _lib.llama_sampler_accept(self._pre, token)
        _lib.llama_sampler_accept(self._post, token)

    def is_eog(self, token: int) -> bool:
        """Whether `token` ends generation (end of sequence, end of turn, ...)."""
        return bool(_lib.llama_vocab_is_eog(self._vocab, token))

    # -- lifetime -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this TokenSampler is closed")

    def close(self) -> None:
        """Free the C samplers. Safe to call more than once."""
        self._closed = True
        for name in ("_pre", "_post", "_grammar", "_top"):
            sampler = getattr(self, name, None)
            if sampler is not None:
                setattr(self, name, None)
                _lib.llama_sampler_free(sampler)

    def __enter__(self) -> TokenSampler:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # Interpreter shutdown may have torn the bindings down already.
        with contextlib.suppress(Exception):
            self.close()


def _checked(sampler: _Sampler | None) -> _Sampler:
    if not sampler:
        raise RuntimeError("llama.cpp failed to create a sampler")
    return sampler


def _new_chain() -> _Sampler:
    return _checked(_lib.llama_sampler_chain_init(_lib.llama_sampler_chain_default_params()))


def _add(chain: _Sampler, sampler: _Sampler | None) -> None:
    _lib.llama_sampler_chain_add(chain, _checked(sampler))  # the chain owns it from here


def _init_grammar(vocab: _Vocab, grammar: str) -> _Sampler:
    """`llama_sampler_init_grammar`, turning its NULL result into a ValueError with the reason.

    llama.cpp reports GBNF syntax errors by printing to the C stderr and returning NULL, so file
    descriptor 2 is captured during the call (and what was captured passed on if it succeeds).
    """
    if not grammar.strip():
        raise ValueError("the grammar is empty: give GBNF text with a `root` rule")
    try:
        text = grammar.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"the grammar is not valid UTF-8 text: {exc}") from exc
    if b"\0" in text:
        raise ValueError("the grammar contains a NUL character")
    sampler: _Sampler | None
    sampler, stderr = _capture_stderr(lambda: _lib.llama_sampler_init_grammar(vocab, text, b"root"))
    if sampler:
        if stderr:
            sys.stderr.write(stderr)
        return sampler
    details = " ".join(line.strip() for line in stderr.splitlines() if "error" in line.lower())
    reason = details or (
        "llama.cpp rejected it; check that it has a `root` rule, that every rule it uses is "
        "defined, and that no rule is left-recursive"
    )
    raise ValueError(f"invalid GBNF grammar: {reason}")


def _capture_stderr(call: Callable[[], _T]) -> tuple[_T, str]:
    """Run `call()` with file descriptor 2 redirected to a temporary file."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable stderr: run without capturing
        return call(), ""
    try:
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                result = call()
            finally:
                os.dup2(saved, 2)
            tmp.seek(0)
            captured = tmp.read().decode("utf-8", errors="replace")
    finally:
        os.close(saved)
    return result, captured
