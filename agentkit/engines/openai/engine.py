"""An engine for any OpenAI-compatible server (`agentkit.Client("http://host:port/v1")`).

The server owns loading: "loading" a model checks that the server serves it and registers an
instance name for it. Predictions stream from `/chat/completions` (or `/completions` for raw
prompts). Connection errors, 429 and 5xx answers are retried with exponential backoff that
honours `Retry-After`, but only while opening the stream: once events have been yielded a
failure raises `EngineError`, so act() commits nothing of that round. A per-engine capacity
limiter bounds how many requests are in flight at once.

The server is not trusted. Every request has a total deadline (`total_timeout`, retries
included) besides the per-read `timeout`; bodies are read incrementally and decompressed in
bounded steps, with lines, events and error bodies capped in bytes; every JSON answer is parsed
within `agentkit.untrusted`'s limits and read through strict typed models (see `stream`). What
the server gets wrong is an `EngineError`; what the model gets wrong in a tool call goes back
to the model. A stream is complete at `data: [DONE]`, whether or not the server then closes
the connection.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

import anyio
import anyio.lowlevel
import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from agentkit import untrusted
from agentkit.chat_dicts import message_to_dict, refuse_files
from agentkit.config import LoadConfig, PredictionConfig, ToolChoice
from agentkit.engines.base import (
    BaseEngine,
    DownloadedModelInfo,
    ModelInfo,
    ModelInstanceInfo,
    ModelKind,
    PredictionEvent,
    PredictionRequest,
    ResponseFormatSpec,
    ToolDefinition,
)
from agentkit.engines.openai.stream import (
    ContentDecoder,
    Count,
    ServerObject,
    SSEParser,
    StreamAssembler,
    parse_json,
    read_model,
    server_error,
)
from agentkit.errors import ConfigurationError, EngineError, ModelNotFoundError

__all__ = ["OpenAIEngine"]

MAX_RETRY_WAIT = 30.0
"""The longest wait between attempts, whatever `Retry-After` asks for."""
MiB = 1024 * 1024
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


class _Model(ServerObject):
    id: str


class _Models(ServerObject):
    data: list[_Model]


class _EmbeddingRow(ServerObject):
    index: Count | None = None
    embedding: list[float]


class _Embeddings(ServerObject):
    data: list[_EmbeddingRow]


class OpenAIEngine(BaseEngine):
    """Predictions, model listing and embeddings from an OpenAI-compatible HTTP server.

    Options:
        api_key: sent as `Authorization: Bearer <key>`.
        timeout: seconds to connect, and to wait for each read (default 120).
        total_timeout: seconds one request may take in all: connecting, retries and their
            waits, and reading the whole answer (default 600). Beyond it the request ends with
            an `EngineError` saying it timed out; time the consumer of a stream spends between
            events counts too.
        max_concurrency: requests in flight at once (default 8).
        max_retries, backoff: retries of connection errors, 429 and 5xx while opening a
            request, and the first wait (doubling, at most 30 s; `Retry-After` wins).
        max_line_bytes: the longest line of a streamed answer, in decompressed bytes
            (default 8 MiB).
        max_event_bytes: the most data in one streamed event, in a whole non-streamed answer
            and in one tool call's name and arguments (default 16 MiB).
        max_error_bytes: how much of an error answer's body is read (default 1 MiB); the rest
            is not read (the error names the status and the start of the body).
        max_body_bytes: the largest `/models` or `/embeddings` answer (default 256 MiB).

    A stream exceeding a cap ends with an `EngineError` naming the option.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 120,
        total_timeout: float = 600,
        max_concurrency: int = 8,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_line_bytes: int = 8 * MiB,
        max_event_bytes: int = 16 * MiB,
        max_error_bytes: int = 1 * MiB,
        max_body_bytes: int = 256 * MiB,
    ) -> None:
        super().__init__()
        if not base_url.startswith(("http://", "https://")):
            raise ConfigurationError(f"an OpenAI base URL starts with http(s)://, got {base_url!r}")
        if max_concurrency < 1 or max_retries < 0 or not timeout > 0 or not backoff >= 0:
            raise ConfigurationError(
                "max_concurrency must be >= 1, max_retries >= 0, timeout > 0 and backoff >= 0"
            )
        if not total_timeout > 0:
            raise ConfigurationError(f"total_timeout must be > 0 seconds, got {total_timeout!r}")
        caps = {
            "max_line_bytes": max_line_bytes,
            "max_event_bytes": max_event_bytes,
            "max_error_bytes": max_error_bytes,
            "max_body_bytes": max_body_bytes,
        }
        for name, cap in caps.items():
            if cap < 1:
                raise ConfigurationError(f"{name} must be >= 1, got {cap!r}")
        self.base_url = base_url.rstrip("/")
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.backoff = backoff
        self.total_timeout = total_timeout
        self.max_line_bytes = max_line_bytes
        self.max_event_bytes = max_event_bytes
        self.max_error_bytes = max_error_bytes
        self.max_body_bytes = max_body_bytes
        self._api_key = api_key
        self._timeout = timeout
        self._http: httpx.AsyncClient | None = None
        self._limiter: anyio.CapacityLimiter | None = None
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
        return self.instances.get_or_add(key, config, ttl, kind)

    async def load_new_instance(
        self,
        model_key: str,
        identifier: str | None,
        config: LoadConfig | None,
        ttl: float | None,
        kind: ModelKind = "llm",
    ) -> ModelInstanceInfo:
        key = await self._served_key(model_key)
        return self.instances.add(key, identifier, config, ttl, kind)

    async def list_downloaded(self) -> list[DownloadedModelInfo]:
        return [DownloadedModelInfo(key, key, 0, self.base_url) for key in await self._served()]

    async def get_info(self, identifier: str) -> ModelInfo:
        return ModelInfo(self.instances.get(identifier).model_key, architecture="unknown")

    async def get_context_length(self, identifier: str) -> int:
        """Not offered: the OpenAI API does not report a model's context length."""
        self.instances.get(identifier)
        raise self.not_supported("get_context_length")

    async def tokenize(self, identifier: str, text: str) -> list[int]:
        """Not offered: the OpenAI API has no tokenization endpoint."""
        self.instances.get(identifier)
        raise self.not_supported("tokenize")

    async def embed(self, identifier: str, texts: Sequence[str]) -> list[list[float]]:
        key = self.instances.get(identifier).model_key
        path = "/embeddings"
        answer = read_model(
            _Embeddings,
            await self._json("POST", path, {"model": key, "input": list(texts)}),
            f"the {path} answer",
        )
        rows = answer.data
        if len(rows) != len(texts):
            raise EngineError(
                f"{self.base_url}{path} answered {len(rows)} embeddings for {len(texts)} texts"
            )
        indices = [row.index for row in rows if row.index is not None]
        if len(indices) == len(rows):
            if sorted(indices) != list(range(len(rows))):
                raise EngineError(
                    f"{self.base_url}{path} answered embeddings with indices that are not "
                    f"0..{len(rows) - 1} once each"
                )
            rows = sorted(rows, key=lambda row: row.index or 0)
        return [list(row.embedding) for row in rows]

    async def aclose(self) -> None:
        await super().aclose()
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    async def _served(self) -> list[str]:
        path = "/models"
        answer = read_model(_Models, await self._json("GET", path, None), f"the {path} answer")
        return [model.id for model in answer.data]

    async def _served_key(self, model_key: str | None) -> str:
        served = await self._served()
        if model_key is None and served:
            return served[0]
        if model_key is not None and model_key in served:
            return model_key
        listed = untrusted.clip(", ".join(repr(key) for key in served) or "none", 1000)
        wanted = "any model" if model_key is None else f"model {model_key!r}"
        raise ModelNotFoundError(f"{self.base_url} does not serve {wanted}; it serves: {listed}")

    # -- predictions -------------------------------------------------------------------------

    async def predict(
        self, identifier: str, request: PredictionRequest
    ) -> AsyncGenerator[PredictionEvent, None]:
        key = self.instances.get(identifier).model_key
        path = "/chat/completions" if request.prompt is None else "/completions"
        # The consumer may pull each event from a different task (the sync client's portal
        # does), so the slot is held on behalf of this prediction, not of the current task.
        # For the same reason no cancel scope spans a yield: the deadline bounds each read.
        borrower = object()
        limiter = self._capacity()
        await limiter.acquire_on_behalf_of(borrower)
        try:
            deadline = anyio.current_time() + self.total_timeout
            try:
                with anyio.fail_after(self.total_timeout):
                    try:
                        response = await self._open(path, self._payload(key, request))
                    except _SchemaRejected:
                        self._json_object_schema = True
                        response = await self._open(path, self._payload(key, request))
            except TimeoutError:
                raise self._timed_out("POST", path) from None
            try:
                async for event in self._events(response, deadline):
                    yield event
            except httpx.HTTPError as error:
                raise EngineError(
                    f"the stream from {self.base_url}{path} broke off: {_describe(error)}"
                ) from error
            except TimeoutError:
                raise self._timed_out("POST", path) from None
            finally:
                await response.aclose()
        finally:
            limiter.release_on_behalf_of(borrower)

    async def _events(
        self, response: httpx.Response, deadline: float
    ) -> AsyncGenerator[PredictionEvent, None]:
        """The events of one answer: an SSE stream, or one JSON body if the server sent that."""
        assembler = StreamAssembler(max_event_bytes=self.max_event_bytes)
        content_type = response.headers.get("content-type", "").lower()
        if content_type.startswith("application/json"):
            body = await self._read_body(response, self.max_event_bytes, deadline, "answer")
            for event in assembler.feed_whole(body):
                yield event
        else:
            decoder = ContentDecoder(response.headers.get("content-encoding"))
            parser = SSEParser(self.max_line_bytes, self.max_event_bytes)
            raw = response.aiter_raw()
            while not assembler.done:
                data = await _next_raw(raw, deadline)
                if data is None:
                    break
                for step, piece in enumerate(decoder.decode(data)):
                    if step:  # one small read may decompress to a lot: stay within the deadline
                        _check_deadline(deadline)
                        await anyio.lowlevel.checkpoint()
                    for event_data in parser.feed(piece):
                        _check_deadline(deadline)
                        for event in assembler.feed(event_data):
                            yield event
                        if assembler.done:
                            break  # [DONE]: complete, whatever the connection does next
                    if assembler.done:
                        break
        for event in assembler.finish():
            yield event

    def _timed_out(self, method: str, path: str) -> EngineError:
        return EngineError(
            f"{method} {self.base_url}{path} timed out: the server did not finish within "
            f"{self.total_timeout:g} s (total_timeout)"
        )

    def _payload(self, key: str, request: PredictionRequest) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": key,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.prompt is not None:
            payload["prompt"] = request.prompt
        else:
            refuse_files(request.messages, self.provider_name)  # images go as image_url parts
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
            # Only encodings ContentDecoder undoes in bounded steps.
            headers = {"Accept-Encoding": "gzip, deflate"}
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
            self._http = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(self._timeout))
        return self._http

    def _capacity(self) -> anyio.CapacityLimiter:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.max_concurrency)
        return self._limiter

    async def _json(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        async with self._capacity():
            try:
                with anyio.fail_after(self.total_timeout):
                    response = await self._open(path, body, method=method)
                    try:
                        data = await self._read_body(
                            response, self.max_body_bytes, None, f"{path} answer"
                        )
                    except httpx.HTTPError as error:
                        raise EngineError(
                            f"reading {self.base_url}{path} failed: {_describe(error)}"
                        ) from error
                    finally:
                        await response.aclose()
            except TimeoutError:
                raise self._timed_out(method, path) from None
        answer = parse_json(data, f"the {path} answer")
        if isinstance(answer, dict) and answer.get("error") is not None:
            raise EngineError(
                f"{self.base_url}{path} reported an error: {server_error(answer['error'])}"
            )
        return answer

    async def _read_body(
        self,
        response: httpx.Response,
        cap: int,
        deadline: float | None,
        what: str,
        *,
        truncate: bool = False,
    ) -> bytes:
        """The decoded body, read and decompressed incrementally, at most `cap` bytes.

        Beyond the cap: `EngineError`, or (`truncate`) the first `cap` bytes.
        """
        decoder = ContentDecoder(response.headers.get("content-encoding"))
        body = bytearray()
        raw = response.aiter_raw()
        while (data := await _next_raw(raw, deadline)) is not None:
            for piece in decoder.decode(data):
                body += piece
                if len(body) > cap:
                    if truncate:
                        return bytes(body[:cap])
                    raise EngineError(
                        f"the server's {what} is larger than {cap} bytes ({_cap_name(self, cap)})"
                    )
        return bytes(body)

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
        if body is None:
            request = client.build_request(method, url)
        else:
            content = _encode(body)
            headers = {"Content-Type": "application/json"}
            request = client.build_request(method, url, content=content, headers=headers)
        response = await client.send(request, stream=True)
        if response.is_success:
            return response
        try:
            raw = await self._read_body(
                response, self.max_error_bytes, None, "error answer", truncate=True
            )
        except EngineError as error:  # an undecodable error body: the status still counts
            raw = str(error).encode()
        finally:
            await response.aclose()
        text = raw.decode("utf-8", "replace")
        if _rejects_json_schema(response.status_code, text, body):
            raise _SchemaRejected(text)
        raise _StatusError(response.status_code, text, _retry_after(response))

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, _StatusError) and error.retry_after is not None:
            return min(error.retry_after, MAX_RETRY_WAIT)
        return float(min(self.backoff * 2 ** (state.attempt_number - 1), MAX_RETRY_WAIT))


