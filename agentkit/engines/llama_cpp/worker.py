"""The worker thread of one loaded llama.cpp instance.

Each loaded instance owns one `llama_cpp.Llama` and one worker thread that serves prediction
requests first-in first-out, so concurrent act() runs on one handle queue and never share a
context mid-prediction. A bounded queue turns overload into `EngineBusyError` instead of
unbounded memory.

The worker keeps the KV cache between requests (see `kv_cache`): a request evaluates only the
tokens after the longest prefix it shares with the live context or a saved state.

Generated text streams to the event loop as it is decoded; cancelling the consumer stops
generation at the next token.
"""

from __future__ import annotations

import codecs
import contextlib
import math
import queue
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel

from agentkit.cancel import call_soon_in_loop
from agentkit.engines.base import FirstToken, ModelInstanceInfo, PredictionDone, PromptProgress
from agentkit.engines.llama_cpp.argument_choice import ARGUMENT_ROOM, argument_to_add
from agentkit.engines.llama_cpp.jump_forward import ArgumentOpening, CallJumpForward
from agentkit.engines.llama_cpp.kv_cache import (
    MIN_RESTORE_GAIN,
    SavedState,
    StateCache,
    shared_prefix,
)
from agentkit.engines.llama_cpp.list_end import another_call
from agentkit.engines.llama_cpp.models import GgufInfo
from agentkit.engines.llama_cpp.name_choice import NameScorer
from agentkit.engines.llama_cpp.prompting.formats import PromptFormat, Segment
from agentkit.engines.llama_cpp.sampling import SamplingParams, TokenSampler
from agentkit.engines.llama_cpp.stop_strings import StopMatcher
from agentkit.engines.llama_cpp.tool_modes import NativeTemplate, RoundPlan
from agentkit.errors import EngineError
from agentkit.results import PredictionStats, Usage

__all__ = [
    "EmbedJob",
    "EngineBusyError",
    "InstanceStats",
    "InstanceWorker",
    "Job",
    "PredictJob",
    "PromptTooLongError",
    "is_end_of_generation",
]


class EngineBusyError(EngineError):
    """The instance's request queue is full."""


class PromptTooLongError(EngineError):
    """The prompt does not fit in the model's context."""


class _Abandoned(Exception):
    """A job's consumer went away while its prompt was being evaluated."""


@dataclass(slots=True)
class InstanceStats:
    """Counters of one loaded instance (for benchmarks and KV-reuse checks)."""

    predictions: int = 0
    prompt_tokens: int = 0
    evaluated_prompt_tokens: int = 0
    generated_tokens: int = 0
    forced_tokens: int = 0  # of the generated ones, inserted by jump-forward (not sampled)
    state_restores: int = 0


@dataclass(slots=True)
class PredictJob:
    """One prediction for the worker: the round's prompt and grammar, sampling and limits."""

    plan: RoundPlan
    params: SamplingParams
    max_tokens: int | None
    stop_strings: tuple[str, ...]
    emit: Callable[[object], None]
    cancelled: threading.Event = field(default_factory=threading.Event)


@dataclass(slots=True)
class EmbedJob:
    """Embeddings of some texts, for the worker of an embedding instance."""

    texts: list[str]
    emit: Callable[[object], None]
    cancelled: threading.Event = field(default_factory=threading.Event)


Job = PredictJob | EmbedJob


