"""The engine seam: model lifecycle and one prediction as a stream of events.

An engine loads and unloads models and runs single predictions. It does not loop, run tools or
touch chats: act() owns all of that, so every engine gets the same loop semantics for free.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeAlias, runtime_checkable

from agentkit.config import LoadConfig, PredictionConfig
from agentkit.messages import Message, ToolCall
from agentkit.results import Usage

__all__ = [
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
    """

    messages: Sequence[Message] = ()
    tools: Sequence[ToolDefinition] = ()
    config: PredictionConfig | None = None
    response_format: ResponseFormatSpec | None = None
    prompt: str | None = None
    round_index: int = 0


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
    """The prediction finished; always the last event."""

    usage: Usage
    finish_reason: str = "stop"


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
    ) -> AsyncIterator[PredictionEvent]:
        """Run one prediction; the stream ends with exactly one `PredictionDone`."""
        ...

    async def aclose(self) -> None:
        """Release every resource (loaded models, connections, threads)."""
        ...
