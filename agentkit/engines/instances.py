"""Loaded-instance bookkeeping for engines that load no real model (scripted, replay)."""

from __future__ import annotations

from agentkit.config import LoadConfig
from agentkit.engines.base import ModelInstanceInfo, ModelKind
from agentkit.errors import ConfigurationError, ModelNotFoundError

__all__ = ["InstanceTable"]


class InstanceTable:
    """Instances by identifier, with get-or-load and unique-identifier rules."""

    __slots__ = ("_loaded",)

    def __init__(self) -> None:
        self._loaded: dict[str, ModelInstanceInfo] = {}

    def get_or_add(
        self, key: str, config: LoadConfig | None, ttl: float | None, kind: ModelKind
    ) -> ModelInstanceInfo:
        """The instance of `key` of this kind, added on first use."""
        for info in self._loaded.values():
            if info.model_key == key and info.kind == kind:
                return info
        identifier = key if kind == "llm" else f"{key}:embedding"
        return self.add(key, identifier, config, ttl, kind)

    def add(
        self,
        key: str,
        identifier: str | None,
        config: LoadConfig | None,
        ttl: float | None,
        kind: ModelKind,
    ) -> ModelInstanceInfo:
        """A new instance; `identifier` defaults to `key:N`, and must be unique."""
        if identifier is None:
            identifier = f"{key}:{len(self._loaded) + 1}"
        if identifier in self._loaded:
            raise ConfigurationError(f"an instance named {identifier!r} is already loaded")
        info = ModelInstanceInfo(key, identifier, config or LoadConfig(), ttl, kind)
        self._loaded[identifier] = info
        return info

    def get(self, identifier: str) -> ModelInstanceInfo:
        """The instance, or `ModelNotFoundError`."""
        try:
            return self._loaded[identifier]
        except KeyError:
            raise ModelNotFoundError(f"no loaded instance is named {identifier!r}") from None

    def remove(self, identifier: str) -> None:
        """Forget an instance (`ModelNotFoundError` if unknown)."""
        self.get(identifier)
        del self._loaded[identifier]

    def all(self) -> list[ModelInstanceInfo]:
        """Every instance."""
        return list(self._loaded.values())

    def clear(self) -> None:
        """Forget every instance."""
        self._loaded.clear()