class InstanceWorker:
    """A loaded model and the worker thread that serves it."""

    def __init__(
        self,
        info: ModelInstanceInfo,
        llama: Any,
        gguf: GgufInfo,
        prompt_format: PromptFormat,
        native: NativeTemplate | None,
        max_queue: int,
        kv_cache_bytes: int,
        on_idle: Callable[[InstanceWorker], None],
    ) -> None:
        self.info = info
        self.llama = llama
        self.gguf = gguf
        self.format = prompt_format
        self.native = native
        self.stats = InstanceStats()
        self.jobs: queue.Queue[Job | None] = queue.Queue(maxsize=max_queue)
        self.states = StateCache(kv_cache_bytes)
        self._names: NameScorer | None = None  # made on the first weighed choice
        # The last round's calibration prompt as tokens (one render per round, not per choice).
        self._calibrated: tuple[RoundPlan, list[int]] | None = None
        self._on_idle = on_idle
        self.thread = threading.Thread(
            target=self._serve_forever, name=f"agentkit-llama-{info.identifier}", daemon=True
        )
        self.thread.start()

    @property
    def context_length(self) -> int:
        # llama.cpp may pad the context it allocates; llama-cpp-python's token buffer has the
        # size that was asked for, and that is the real limit.
        return min(int(self.llama.n_ctx()), len(self.llama.input_ids))

    def submit(self, job: Job) -> None:
        try:
            self.jobs.put_nowait(job)
        except queue.Full:
            raise EngineBusyError(
                f"{self.jobs.maxsize} requests are already waiting for {self.info.identifier!r}; "
                "retry later, or load another instance with load_new_instance()"
            ) from None

    def stop(self) -> None:
        self.jobs.put(None)

    async def run(
        self, make_job: Callable[[Callable[[object], None]], Job]
    ) -> AsyncIterator[object]:
        """Queue a job on this worker and yield what it emits, raising its errors."""
        send, receive = anyio.create_memory_object_stream[object](math.inf)
        loop = anyio.lowlevel.current_token()

        def emit(item: object) -> None:
            call_soon_in_loop(loop, lambda: _deliver(send, item))

        job = make_job(emit)
        self.submit(job)
        try:
            async with receive:
                async for item in receive:
                    if isinstance(item, BaseException):
                        raise item
                    yield item
        finally:
            job.cancelled.set()

    def _serve_forever(self) -> None:
        ttl = self.info.ttl
        while True:
            try:
                job = self.jobs.get(timeout=ttl)
            except queue.Empty:
                self._on_idle(self)
                continue
            if job is None:
                self.llama.close()
                return
            if job.cancelled.is_set():
                continue
            try:
                if isinstance(job, EmbedJob):
                    job.emit(_pooled(self.llama.embed(job.texts)))
                else:
                    self._serve(job)
            except _Abandoned:
                pass  # the consumer was cancelled; nobody is waiting for this job
            except BaseException as error:  # delivered to the waiting coroutine
                job.emit(error)

    def _serve(self, job: PredictJob) -> None:
        tokens = self._tokenize(job.plan.segments)
        limit = self.context_length
        if len(tokens) >= limit:
            raise PromptTooLongError(
                f"the prompt is {len(tokens)} tokens but {self.info.identifier!r} has a "
                f"{limit}-token context; shorten the chat or load with a larger context_length"
            )
        self._evaluate_prompt(tokens, job)
        budget = limit - len(tokens)
        max_tokens = budget if job.max_tokens is None else min(job.max_tokens, budget)
        generated, finish = self._generate(job, max_tokens)
        self.stats.predictions += 1
        self.stats.prompt_tokens += len(tokens)
        self.stats.generated_tokens += generated
        stats = PredictionStats(len(tokens), generated, peak_memory_bytes=self.peak_memory())
        job.emit(PredictionDone(Usage(len(tokens), generated), finish, stats))
        if self.states.budget:  # after the result went out: not on the caller's clock
            self.states.put(SavedState.capture(self.llama))

    def peak_memory(self) -> int:
        """The memory llama.cpp holds for the prediction just run: the model's weights plus the
        KV cache its tokens occupy (exact sizes from llama.cpp; the KV cache only grows during
        a prediction, so its size at the end is its peak).

        Chosen over the process's peak resident set (VmHWM, reset through
        /proc/self/clear_refs): that counts Python and every other instance predicting at the
        same time, and resetting it takes the process's peak away from everyone else who reads
        it (getrusage, benchmarks). Not included: llama.cpp's compute buffers, sized once at
        load and not reported by its C API, so this is a floor for what the prediction needs.
        """
        from llama_cpp import llama_cpp as native

        llama = self.llama
        return int(llama._model.size()) + int(native.llama_state_seq_get_size(llama.ctx, 0))

    def _tokenize(self, segments: Sequence[Segment]) -> list[int]:
        tokens: list[int] = []
        for index, segment in enumerate(segments):
            tokens += self.llama.tokenize(
                segment.text.encode("utf-8"), add_bos=index == 0, special=segment.special
            )
        return tokens

    def _evaluate_prompt(self, tokens: list[int], job: PredictJob) -> None:
        llama = self.llama
        live = shared_prefix(llama.input_ids[: llama.n_tokens].tolist(), tokens)
        saved = self.states.best(tokens)
        if saved is not None and saved[0] >= live + MIN_RESTORE_GAIN:
            saved[1].restore(llama)
            live = saved[0]
            self.stats.state_restores += 1
        # Re-evaluate at least the last token: its logits are what sampling starts from.
        keep = min(live, len(tokens) - 1)
        llama.n_tokens = keep
        pending = tokens[keep:]
        self.stats.evaluated_prompt_tokens += len(pending)
        batch = max(1, int(llama.n_batch))
        job.emit(PromptProgress(0.0))
        for start in range(0, len(pending), batch):
            if job.cancelled.is_set():
                raise _Abandoned
            llama.eval(pending[start : start + batch])
            job.emit(PromptProgress(min(1.0, (start + batch) / len(pending))))

    def _generate(self, job: PredictJob, max_tokens: int) -> tuple[int, str]:
        llama = self.llama
        splitter = job.plan.router()
        jump = job.plan.jump_forward() if job.plan.jump_forward is not None else None
        if jump is not None:
            jump.close_tokens = len(self._scorer().tokenize(jump.syntax.close))
        special = job.plan.special_output
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = StopMatcher(job.stop_strings)
        generated = 0
        start = int(llama.n_tokens)
        pending: list[int] = []  # kept tokens not yet evaluated
        finish = "length"
        with TokenSampler(llama, job.params, job.plan.grammar) as sampler:
            while generated < max_tokens:
                if job.cancelled.is_set():
                    finish = "cancelled"
                    break
                if jump is not None and (choices := jump.name_choices()):
                    if pending:  # the name is scored from the logits after them
                        llama.eval(pending)
                        pending = []
                    forced = self._choose_name(
                        job.plan, jump.opening, choices, sampler, max_tokens - generated
                    )
                elif jump is not None and job.plan.calibration and jump.list_end_open():
                    if pending:  # weighed from the logits after them
                        llama.eval(pending)
                        pending = []
                    forced = self._settle_list_end(
                        job.plan, jump, sampler, start, max_tokens - generated
                    )
                else:
                    forced = self._forced(jump, sampler, max_tokens - generated)
                if jump is not None and jump.done:  # the list ends where it is (see forced())
                    finish = "stop"
                    break
                if forced:
                    tokens = forced
                else:
                    # Evaluated lazily: the last token of a generation is never needed for
                    # sampling, and the next request's prefix match evaluates it if useful.
                    if pending:
                        llama.eval(pending)
                    token = sampler.sample()
                    if llama.token_eos() == token or is_end_of_generation(llama, token):
                        finish = "stop"
                        break
                    added = self._add_argument(
                        job.plan, jump, sampler, start, token, max_tokens - generated
                    )
                    if added:
                        pending = []  # evaluated before sampling
                        forced = tokens = added
                    else:
                        sampler.accept(token)
                        tokens = [token]
                pending = pending + tokens if forced else tokens
                stopped = False
                for token in tokens:
                    generated += 1
                    if generated == 1:
                        job.emit(FirstToken())
                    text = decoder.decode(llama.detokenize([token], special=special))
                    if jump is not None:
                        jump.feed(text)
                    piece, stopped = stops.feed(text)
                    for event in splitter.feed(piece):
                        job.emit(event)
                    if stopped or splitter.complete:
                        break
                if stopped or splitter.complete or (jump is not None and jump.done):
                    finish = "stop"
                    break
        for event in splitter.feed(stops.flush()):
            job.emit(event)
        for pending_event in splitter.finish():
            job.emit(pending_event)
        return generated, finish

    def _forced(
        self, jump: CallJumpForward | None, sampler: TokenSampler, budget: int
    ) -> list[int]:
        """The tokens jump-forward inserts now (at most `budget`), each accepted by the
        grammar; [] where the model samples."""
        if jump is None:
            return []
        return self._insert(jump.forced(budget), sampler, budget)

    def _choose_name(
        self,
        plan: RoundPlan,
        opening: str,
        choices: Sequence[str],
        sampler: TokenSampler,
        budget: int,
    ) -> list[int]:
        """The best whole name among `choices` (see name_choice), inserted with its closing
        quote; [] where the model samples it after all."""
        scorer = self._scorer()
        calibration = None
        if plan.calibration is not None:
            calibration = self._calibration(plan) + scorer.tokenize(opening)
        best = scorer.best(choices, calibration)
        if best is None:
            return []
        forced = self._insert(f'{best}"', sampler, budget)
        if not forced:
            scorer.refresh()  # sampling needs the last real token's logits, not a candidate's
        return forced

    def _settle_list_end(
        self,
        plan: RoundPlan,
        jump: CallJumpForward,
        sampler: TokenSampler,
        start: int,
        budget: int,
    ) -> list[int]:
        """After a call: whether another follows, by calibrated likelihood (see list_end);
        the tokens inserted for it. `start`: where the generated tokens begin in the context."""
        llama = self.llama
        live = llama.input_ids[: llama.n_tokens].tolist()
        written = jump.settle_list_end()
        if not jump.room_for_another_call(budget):  # forced() closes the list
            return self._forced(jump, sampler, budget)
        output = live[start:]
        if written and output:  # weighed as written up to the call's close, before the comma
            text = self._piece(output[-1])
            head = text[: text.rindex(",")] if "," in text else text
            output = output[:-1] + self._scorer().tokenize(head)
        more = another_call(self._scorer(), live, start, self._calibration(plan), output)
        if written:
            if not more:
                jump.done = True  # the reader ends the list before the comma
                return []
            return self._forced(jump, sampler, budget)
        return self._insert(jump.syntax.next_call if more else jump.syntax.close, sampler, budget)

    def _add_argument(
        self,
        plan: RoundPlan,
        jump: CallJumpForward | None,
        sampler: TokenSampler,
        start: int,
        token: int,
        budget: int,
    ) -> list[int]:
        """Where the model's `token` ends a call's arguments with optional ones left: the
        tokens that start one instead when calibrated likelihood prefers it (see
        argument_choice); [] to keep the model's token, and where `budget` tokens could not
        hold another argument (a call cut by max_tokens is lost)."""
        if jump is None or plan.calibration is None or budget < ARGUMENT_ROOM:
            return []
        # The state is checked before the token is read: this runs for every sampled token.
        if not jump.argument_choice_open():
            return []
        piece = self._piece(token)
        end = jump.arguments_end_at(piece)
        if end < 0:
            return []
        head = piece[:end]  # the value's end, as the model's token writes it
        openings = [
            ArgumentOpening(head + opening.text, opening.values)
            for opening in jump.argument_openings()
        ]
        live = self.llama.input_ids[: self.llama.n_tokens].tolist()
        calibration = [*self._calibration(plan), *live[start:]]
        chosen = argument_to_add(
            self._scorer(), calibration, head + "}", openings, jump.call_text()
        )
        if chosen is None:
            return []
        index, value = chosen
        text = openings[index].text
        # A weighed value is written; otherwise the key, and the model writes its value (the
        # colon and the value's opener are jump-forward's).
        return self._insert(text + value if value else text[: text.rindex(":")], sampler, budget)

    def _scorer(self) -> NameScorer:
        if self._names is None:
            self._names = NameScorer(self.llama)
        return self._names

    def _calibration(self, plan: RoundPlan) -> list[int]:
        """The round's calibration prompt as tokens (see tool_modes)."""
        assert plan.calibration is not None
        if self._calibrated is None or self._calibrated[0] is not plan:
            self._calibrated = (plan, self._tokenize(plan.calibration()))
        return self._calibrated[1]

    def _piece(self, token: int) -> str:
        return self._scorer().piece(token)

    def _insert(self, text: str, sampler: TokenSampler, budget: int) -> list[int]:
        """`text`'s tokens (at most `budget`) as far as the grammar accepts them."""
        if not text:
            return []
        tokens = self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        accepted: list[int] = []
        for token in tokens[:budget]:
            if not sampler.allows(token):
                break  # the grammar disagrees: let the model sample from here
            sampler.accept(token)
            accepted.append(token)
        self.stats.forced_tokens += len(accepted)
        return accepted


def is_end_of_generation(llama: Any, token: int) -> bool:
    """Whether the model's vocabulary marks `token` as ending a generation (EOS, EOT, ...)."""
    from llama_cpp import llama_cpp as native

    return bool(native.llama_vocab_is_eog(llama._model.vocab, token))


def _pooled(embeddings: list[Any]) -> list[list[float]]:
    """One vector per text: mean-pool per-token embeddings when the model has no pooling."""
    vectors = []
    for item in embeddings:
        if item and isinstance(item[0], list):
            width = len(item[0])
            item = [sum(row[i] for row in item) / len(item) for i in range(width)]
        vectors.append([float(x) for x in item])
    return vectors


def _deliver(send: Any, item: object) -> None:
    # A closed stream means the consumer is gone (cancelled); the worker stops at its next check.
    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
        send.send_nowait(item)
