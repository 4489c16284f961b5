"""The LM Studio engine: a running LM Studio server driven through the official `lmstudio` SDK.

Uses the SDK's `AsyncClient` (asyncio only: the SDK's background tasks are asyncio tasks), which
the sync `agentkit.Client` satisfies since its portal runs an asyncio loop. Model lifecycle,
listing, tokens and embeddings use public SDK API; the API token and predictions need private
SDK API, all of it in `agentkit.engines.lmstudio.sdk`, which also refuses SDK versions it does
not know (`EngineUnavailableError` when the engine is built).

The server is not trusted: whatever it sends of the wrong shape is an `EngineError`, and a tool
call whose arguments break `agentkit.untrusted`'s limits is a `MalformedToolCall` for the model.

Each model identifier has a client-side `anyio.CapacityLimiter` (default 1), so concurrent act()
runs queue here instead of piling up on the server.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any, TypeVar, cast

import anyio
import msgspec
import sniffio
from lmstudio import (
    AsyncEmbeddingModel,
    AsyncLLM,
    Chat,
    ChatHistoryData,
    LlmPredictionConfigDict,
    LMStudioError,
    LMStudioModelNotFoundError,
    LMStudioWebsocketError,
)

from agentkit import untrusted
from agentkit.chat_dicts import file_to_dict
from agentkit.config import LoadConfig, PredictionConfig
from agentkit.engines.base import (
    BaseEngine,
    DownloadedModelInfo,
    ModelInfo,
    ModelInstanceInfo,
    ModelKind,
    PredictionEvent,
    PredictionRequest,
    ToolDefinition,
    ToolOffer,
)
from agentkit.engines.lmstudio import sdk
from agentkit.errors import ConfigurationError, EngineError, ModelNotFoundError, NotSupportedError
from agentkit.messages import (
    AssistantMessage,
    Message,
    SystemMessage,
    ToolCall,
    ToolResultMessage,
    UserMessage,
)

__all__ = ["LMStudioEngine"]

_N = TypeVar("_N", int, float)


class LMStudioEngine(BaseEngine):
    """An `Engine` backed by an LM Studio server at `host` ("127.0.0.1:1234").

    `api_token` is an LM Studio API token (`sk-lm-<id>:<key>`); `max_concurrency` bounds the
    predictions in flight per model instance (default 1).
    """

    needs_running_loop = True  # the SDK's websocket has reader tasks between calls

    def __init__(
        self,
        host: str = "127.0.0.1:1234",
        *,
        api_token: str | None = None,
        max_concurrency: int = 1,
    ) -> None:
        sdk.check_version()
        super().__init__()
        if max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be >= 1, got {max_concurrency!r}")
        for prefix in ("lmstudio://", "ws://", "wss://", "http://"):
            host = host.removeprefix(prefix)
        self.host = host.rstrip("/")
        self._api_token = api_token
        self._max_concurrency = max_concurrency
        self._client: sdk.TokenClient | None = None
        self._connect_lock = anyio.Lock()
        self._limiters: dict[str, anyio.CapacityLimiter] = {}

    @property
    def provider_name(self) -> str:
        return "lm_studio"

    # -- connection ---------------------------------------------------------------------------

    async def _connect(self) -> sdk.TokenClient:
        if self._client is not None:
            return self._client
        if sniffio.current_async_library() != "asyncio":
            raise EngineError(
                "the LM Studio engine needs an asyncio event loop (the lmstudio SDK is "
                "asyncio-only); use agentkit.Client or run under asyncio"
            )
        async with self._connect_lock:
            if self._client is None:
                client = sdk.TokenClient(self.host, self._api_token)
                try:
                    await client.__aenter__()
                except LMStudioError as error:
                    await _quiet_close(client)
                    raise self._unreachable(error) from error
                self._client = client
        return self._client

    def _unreachable(self, error: BaseException) -> EngineError:
        text = untrusted.describe_exception(error)
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

    @contextlib.asynccontextmanager
    async def _call(self, what: str) -> AsyncIterator[sdk.TokenClient]:
        """The connected client, with SDK errors in the block turned into agentkit's."""
        client = await self._connect()
        try:
            yield client
        except LMStudioModelNotFoundError as error:
            raise ModelNotFoundError(f"LM Studio has no model {what}: {_text(error)}") from error
        except LMStudioWebsocketError as error:
            await self._reset()
            raise EngineError(
                f"lost the connection to LM Studio at {self.host}: {_text(error)}"
            ) from error
        except LMStudioError as error:
            raise EngineError(f"LM Studio failed ({what}): {_text(error)}") from error
        except sdk.SDK_DATA_ERRORS as error:
            raise EngineError(
                f"LM Studio at {self.host} sent data the lmstudio SDK cannot read ({what}): "
                f"{_text(error)}"
            ) from error

    def _kind(self, identifier: str) -> ModelKind:
        with contextlib.suppress(ModelNotFoundError):
            return self.instances.get(identifier).kind
        return "llm"  # loaded outside agentkit: LLMs are what LM Studio mostly serves

    def _handle(self, client: sdk.TokenClient, identifier: str) -> AsyncLLM | AsyncEmbeddingModel:
        if self._kind(identifier) == "embedding":
            return AsyncEmbeddingModel(identifier, client.embedding)
        return AsyncLLM(identifier, client.llm)

    # -- lifecycle ------------------------------------------------------------------------------

    async def get_or_load(
        self,
        model_key: str | None,
        config: LoadConfig | None,
        ttl: float | None,
        kind: ModelKind = "llm",
    ) -> ModelInstanceInfo:
        async with self._call(repr(model_key)) as client:
            session = _session(client, kind)
            if model_key is None:
                handle = await session.model()
            else:
                handle = await session.model(model_key, ttl=_ttl(ttl), config=_load_config(config))
            info = await handle.get_info()
        return self._remember(info.model_key, handle.identifier, config, ttl, kind)

    async def load_new_instance(
        self,
        model_key: str,
        identifier: str | None,
        config: LoadConfig | None,
        ttl: float | None,
        kind: ModelKind = "llm",
    ) -> ModelInstanceInfo:
        async with self._call(repr(model_key)) as client:
            handle = await _session(client, kind).load_new_instance(
                model_key, identifier, ttl=_ttl(ttl), config=_load_config(config)
            )
        return self._remember(model_key, handle.identifier, config, ttl, kind)

    def _remember(
        self,
        model_key: str,
        identifier: str,
        config: LoadConfig | None,
        ttl: float | None,
        kind: ModelKind,
    ) -> ModelInstanceInfo:
        # The server names instances: a name it reuses replaces what was known under it.
        with contextlib.suppress(ModelNotFoundError):
            self.instances.remove(identifier)
        return self.instances.add(model_key, identifier, config, ttl, kind)

    async def unload(self, identifier: str) -> None:
        async with self._call(repr(identifier)) as client:
            await self._handle(client, identifier).unload()
        with contextlib.suppress(ModelNotFoundError):
            self.instances.remove(identifier)
        self._limiters.pop(identifier, None)

    async def list_loaded(self) -> list[ModelInstanceInfo]:
        loaded: list[ModelInstanceInfo] = []
        for kind in ("llm", "embedding"):
            # The raw listing: the SDK's list_loaded() keeps only identifiers, not model keys.
            async with self._call("listing") as client:
                raw = await _session(client, kind).remote_call("listLoaded")
            for identifier, model_key in _listing(raw):
                try:
                    known = self.instances.get(identifier)
                except ModelNotFoundError:
                    known = ModelInstanceInfo(model_key, identifier, kind=kind)
                loaded.append(
                    ModelInstanceInfo(model_key, identifier, known.load_config, known.ttl, kind)
                )
        return loaded

    async def list_downloaded(self) -> list[DownloadedModelInfo]:
        async with self._call("listing") as client:
            models = await client.list_downloaded_models()
        return [
            DownloadedModelInfo(m.model_key, m.info.path, m.info.size_bytes, "lmstudio")
            for m in models
        ]

    async def get_info(self, identifier: str) -> ModelInfo:
        async with self._call(repr(identifier)) as client:
            info = await self._handle(client, identifier).get_info()
        return ModelInfo(
            model_key=info.model_key,
            architecture=getattr(info, "architecture", None) or "unknown",
            parameters=getattr(info, "params_string", None),
            size_bytes=info.size_bytes,
            trained_context_length=info.max_context_length,
            path=info.path,
        )

    async def get_context_length(self, identifier: str) -> int:
        # get_info() reads the length strictly; the SDK's get_context_length() does not.
        async with self._call(repr(identifier)) as client:
            info = await self._handle(client, identifier).get_info()
        return info.context_length

    async def tokenize(self, identifier: str, text: str) -> list[int]:
        async with self._call(repr(identifier)) as client:
            tokens = await self._handle(client, identifier).tokenize(text)
        return _numbers(tokens, int, f"the tokens of {identifier!r}")

    async def embed(self, identifier: str, texts: Sequence[str]) -> list[list[float]]:
        async with self._call(repr(identifier)) as client:
            vectors = await AsyncEmbeddingModel(identifier, client.embedding).embed(list(texts))
        if not isinstance(vectors, list | tuple) or len(vectors) != len(texts):
            raise EngineError(f"LM Studio answered {len(texts)} texts with {_show(vectors)}")
        return [_numbers(v, float, f"an embedding from {identifier!r}") for v in vectors]

    async def aclose(self) -> None:
        await super().aclose()
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
        chat = None
        if request.prompt is None:
            chat = _chat(request.messages)
        schema = None if request.response_format is None else request.response_format.schema
        config = _prediction_config(request.config, request.tool_offer())
        # Borrowed on behalf of a token, not the task: an async generator may be closed from
        # another task than the one that started it.
        limiter, borrower = self._limiter(identifier), object()
        await limiter.acquire_on_behalf_of(borrower)
        try:
            async with self._call(f"prediction on {identifier!r}") as client:
                events = sdk.predict(
                    client,
                    identifier,
                    chat=chat,
                    prompt=request.prompt,
                    schema=schema,
                    config=config,
                )
                async with contextlib.aclosing(events):
                    async for event in events:
                        yield event
        finally:
            limiter.release_on_behalf_of(borrower)