async def _next_raw(raw: AsyncIterator[bytes], deadline: float | None) -> bytes | None:
    """The next raw chunk of a body (None at its end), within the request's deadline."""
    if deadline is None:
        return await anext(raw, None)
    remaining = _check_deadline(deadline)
    with anyio.fail_after(remaining):
        return await anext(raw, None)


def _check_deadline(deadline: float) -> float:
    """The seconds left; `TimeoutError` once none are."""
    remaining = deadline - anyio.current_time()
    if remaining <= 0:
        raise TimeoutError
    return remaining


def _cap_name(engine: OpenAIEngine, cap: int) -> str:
    if cap == engine.max_event_bytes:
        return "max_event_bytes"
    return "max_body_bytes"


def _encode(body: dict[str, Any]) -> bytes:
    """The request's JSON; lone surrogates (from anywhere) become U+FFFD, never an error."""
    try:
        text = json.dumps(body, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as error:
        raise EngineError(
            f"the request could not be encoded as JSON: {untrusted.describe_exception(error)}"
        ) from None
    return untrusted.clean_text(text).encode("utf-8")


def _retryable(error: BaseException) -> bool:
    if isinstance(error, _StatusError):
        return error.retryable
    return isinstance(error, httpx.TransportError)


def _retry_after(response: httpx.Response) -> float | None:
    try:
        seconds = float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None  # absent, or an HTTP date: fall back to exponential backoff
    return max(0.0, seconds) if not math.isnan(seconds) else None


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
        out["tool_choice"] = _tool_choice(config.tool_choice)
    return out


def _tool_choice(choice: ToolChoice) -> str | dict[str, Any]:
    """tool_choice in OpenAI's request format."""
    if isinstance(choice, str):
        return choice
    return {"type": "function", "function": {"name": choice.name}}
