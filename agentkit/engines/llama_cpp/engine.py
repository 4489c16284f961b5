"""The embedded engine: llama.cpp in-process through llama-cpp-python.

Each loaded instance owns one `llama_cpp.Llama` and one worker thread that serves prediction
requests first-in first-out, so concurrent act() runs on one handle queue and never share a
context mid-prediction. A bounded queue turns overload into `EngineBusyError` instead of
unbounded memory.

The worker keeps the KV cache between requests: a request evaluates only the tokens after the
longest prefix it shares with what the context holds. When chats interleave, the context holds
another chat's tokens, so after each prediction the worker also saves the context state in a
small LRU (bounded in bytes, `kv_cache_bytes`) and restores the saved state that shares the
longest prefix with the next request when that beats the live context.

Generated text streams to the event loop as it is decoded; cancelling the consumer stops
generation at the next token.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import math
import os
import queue
import threading
import warnings
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel

from agentkit.cancel import call_soon_in_loop
from agentkit.config import LoadConfig, PredictionConfig
from agentkit.engines.base import (
    DownloadedModelInfo,
    FirstToken,
    ModelInfo,
    ModelInstanceInfo,
    ModelKind,
    PredictionDone,
    PredictionEvent,
    PredictionRequest,
    PromptProgress,
)
from agentkit.engines.llama_cpp.models import (
    GgufInfo,
    list_downloaded_models,
    read_gguf_info,
    resolve_model,
)
from agentkit.engines.llama_cpp.native_tools import detect_tool_format
from agentkit.engines.llama_cpp.prompting.formats import (
    PromptFormat,
    Segment,
    format_for_architecture,
)
from agentkit.engines.llama_cpp.prompting.jinja import JinjaPromptFormat
from agentkit.engines.llama_cpp.sampling import SamplingParams, TokenSampler
from agentkit.engines.llama_cpp.tool_modes import NativeTemplate, RoundPlan, plan_round
from agentkit.errors import ConfigurationError, EngineError, ModelNotFoundError
from agentkit.results import Usage

__all__ = ["EngineBusyError", "InstanceStats", "LlamaCppEngine", "PromptTooLongError"]

DEFAULT_CONTEXT_LENGTH = 4096
DEFAULT_MAX_QUEUE = 256
DEFAULT_KV_CACHE_BYTES = 256 * 1024 * 1024
# Restoring a state costs about as much as evaluating a few tokens (measured ~1-4 ms against
# ~3 ms per prompt token here): not worth it for a gain smaller than this.
_MIN_RESTORE_GAIN = 4


class _Abandoned(Exception):
    """A job's consumer went away while its prompt was being evaluated."""


class EngineBusyError(EngineError):
    """The instance's request queue is full."""


class PromptTooLongError(EngineError):
    """The prompt does not fit in the model's context."""


@dataclass(slots=True)
class InstanceStats:
    """Counters of one loaded instance (for benchmarks and KV-reuse checks)."""

    predictions: int = 0
    prompt_tokens: int = 0
    evaluated_prompt_tokens: int = 0
    generated_tokens: int = 0
    state_restores: int = 0


@dataclass(slots=True)
class _PredictJob:
    plan: RoundPlan
    params: SamplingParams
    max_tokens: int | None
    stop_strings: tuple[str, ...]
    emit: Callable[[object], None]
    cancelled: threading.Event = field(default_factory=threading.Event)


@dataclass(slots=True)
class _EmbedJob:
    texts: list[str]
    emit: Callable[[object], None]
    cancelled: threading.Event = field(default_factory=threading.Event)


_Job = _PredictJob | _EmbedJob


