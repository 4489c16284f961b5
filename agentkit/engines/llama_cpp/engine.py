"""The embedded engine: llama.cpp in-process through llama-cpp-python.

`LlamaCppEngine` loads GGUF models and keeps one `InstanceWorker` (a `llama_cpp.Llama` and the
thread that serves it, see `worker`) per loaded instance; the instances themselves are recorded
on `BaseEngine`'s shared instance table, so identifiers follow the same rules as every engine's.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio

from agentkit.chat_dicts import refuse_files
from agentkit.config import LoadConfig, PredictionConfig
from agentkit.engines.base import (
    BaseEngine,
    DownloadedModelInfo,
    ModelInfo,
    ModelInstanceInfo,
    ModelKind,
    PredictionDone,
    PredictionEvent,
    PredictionRequest,
)
from agentkit.errors import EngineUnavailableError

try:  # before the modules that need it, so a missing build gets the message that fixes it
    import llama_cpp  # noqa: F401
except ImportError as _missing:
    raise EngineUnavailableError(
        "llama-cpp-python is not installed; run `agentkit install-engine` to build it "
        "for this CPU (about 7 minutes on 2 cores, then cached)"
    ) from _missing

from agentkit.engines.llama_cpp import call_syntax
from agentkit.engines.llama_cpp.kv_cache import DEFAULT_KV_CACHE_BYTES
from agentkit.engines.llama_cpp.models import (
    DEFAULT_MODEL_KEY,
    GgufInfo,
    list_downloaded_models,
    read_gguf_info,
    resolve_model,
)
from agentkit.engines.llama_cpp.native_tools import detect_tool_format
from agentkit.engines.llama_cpp.prompting.formats import (
    PromptFormat,
    format_for_architecture,
    has_builtin_format,
)
from agentkit.engines.llama_cpp.prompting.jinja import JinjaPromptFormat
from agentkit.engines.llama_cpp.prompting.json_template import JsonModeTemplate
from agentkit.engines.llama_cpp.sampling import SamplingParams
from agentkit.engines.llama_cpp.tool_modes import NativeTemplate, plan_round
from agentkit.engines.llama_cpp.worker import (
    EmbedJob,
    EngineBusyError,
    InstanceStats,
    InstanceWorker,
    PredictJob,
    PromptTooLongError,
)
from agentkit.errors import ConfigurationError, EngineError, ModelNotFoundError

__all__ = ["EngineBusyError", "InstanceStats", "LlamaCppEngine", "PromptTooLongError"]

DEFAULT_CONTEXT_LENGTH = 4096
DEFAULT_MAX_QUEUE = 256


class LlamaCppEngine(BaseEngine):
    """In-process llama.cpp inference (the default engine)."""

    default_model_key = DEFAULT_MODEL_KEY

    def __init__(
        self, *, max_queue: int = DEFAULT_MAX_QUEUE, kv_cache_bytes: int = DEFAULT_KV_CACHE_BYTES
    ) -> None:
        super().__init__()
        self._max_queue = max_queue
        self._kv_cache_bytes = kv_cache_bytes
        # A worker per instance on the table; an instance is on the table without a worker only
        # while it loads. The lock guards both: workers expire their instances from threads.
        self._workers: dict[str, InstanceWorker] = {}
        self._lock = threading.RLock()
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
            with self._lock:
                info = self.instances.get_or_add(key, config, ttl, kind)
                loaded = info.identifier in self._workers
            if not loaded:
                return await self._load(info, path)
            if config is not None and config != info.load_config:
                warnings.warn(
                    f"{key!r} is already loaded with {info.load_config!r}; the requested "
                    f"{config!r} is ignored (use load_new_instance to load it with another "
                    "config)",
                    stacklevel=2,
                )
            return info

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
                    identifier = _free_identifier(key, self._workers)
                info = self.instances.add(key, identifier, config, ttl, kind)
            return await self._load(info, path)

    async def _load(self, info: ModelInstanceInfo, path: Path) -> ModelInstanceInfo:
        """Start the worker of an instance just added to the table (removed again on failure)."""
        try:
            worker = await self._start_worker(info, path)
        except BaseException:
            with self._lock, contextlib.suppress(ModelNotFoundError):  # gone if closed meanwhile
                self.instances.remove(info.identifier)
            raise
        with self._lock:
            self._workers[info.identifier] = worker
        return info

    async def _start_worker(self, info: ModelInstanceInfo, path: Path) -> InstanceWorker:
        config = info.load_config
        gguf = read_gguf_info(path)
        template = config.chat_template or gguf.chat_template
        tool_format = None
        if config.chat_format is None and template is not None:
            tool_format = detect_tool_format(template)
        # JSON mode renders with a built-in format when one is named or fits the architecture,
        # else with the model's own template (plain turns); with neither it fails before loading.
        own_template = (
            template
            if config.chat_format is None and not has_builtin_format(gguf.architecture)
            else None
        )
        if tool_format is None and own_template is None:
            prompt_format: PromptFormat = format_for_architecture(
                gguf.architecture, config.chat_format
            )
        llama = await anyio.to_thread.run_sync(_new_llama, str(path), config, gguf, info.kind)
        native = None
        if template is not None and (tool_format is not None or own_template is not None):
            jinja = JinjaPromptFormat(
                template,
                # Stripped from the rendered text only when tokenizing adds it back: SmolLM2's
                # BOS is `<|im_start|>`, which its vocabulary does not add, so stripping it
                # would cut the first turn's opener.
                _token_text(llama, llama.token_bos()) if _adds_bos(llama) else "",
                _token_text(llama, llama.token_eos()),
            )
            if tool_format is not None:
                native = NativeTemplate(jinja, tool_format)
                prompt_format = jinja
            else:
                trained = config.tool_call_syntax == "trained"
                syntax = (
                    call_syntax.for_model(gguf.metadata) if trained else call_syntax.JSON_OBJECT
                )
                prompt_format = JsonModeTemplate(jinja, syntax)
        return InstanceWorker(
            info,
            llama,
            gguf,
            prompt_format,
            native,
            self._max_queue,
            self._kv_cache_bytes,
            self._expire,
        )

    def _instance(self, identifier: str) -> InstanceWorker:
        with self._lock:
            self.instances.get(identifier)  # ModelNotFoundError for a name never loaded
            worker = self._workers.get(identifier)
        if worker is None:
            raise ModelNotFoundError(f"{identifier!r} is still loading")
        return worker

    def _forget(self, worker: InstanceWorker) -> None:
        """Drop a worker and its instance (the caller holds the lock)."""
        del self._workers[worker.info.identifier]
        self.instances.remove(worker.info.identifier)

    def _expire(self, worker: InstanceWorker) -> None:
        with self._lock:
            identifier = worker.info.identifier
            if self._workers.get(identifier) is worker and worker.jobs.empty():
                self._forget(worker)
                worker.stop()

    async def unload(self, identifier: str) -> None:
        """Unload an instance; queued requests still finish first."""
        with self._lock:
            worker = self._instance(identifier)
            self._forget(worker)
        worker.stop()
        await anyio.to_thread.run_sync(worker.thread.join)

    async def list_loaded(self) -> list[ModelInstanceInfo]:
        """The loaded instances."""
        with self._lock:
            return [worker.info for worker in self._workers.values()]

    async def list_downloaded(self) -> list[DownloadedModelInfo]:
        """GGUF files in agentkit's models dir and LM Studio's models folders."""
        found = await anyio.to_thread.run_sync(list_downloaded_models)
        return [DownloadedModelInfo(m.key, str(m.path), m.size_bytes, m.source) for m in found]

    async def get_info(self, identifier: str) -> ModelInfo:
        """GGUF metadata of a loaded instance's model file."""
        worker = self._instance(identifier)
        gguf = worker.gguf
        return ModelInfo(
            model_key=worker.info.model_key,
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

    async def embed(self, identifier: str, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, from an instance loaded as an embedding model."""
        worker = self._instance(identifier)
        if worker.info.kind != "embedding":
            raise ConfigurationError(
                f"{identifier!r} is loaded as a language model; get an embedding handle with "
                "client.embedding.model(...)"
            )
        async for vectors in worker.run(lambda emit: EmbedJob(list(texts), emit)):
            return vectors  # type: ignore[return-value]
        raise EngineError(f"{identifier!r} returned no embeddings")

    async def predict(
        self, identifier: str, request: PredictionRequest
    ) -> AsyncGenerator[PredictionEvent, None]:
        """One prediction, streamed from the instance's worker thread."""
        worker = self._instance(identifier)
        if worker.info.kind != "llm":
            raise ConfigurationError(f"{identifier!r} is an embedding model; it cannot predict")
        refuse_files(request.messages, self.provider_name)  # images are not rendered either
        config = request.config or PredictionConfig()
        plan = plan_round(request, config, worker.format, worker.native)

        def job(emit: Callable[[object], None]) -> PredictJob:
            return PredictJob(
                plan=plan,
                params=_sampling_params(config),
                max_tokens=config.max_tokens,
                stop_strings=config.stop_strings,
                emit=emit,
            )

        async for event in worker.run(job):
            yield event  # type: ignore[misc]
            if isinstance(event, PredictionDone):
                return

    async def aclose(self) -> None:
        """Unload everything."""
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
            self.instances.clear()
        for worker in workers:
            worker.stop()
        for worker in workers:
            await anyio.to_thread.run_sync(worker.thread.join)


def _free_identifier(key: str, taken: Mapping[str, object]) -> str:
    """`key`, or `key:2`, `key:3`... whichever is not loaded."""
    if key not in taken:
        return key
    number = 2
    while f"{key}:{number}" in taken:
        number += 1
    return f"{key}:{number}"


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


def _token_text(llama: Any, token: int) -> str:
    if token < 0:
        return ""
    return bytes(llama.detokenize([token], special=True)).decode("utf-8", errors="replace")


def _adds_bos(llama: Any) -> bool:
    from llama_cpp import llama_cpp as native

    return bool(native.llama_vocab_get_add_bos(llama._model.vocab))


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
