"""The durable agents and loops of this process, by name: what a recovered run looks up."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, TypeVar

from agentkit.errors import ConfigurationError

if TYPE_CHECKING:
    from typing import TypeAlias

    from .agent import DurableAgent
    from .evaluation import DurableEvaluation
    from .loop import DurableLoop

    Target: TypeAlias = DurableAgent | DurableLoop | DurableEvaluation

__all__ = ["agent", "evaluation", "forget", "loop", "register"]

T = TypeVar("T")

_TARGETS: dict[str, Target] = {}


def register(name: str, target: Target) -> None:
    if not name or ":" in name:
        raise ConfigurationError(
            f"a durable agent's name is non-empty text without ':', got {name!r}"
        )
    if name in _TARGETS:
        raise ConfigurationError(f"something durable named {name!r} is registered already")
    _TARGETS[name] = target


def _lookup(name: str) -> Target:
    target = _TARGETS.get(name)
    if target is None:
        raise ConfigurationError(
            f"nothing durable named {name!r} in this process: create it with the same "
            "name before Runtime.launch() in every worker, so recovered runs find it"
        )
    return target


def _typed(name: str, kind: type[T]) -> T:
    target = _lookup(name)
    if not isinstance(target, kind):
        raise ConfigurationError(f"{name!r} is a {type(target).__name__}, not a {kind.__name__}")
    return target


def agent(name: str) -> DurableAgent:
    from .agent import DurableAgent

    return _typed(name, DurableAgent)


def loop(name: str) -> DurableLoop:
    from .loop import DurableLoop

    return _typed(name, DurableLoop)


def evaluation(name: str) -> DurableEvaluation:
    from .evaluation import DurableEvaluation

    return _typed(name, DurableEvaluation)


def forget(names: Iterable[str]) -> None:
    """Forget these registrations (when their runtime shuts down)."""
    for name in names:
        _TARGETS.pop(name, None)
