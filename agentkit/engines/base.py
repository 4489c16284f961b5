"""The engine seam: model lifecycle and one prediction as a stream of events.

An engine loads and unloads models and runs single predictions. It does not loop, run tools or
touch chats: act() owns all of that, so every engine gets the same loop semantics for free.

`Engine` is the protocol handles are written against. `BaseEngine` is the narrow base to build
one on: `provider_name` and `predict` are abstract, instance bookkeeping lives on a shared
`InstanceTable`, and optional capabilities (tokenize, embed, model metadata) raise one typed
`NotSupportedError` until an engine provides them. `WrapperEngine` delegates everything to the
engine it wraps, so a recording, instrumented or rate-limited engine overrides one method.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeAlias, runtime_checkable

from agentkit.config import LoadConfig, PredictionConfig, ToolChoice
from agentkit.errors import ConfigurationError, NotSupportedError
from agentkit.messages import Message, ToolCall
from agentkit.results import PredictionStats, Usage

__all__ = [
    "BaseEngine",
    "DownloadedModelInfo",
    "Engine",
    "FirstToken",
    "MalformedToolCall",
    "ModelInfo",
    "ModelInstanceInfo",
    "ModelKind",
    "PredictionDone",
    "PredictionEvent",
    "PredictionRequest",
    "PromptProgress",
    "ResponseFormatSpec",
    "TextDelta",
    "ToolCallRequested",
    "ToolDefinition",
    "ToolOffer",
    "WrapperEngine",
    "offer_tools",
]


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    """What a model is told about a tool: its name, description and parameters schema."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ResponseFormatSpec:
    """The JSON Schema a final answer must follow."""

    name: str
    schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PredictionRequest:
    """Everything an engine needs for one prediction.

    Exactly one of `messages` (chat prediction) and `prompt` (raw completion) is used.
    `tools` is empty when no tools are offered (always so on an act() run's final round).
    A config naming a tool (`tool_choice={"name": ...}`) that `tools` lacks is refused here,
    before any engine sees the request; with no tools offered, tool_choice does not apply.
    """

    messages: Sequence[Message] = ()
    tools: Sequence[ToolDefinition] = ()
    config: PredictionConfig | None = None
    response_format: ResponseFormatSpec | None = None
    prompt: str | None = None
    round_index: int = 0

    def __post_init__(self) -> None:
        offer_tools(self.tools, self.tool_choice)  # refuses a named tool that is not offered

    @property
    def tool_choice(self) -> ToolChoice:
        """The config's tool_choice ("auto" without a config)."""
        return "auto" if self.config is None else self.config.tool_choice

    def tool_offer(self) -> ToolOffer:
        """The tools to put before the model and whether it must call one (`offer_tools`)."""
        return offer_tools(self.tools, self.tool_choice)


def offer_tools(tools: Sequence[ToolDefinition], choice: ToolChoice) -> ToolOffer:
    """What to put before the model for this tool_choice, for engines that enforce it
    themselves (by grammar, or a server's "force"): "none" offers nothing, a named tool offers
    only that tool with a call required. With no tools offered tool_choice does not apply; a
    named tool missing from `tools` is a `ConfigurationError`."""
    offered = tuple(tools)
    if not offered or choice == "auto":
        return ToolOffer(offered, required=False)
    if choice == "none":
        return ToolOffer((), required=False)
    if choice == "required":
        return ToolOffer(offered, required=True)
    named = tuple(tool for tool in offered if tool.name == choice.name)
    if not named:
        names = ", ".join(repr(tool.name) for tool in offered)
        raise ConfigurationError(
            f"tool_choice names {choice.name!r}, which is not among the tools offered: {names}"
        )
    return ToolOffer(named, required=True)


@dataclass(frozen=True, slots=True)
class ToolOffer:
    """What a prediction shows the model of its tools: these tools, and whether a call is due."""

    tools: tuple[ToolDefinition, ...]
    required: bool


ModelKind: TypeAlias = Literal["llm", "embedding"]


@dataclass(frozen=True, slots=True)
class ModelInstanceInfo:
    """A loaded model instance: the model's key and this instance's identifier."""

    model_key: str
    identifier: str
    load_config: LoadConfig = field(default_factory=LoadConfig)
    ttl: float | None = None
    kind: ModelKind = "llm"


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What a model file says about itself (GGUF metadata for local models)."""

    model_key: str
    architecture: str
    parameters: str | None = None
    quantization: str | None = None
    size_bytes: int | None = None
    trained_context_length: int | None = None
    path: str | None = None


@dataclass(frozen=True, slots=True)
class DownloadedModelInfo:
    """A model available to load."""

    model_key: str
    path: str
    size_bytes: int
    source: str


@dataclass(frozen=True, slots=True)
class PromptProgress:
    """Prompt processing progress, from 0.0 to 1.0."""

    fraction: float


@dataclass(frozen=True, slots=True)
class FirstToken:
    """The first generated token arrived (sent before its text)."""


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Generated text; `reasoning` marks thinking text kept apart from the answer."""

    text: str
    reasoning: bool = False


