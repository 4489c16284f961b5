"""Clients: `AsyncClient` (coroutines) and `Client` (blocking), plus the default client.

A client owns one engine. `Client` runs the async core on a background event loop thread of
its own, so sync code can use agentkit without managing an event loop. Both release
everything when closed (use them as context managers).
"""

from __future__ import annotations

import atexit
import functools
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, TypeVar

from agentkit.config import LoadConfig, LoadConfigInput, coerce_config
from agentkit.engines import engine_for_url
from agentkit.engines.base import DownloadedModelInfo, Engine, ModelKind
from agentkit.errors import ClientClosedError, ConfigurationError
from agentkit.handles import LLM, AsyncLLM
from agentkit.model_handle import (
    AsyncEmbeddingModel,
    AsyncModelHandle,
    EmbeddingModel,
    ModelHandle,
)
from agentkit.portal import Portal

__all__ = [
    "AsyncClient",
    "AsyncEmbeddingNamespace",
    "AsyncLLMNamespace",
    "AsyncModelNamespace",
    "Client",
    "EmbeddingNamespace",
    "LLMNamespace",
    "ModelNamespace",
    "configure_default_client",
    "get_default_client",
    "llm",
]


H = TypeVar("H", bound=AsyncModelHandle)


class AsyncModelNamespace(Generic[H]):
    """`client.llm` / `client.embedding`: load, find and unload models of one kind."""

    __slots__ = ("_client", "_handle", "_kind")

    def __init__(self, client: AsyncClient, kind: ModelKind, handle: type[H]) -> None:
        self._client = client
        self._kind: ModelKind = kind
        self._handle = handle

    async def model(
        self,
        model_key: str | None = None,
        *,
        config: LoadConfigInput = None,
        ttl: float | None = None,
    ) -> H:
        """A handle on a loaded instance of the model, loading it first if needed."""
        engine = self._client.engine
        load = coerce_config(LoadConfig, config)
        info = await engine.get_or_load(model_key, load, ttl, self._kind)
        return self._handle(engine, info)

    async def load_new_instance(
        self,
        model_key: str,
        instance_identifier: str | None = None,
        *,
        config: LoadConfigInput = None,
        ttl: float | None = None,
    ) -> H:
        """Load another instance of the model, even if one is loaded."""
        engine = self._client.engine
        load = coerce_config(LoadConfig, config)
        info = await engine.load_new_instance(model_key, instance_identifier, load, ttl, self._kind)
        return self._handle(engine, info)

    async def list_loaded(self) -> list[H]:
        """Handles on every loaded instance of this kind."""
        engine = self._client.engine
        loaded = await engine.list_loaded()
        return [self._handle(engine, info) for info in loaded if info.kind == self._kind]

    async def list_downloaded_models(self) -> list[DownloadedModelInfo]:
        """Models the engine can load."""
        return await self._client.engine.list_downloaded()

    async def unload(self, identifier: str) -> None:
        """Unload the instance with this identifier."""
        await self._client.engine.unload(identifier)


AsyncLLMNamespace = AsyncModelNamespace[AsyncLLM]
AsyncEmbeddingNamespace = AsyncModelNamespace[AsyncEmbeddingModel]


class AsyncClient:
    """The async entry point: `async with AsyncClient() as client: ...`."""

    def __init__(self, base_url: str | None = None, *, engine: Engine | None = None) -> None:
        if engine is not None and base_url is not None:
            raise ConfigurationError("pass either base_url or engine, not both")
        self._engine = engine if engine is not None else engine_for_url(base_url)
        self._closed = False
        self.llm = AsyncModelNamespace(self, "llm", AsyncLLM)
        self.embedding = AsyncModelNamespace(self, "embedding", AsyncEmbeddingModel)

    @property
    def engine(self) -> Engine:
        """The client's engine (raises once the client is closed)."""
        if self._closed:
            raise ClientClosedError("this client is closed; create a new one")
        return self._engine

    async def aclose(self) -> None:
        """Unload what the client loaded and release the engine; idempotent."""
        if not self._closed:
            self._closed = True
            await self._engine.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