async def _quiet_close(client: sdk.TokenClient) -> None:
    # Closing a broken client must not mask the error that broke it.
    with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
        await client.aclose()


def _session(client: sdk.TokenClient, kind: ModelKind) -> Any:
    # Any: the two sessions' load methods differ only in their config dict types.
    return client.llm if kind == "llm" else client.embedding


def _text(error: BaseException) -> str:
    return untrusted.describe_exception(error, 1000)


def _show(value: object) -> str:
    try:
        text = repr(value)
    except RecursionError:
        text = f"a {type(value).__name__} nested too deep to show"
    return untrusted.clip(untrusted.clean_text(text), 200)


def _listing(raw: object) -> list[tuple[str, str]]:
    """(identifier, model key) of each instance in a `listLoaded` answer."""
    if not isinstance(raw, list):
        raise EngineError(f"LM Studio listed its loaded models as {_show(raw)}")
    pairs = []
    for item in raw:
        identifier = item.get("identifier") if isinstance(item, dict) else None
        model_key = item.get("modelKey") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or not isinstance(model_key, str):
            raise EngineError(f"LM Studio listed a loaded model as {_show(item)}")
        pairs.append((identifier, model_key))
    return pairs


def _numbers(values: object, kind: type[_N], what: str) -> list[_N]:
    """`values` as a list of `kind`: booleans, strings, NaN or nested lists are server errors."""
    allowed = (int,) if kind is int else (int, float)
    if isinstance(values, list | tuple) and all(
        type(v) in allowed and math.isfinite(v) for v in values
    ):
        return [kind(v) for v in values]
    raise EngineError(f"LM Studio sent {what} as {_show(values)}")


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