@dataclass(frozen=True, slots=True)
class ToolCallRequested:
    """A complete tool call request (arguments may still be invalid)."""

    call: ToolCall


@dataclass(frozen=True, slots=True)
class MalformedToolCall:
    """Output that was meant as a tool call but could not be parsed."""

    raw: str
    reason: str


@dataclass(frozen=True, slots=True)
class PredictionDone:
    """The prediction finished; always the last event.

    `stats` is what the engine measured itself. Without it the result's stats take their token
    counts from `usage`; with it, its counts are final (None: the engine could not count) and
    its None timings are filled from agentkit's clock. Measurements take no part in equality.
    """

    usage: Usage
    finish_reason: str = "stop"
    stats: PredictionStats | None = field(default=None, compare=False)


PredictionEvent: TypeAlias = (
    PromptProgress | FirstToken | TextDelta | ToolCallRequested | MalformedToolCall | PredictionDone
)


@runtime_checkable
class Engine(Protocol):
    """An inference backend. All methods run on the client's event loop."""

    @property
    def provider_name(self) -> str:
        """The provider, as OpenTelemetry's gen_ai.provider.name wants it (e.g. "llama_cpp")."""
        ...

    async def get_or_load(
        self,
        model_key: str | None,
        config: LoadConfig | None,
        ttl: float | None,
        kind: ModelKind = "llm",
    ) -> ModelInstanceInfo:
        """Return a loaded instance of the model, loading it if none is (None: the default)."""
        ...

    async def load_new_instance(
        self,
        model_key: str,
        identifier: str | None,
        config: LoadConfig | None,
        ttl: float | None,
        kind: ModelKind = "llm",
    ) -> ModelInstanceInfo:
        """Load another instance of a model, even if one is loaded already."""
        ...

    async def unload(self, identifier: str) -> None:
        """Unload one instance."""
        ...

    async def list_loaded(self) -> list[ModelInstanceInfo]:
        """The loaded instances."""
        ...

    async def list_downloaded(self) -> list[DownloadedModelInfo]:
        """Models that can be loaded."""
        ...

    async def get_info(self, identifier: str) -> ModelInfo:
        """Metadata of a loaded instance's model."""
        ...

    async def get_context_length(self, identifier: str) -> int:
        """The context length the instance was loaded with."""
        ...

    async def tokenize(self, identifier: str, text: str) -> list[int]:
        """Token ids of text (no special tokens parsed, no BOS added)."""
        ...

    async def embed(self, identifier: str, texts: Sequence[str]) -> list[list[float]]:
        """One embedding vector per text (embedding instances only)."""
        ...

    def predict(
        self, identifier: str, request: PredictionRequest
    ) -> AsyncGenerator[PredictionEvent, None]:
        """Run one prediction; the stream ends with exactly one `PredictionDone`.

        Callers `aclose()` the generator when they stop early; that cancels the prediction.
        """
        ...

    async def aclose(self) -> None:
        """Release every resource (loaded models, connections, threads)."""
        ...


