"""Choosing a tool call's name by the likelihood of the whole name, calibrated.

Greedy decoding commits to a call's name one token at a time: offered `gym_find_nearby` and
`music_shop_find_nearby`, a small model picks whichever first token it ranks higher, and the
grammar then holds it to the tool that token starts, even when the model ranks the other name
higher as a whole. Where a name starts and several offered tools fit, each candidate's full
token sequence is scored instead: the sum of its tokens' log-probabilities, plus the
probability that the string ends after it (so `get` does not win over `get_weather` for being
its prefix).

A small model also favours some names whatever the request (the first tool listed, a short or
common name). So each name's score is calibrated: from it is subtracted the same name's score
after a prompt with the same instructions and tools but no conversation ("what would it call
unprompted"), the pointwise mutual information between the request and the name (Holtzman et
al. 2021, "Surface form competition"; Zhao et al. 2021, "Calibrate before use"). The best
calibrated name is inserted.

Each candidate costs one batched forward pass over its tokens; the calibration prompt costs
evaluating it from where it parts from the live prompt (the conversation) and then the live
prompt's tail again, and its scores are kept for the next round with the same tools.
Sums were chosen over length-normalised scores (divided by the token count): both were
measured on BFCL (README, "Tool-call accuracy") and normalising won nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from llama_cpp import llama_cpp as _lib

from agentkit.engines.llama_cpp.kv_cache import SavedState, shared_prefix

__all__ = ["NameScorer"]

_PRIORS_KEPT = 64


class NameScorer:
    """Scores continuations of a `llama_cpp.Llama` context by their log-likelihood.

    One per loaded instance (it keeps the vocabulary's string-closing tokens and the
    calibration scores of recent tool sets); used from the instance's worker thread only.
    """

    __slots__ = ("_closing", "_llama", "_n_vocab", "_priors", "_starting")

    def __init__(self, llama: Any) -> None:
        self._llama = llama
        self._n_vocab = int(llama.n_vocab())
        self._closing: npt.NDArray[np.bool_] | None = None
        self._starting: dict[str, npt.NDArray[np.bool_]] = {}
        self._priors: dict[tuple[tuple[int, ...], tuple[str, ...]], list[float] | None] = {}

    def best(self, texts: Sequence[str], calibration: Sequence[int] | None = None) -> str | None:
        """The best of `texts` as the next text, each followed by the end of the JSON string:
        by log-probability, less the log-probability after `calibration` (the tokens of a
        prompt without the conversation, up to the same point) when given. None where they
        cannot be scored (longer than a batch or the context)."""
        prior = self.prior(texts, calibration) if calibration is not None else None
        scores = self.scores(texts)
        if scores is None:
            return None
        if prior is not None:
            scores = [score - base for score, base in zip(scores, prior, strict=True)]
        return texts[int(np.argmax(scores))]

    def scores(self, texts: Sequence[str]) -> list[float] | None:
        """Each text's log-probability as the next text, ending the string after it.

        Expects every token before it evaluated (the context's last logits are the next
        token's). Leaves the context's tokens as they were; its last logits are not kept.
        """
        encoded = [self.tokenize(text) for text in texts]
        if not encoded or not self.fits(max(len(tokens) for tokens in encoded)):
            return None
        first = self.next_log_probs()
        closing = self._closing_tokens()
        results = []
        for tokens in encoded:
            if not tokens:  # the name written so far is a whole offered name
                results.append(float(np.logaddexp.reduce(first[closing])))
                continue
            total, last = self._path(tokens, first)
            results.append(total + float(np.logaddexp.reduce(last[closing])))
        return results

    def log_prob(self, tokens: Sequence[int], first: npt.NDArray[np.float64]) -> float:
        """The log-probability of `tokens` as the next tokens, `first` the next token's
        log-probabilities. Leaves the context's tokens as they were, not its last logits."""
        return self._path(tokens, first)[0] if tokens else 0.0

    def greedy(self, tokens: Sequence[int], limit: int, ends: Callable[[int], bool]) -> list[int]:
        """The model's likeliest continuation of the context and `tokens`: up to `limit`
        tokens, up to one that `ends` (not included). Leaves the context's tokens as they
        were, not its last logits; [] where it would not fit in a batch or the context."""
        if not tokens or not self.fits(len(tokens) + limit):
            return []
        base = int(self._llama.n_tokens)
        written: list[int] = []
        try:
            row = self._decode(list(tokens), base)[-1]
            while len(written) < limit:
                token = int(np.argmax(row))
                if ends(token):
                    break
                written.append(token)
                row = self._decode([token], base + len(tokens) + len(written) - 1)[0]
        finally:
            self._forget(base)
        return written

    def fits(self, count: int) -> bool:
        """Whether `count` tokens can be evaluated after the context, in one batch."""
        llama = self._llama
        return count <= int(llama.n_batch) and int(llama.n_tokens) + count <= int(llama.n_ctx())

    def tokenize(self, text: str) -> list[int]:
        """`text`'s tokens as the output would hold them (no BOS, no special tokens)."""
        tokens: list[int] = self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        return tokens

    def piece(self, token: int) -> str:
        """A token's text."""
        return self.text([token])

    def text(self, tokens: Sequence[int]) -> str:
        """The text of `tokens`."""
        text: bytes = self._llama.detokenize(list(tokens))
        return text.decode("utf-8", "replace")

    def prior(self, texts: Sequence[str], calibration: Sequence[int]) -> list[float] | None:
        """`scores(texts)` after the `calibration` tokens instead of the live context, which
        is put back afterwards (its last logits evaluated again). Kept per prompt and texts."""
        key = (tuple(calibration), tuple(texts))
        if key in self._priors:
            return self._priors[key]
        llama = self._llama
        live = llama.input_ids[: llama.n_tokens].tolist()
        if not calibration or len(calibration) >= int(llama.n_ctx()) or not live:
            return None
        try:
            self.goto(calibration)
            prior = self.scores(texts)
        finally:
            self.goto(live)
        if len(self._priors) >= _PRIORS_KEPT:
            self._priors.pop(next(iter(self._priors)))
        self._priors[key] = prior
        return prior

    def next_log_probs(self) -> npt.NDArray[np.float64]:
        """The next token's log-probabilities after the context's last evaluated token."""
        return _log_softmax(self._logits(-1))

    def log_probs_after(self, tokens: Sequence[int]) -> npt.NDArray[np.float64]:
        """The next token's log-probabilities after `tokens` instead of the context (see
        `elsewhere`)."""
        with self.elsewhere(tokens) as first:
            return first

    @contextlib.contextmanager
    def elsewhere(self, tokens: Sequence[int]) -> Iterator[npt.NDArray[np.float64]]:
        """Within: the context holds `tokens`; yields the next token's log-probabilities.
        Afterwards the context is put back from a copy of its KV state (cheaper than
        evaluating its tail again), its last token evaluated again so that its logits are
        the next token's."""
        llama = self._llama
        saved = SavedState.capture(llama)
        try:
            self.goto(tokens)
            yield self.next_log_probs()
        finally:
            saved.restore(llama)
            self.refresh()

    def refresh(self) -> None:
        """Evaluate the context's last token again, so that its logits are the next token's
        (an excursion leaves another position's logits behind)."""
        llama = self._llama
        if llama.n_tokens:
            last = int(llama.input_ids[llama.n_tokens - 1])
            llama.n_tokens -= 1
            llama.eval([last])

    def next_chars(self, log_probs: npt.NDArray[np.float64], chars: Sequence[str]) -> list[float]:
        """From next-token log-probabilities: the log-probability that the next token's text
        starts with each of `chars`, spaces before it allowed."""
        return [
            float(np.logaddexp.reduce(log_probs[self._tokens_starting(char)])) for char in chars
        ]

    def goto(self, tokens: Sequence[int]) -> None:
        """Make the context hold `tokens`, evaluating them from where they part from it (the
        last one at least, so its logits are the next token's)."""
        llama = self._llama
        live = llama.input_ids[: llama.n_tokens].tolist()
        shared = min(shared_prefix(live, list(tokens)), len(tokens) - 1)
        llama.n_tokens = shared
        llama.eval(list(tokens[shared:]))

    def _path(
        self, tokens: Sequence[int], first: npt.NDArray[np.float64]
    ) -> tuple[float, npt.NDArray[np.float64]]:
        """The log-probability of `tokens` after the context (`first`: the next token's
        log-probabilities), and the log-probabilities of the token after them."""
        llama = self._llama
        base = int(llama.n_tokens)
        try:
            rows = [_log_softmax(row) for row in self._decode(list(tokens), base)]
        finally:
            self._forget(base)
        total = float(first[tokens[0]])
        for row, token in zip(rows[:-1], tokens[1:], strict=True):
            total += float(row[token])
        return total, rows[-1]

    def _forget(self, base: int) -> None:
        """Drop what was evaluated past `base` (the next eval would overwrite it anyway)."""
        self._llama.n_tokens = base
        self._llama._ctx.kv_cache_seq_rm(-1, base, -1)

    def _decode(self, tokens: list[int], base: int) -> list[npt.NDArray[np.float32]]:
        """Evaluate `tokens` after position `base` with logits for every one of them."""
        llama = self._llama
        llama._ctx.kv_cache_seq_rm(-1, base, -1)
        llama._batch.set_batch(batch=tokens, n_past=base, logits_all=True)
        llama._ctx.decode(llama._batch)
        return [self._logits(index) for index in range(len(tokens))]

    def _logits(self, index: int) -> npt.NDArray[np.float32]:
        pointer = _lib.llama_get_logits_ith(self._llama.ctx, index)
        if not pointer:
            raise RuntimeError("llama.cpp kept no logits for that position")
        return np.ctypeslib.as_array(pointer, shape=(self._n_vocab,)).copy()

    def _tokens_starting(self, char: str) -> npt.NDArray[np.bool_]:
        """Which tokens' text starts with `char` after any spaces."""
        mask = self._starting.get(char)
        if mask is None:
            wanted = char.encode("utf-8")
            mask = self._vocab_mask(lambda piece: piece.lstrip(b" ").startswith(wanted))
            self._starting[char] = mask
        return mask

    def _closing_tokens(self) -> npt.NDArray[np.bool_]:
        """Which tokens end a JSON string: those whose text starts with a quote."""
        if self._closing is None:
            self._closing = self._vocab_mask(lambda piece: piece[:1] == b'"')
        return self._closing

    def _vocab_mask(self, test: Callable[[bytes], bool]) -> npt.NDArray[np.bool_]:
        vocab = _lib.llama_model_get_vocab(self._llama.model)
        buffer = ctypes.create_string_buffer(64)
        mask = np.zeros(self._n_vocab, dtype=np.bool_)
        for token in range(self._n_vocab):
            size = _lib.llama_token_to_piece(vocab, token, buffer, 64, 0, False)
            mask[token] = size > 0 and test(buffer.raw[:size])
        return mask


def _log_softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    values = logits.astype(np.float64)
    result: npt.NDArray[np.float64] = values - np.logaddexp.reduce(values)
    return result
