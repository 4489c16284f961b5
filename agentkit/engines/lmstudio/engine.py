"""The LM Studio engine: a running LM Studio server driven through the official `lmstudio` SDK.

Uses the SDK's `AsyncClient` (asyncio only: the SDK's background tasks are asyncio tasks), which
the sync `agentkit.Client` satisfies since its portal runs an asyncio loop.

Predictions use the SDK's prediction-channel machinery the way its own `act()` does (a
`ChatResponseEndpoint` on the LLM session's channel), because the public `respond()` drops tool
call requests. Those pieces are private SDK API: this module is pinned to lmstudio>=1.5,<1.6.

Each model identifier has a client-side `anyio.CapacityLimiter` (default 1), so concurrent act()
runs queue here instead of piling up on the server.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, cast

import anyio
import sniffio
from lmstudio import (
    AsyncClient as _SdkAsyncClient,
)
from lmstudio import (
    Chat,
    LMStudioError,
    LMStudioModelNotFoundError,
    LMStudioWebsocketError,
)
from lmstudio._sdk_models import ChatHistoryDataDict, LlmPredictionConfigDict
from lmstudio.async_api import AsyncChannel, _AsyncSessionModel
from lmstudio.json_api import (
    ChatResponseEndpoint,
    CompletionEndpoint,
    PredictionEndpoint,
    PredictionFragmentEvent,
    PredictionPrepProgressEvent,
    PredictionToolCallEvent,
)
from lmstudio.schemas import DictObject

from agentkit.config import LoadConfig, PredictionConfig
from agentkit.engines.base import (
    DownloadedModelInfo,
    FirstToken,
    MalformedToolCall,
    ModelInfo,
    ModelInstanceInfo,
    ModelKind,
    PredictionDone,
    PredictionEvent,
    PredictionRequest,
    PromptProgress,
    TextDelta,
    ToolCallRequested,
    ToolDefinition,
)
from agentkit.errors import EngineError, ModelNotFoundError
from agentkit.messages import (
    AssistantMessage,
    Message,
    SystemMessage,
    ToolCall,
    ToolResultMessage,
    UserMessage,
)
from agentkit.results import Usage

__all__ = ["LMStudioEngine"]

_STOP_REASONS = {
    "userStopped": "cancelled",
    "maxPredictedTokensReached": "length",
    "contextLengthReached": "length",
    "toolCalls": "tool_calls",
    "eosFound": "stop",
    "stopStringFound": "stop",
    "failed": "error",
    "modelUnloaded": "error",
}
_CANCEL_DRAIN_SECONDS = 5.0


class _TokenClient(_SdkAsyncClient):
    """The SDK client, with an LM Studio API token (`sk-lm-<id>:<key>`) as its auth identity."""

    def __init__(self, api_host: str, api_token: str | None) -> None:
        self._api_token = api_token  # read by _create_auth_message during super().__init__
        super().__init__(api_host)

    def _create_auth_message(self) -> DictObject:
        token = self._api_token
        if token is None:
            return self._format_auth_message()
        identifier, _, passkey = token.partition(":")
        return self._format_auth_message(identifier, passkey or None)


class LMStudioEngine:
    """An `Engine` backed by an LM Studio server at `host` ("127.0.0.1:1234")."""

    def __init__(
        self,
        host: str = "127.0.0.1:1234",
        *,
        api_token: str | None = None,
        max_concurrency: int = 1,
    ) -> None:
        for prefix in ("lmstudio://", "ws://", "wss://", "http://"):
            host = host.removeprefix(prefix)
        self.host = host.rstrip("/")
        self._api_token = api_token
        self._max_concurrency = max_concurrency
        self._client: _TokenClient | None = None
        self._connect_lock = anyio.Lock()
        self._limiters: dict[str, anyio.CapacityLimiter] = {}
        self._kinds: dict[str, ModelKind] = {}
        self._ttls: dict[str, float | None] = {}
        self._configs: dict[str, LoadConfig] = {}

    @property
    def provider_name(self) -> str:
        return "lm_studio"

    # -- connection ---------------------------------------------------------------------------

    async def _connect(self) -> _TokenClient:
        if self._client is not None:
            return self._client
        if sniffio.current_async_library() != "asyncio":
            raise EngineError(
                "the LM Studio engine needs an asyncio event loop (the lmstudio SDK is "
                "asyncio-only); use agentkit.Client or run under asyncio"
            )
        async with self._connect_lock:
            if self._client is None:
                client = _TokenClient(self.host, self._api_token)
                try:
                    await client.__aenter__()
                except LMStudioError as error:
                    await _quiet_close(client)
                    raise self._unreachable(error) from error
                self._client = client
        return self._client

    def _unreachable(self, error: BaseException) -> EngineError:
        text = str(error)
        if "not reachable" in text:
            return EngineError(
                f"LM Studio is not running at {self.host}: start its server with "
                "`lms server start` (or the Developer tab of the LM Studio app), or pass the "
                "right host:port"
            )
        return EngineError(f"cannot connect to LM Studio at {self.host}: {text}")

    async def _reset(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await _quiet_close(client)

    async def _translate(self, error: LMStudioError, what: str) -> EngineError:
        if isinstance(error, LMStudioModelNotFoundError):
            return ModelNotFoundError(f"LM Studio has no model {what}: {error}")
        if isinstance(error, LMStudioWebsocketError):
            await self._reset()
            return EngineError(f"lost the connection to LM Studio at {self.host}: {error}")
        return EngineError(f"LM Studio failed ({what}): {error}")

    def _session(
        self, client: _TokenClient, kind: ModelKind
    ) -> _AsyncSessionModel[Any, Any, Any, Any]:
        return client.llm if kind == "llm" else client.embedding

    # -- lifecycle ------------------------------------------------------------------------------

    async def get_or_load(
        self,
        model_key: str | None,
        config: LoadConfig | None,
        ttl: float | None,
        kind: ModelKind = "llm",
    ) -> ModelInstanceInfo:
        client = await self._connect()
        session = self._session(client, kind)
        try:
            if model_key is None:
                handle = await session.model()
            else:
                handle = await session.model(model_key, ttl=_ttl(ttl), config=_load_config(config))
            info = await session.get_model_info(handle.identifier)
        except LMStudioError as error:
            raise await self._translate(error, repr(model_key)) from error
        return self._remember(info.model_key, handle.identifier, config, ttl, kind)

    async def load_new_instance(
        self,
        model_key: str,
        identifier: str | None,
        config: LoadConfig | None,
        ttl: float | None,
        kind: ModelKind = "llm",
    ) -> ModelInstanceInfo:
        client = await self._connect()
        session = self._session(client, kind)
        try:
            handle = await session.load_new_instance(
                model_key, identifier, ttl=_ttl(ttl), config=_load_config(config)
            )
        except LMStudioError as error:
            raise await self._translate(error, repr(model_key)) from error
        return self._remember(model_key, handle.identifier, config, ttl, kind)

    def _remember(
        self,
        model_key: str,
        identifier: str,
        config: LoadConfig | None,
        ttl: float | None,
        kind: ModelKind,
    ) -> ModelInstanceInfo:
        self._kinds[identifier] = kind
        self._ttls[identifier] = ttl
        self._configs[identifier] = config or LoadConfig()
        return ModelInstanceInfo(model_key, identifier, config or LoadConfig(), ttl, kind)

    async def unload(self, identifier: str) -> None:
        client = await self._connect()
        try:
            await self._session(client, self._kinds.get(identifier, "llm")).unload(identifier)
        except LMStudioError as error:
            raise await self._translate(error, repr(identifier)) from error
        self._kinds.pop(identifier, None)
        self._limiters.pop(identifier, None)

    async def list_loaded(self) -> list[ModelInstanceInfo]:
        client = await self._connect()
        loaded: list[ModelInstanceInfo] = []
        try:
            for kind in ("llm", "embedding"):
                raw = await self._session(client, kind).remote_call("listLoaded")
                for item in raw:
                    identifier = str(item["identifier"])
                    loaded.append(
                        ModelInstanceInfo(
                            str(item["modelKey"]),
                            identifier,
                            self._configs.get(identifier, LoadConfig()),
                            self._ttls.get(identifier),
                            kind,
                        )
                    )
        except LMStudioError as error:
            raise await self._translate(error, "listing") from error
        return loaded

    async def list_downloaded(self) -> list[DownloadedModelInfo]:
        client = await self._connect()
        try:
            models = await client.list_downloaded_models()
        except LMStudioError as error:
            raise await self._translate(error, "listing") from error
        return [
            DownloadedModelInfo(m.model_key, m.info.path, m.info.size_bytes, "lmstudio")
            for m in models
        ]

    async def get_info(self, identifier: str) -> ModelInfo:
        client = await self._connect()
        session = self._session(client, self._kinds.get(identifier, "llm"))
        try:
            info = await session.get_model_info(identifier)
        except LMStudioError as error:
            raise await self._translate(error, repr(identifier)) from error
        return ModelInfo(
            model_key=info.model_key,
            architecture=getattr(info, "architecture", None) or "unknown",
            parameters=getattr(info, "params_string", None),
            size_bytes=info.size_bytes,
            trained_context_length=info.max_context_length,
            path=info.path,
        )

    async def get_context_length(self, identifier: str) -> int:
        client = await self._connect()
        session = self._session(client, self._kinds.get(identifier, "llm"))
        try:
            return await session._get_context_length(identifier)
        except LMStudioError as error:
            raise await self._translate(error, repr(identifier)) from error

    async def tokenize(self, identifier: str, text: str) -> list[int]:
        client = await self._connect()
        session = self._session(client, self._kinds.get(identifier, "llm"))
        try:
            tokens = await session._tokenize_text(identifier, text)
        except LMStudioError as error:
            raise await self._translate(error, repr(identifier)) from error
        return [int(t) for t in tokens]

    async def embed(self, identifier: str, texts: Sequence[str]) -> list[list[float]]:
        client = await self._connect()
        try:
            handle = await client.embedding.model(identifier)
            vectors = [cast(Sequence[float], await handle.embed(text)) for text in texts]
        except LMStudioError as error:
            raise await self._translate(error, repr(identifier)) from error
        return [[float(x) for x in vector] for vector in vectors]

    async def aclose(self) -> None:
        await self._reset()

    # -- prediction -----------------------------------------------------------------------------

    def _limiter(self, identifier: str) -> anyio.CapacityLimiter:
        limiter = self._limiters.get(identifier)
        if limiter is None:
            limiter = self._limiters[identifier] = anyio.CapacityLimiter(self._max_concurrency)
        return limiter

    async def predict(
        self, identifier: str, request: PredictionRequest
    ) -> AsyncGenerator[PredictionEvent, None]:
        """One SDK prediction; ends with exactly one `PredictionDone`."""
        client = await self._connect()
        endpoint = _endpoint(identifier, request)
        # Borrowed on behalf of a token, not the task: an async generator may be closed from
        # another task than the one that started it.
        limiter, borrower = self._limiter(identifier), object()
        await limiter.acquire_on_behalf_of(borrower)
        try:
            channel_cm = client.llm._create_channel(endpoint)
            try:
                channel: AsyncChannel[Any] = await channel_cm.__aenter__()
            except LMStudioError as error:
                raise await self._translate(error, repr(identifier)) from error
            finished = False
            try:
                first = True
                async for contents in channel.rx_stream():
                    if isinstance(contents, Mapping) and contents.get("type") == (
                        "toolCallGenerationFailed"
                    ):
                        yield _malformed(contents)
                        continue
                    for event in endpoint.iter_message_events(contents):
                        if isinstance(event, PredictionPrepProgressEvent):
                            yield PromptProgress(float(event.arg))
                        elif isinstance(event, PredictionFragmentEvent):
                            fragment = event.arg
                            if first:
                                first = False
                                yield FirstToken()
                            # reasoningStartTag/EndTag fragments are the <think> tags themselves
                            kind = fragment.reasoning_type
                            if fragment.content and kind in ("none", "reasoning"):
                                yield TextDelta(fragment.content, kind == "reasoning")
                        elif isinstance(event, PredictionToolCallEvent):
                            yield ToolCallRequested(_tool_call(event.arg))
                    if endpoint.is_finished:
                        break
                result = endpoint.result()
                finished = True
                stats = result.stats
                yield PredictionDone(
                    Usage(stats.prompt_tokens_count or 0, stats.predicted_tokens_count or 0),
                    _STOP_REASONS.get(stats.stop_reason, "stop"),
                )
            except LMStudioError as error:
                finished = True
                raise await self._translate(error, f"prediction on {identifier!r}") from error
            finally:
                with anyio.CancelScope(shield=True):
                    if not finished:
                        await _cancel(channel, endpoint)
                    await channel_cm.__aexit__(None, None, None)
        finally:
            limiter.release_on_behalf_of(borrower)


async def _cancel(channel: AsyncChannel[Any], endpoint: PredictionEndpoint) -> None:
    """Send the SDK's cancel and wait (briefly) for the server to confirm the stop."""
    endpoint.mark_cancelled()
    try:
        await channel.cancel()
        with anyio.move_on_after(_CANCEL_DRAIN_SECONDS):
            async for contents in channel.rx_stream():
                if isinstance(contents, Mapping) and contents.get("type") in ("success", "error"):
                    break
    except (LMStudioError, OSError):
        pass