@dataclass(frozen=True, slots=True)
class _SavedState:
    """The KV cache of sequence 0 and the tokens it holds."""

    tokens: tuple[int, ...]
    data: bytes

    @classmethod
    def capture(cls, llama: Any) -> _SavedState:
        from llama_cpp import llama_cpp as native

        size = native.llama_state_seq_get_size(llama.ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        written = native.llama_state_seq_get_data(llama.ctx, buffer, size, 0)
        tokens = tuple(llama.input_ids[: llama.n_tokens].tolist())
        return cls(tokens, bytes(memoryview(buffer)[:written]))

    def restore(self, llama: Any) -> None:
        from llama_cpp import llama_cpp as native

        llama._ctx.kv_cache_seq_rm(-1, 0, -1)
        buffer = (ctypes.c_uint8 * len(self.data)).from_buffer_copy(self.data)
        if native.llama_state_seq_set_data(llama.ctx, buffer, len(self.data), 0) == 0:
            raise EngineError("llama.cpp could not restore a saved KV state")
        llama.input_ids[: len(self.tokens)] = self.tokens
        llama.n_tokens = len(self.tokens)


class _StateCache:
    """Saved KV states by token prefix, least recently used evicted past a byte budget."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._states: OrderedDict[tuple[int, ...], _SavedState] = OrderedDict()
        self._bytes = 0

    def best(self, tokens: Sequence[int]) -> tuple[int, _SavedState] | None:
        best: tuple[int, tuple[int, ...]] | None = None
        for key in self._states:
            shared = _shared_prefix(key, tokens)
            if shared and (best is None or shared > best[0]):
                best = (shared, key)
        if best is None:
            return None
        self._states.move_to_end(best[1])
        return best[0], self._states[best[1]]

    def put(self, state: _SavedState) -> None:
        if len(state.data) > self.budget:
            return
        # A held state that the new one extends can never be the best match again.
        for tokens in [t for t in self._states if state.tokens[: len(t)] == t]:
            self._bytes -= len(self._states.pop(tokens).data)
        self._states[state.tokens] = state
        self._bytes += len(state.data)
        while self._bytes > self.budget:
            _, evicted = self._states.popitem(last=False)
            self._bytes -= len(evicted.data)


def _shared_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    limit = min(len(a), len(b))
    index = 0
    while index < limit and a[index] == b[index]:
        index += 1
    return index


class _Instance:
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
        on_idle: Callable[[_Instance], None],
    ) -> None:
        self.info = info
        self.llama = llama
        self.gguf = gguf
        self.format = prompt_format
        self.native = native
        self.stats = InstanceStats()
        self.jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=max_queue)
        self.states = _StateCache(kv_cache_bytes)
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

    def submit(self, job: _Job) -> None:
        try:
            self.jobs.put_nowait(job)
        except queue.Full:
            raise EngineBusyError(
                f"{self.jobs.maxsize} requests are already waiting for {self.info.identifier!r}; "
                "retry later, or load another instance with load_new_instance()"
            ) from None

    def stop(self) -> None:
        self.jobs.put(None)

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
                if isinstance(job, _EmbedJob):
                    job.emit(_pooled(self.llama.embed(job.texts)))
                else:
                    self._serve(job)
            except _Abandoned:
                pass  # the consumer was cancelled; nobody is waiting for this job
            except BaseException as error:  # delivered to the waiting coroutine
                job.emit(error)

    def _serve(self, job: _PredictJob) -> None:
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
        job.emit(PredictionDone(Usage(len(tokens), generated), finish))
        if self.states.budget:  # after the result went out: not on the caller's clock
            self.states.put(_SavedState.capture(self.llama))

    def _tokenize(self, segments: Sequence[Segment]) -> list[int]:
        tokens: list[int] = []
        for index, segment in enumerate(segments):
            tokens += self.llama.tokenize(
                segment.text.encode("utf-8"), add_bos=index == 0, special=segment.special
            )
        return tokens

    def _evaluate_prompt(self, tokens: list[int], job: _PredictJob) -> None:
        llama = self.llama
        live = _shared_prefix(llama.input_ids[: llama.n_tokens].tolist(), tokens)
        saved = self.states.best(tokens)
        if saved is not None and saved[0] >= live + _MIN_RESTORE_GAIN:
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

    def _generate(self, job: _PredictJob, max_tokens: int) -> tuple[int, str]:
        llama = self.llama
        splitter = job.plan.router()
        special = job.plan.special_output
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = _StopMatcher(job.stop_strings)
        generated = 0
        token = -1
        finish = "length"
        with TokenSampler(llama, job.params, job.plan.grammar) as sampler:
            while generated < max_tokens:
                if job.cancelled.is_set():
                    finish = "cancelled"
                    break
                if generated:
                    # Evaluated lazily: the last token of a generation is never needed for
                    # sampling, and the next request's prefix match evaluates it if useful.
                    llama.eval([token])
                token = sampler.sample()
                if llama.token_eos() == token or _is_end_of_generation(llama, token):
                    finish = "stop"
                    break
                sampler.accept(token)
                generated += 1
                if generated == 1:
                    job.emit(FirstToken())
                piece, stopped = stops.feed(
                    decoder.decode(llama.detokenize([token], special=special))
                )
                for event in splitter.feed(piece):
                    job.emit(event)
                if stopped:
                    finish = "stop"
                    break
        for event in splitter.feed(stops.flush()):
            job.emit(event)
        for pending in splitter.finish():
            job.emit(pending)
        return generated, finish


def _token_text(llama: Any, token: int) -> str:
    if token < 0:
        return ""
    return bytes(llama.detokenize([token], special=True)).decode("utf-8", errors="replace")


def _pooled(embeddings: list[Any]) -> list[list[float]]:
    """One vector per text: mean-pool per-token embeddings when the model has no pooling."""
    vectors = []
    for item in embeddings:
        if item and isinstance(item[0], list):
            width = len(item[0])
            item = [sum(row[i] for row in item) / len(item) for i in range(width)]
        vectors.append([float(x) for x in item])
    return vectors


def _is_end_of_generation(llama: Any, token: int) -> bool:
    from llama_cpp import llama_cpp as native

    return bool(native.llama_vocab_is_eog(llama._model.vocab, token))


class _StopMatcher:
    """Finds stop strings across token boundaries, looking only at the recent tail."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = tuple(stop for stop in stops if stop)
        self._keep = max((len(stop) for stop in self._stops), default=1) - 1
        self._tail = ""

    def feed(self, piece: str) -> tuple[str, bool]:
        """Text safe to emit now, and whether a stop string was found.

        Up to (longest stop - 1) characters are held back, since they may start a stop string
        that the next token completes; `flush` returns them when generation ends.
        """
        if not self._stops:
            return piece, False
        window = self._tail + piece
        found = [window.find(stop) for stop in self._stops if stop in window]
        if found:
            self._tail = ""
            return window[: min(found)], True
        split = max(len(window) - self._keep, 0)
        self._tail = window[split:]
        return window[:split], False

    def flush(self) -> str:
        """Held-back text once generation has ended without a stop string."""
        held, self._tail = self._tail, ""
        return held


def _sampling_params(config: PredictionConfig | None) -> SamplingParams:
    if config is None:
        return SamplingParams()
    values: dict[str, Any] = {
        "temperature": config.temperature,
        "top_k": config.top_k,
        "top_p": config.top_p,
        "min_p": config.min_p,
        "repeat_penalty": config.repeat_penalty,
        "seed": config.seed,
        "logit_bias": config.logit_bias,
    }
    return SamplingParams(**{k: v for k, v in values.items() if v is not None})


class LlamaCppEngine:
    """In-process llama.cpp inference (the default engine)."""

    def __init__(
        self, *, max_queue: int = DEFAULT_MAX_QUEUE, kv_cache_bytes: int = DEFAULT_KV_CACHE_BYTES
    ) -> None:
        try:
            import llama_cpp  # noqa: F401 - fail early with a helpful message
        except ImportError as error:
            from agentkit.errors import EngineUnavailableError

            raise EngineUnavailableError(
                "llama-cpp-python is not installed; run `agentkit install-engine` to build it "
                "for this CPU (about 7 minutes on 2 cores, then cached)"
            ) from error
        self._max_queue = max_queue
        self._kv_cache_bytes = kv_cache_bytes
        self._instances: dict[str, _Instance] = {}
        self._lock = threading.Lock()  # guards _instances; workers expire instances from threads
        self._loading = anyio.Lock()

    @property
    def provider_name(self) -> str:
        """gen_ai.provider.name of this engine."""
        return "llama_cpp"

    def stats(self, identifier: str) -> InstanceStats:
        """Counters of a loaded instance."""
        return self._instance(identifier).stats

    async def get_or_load(
        self,
        model_key: str | None,
        config: LoadConfig | None,
        ttl: float | None,
        kind: ModelKind = "llm",
    ) -> ModelInstanceInfo:
        """A loaded instance of the model; a differing load config is ignored with a warning."""
        key, path = resolve_model(model_key)
        async with self._loading:  # two callers asking for one model must not load it twice
            return await self._get_or_load(key, path, config, ttl, kind)

    async def _get_or_load(
        self, key: str, path: Path, config: LoadConfig | None, ttl: float | None, kind: ModelKind
    ) -> ModelInstanceInfo:
        with self._lock:
            for instance in self._instances.values():
                if instance.info.model_key == key and instance.info.kind == kind:
                    if config is not None and config != instance.info.load_config:
                        warnings.warn(
                            f"{key!r} is already loaded with {instance.info.load_config!r}; the "
                            f"requested {config!r} is ignored (use load_new_instance to load "
                            "it with another config)",
                            stacklevel=2,
                        )
                    return instance.info
        identifier = key if kind == "llm" else f"{key}:embedding"
        return await self._load(key, path, identifier, config, ttl, kind)

    async def load_new_instance(
        self,
        model_key: str,
        identifier: str | None,
        config: LoadConfig | None,
        ttl: float | None,
        kind: ModelKind = "llm",
    ) -> ModelInstanceInfo:
        """Load another instance even if the model is loaded."""
        key, path = resolve_model(model_key)
        async with self._loading:
            with self._lock:
                if identifier is None:
                    identifier = _free_identifier(key, self._instances)
                elif identifier in self._instances:
                    raise ConfigurationError(f"an instance named {identifier!r} is already loaded")
            return await self._load(key, path, identifier, config, ttl, kind)

    async def _load(
        self,
        key: str,
        path: Path,
        identifier: str,
        config: LoadConfig | None,
        ttl: float | None,
        kind: ModelKind,
    ) -> ModelInstanceInfo:
        config = config or LoadConfig()
        gguf = read_gguf_info(path)
        template = config.chat_template or gguf.chat_template
        tool_format = None
        if config.chat_format is None and template is not None:
            tool_format = detect_tool_format(template)
        if tool_format is None:  # JSON mode on a built-in format; fails early if none fits
            prompt_format = format_for_architecture(gguf.architecture, config.chat_format)
        llama = await anyio.to_thread.run_sync(_new_llama, str(path), config, gguf, kind)
        native = None
        if tool_format is not None and template is not None:
            jinja = JinjaPromptFormat(
                template,
                _token_text(llama, llama.token_bos()),
                _token_text(llama, llama.token_eos()),
            )
            native = NativeTemplate(jinja, tool_format)
            prompt_format = jinja
        info = ModelInstanceInfo(key, identifier, config, ttl, kind)
        instance = _Instance(
            info,
            llama,
            gguf,
            prompt_format,
            native,
            self._max_queue,
            self._kv_cache_bytes,
            self._expire,
        )
        with self._lock:
            self._instances[identifier] = instance
        return info

    def _expire(self, instance: _Instance) -> None:
        with self._lock:
            if self._instances.get(instance.info.identifier) is instance and instance.jobs.empty():
                del self._instances[instance.info.identifier]
                instance.stop()

    async def unload(self, identifier: str) -> None:
        """Unload an instance; queued requests still finish first."""
        with self._lock:
            instance = self._instances.pop(identifier, None)
        if instance is None:
            raise ModelNotFoundError(f"no loaded instance is named {identifier!r}")
        instance.stop()
        await anyio.to_thread.run_sync(instance.thread.join)

    async def list_loaded(self) -> list[ModelInstanceInfo]:
        """The loaded instances."""
        with self._lock:
            return [instance.info for instance in self._instances.values()]

    async def list_downloaded(self) -> list[DownloadedModelInfo]:
        """GGUF files in agentkit's models dir and LM Studio's models folders."""
        found = await anyio.to_thread.run_sync(list_downloaded_models)
        return [DownloadedModelInfo(m.key, str(m.path), m.size_bytes, m.source) for m in found]

    async def get_info(self, identifier: str) -> ModelInfo:
        """GGUF metadata of a loaded instance's model file."""
        instance = self._instance(identifier)
        gguf = instance.gguf
        return ModelInfo(
            model_key=instance.info.model_key,
            architecture=gguf.architecture,
            parameters=gguf.parameters,
            quantization=gguf.quantization,
            size_bytes=gguf.size_bytes,
            trained_context_length=gguf.context_length,
            path=str(gguf.path),
        )

    async def get_context_length(self, identifier: str) -> int:
        """The loaded context length."""
        return self._instance(identifier).context_length

    async def tokenize(self, identifier: str, text: str) -> list[int]:
        """Token ids of text, with the model's tokenizer (no special tokens parsed)."""
        llama = self._instance(identifier).llama
        return list(llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def _instance(self, identifier: str) -> _Instance:
        with self._lock:
            instance = self._instances.get(identifier)
        if instance is None:
            raise ModelNotFoundError(f"no loaded instance is named {identifier!r}")
        return instance

    async def embed(self, identifier: str, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, from an instance loaded as an embedding model."""
        instance = self._instance(identifier)
        if instance.info.kind != "embedding":
            raise ConfigurationError(
                f"{identifier!r} is loaded as a language model; get an embedding handle with "
                "client.embedding.model(...)"
            )
        async for vectors in _served(instance, lambda emit: _EmbedJob(list(texts), emit)):
            return vectors  # type: ignore[return-value]
        raise EngineError(f"{identifier!r} returned no embeddings")

    async def predict(
        self, identifier: str, request: PredictionRequest
    ) -> AsyncGenerator[PredictionEvent, None]:
        """One prediction, streamed from the instance's worker thread."""
        instance = self._instance(identifier)
        if instance.info.kind != "llm":
            raise ConfigurationError(f"{identifier!r} is an embedding model; it cannot predict")
        config = request.config or PredictionConfig()
        plan = plan_round(request, config, instance.format, instance.native)

        def job(emit: Callable[[object], None]) -> _PredictJob:
            return _PredictJob(
                plan=plan,
                params=_sampling_params(config),
                max_tokens=config.max_tokens,
                stop_strings=config.stop_strings,
                emit=emit,
            )

        async for event in _served(instance, job):
            yield event  # type: ignore[misc]
            if isinstance(event, PredictionDone):
                return

    async def aclose(self) -> None:
        """Unload everything."""
        with self._lock:
            instances = list(self._instances.values())
            self._instances.clear()
        for instance in instances:
            instance.stop()
        for instance in instances:
            await anyio.to_thread.run_sync(instance.thread.join)


def _free_identifier(key: str, taken: Mapping[str, object]) -> str:
    """`key`, or `key:2`, `key:3`... whichever is not loaded."""
    if key not in taken:
        return key
    number = 2
    while f"{key}:{number}" in taken:
        number += 1
    return f"{key}:{number}"


async def _served(
    instance: _Instance, make_job: Callable[[Callable[[object], None]], _Job]
) -> AsyncIterator[object]:
    """Queue a job on the instance's worker and yield what it emits, raising its errors."""
    send, receive = anyio.create_memory_object_stream[object](math.inf)
    loop = anyio.lowlevel.current_token()

    def emit(item: object) -> None:
        call_soon_in_loop(loop, lambda: _deliver(send, item))

    job = make_job(emit)
    instance.submit(job)
    try:
        async with receive:
            async for item in receive:
                if isinstance(item, BaseException):
                    raise item
                yield item
    finally:
        job.cancelled.set()


def _deliver(send: Any, item: object) -> None:
    # A closed stream means the consumer is gone (cancelled); the worker stops at its next check.
    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
        send.send_nowait(item)


def _new_llama(path: str, config: LoadConfig, gguf: GgufInfo, kind: ModelKind) -> Any:
    from llama_cpp import Llama

    trained = gguf.context_length or DEFAULT_CONTEXT_LENGTH
    context = config.context_length or min(trained, DEFAULT_CONTEXT_LENGTH)
    try:
        return Llama(
            model_path=path,
            n_ctx=context,
            n_threads=config.threads or os.cpu_count() or 1,
            n_gpu_layers=_gpu_layers(config.gpu_offload, gguf.block_count),
            rope_freq_base=config.rope_frequency_base or 0.0,
            seed=config.seed if config.seed is not None else 0xFFFFFFFF,
            embedding=kind == "embedding",
            verbose=False,
        )
    except ValueError as error:  # llama-cpp-python reports load failures as ValueError
        raise EngineError(f"llama.cpp could not load {path}: {error}") from error


def _gpu_layers(offload: str | float | None, layers: int | None) -> int:
    if offload in (None, "off", 0):
        return 0
    if offload == "max" or offload == 1:
        return -1
    if isinstance(offload, float | int) and 0 < offload < 1:
        return max(1, round(offload * (layers or 0))) if layers else -1
    raise ConfigurationError(
        f"gpu_offload must be 'max', 'off' or a fraction 0..1, got {offload!r}"
    )