S = TypeVar("S", bound=ModelHandle[Any])


class ModelNamespace(Generic[H, S]):
    """`client.llm` / `client.embedding` of a sync client."""

    __slots__ = ("_inner", "_portal", "_wrap")

    def __init__(
        self, inner: AsyncModelNamespace[H], portal: Portal, wrap: Callable[[H, Portal], S]
    ) -> None:
        self._inner = inner
        self._portal = portal
        self._wrap = wrap

    def model(
        self,
        model_key: str | None = None,
        *,
        config: LoadConfigInput = None,
        ttl: float | None = None,
    ) -> S:
        """A handle on a loaded instance of the model, loading it first if needed."""
        load = functools.partial(self._inner.model, model_key, config=config, ttl=ttl)
        return self._wrap(self._portal.call(load), self._portal)

    def load_new_instance(
        self,
        model_key: str,
        instance_identifier: str | None = None,
        *,
        config: LoadConfigInput = None,
        ttl: float | None = None,
    ) -> S:
        """Load another instance of the model, even if one is loaded."""
        load = functools.partial(
            self._inner.load_new_instance, model_key, instance_identifier, config=config, ttl=ttl
        )
        return self._wrap(self._portal.call(load), self._portal)

    def list_loaded(self) -> list[S]:
        """Handles on every loaded instance of this kind."""
        return [self._wrap(h, self._portal) for h in self._portal.call(self._inner.list_loaded)]

    def list_downloaded_models(self) -> list[DownloadedModelInfo]:
        """Models the engine can load."""
        return self._portal.call(self._inner.list_downloaded_models)

    def unload(self, identifier: str) -> None:
        """Unload the instance with this identifier."""
        self._portal.call(self._inner.unload, identifier)


LLMNamespace = ModelNamespace[AsyncLLM, LLM]
EmbeddingNamespace = ModelNamespace[AsyncEmbeddingModel, EmbeddingModel]


class Client:
    """The blocking entry point: `with Client() as client: model = client.llm.model()`."""

    def __init__(self, base_url: str | None = None, *, engine: Engine | None = None) -> None:
        self._async = AsyncClient(base_url, engine=engine)
        self._portal = Portal(
            background=bool(getattr(self._async.engine, "needs_running_loop", False))
        )
        self.llm = ModelNamespace(self._async.llm, self._portal, LLM)
        self.embedding = ModelNamespace(self._async.embedding, self._portal, EmbeddingModel)

    @property
    def async_client(self) -> AsyncClient:
        """The async client behind this one."""
        return self._async

    def close(self) -> None:
        """Release the engine and stop the background loop; idempotent."""
        if not self._portal.closed:
            self._portal.call(self._async.aclose)
            self._portal.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_default_client: Client | None = None
_default_lock = threading.Lock()


def configure_default_client(
    base_url: str | None = None, *, engine: Engine | None = None
) -> Client:
    """Create the default client used by `agentkit.llm()`; only before it exists."""
    global _default_client
    with _default_lock:
        if _default_client is not None:
            raise ConfigurationError(
                "the default client already exists; configure it before the first "
                "agentkit.llm() call"
            )
        _default_client = _closed_at_exit(Client(base_url, engine=engine))
        return _default_client


def get_default_client() -> Client:
    """The default client, created on first use with the local engine."""
    global _default_client
    with _default_lock:
        if _default_client is None:
            _default_client = _closed_at_exit(Client())
        return _default_client


def _closed_at_exit(client: Client) -> Client:
    atexit.register(client.close)
    return client


def llm(
    model_key: str | None = None, *, config: LoadConfigInput = None, ttl: float | None = None
) -> LLM:
    """A model handle on the default client (see `configure_default_client`)."""
    return get_default_client().llm.model(model_key, config=config, ttl=ttl)