async def _quiet_close(client: _SdkAsyncClient) -> None:
    # Closing a broken client must not mask the error that broke it.
    with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
        await client.aclose()


def _ttl(ttl: float | None) -> int | None:
    return None if ttl is None else max(1, round(ttl))


def _load_config(config: LoadConfig | None) -> dict[str, Any] | None:
    if config is None:
        return None
    out: dict[str, Any] = {}
    if config.context_length is not None:
        out["contextLength"] = config.context_length
    if config.rope_frequency_base is not None:
        out["ropeFrequencyBase"] = config.rope_frequency_base
    if config.seed is not None:
        out["seed"] = config.seed
    if config.gpu_offload is not None:
        ratio = {"max": 1.0, "off": 0.0}.get(str(config.gpu_offload), config.gpu_offload)
        out["gpu"] = {"ratio": ratio}
    return out or None


def _prediction_config(config: PredictionConfig | None) -> LlmPredictionConfigDict | None:
    if config is None:
        return None
    out: dict[str, Any] = {}
    pairs = (
        ("temperature", config.temperature),
        ("topPSampling", config.top_p),
        ("topKSampling", config.top_k),
        ("minPSampling", config.min_p),
        ("repeatPenalty", config.repeat_penalty),
        ("maxTokens", config.max_tokens),
    )
    for key, value in pairs:
        if value is not None:
            out[key] = value
    if config.stop_strings:
        out["stopStrings"] = list(config.stop_strings)
    return cast(LlmPredictionConfigDict, out) if out else None


