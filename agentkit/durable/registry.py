"""The durable agents and loops of this process, by name: what a recovered run looks up."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentkit.errors import ConfigurationError

if TYPE_CHECKING:
    from .agent import DurableAgent
    from .loop import DurableLoop

__all__ = ["agent", "loop", "register", "reset"]

_TARGETS: dict[str, DurableAgent | DurableLoop] = {}


def register(name: str, target: DurableAgent | DurableLoop) -> None:
    if not name or ":" in name:
        raise ConfigurationError(
            f"a durable agent's name is non-empty text without ':', got {name!r}"
        )
    if name in _TARGETS:
        raise ConfigurationError(f"a durable agent or loop named {name!r} is registered already")
    _TARGETS[name] = target


def _lookup(name: str) -> DurableAgent | DurableLoop:
    target = _TARGETS.get(name)
    if target is None:
        raise ConfigurationError(
            f"no durable agent or loop named {name!r} in this process: create it with the same "
            "name before Runtime.launch() in every worker, so recovered runs find it"
        )
    return target


def agent(name: str) -> DurableAgent:
    from .agent import DurableAgent

    target = _lookup(name)
    if not isinstance(target, DurableAgent):
        raise ConfigurationError(f"{name!r} is a durable loop, not an agent")
    return target


def loop(name: str) -> DurableLoop:
    from .loop import DurableLoop

    target = _lookup(name)
    if not isinstance(target, DurableLoop):
        raise ConfigurationError(f"{name!r} is a durable agent, not a loop")
    return target


def reset() -> None:
    """Forget every registration (when the runtime shuts down)."""
    _TARGETS.clear()
