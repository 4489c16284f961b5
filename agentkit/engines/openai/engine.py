"""An engine for any OpenAI-compatible server (`agentkit.Client("http://host:port/v1")`).

The server owns loading: "loading" a model checks that the server serves it and registers an
instance name for it. Predictions stream from `/chat/completions` (or `/completions` for raw
prompts). Connection errors, 429 and 5xx answers are retried with exponential backoff that
honours `Retry-After`, but only while opening the stream: once events have been yielded a
failure raises `EngineError`, so act() commits nothing of that round. A per-engine capacity
limiter bounds how many requests are in flight at once.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any

import anyio
import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from agentkit.chat_dicts import message_to_dict
from agentkit.config import LoadConfig, PredictionConfig
from agentkit.engines.base import (
    DownloadedModelInfo,
    ModelInfo,
    ModelInstanceInfo,
    ModelKind,
    PredictionEvent,
    PredictionRequest,
    ResponseFormatSpec,
    ToolDefinition,
)
from agentkit.engines.instances import InstanceTable
from agentkit.engines.openai.stream import StreamAssembler, sse_data
from agentkit.errors import ConfigurationError, EngineError, ModelNotFoundError

__all__ = ["OpenAIEngine"]

MAX_RETRY_WAIT = 30.0
"""The longest wait between attempts, whatever `Retry-After` asks for."""
_AGENTKIT_ONLY_KEYS = ("is_error", "reasoning_content")


class _StatusError(Exception):
    """A non-2xx answer (kept internal: turned into `EngineError` once retries are spent)."""

    def __init__(self, status: int, body: str, retry_after: float | None) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.status == 429 or self.status >= 500


class _SchemaRejected(Exception):
    """The server does not accept `response_format` of type json_schema."""


class OpenAIEngine:
    """Predictions, model listing and embeddings from an OpenAI-compatible HTTP server."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 120,
        max_concurrency: int = 8,
        max_retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigurationError(f"an OpenAI base URL starts with http(s)://, got {base_url!r}")
        if max_concurrency < 1 or max_retries < 0 or timeout <= 0 or backoff < 0:
            raise ConfigurationError(
                "max_concurrency must be >= 1, max_retries >= 0, timeout > 0 and backoff >= 0"
            )
        self.base_url = base_url.rstrip("/")
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.backoff = backoff
        self._api_key = api_key
        self._timeout = timeout
        self._http: httpx.AsyncClient | None = None
        self._limiter: anyio.CapacityLimiter | None = None
        self._instances = InstanceTable()
        self._json_object_schema = False
        """Set once the server rejected json_schema: use llama.cpp's json_object + schema."""

    @property
    def provider_name(self) -> str:
        return "openai"

    # -- lifecycle ---------------------------------------------------------------------------

    async def get_or_load(
        self,
        model_key: str | None,
        config: LoadConfig | None,
        ttl: float | None,
        kind: ModelKind = "llm",
    ) -> ModelInstanceInfo:
        key = await self._served_key(model_key)
        return self._instances.get_or_add(key, config, ttl, kind)

    async def load_new_instance(
        self,
        model_key: str,
        identifier: str | None,
        config: LoadConfig | None,
        ttl: float | None,
        kind: ModelKind = "llm",
    ) -> ModelInstanceInfo:
        key = await self._served_key(model_key)
        return self._instances.add(key, identifier, config, ttl, kind)

    async def unload(self, identifier: str) -> None:
        self._instances.remove(identifier)

    async def list_loaded(self) -> list[ModelInstanceInfo]:
        return self._instances.all()

    async def list_downloaded(self) -> list[DownloadedModelInfo]:
        return [DownloadedModelInfo(key, key, 0, self.base_url) for key in await self._served()]

    async def get_info(self, identifier: str) -> ModelInfo:
        return ModelInfo(self._instances.get(identifier).model_key, architecture="unknown")

    async def get_context_length(self, identifier: str) -> int:
        self._instances.get(identifier)
        raise EngineError("the OpenAI API does not report a model's context length")

    async def tokenize(self, identifier: str, text: str) -> list[int]:
        self._instances.get(identifier)
        raise EngineError("the OpenAI API does not offer tokenization")

    async def embed(self, identifier: str, texts: Sequence[str]) -> list[list[float]]:
        key = self._instances.get(identifier).model_key
        answer = await self._json("POST", "/embeddings", {"model": key, "input": list(texts)})
        try:
            rows = sorted(answer["data"], key=lambda row: int(row.get("index", 0)))
            return [[float(x) for x in row["embedding"]] for row in rows]
        except (KeyError, TypeError, ValueError) as error:
            raise EngineError(f"unexpected embeddings answer from {self.base_url}") from error

    async def aclose(self) -> None:
        self._instances.clear()
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    async def _served(self) -> list[str]:
        answer = await self._json("GET", "/models", None)
        try:
            return [str(model["id"]) for model in answer["data"]]
        except (KeyError, TypeError) as error:
            raise EngineError(f"unexpected /models answer from {self.base_url}") from error

    async def _served_key(self, model_key: str | None) -> str:
        served = await self._served()
        if model_key is None and served:
            return served[0]
        if model_key is not None and model_key in served:
            return model_key
        listed = ", ".join(repr(key) for key in served) or "none"
        wanted = "any model" if model_key is None else f"model {model_key!r}"
        raise ModelNotFoundError(f"{self.base_url} does not serve {wanted}; it serves: {listed}")

    # -- predictions -------------------------------------------------------------------------

    async def predict(
        self, identifier: str, request: PredictionRequest
    ) -> AsyncGenerator[PredictionEvent, None]:
        key = self._instances.get(identifier).model_key
        path = "/completions" if request.prompt is not None else "/chat/completions"
        # The consumer may pull each event from a different task (the sync client's portal
        # does), so the slot is held on behalf of this prediction, not of the current task.
        borrower = object()
        limiter = self._capacity()
        await limiter.acquire_on_behalf_of(borrower)
        try:
            try:
                response = await self._open(path, self._payload(key, request))
            except _SchemaRejected:
                self._json_object_schema = True
                response = await self._open(path, self._payload(key, request))
            try:
                assembler = StreamAssembler()
                async for data in sse_data(response.aiter_lines()):
                    for event in assembler.feed(data):
                        yield event
                for event in assembler.finish():
                    yield event
            except httpx.HTTPError as error:
                raise EngineError(
                    f"the stream from {self.base_url}{path} broke off: {_describe(error)}"
                ) from error
            finally:
                await response.aclose()
        finally:
            limiter.release_on_behalf_of(borrower)

    def _payload(self, key: str, request: PredictionRequest) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": key,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.prompt is not None:
            payload["prompt"] = request.prompt
        else:
            payload["messages"] = [_wire_message(message_to_dict(m)) for m in request.messages]
        if request.tools:
            payload["tools"] = [_tool(tool) for tool in request.tools]
        if request.response_format is not None:
            payload["response_format"] = self._response_format(request.response_format)
        payload.update(_sampling(request.config, bool(request.tools)))
        return payload

    def _response_format(self, spec: ResponseFormatSpec) -> dict[str, Any]:
        if self._json_object_schema:
            return {"type": "json_object", "schema": spec.schema}
        return {"type": "json_schema", "json_schema": {"name": spec.name, "schema": spec.schema}}

    # -- HTTP --------------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            self._http = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(self._timeout))
        return self._http

    def _capacity(self) -> anyio.CapacityLimiter:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.max_concurrency)
        return self._limiter

    async def _json(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        async with self._capacity():
            response = await self._open(path, body, method=method)
            try:
                await response.aread()
            except httpx.HTTPError as error:
                raise EngineError(f"reading {self.base_url}{path} failed: {error}") from error
            finally:
                await response.aclose()
        try:
            return response.json()
        except ValueError as error:
            raise EngineError(f"{self.base_url}{path} did not answer JSON") from error

    async def _open(
        self, path: str, body: dict[str, Any] | None, method: str = "POST"
    ) -> httpx.Response:
        """Send a request and return the open response once its status is 2xx (retrying)."""
        url = self.base_url + path
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(_retryable),
            sleep=anyio.sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._send(method, url, body)
        except httpx.ConnectError as error:
            raise EngineError(
                f"could not connect to {url} ({_describe(error)}); is the server running?"
            ) from error
        except httpx.HTTPError as error:
            raise EngineError(f"{method} {url} failed: {_describe(error)}") from error
        except _StatusError as error:
            raise EngineError(
                f"{httpx.URL(url).host} answered HTTP {error.status} to {method} {url}"
                f"{_attempts(self.max_retries, error)}: {error.body[:300]}"
            ) from error
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(self, method: str, url: str, body: dict[str, Any] | None) -> httpx.Response:
        client = self._client()
        request = client.build_request(method, url, json=body)
        response = await client.send(request, stream=True)
        if response.is_success:
            return response
        try:
            text = (await response.aread()).decode("utf-8", "replace")
        finally:
            await response.aclose()
        if _rejects_json_schema(response.status_code, text, body):
            raise _SchemaRejected(text)
        raise _StatusError(response.status_code, text, _retry_after(response))

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, _StatusError) and error.retry_after is not None:
            return min(error.retry_after, MAX_RETRY_WAIT)
        return float(min(self.backoff * 2 ** (state.attempt_number - 1), MAX_RETRY_WAIT))