class BaseEngine(abc.ABC):
    """A narrow base for engines: two abstract members, everything else has a default.

    Model lifecycle defaults to bookkeeping on `self.instances` (right for engines that load
    nothing themselves: scripted, replay, remote servers that load on demand); engines that
    really load models override the lifecycle methods. `tokenize`, `embed`, `get_info` and
    `get_context_length` raise `NotSupportedError` until overridden.
    """

    default_model_key: str | None = None
    """The key `get_or_load(None)` means; None makes a key mandatory."""

    needs_running_loop: bool = False
    """True when the engine keeps tasks that must run between calls (a connection's reader):
    a sync client then keeps a thread running its loop instead of letting callers drive it."""

    def __init__(self) -> None:
        # instances.py builds on this module's data types, so it is imported when needed.
        from agentkit.engines.instances import InstanceTable

        self.instances = InstanceTable()

    @property
    @abc.abstractmethod
    def provider_name(self) -> str:
        """The provider, as OpenTelemetry's gen_ai.provider.name wants it."""

    @abc.abstractmethod
    def predict(
        self, identifier: str, request: PredictionRequest
    ) -> AsyncGenerator[PredictionEvent, None]:
        """Run one prediction; the stream ends with exactly one `PredictionDone`."""

    async def get_or_load(
        self,
        model_key: str | None,
        config: LoadConfig | None,
        ttl: float | None,
        kind: ModelKind = "llm",
    ) -> ModelInstanceInfo:
        """The instance of the key (default: `default_model_key`), added on first use."""
        return self.instances.get_or_add(self.resolve_key(model_key, kind), config, ttl, kind)

    async def load_new_instance(
        self,
        model_key: str,
        identifier: str | None,
        config: LoadConfig | None,
        ttl: float | None,
        kind: ModelKind = "llm",
    ) -> ModelInstanceInfo:
        """Another instance of the model; identifiers are unique."""
        return self.instances.add(self.resolve_key(model_key, kind), identifier, config, ttl, kind)

    async def unload(self, identifier: str) -> None:
        """Forget the instance (`ModelNotFoundError` if unknown)."""
        self.instances.remove(identifier)

    async def list_loaded(self) -> list[ModelInstanceInfo]:
        """The instances."""
        return self.instances.all()

    async def list_downloaded(self) -> list[DownloadedModelInfo]:
        """Models that can be loaded (none known by default)."""
        return []

    async def get_info(self, identifier: str) -> ModelInfo:
        """Metadata of a loaded instance's model."""
        raise self.not_supported("get_info")

    async def get_context_length(self, identifier: str) -> int:
        """The context length the instance was loaded with."""
        raise self.not_supported("get_context_length")

    async def tokenize(self, identifier: str, text: str) -> list[int]:
        """Token ids of text."""
        raise self.not_supported("tokenize")

    async def embed(self, identifier: str, texts: Sequence[str]) -> list[list[float]]:
        """One embedding vector per text."""
        raise self.not_supported("embed")

    async def aclose(self) -> None:
        """Forget every instance."""
        self.instances.clear()

    def not_supported(self, capability: str) -> NotSupportedError:
        """The error for a capability this engine lacks."""
        return NotSupportedError(self.provider_name, capability)

    def resolve_key(self, model_key: str | None, kind: ModelKind = "llm") -> str:
        """The model key a load names (None: the default); raise if the engine has no such model."""
        key = model_key or self.default_model_key
        if key is None:
            raise ConfigurationError(
                f"the {self.provider_name} engine has no default model: pass a model key"
            )
        return key


class WrapperEngine(BaseEngine):
    """An engine that delegates every member to `wrapped`; override what you change."""

    def __init__(self, wrapped: Engine) -> None:
        super().__init__()
        self.wrapped = wrapped

    @property
    def provider_name(self) -> str:
        """The wrapped engine's provider."""
        return self.wrapped.provider_name

    @property
    def needs_running_loop(self) -> bool:  # type: ignore[override]
        """The wrapped engine's need."""
        return bool(getattr(self.wrapped, "needs_running_loop", False))

    def predict(
        self, identifier: str, request: PredictionRequest
    ) -> AsyncGenerator[PredictionEvent, None]:
        """Delegated."""
        return self.wrapped.predict(identifier, request)

    async def get_or_load(
        self,
        model_key: str | None,
        config: LoadConfig | None,
        ttl: float | None,
        kind: ModelKind = "llm",
    ) -> ModelInstanceInfo:
        """Delegated."""
        return await self.wrapped.get_or_load(model_key, config, ttl, kind)

    async def load_new_instance(
        self,
        model_key: str,
        identifier: str | None,
        config: LoadConfig | None,
        ttl: float | None,
        kind: ModelKind = "llm",
    ) -> ModelInstanceInfo:
        """Delegated."""
        return await self.wrapped.load_new_instance(model_key, identifier, config, ttl, kind)

    async def unload(self, identifier: str) -> None:
        """Delegated."""
        await self.wrapped.unload(identifier)

    async def list_loaded(self) -> list[ModelInstanceInfo]:
        """Delegated."""
        return await self.wrapped.list_loaded()

    async def list_downloaded(self) -> list[DownloadedModelInfo]:
        """Delegated."""
        return await self.wrapped.list_downloaded()

    async def get_info(self, identifier: str) -> ModelInfo:
        """Delegated."""
        return await self.wrapped.get_info(identifier)

    async def get_context_length(self, identifier: str) -> int:
        """Delegated."""
        return await self.wrapped.get_context_length(identifier)

    async def tokenize(self, identifier: str, text: str) -> list[int]:
        """Delegated."""
        return await self.wrapped.tokenize(identifier, text)

    async def embed(self, identifier: str, texts: Sequence[str]) -> list[list[float]]:
        """Delegated."""
        return await self.wrapped.embed(identifier, texts)

    async def aclose(self) -> None:
        """Closes the wrapped engine."""
        await self.wrapped.aclose()
