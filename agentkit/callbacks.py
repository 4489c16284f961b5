"""Calling user callbacks: plain functions or coroutines, never able to break a run.

A callback that raises is logged with its name and traceback at ERROR level on the `agentkit`
logger, and the run goes on (as in lmstudio-python). That holds for BaseExceptions too
(KeyboardInterrupt, SystemExit, a CancelledError the callback raised itself): only the event loop
cancelling the run passes through. So every message of a committed round reaches `on_message`.
Python's last-resort handler prints ERROR records even when logging was never configured, so a
failing callback is never silent.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

from agentkit.cancel import is_cancellation

logger = logging.getLogger("agentkit")

__all__ = ["fire", "is_async_callable", "logger"]


async def fire(callback: Callable[..., Any] | None, *args: Any) -> None:
    """Call `callback(*args)`, awaiting it if it returns an awaitable; log what it raises."""
    if callback is None:
        return
    try:
        outcome = callback(*args)
        if inspect.isawaitable(outcome):
            await outcome
    except BaseException as error:
        if is_cancellation(error):
            raise
        name = getattr(callback, "__qualname__", None) or repr(callback)
        logger.exception("callback %s raised; the run goes on without it", name)


def is_async_callable(function: object) -> bool:
    """True for coroutine functions, partials of them and objects with an async `__call__`."""
    while isinstance(function, functools.partial):
        function = function.func
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004 - async callable objects
    )


def first_parameter_is(function: Callable[..., object], name: str, kind: type) -> bool:
    """Whether `function`'s first parameter is named `name` or annotated `kind` (also as a
    string annotation): how a user's agent says which input it takes."""
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return False
    if not parameters:
        return False
    first = parameters[0]
    annotation = first.annotation
    if annotation is kind or (
        isinstance(annotation, str) and annotation.rpartition(".")[2] == kind.__name__
    ):
        return True
    return first.name == name