def _prediction_config(
    config: PredictionConfig | None, offer: ToolOffer
) -> LlmPredictionConfigDict | None:
    out: dict[str, Any] = {}
    if config is not None:
        pairs = (
            ("temperature", config.temperature),
            ("topPSampling", config.top_p),
            ("topKSampling", config.top_k),
            ("minPSampling", config.min_p),
            ("repeatPenalty", config.repeat_penalty),
            ("maxTokens", config.max_tokens),
        )
        out.update((key, value) for key, value in pairs if value is not None)
        if config.stop_strings:
            out["stopStrings"] = list(config.stop_strings)
    if offer.tools:
        # Tools go to the model as plain config: agentkit runs them, not the SDK. LM Studio
        # can force a call ("force") but not name the tool, so a named tool_choice offers that
        # tool alone; "none" offers no tools (see PredictionRequest.tool_offer).
        tools: dict[str, Any] = {"type": "toolArray", "tools": [_tool(t) for t in offer.tools]}
        if offer.required:
            tools["force"] = True
        out["rawTools"] = tools
    return cast(LlmPredictionConfigDict, out) if out else None


def _tool(tool: ToolDefinition) -> dict[str, Any]:
    function = {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
    return {"type": "function", "function": function}


def _chat(messages: Sequence[Message]) -> Chat:
    """The messages as an lmstudio `Chat` holding exactly the wire history of `_history`.

    Built from the wire dict by msgspec rather than by `Chat.from_history(dict)`, which would
    rewrite snake_case keys inside tool call arguments to camelCase (lmstudio 1.5).
    """
    try:
        return Chat.from_history(msgspec.convert(_history(messages), ChatHistoryData))
    except msgspec.ValidationError as error:  # pragma: no cover - agentkit's models fit
        raise EngineError(f"the chat does not fit LM Studio's history format: {error}") from None


def _history(messages: Sequence[Message]) -> dict[str, Any]:
    """The history lmstudio's own `Chat` would send for the same conversation.

    lmstudio keeps consecutive user messages as one message of several parts and a round's
    tool results (`add_tool_results`) as one tool message; agentkit keeps one message each,
    so runs of them are joined here.
    """
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        role = message.role
        if isinstance(message, SystemMessage):
            content = [_text_part(message.content)]
        elif isinstance(message, UserMessage):
            content = _user_parts(message, index)
        elif isinstance(message, AssistantMessage):
            # The SDK (1.5) requires an assistant message to open with a text part, even an
            # empty one before tool call requests.
            content = [_text_part(message.content)]
            content += (
                {"type": "toolCallRequest", "toolCallRequest": _request(call)}
                for call in message.tool_calls
            )
        else:
            content = [_tool_result(message)]
        if role in ("user", "tool") and out and out[-1]["role"] == role:
            out[-1]["content"] += content
        else:
            out.append({"role": role, "content": content})
    return {"messages": out}


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _user_parts(message: UserMessage, index: int) -> list[dict[str, Any]]:
    if message.images:
        raise NotSupportedError(
            "lm_studio",
            f"images given as URLs or bytes (message {index}): upload the image with lmstudio's "
            "prepare_image() and attach the FileHandle it returns",
        )
    # lmstudio sends no text part for a message of files alone (["a", file] then [file, "b"]).
    parts = [_text_part(message.content)] if message.content or not message.files else []
    return parts + [file_to_dict(file) for file in message.files]


def _request(call: ToolCall) -> dict[str, Any]:
    return {
        "type": "function",
        "id": call.id,
        "name": call.name,
        "arguments": _arguments(call.arguments),
    }


def _tool_result(message: ToolResultMessage) -> dict[str, Any]:
    part = {"type": "toolCallResult", "content": message.content}
    if message.tool_call_id:  # lmstudio's results may have no id; it then sends none
        part["toolCallId"] = message.tool_call_id
    return part


def _arguments(arguments: dict[str, Any] | str) -> dict[str, Any]:
    """Arguments as LM Studio's history needs them: always an object."""
    if isinstance(arguments, dict):
        return arguments
    # Text is what a model wrote that was not a JSON object; act() already told it so.
    try:
        parsed = untrusted.loads(arguments, what="a tool call's arguments")
    except untrusted.UntrustedDataError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
