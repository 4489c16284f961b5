"""What every model handle shares: identity, metadata, tokenizer, unload; and embedding handles.

`AsyncModelHandle` names one loaded instance on an engine and holds no other state.
`ModelHandle` is its blocking twin, forwarding each call to the client's background loop.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from agentkit.config import LoadConfig
from agentkit.engines.base import Engine, ModelInfo, ModelInstanceInfo
from agentkit.portal import Portal

__all__ = ["AsyncEmbeddingModel", "AsyncModelHandle", "EmbeddingModel", "ModelHandle", "blocking"]

T = TypeVar("T")
A = TypeVar("A", bound="AsyncModelHandle")


class AsyncModelHandle:
    """A loaded model instance (async API)."""

    __slots__ = ("_engine", "_info")

    def __init__(self, engine: Engine, info: ModelInstanceInfo) -> None:
        self._engine = engine
        self._info = info

    @property
    def identifier(self) -> str:
        """This loaded instance's identifier."""
        return self._info.identifier

    @property
    def model_key(self) -> str:
        """The key of the model this instance runs."""
        return self._info.model_key

    @property
    def info(self) -> ModelInstanceInfo:
        """The instance's key, identifier, load config and TTL."""
        return self._info

    @property
    def engine(self) -> Engine:
        """The engine the instance runs on."""
        return self._engine

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.identifier!r})"

    async def get_info(self) -> ModelInfo:
        """Architecture, parameters, quantization and size of the model."""
        return await self._engine.get_info(self.identifier)

    async def get_load_config(self) -> LoadConfig:
        """The config the instance was loaded with."""
        return self._info.load_config

    async def get_context_length(self) -> int:
        """The context length the instance was loaded with."""
        return await self._engine.get_context_length(self.identifier)

    async def tokenize(self, text: str) -> list[int]:
        """Token ids of text with the model's tokenizer."""
        return await self._engine.tokenize(self.identifier, text)

    async def count_tokens(self, text: str) -> int:
        """How many tokens text takes."""
        return len(await self.tokenize(text))

    async def unload(self) -> None:
        """Unload this instance from the engine."""
        await self._engine.unload(self.identifier)


class AsyncEmbeddingModel(AsyncModelHandle):
    """A loaded embedding model (async API)."""

    __slots__ = ()

    async def embed(self, texts: str | Sequence[str]) -> list[list[float]]:
        """One vector per text (a single str gives a list with one vector)."""
        batch = [texts] if isinstance(texts, str) else list(texts)
        return await self._engine.embed(self.identifier, batch)


class ModelHandle(Generic[A]):
    """A loaded model instance (blocking API); wraps an async handle."""

    __slots__ = ("_async", "_portal")

    def __init__(self, async_handle: A, portal: Portal) -> None:
        self._async = async_handle
        self._portal = portal

    @property
    def identifier(self) -> str:
        """This loaded instance's identifier."""
        return self._async.identifier

    @property
    def model_key(self) -> str:
        """The key of the model this instance runs."""
        return self._async.model_key

    @property
    def info(self) -> ModelInstanceInfo:
        """The instance's key, identifier, load config and TTL."""
        return self._async.info

    @property
    def engine(self) -> Engine:
        """The engine the instance runs on."""
        return self._async.engine

    @property
    def async_handle(self) -> A:
        """The async handle behind this one (use it inside async code)."""
        return self._async

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.identifier!r})"

    def get_info(self) -> ModelInfo:
        """Architecture, parameters, quantization and size of the model."""
        return self._call(self._async.get_info)

    def get_load_config(self) -> LoadConfig:
        """The config the instance was loaded with."""
        return self._async.info.load_config

    def get_context_length(self) -> int:
        """The context length the instance was loaded with."""
        return self._call(self._async.get_context_length)

    def tokenize(self, text: str) -> list[int]:
        """Token ids of text with the model's tokenizer."""
        return self._call(functools.partial(self._async.tokenize, text))

    def count_tokens(self, text: str) -> int:
        """How many tokens text takes."""
        return self._call(functools.partial(self._async.count_tokens, text))

    def unload(self) -> None:
        """Unload this instance from the engine."""
        self._call(self._async.unload)

    def _call(self, function: Callable[[], Awaitable[T]]) -> T:
        return self._portal.call(function)


class EmbeddingModel(ModelHandle[AsyncEmbeddingModel]):
    """A loaded embedding model (blocking API)."""

    __slots__ = ()

    def embed(self, texts: str | Sequence[str]) -> list[list[float]]:
        """One vector per text (a single str gives a list with one vector)."""
        return self._call(functools.partial(self._async.embed, texts))


P = ParamSpec("P")
R = TypeVar("R")


def blocking(
    method: Callable[Concatenate[Any, P], Awaitable[R]],
) -> Callable[Concatenate[ModelHandle[Any], P], R]:
    """The blocking twin of an async handle method, with the same parameters.

    The twin runs the coroutine on the client's loop thread and waits for it; its signature,
    name and docstring are the async method's, so a misspelled keyword is a TypeError and
    type checkers and editors see every parameter.
    """
    name = method.__name__

    def call(self: ModelHandle[Any], /, *args: P.args, **kwargs: P.kwargs) -> R:
        bound = getattr(self._async, name)
        result: R = self._portal.call(functools.partial(bound, *args, **kwargs))
        return result

    functools.update_wrapper(call, method)
    return call