def _endpoint(identifier: str, request: PredictionRequest) -> PredictionEndpoint:
    response_format = None if request.response_format is None else request.response_format.schema
    config = _prediction_config(request.config)
    if request.prompt is not None:
        return CompletionEndpoint(
            identifier,
            request.prompt,
            response_format,
            config,
            on_prompt_processing_progress=_ignore_progress,
        )
    history = cast(ChatHistoryDataDict, {"messages": [_message(m) for m in request.messages]})
    chat = Chat.from_history(history)
    tools_args: tuple[Any, Any] = (None, None)
    if request.tools:
        tools_args = _tools(request.tools)
    # The SDK only reports prompt progress events when a progress callback is registered.
    return ChatResponseEndpoint(
        identifier,
        chat,
        response_format,
        config,
        on_prompt_processing_progress=_ignore_progress,
        llm_tools=tools_args[0],
        client_tool_map=tools_args[1],
    )


def _ignore_progress(_progress: float) -> None:
    """The progress reaches agentkit as events; the SDK callback itself has nothing to do."""


def _tools(tools: Sequence[ToolDefinition]) -> tuple[Any, Any]:
    from lmstudio._sdk_models import LlmToolUseSettingToolArray

    array = LlmToolUseSettingToolArray._from_api_dict(
        cast(
            Any,
            {
                "type": "toolArray",
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": t.name,
                            "description": t.description,
                            "parameters": t.parameters,
                        },
                    }
                    for t in tools
                ],
            },
        )
    )
    # The SDK only checks the map's size: agentkit runs the tools itself.
    client_map = {t.name: (object, _never_called, False) for t in tools}
    return array, client_map


