"""A protocol test server that speaks LM Studio's SDK WebSocket API.

It runs in its own thread with its own asyncio loop, so both sync and async tests can use it, and
the real `lmstudio` client talks to it unmodified: the HTTP greeting, the auth frame, the RPC and
channel envelopes, model lifecycle RPCs and the `predict` channel.

Each prediction is driven by a scripted responder: a function of (creation parameter, prediction
index) returning a list of steps (`Fragment`, `ToolCallGen`, `ToolCallFails`, `Delay`, `Fail`,
`Drop`, `Finish`, and `Send` for any channel message at all, hostile ones included).
`rpc_results` replaces an RPC's answer with raw JSON text, for answers of the wrong shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, TypeAlias

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

__all__ = [
    "Delay",
    "Drop",
    "Fail",
    "Finish",
    "Fragment",
    "LMStudioTestServer",
    "ModelSpec",
    "Send",
    "Step",
    "ToolCallFails",
    "ToolCallGen",
    "text_reply",
]


@dataclass(frozen=True)
class Fragment:
    """One generated text fragment (`reasoning` marks thinking text)."""

    text: str
    reasoning: bool = False


@dataclass(frozen=True)
class ToolCallGen:
    """A tool call generated through the toolCallGeneration* message sequence."""

    name: str
    arguments: dict[str, Any]
    id: str = "call_1"


@dataclass(frozen=True)
class ToolCallFails:
    """A tool call whose generation failed (toolCallGenerationFailed)."""

    raw: str
    error: str = "Failed to parse tool call"


@dataclass(frozen=True)
class Delay:
    """Wait; a cancel arriving meanwhile ends the prediction with stopReason userStopped."""

    seconds: float


@dataclass(frozen=True)
class Fail:
    """Send a prediction `error` message."""

    title: str


@dataclass(frozen=True)
class Drop:
    """Abort the TCP connection mid-stream."""


@dataclass(frozen=True)
class Finish:
    """Send `success` with this stop reason (sent automatically when a script ends)."""

    stop_reason: str = "eosFound"
    stats: dict[str, Any] | None = None
    """More fields of `success.stats` (tokensPerSecond, timeToFirstTokenSec, ...)."""


@dataclass(frozen=True)
class Send:
    """Send this channel message as it is: a dict, or raw JSON text (for what `json.dumps`
    cannot write: nesting deeper than its recursion limit, NaN, lone surrogates)."""

    message: dict[str, Any] | str


Step: TypeAlias = Fragment | ToolCallGen | ToolCallFails | Delay | Fail | Drop | Finish | Send
Responder: TypeAlias = Callable[[dict[str, Any], int], Sequence[Step]]


def text_reply(*texts: str) -> Responder:
    """A responder that answers every prediction with these fragments."""
    return lambda _param, _index: [Fragment(t) for t in texts]


@dataclass(frozen=True)
class ModelSpec:
    """A model the server knows (downloaded, and loadable by key)."""

    key: str
    kind: str = "llm"
    context_length: int = 4096
    architecture: str = "qwen2"


def _error(title: str, code: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"title": title, "rootTitle": title, "cause": None}
    if code is not None:
        error["displayData"] = {"code": code}
    return error


@dataclass
class _Instance:
    spec: ModelSpec
    identifier: str
    context_length: int
    ttl_ms: int | None

    def info(self) -> dict[str, Any]:
        info = _model_info(self.spec)
        info.update(
            identifier=self.identifier,
            instanceReference=f"ref-{self.identifier}",
            contextLength=self.context_length,
        )
        return info


def _model_info(spec: ModelSpec) -> dict[str, Any]:
    info: dict[str, Any] = {
        "type": spec.kind,
        "modelKey": spec.key,
        "format": "gguf",
        "displayName": spec.key,
        "path": f"publisher/{spec.key}/{spec.key}.gguf",
        "sizeBytes": 1000,
        "maxContextLength": 32768,
        "architecture": spec.architecture,
    }
    if spec.kind == "llm":
        info.update(vision=False, trainedForToolUse=True)
    return info


@dataclass
class _Stats:
    """What the server saw; read by tests."""

    auth_frames: list[dict[str, Any]] = field(default_factory=list)
    predictions: list[dict[str, Any]] = field(default_factory=list)
    cancels: int = 0
    active: int = 0
    peak: int = 0
    load_requests: list[dict[str, Any]] = field(default_factory=list)


class LMStudioTestServer:
    """`with LMStudioTestServer(responder) as server:` then connect to `server.host`."""

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        models: Sequence[ModelSpec] = (
            ModelSpec("qwen-test"),
            ModelSpec("embed-test", "embedding"),
        ),
        api_token: str | None = None,
        step_delay: float = 0.0,
    ) -> None:
        self.responder = responder or text_reply("hello ", "world")
        self.models = {m.key: m for m in models}
        self.required_token = api_token
        self.step_delay = step_delay
        self.rpc_results: dict[str, str] = {}
        """Raw JSON text answering an RPC endpoint (`"listLoaded"`, ...) instead of its result."""
        self.stats = _Stats()
        self.instances: dict[str, _Instance] = {}
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Server | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._lock = threading.Lock()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> LMStudioTestServer:
        self._thread = threading.Thread(target=self._run, name="lmstudio-test-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the LM Studio test server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(
            self._handle, "127.0.0.1", 0, process_request=self._process_request
        ) as server:
            self._server = server
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/lmstudio-greeting":
            body = json.dumps({"lmstudio": True}).encode()
            headers = Headers(
                [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return Response(HTTPStatus.OK, "OK", headers, body)
        return None

    # -- connections -------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        namespace = (ws.request.path if ws.request else "/").strip("/")
        auth = json.loads(await ws.recv())
        self.stats.auth_frames.append(auth)
        if self.required_token is not None:
            identifier, _, passkey = self.required_token.partition(":")
            if (auth.get("clientIdentifier"), auth.get("clientPasskey")) != (identifier, passkey):
                await ws.send(json.dumps({"success": False, "error": _error("Invalid API token")}))
                return
        await ws.send(json.dumps({"success": True}))
        channels: dict[int, asyncio.Event] = {}
        tasks: set[asyncio.Task[None]] = set()
        try:
            async for raw in ws:
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "rpcCall":
                    await self._rpc(ws, namespace, message)
                elif kind == "channelCreate":
                    cancel = asyncio.Event()
                    channels[message["channelId"]] = cancel
                    task = asyncio.create_task(self._channel(ws, namespace, message, cancel))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                elif kind == "channelSend" and message.get("message", {}).get("type") == "cancel":
                    with self._lock:
                        self.stats.cancels += 1
                    event = channels.get(message["channelId"])
                    if event is not None:
                        event.set()
        except Exception:  # the client went away
            pass
        finally:
            for task in tasks:
                task.cancel()

    async def _rpc(self, ws: ServerConnection, namespace: str, message: dict[str, Any]) -> None:
        call_id = message["callId"]
        raw = self.rpc_results.get(message["endpoint"])
        if raw is not None:
            await ws.send(f'{{"type": "rpcResult", "callId": {call_id}, "result": {raw}}}')
            return
        try:
            result = self._rpc_result(namespace, message["endpoint"], message.get("parameter"))
        except _RpcError as error:
            await ws.send(json.dumps({"type": "rpcError", "callId": call_id, "error": error.error}))
            return
        reply: dict[str, Any] = {"type": "rpcResult", "callId": call_id}
        if result is not None:
            reply["result"] = result
        await ws.send(json.dumps(reply))

    def _find(self, specifier: dict[str, Any] | None) -> _Instance:
        identifier = None
        if specifier is not None:
            if specifier.get("type") == "query":
                identifier = specifier.get("query", {}).get("identifier")
            elif specifier.get("type") == "instanceReference":
                reference = specifier.get("instanceReference", "")
                identifier = reference.removeprefix("ref-")
        instance = self.instances.get(identifier or "")
        if instance is None:
            raise _RpcError(
                _error(
                    f"No model found that matches {identifier!r}", "generic.noModelMatchingQuery"
                )
            )
        return instance

    def _rpc_result(self, namespace: str, endpoint: str, parameter: Any) -> Any:
        param: dict[str, Any] = parameter or {}
        if endpoint == "listLoaded":
            return [i.info() for i in self.instances.values() if i.spec.kind == namespace]
        if endpoint == "listDownloadedModels":
            return [_model_info(spec) for spec in self.models.values()]
        if endpoint == "getModelInfo":
            return self._find(param.get("specifier")).info()
        if endpoint == "getLoadConfig":
            instance = self._find(param.get("specifier"))
            field_key = f"{namespace}.load.contextLength"
            return {"fields": [{"key": field_key, "value": instance.context_length}]}
        if endpoint == "unloadModel":
            if self.instances.pop(param.get("identifier", ""), None) is None:
                raise _RpcError(_error("No such instance", "generic.noModelMatchingQuery"))
            return None
        if endpoint == "countTokens":
            self._find(param.get("specifier"))
            return {"tokenCount": len(param["inputString"].split())}
        if endpoint == "tokenize":
            self._find(param.get("specifier"))
            return {"tokens": [len(word) for word in param["inputString"].split()]}
        if endpoint == "embedString":
            self._find(param.get("modelSpecifier"))
            text = param["inputString"]
            return {"embedding": [float(len(text)), float(len(text.split())), 1.0]}
        raise _RpcError(_error(f"Unknown endpoint {endpoint}"))

    async def _channel(
        self,
        ws: ServerConnection,
        namespace: str,
        message: dict[str, Any],
        cancel: asyncio.Event,
    ) -> None:
        channel_id = message["channelId"]
        endpoint = message["endpoint"]
        param = message.get("creationParameter") or {}

        async def send(payload: dict[str, Any] | str) -> None:
            text = payload if isinstance(payload, str) else json.dumps(payload)
            await ws.send(
                f'{{"type": "channelSend", "channelId": {channel_id}, "message": {text}}}'
            )

        if endpoint in ("getOrLoad", "loadModel"):
            await self._load(namespace, endpoint, param, send, channel_id, ws)
        elif endpoint == "predict":
            await self._predict(ws, param, send, cancel)
        else:
            await ws.send(
                json.dumps(
                    {
                        "type": "channelError",
                        "channelId": channel_id,
                        "error": _error(f"Unknown channel endpoint {endpoint}"),
                    }
                )
            )

    async def _load(
        self,
        namespace: str,
        endpoint: str,
        param: dict[str, Any],
        send: Callable[[dict[str, Any] | str], Any],
        channel_id: int,
        ws: ServerConnection,
    ) -> None:
        self.stats.load_requests.append({"endpoint": endpoint, **param})
        key = param.get("modelKey") or param.get("identifier") or ""
        if endpoint == "getOrLoad":
            existing = self.instances.get(key) or next(
                (i for i in self.instances.values() if i.spec.key == key), None
            )
            if existing is not None:
                await send({"type": "alreadyLoaded", "info": existing.info()})
                return
        spec = self.models.get(key)
        if spec is None or spec.kind != namespace:
            error = _error(f"No model found that matches {key!r}", "generic.noModelMatchingQuery")
            await ws.send(
                json.dumps({"type": "channelError", "channelId": channel_id, "error": error})
            )
            return
        context_length = spec.context_length
        for item in param.get("loadConfigStack", {}).get("layers", []):
            for kv in item.get("config", {}).get("fields", []):
                if kv["key"].endswith(".contextLength"):
                    context_length = int(kv["value"])
        identifier = param.get("identifier") or key
        suffix = 2
        while identifier in self.instances:
            identifier = f"{key}:{suffix}"
            suffix += 1
        instance = _Instance(spec, identifier, context_length, param.get("ttlMs"))
        await send({"type": "startLoading"})
        await send({"type": "loadProgress", "progress": 0.5})
        self.instances[identifier] = instance
        await send({"type": "loadSuccess", "info": instance.info()})

    async def _predict(
        self,
        ws: ServerConnection,
        param: dict[str, Any],
        send: Callable[[dict[str, Any] | str], Any],
        cancel: asyncio.Event,
    ) -> None:
        with self._lock:
            index = len(self.stats.predictions)
            self.stats.predictions.append(param)
            self.stats.active += 1
            self.stats.peak = max(self.stats.peak, self.stats.active)
        try:
            await self._run_script(ws, param, send, cancel, index)
        finally:
            with self._lock:
                self.stats.active -= 1

    async def _run_script(
        self,
        ws: ServerConnection,
        param: dict[str, Any],
        send: Callable[[dict[str, Any] | str], Any],
        cancel: asyncio.Event,
        index: int,
    ) -> None:
        identifier = param.get("modelSpecifier", {}).get("query", {}).get("identifier", "")
        instance = self.instances.get(identifier) or next(iter(self.instances.values()), None)
        if instance is None:
            await send({"type": "error", "error": _error("No model loaded")})
            return
        # In a worker thread: a responder may run real inference, and the connection's
        # keepalive must go on meanwhile.
        steps = list(await asyncio.to_thread(self.responder, param, index))
        await send({"type": "promptProcessingProgress", "progress": 0.0})
        await send({"type": "promptProcessingProgress", "progress": 1.0})
        predicted = 0
        stop_reason = "toolCalls" if any(isinstance(s, ToolCallGen) for s in steps) else "eosFound"
        more_stats: dict[str, Any] = {}
        for step in steps:
            if self.step_delay:
                await asyncio.sleep(self.step_delay)
            if cancel.is_set():
                stop_reason = "userStopped"
                break
            if isinstance(step, Fragment):
                predicted += 1
                await send(
                    {
                        "type": "fragment",
                        "fragment": {
                            "content": step.text,
                            "tokensCount": 1,
                            "containsDrafted": False,
                            "reasoningType": "reasoning" if step.reasoning else "none",
                        },
                    }
                )
            elif isinstance(step, ToolCallGen):
                arguments = json.dumps(step.arguments)
                await send({"type": "toolCallGenerationStart", "toolCallId": step.id})
                await send({"type": "toolCallGenerationNameReceived", "name": step.name})
                half = len(arguments) // 2
                for part in (arguments[:half], arguments[half:]):
                    await send(
                        {"type": "toolCallGenerationArgumentFragmentGenerated", "content": part}
                    )
                predicted += 1
                await send(
                    {
                        "type": "toolCallGenerationEnd",
                        "toolCallRequest": {
                            "type": "function",
                            "id": step.id,
                            "name": step.name,
                            "arguments": step.arguments,
                        },
                    }
                )
            elif isinstance(step, ToolCallFails):
                await send({"type": "toolCallGenerationStart"})
                await send(
                    {
                        "type": "toolCallGenerationFailed",
                        "error": _error(step.error),
                        "rawContent": step.raw,
                    }
                )
            elif isinstance(step, Delay):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(cancel.wait(), step.seconds)
                if cancel.is_set():
                    stop_reason = "userStopped"
                    break
            elif isinstance(step, Fail):
                await send({"type": "error", "error": _error(step.title)})
                return
            elif isinstance(step, Drop):
                ws.transport.abort()
                return
            elif isinstance(step, Send):
                await send(step.message)
            else:
                stop_reason = step.stop_reason
                more_stats = step.stats or {}
                break
        model_info = _model_info(instance.spec)
        await send(
            {
                "type": "success",
                "stats": {
                    "stopReason": stop_reason,
                    "promptTokensCount": 7,
                    "predictedTokensCount": predicted,
                    "totalTokensCount": 7 + predicted,
                    **more_stats,
                },
                "modelInfo": model_info,
                "loadModelConfig": {"fields": []},
                "predictionConfig": {"fields": []},
            }
        )


class _RpcError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("title"))
        self.error = error