def _retryable(error: BaseException) -> bool:
    if isinstance(error, _StatusError):
        return error.retryable
    return isinstance(error, httpx.TransportError)


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return None  # absent, or an HTTP date: fall back to exponential backoff


def _rejects_json_schema(status: int, text: str, body: dict[str, Any] | None) -> bool:
    """llama-cpp-python's server answers 500 (a validation error) to json_schema formats."""
    sent = (body or {}).get("response_format")
    return (
        status in (400, 422, 500)
        and isinstance(sent, dict)
        and sent.get("type") == "json_schema"
        and "json_schema" in text
    )


def _attempts(max_retries: int, error: _StatusError) -> str:
    return f" (after {max_retries + 1} attempts)" if error.retryable and max_retries else ""


def _describe(error: BaseException) -> str:
    return str(error) or type(error).__name__


def _wire_message(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if key not in _AGENTKIT_ONLY_KEYS}


def _tool(tool: ToolDefinition) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


def _sampling(config: PredictionConfig | None, tools_offered: bool) -> dict[str, Any]:
    """OpenAI request keys for the set config fields (top_k, min_p and repeat_penalty are
    llama.cpp/vLLM extensions, sent only when set)."""
    if config is None:
        return {}
    values: dict[str, Any] = {
        "temperature": config.temperature,
        "top_p": config.top_p,
        "top_k": config.top_k,
        "min_p": config.min_p,
        "repeat_penalty": config.repeat_penalty,
        "max_tokens": config.max_tokens,
        "seed": config.seed,
    }
    out = {key: value for key, value in values.items() if value is not None}
    if config.stop_strings:
        out["stop"] = list(config.stop_strings)
    if config.logit_bias:
        out["logit_bias"] = {str(token): bias for token, bias in config.logit_bias.items()}
    if tools_offered and config.tool_choice != "auto":
        out["tool_choice"] = config.tool_choice
    return out