def _never_called(**_: Any) -> None:  # pragma: no cover - agentkit runs tools, not the SDK
    raise AssertionError("the lmstudio SDK must not run agentkit tools")


def _message(message: Message) -> dict[str, Any]:
    if isinstance(message, SystemMessage):
        return {"role": "system", "content": [{"type": "text", "text": message.content}]}
    if isinstance(message, UserMessage):
        if message.images:
            raise EngineError("the LM Studio engine does not send images yet")
        return {"role": "user", "content": [{"type": "text", "text": message.content}]}
    if isinstance(message, AssistantMessage):
        # The SDK (1.5) requires an assistant message to open with a text part, even an empty
        # one before tool call requests.
        content: list[dict[str, Any]] = [{"type": "text", "text": message.content}]
        for call in message.tool_calls:
            content.append(
                {
                    "type": "toolCallRequest",
                    "toolCallRequest": {
                        "type": "function",
                        "id": call.id,
                        "name": call.name,
                        "arguments": _arguments(call.arguments),
                    },
                }
            )
        return {"role": "assistant", "content": content}
    if isinstance(message, ToolResultMessage):
        return {
            "role": "tool",
            "content": [
                {
                    "type": "toolCallResult",
                    "content": message.content,
                    "toolCallId": message.tool_call_id,
                }
            ],
        }
    raise EngineError(f"the LM Studio engine cannot send a {type(message).__name__}")


def _arguments(arguments: dict[str, Any] | str) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = json.loads(arguments)
    except json.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _tool_call(request: Any) -> ToolCall:
    arguments = dict(request.arguments) if request.arguments is not None else {}
    if request.id:
        return ToolCall(name=request.name, arguments=arguments, id=request.id)
    return ToolCall(name=request.name, arguments=arguments)


def _malformed(contents: Mapping[str, Any]) -> MalformedToolCall:
    error = contents.get("error")
    reason = "tool call generation failed"
    if isinstance(error, Mapping) and error.get("title"):
        reason = str(error["title"])
    return MalformedToolCall(str(contents.get("rawContent") or ""), reason)
