"""Blocking memory work (SQLite calls) run from async code."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import anyio.to_thread

__all__ = ["in_thread"]

P = ParamSpec("P")
T = TypeVar("T")


async def in_thread(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`function(*args, **kwargs)` in one of anyio's worker threads."""
    return await anyio.to_thread.run_sync(functools.partial(function, *args, **kwargs))
