"""`Tool`: a callable the model may invoke, with its schema, validator and run policy.

Make one from a typed function (`agentkit.tool` or just passing the function to act()), or from
an explicit name, description and JSON Schema (`define_tool`) for tools defined elsewhere, such
as MCP servers. A `Tool` made from a function is still that function: calling it calls it.
"""

from __future__ import annotations

import functools
import inspect
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from types import EllipsisType
from typing import Any, Generic, ParamSpec, TypeVar, overload

import pydantic_core

from agentkit import tool_threads
from agentkit.callbacks import is_async_callable
from agentkit.engines.base import ToolDefinition
from agentkit.errors import ToolArgumentsError, ToolDefinitionError
from agentkit.tool_threads import drain_async, run_in_worker, run_inline
from agentkit.tools import json_schema
from agentkit.tools.signature import BoundArguments, FunctionSignature, analyse_function

__all__ = ["DEFAULT_RETRIES", "Tool", "define_tool", "render_result", "tool"]

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_RETRIES = 3
"""How many failed calls in a row a tool gets before act() gives up on it."""

_VALID_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

_INLINE_STRIKES = 3
"""Slow inline runs after which a tool is never run inline by default again."""


class Tool(Generic[P, R]):
    """A tool: what the model is told about it, how its arguments are checked, how it runs.

    Where a sync function runs (`inline`): by default (None) in one of agentkit's worker
    threads, which gives it its timeout and lets the run be cancelled while it works, except
    that in the sync API a tool whose last worker run took under 100 µs runs inline, in the
    thread that drives the event loop, saving two thread wake-ups (~250 µs on an idle CPU). It
    does so only when it is the round's one call, has no timeout and the run no cancel token.
    An inline run of 1 ms or more sends it back to a worker, to be timed again (a garbage
    collection may have landed in it); the third such run, or any BaseException such as
    SystemExit, keeps it in workers for good. `inline=False` always uses a worker; `inline=True`
    always runs inline,
    in both APIs (so it may have no timeout). An inline tool runs in the loop's thread: the
    caller's thread in the sync API, unless another thread's call is driving the loop. Nothing
    interrupts it; a cancel waits for it to return, and Ctrl-C (a KeyboardInterrupt in the
    main thread) lands inside it and ends the run with KeyboardInterrupt, as it would anywhere
    else in a sync call. Async tools always run on the event loop.
    """

    __slots__ = (
        "__wrapped__",
        "_bind",
        "_demoted",
        "_fast",
        "_slow_runs",
        "definition",
        "description",
        "function",
        "inline",
        "is_async",
        "name",
        "parameters",
        "requires_approval",
        "retries",
        "sequential",
        "timeout",
    )

    def __init__(
        self,
        function: Callable[P, R],
        *,
        name: str,
        description: str,
        parameters: dict[str, Any],
        bind: Callable[[str, Mapping[str, Any]], BoundArguments],
        timeout: float | None = None,
        retries: int = DEFAULT_RETRIES,
        sequential: bool = False,
        inline: bool | None = None,
        requires_approval: bool = False,
    ) -> None:
        if not _VALID_NAME.match(name):
            raise ToolDefinitionError(
                f"tool name {name!r} is not valid: use 1-64 letters, digits, '_' or '-'"
            )
        if timeout is not None and timeout <= 0:
            raise ToolDefinitionError(f"tool {name!r}: timeout must be positive, got {timeout}")
        if retries < 0:
            raise ToolDefinitionError(f"tool {name!r}: retries must be >= 0, got {retries}")
        if inline and timeout is not None:
            raise ToolDefinitionError(
                f"tool {name!r}: an inline tool cannot have a timeout (nothing can stop a "
                "function running in the event loop's thread); drop one of the two"
            )
        self.function = function
        self.__wrapped__ = function
        self.name = name
        self.description = description
        self.parameters = parameters
        self.timeout = timeout
        self.retries = retries
        self.sequential = sequential
        self.inline = inline
        self.requires_approval = requires_approval
        self.is_async = is_async_callable(function)
        self._bind = bind
        self._fast = False  # the last worker run was quick enough to run inline next time
        self._slow_runs = 0  # inline runs that took INLINE_SLOW_SECONDS or more
        self._demoted = False  # never inline again by default
        self.definition = ToolDefinition(name, description, parameters)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Tool({self.name!r})"

    def bind(self, arguments: Mapping[str, Any]) -> BoundArguments:
        """Validate the model's arguments; raises `ToolArgumentsError` on any problem."""
        return self._bind(self.name, arguments)

    def runs_inline(self, allowed: bool) -> bool:
        """Whether the next call runs inline (see the class docstring); `allowed` says whether
        the circumstances let the default choose it: the sync API, one call, no cancel token."""
        if self.is_async:
            return False
        if self.inline is None:
            return allowed and self._fast and self.timeout is None
        return self.inline

    async def run(self, bound: BoundArguments, *, inline: bool = False) -> Any:
        """Run the tool: coroutines on the event loop, sync functions (and generators they
        return, drained and bounded) in one of agentkit's worker threads, or in this thread
        when `inline` (see `runs_inline`)."""
        value: Any
        if self.is_async:
            coroutine: Any = self.function(*bound.args, **bound.kwargs)
            value = await coroutine
        else:
            call = functools.partial(self.function, *bound.args, **bound.kwargs)
            if inline:
                value = self._run_inline(call)
            else:
                value = await run_in_worker(call, self.name, self._timed_in_worker)
            if inspect.isawaitable(value):  # a sync wrapper that returns a coroutine
                value = await value
        if inspect.isasyncgen(value):
            return await drain_async(value, self.name)
        if inspect.isgenerator(value):
            generator = value
            return await run_in_worker(lambda: generator, self.name)  # the worker drains it
        return value

    def _run_inline(self, call: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        clean = False
        try:
            value = run_inline(call, self.name)
            clean = True
        except Exception:
            clean = True  # the tool's ordinary failure: it may stay inline
            raise
        finally:
            if not clean:
                self._fast, self._demoted = False, True
            elif time.perf_counter() - started >= tool_threads.INLINE_SLOW_SECONDS:
                self._fast = False
                self._slow_runs += 1
                self._demoted = self._slow_runs >= _INLINE_STRIKES
        return value

    def _timed_in_worker(self, seconds: float, error: BaseException | None) -> None:
        if error is not None and not isinstance(error, Exception):
            self._demoted = True  # a KeyboardInterrupt it raises inline would look like Ctrl-C
        self._fast = seconds < tool_threads.INLINE_FAST_SECONDS and not self._demoted

    def with_options(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        sequential: bool | None = None,
        inline: bool | EllipsisType | None = ...,
        requires_approval: bool | None = None,
    ) -> Tool[P, R]:
        """A copy of this tool with some options changed (`inline=...`, the default, keeps it;
        `inline=None` restores the default choice)."""
        return Tool(
            self.function,
            name=self.name if name is None else name,
            description=self.description if description is None else description,
            parameters=self.parameters,
            bind=self._bind,
            timeout=self.timeout if timeout is None else timeout,
            retries=self.retries if retries is None else retries,
            sequential=self.sequential if sequential is None else sequential,
            inline=self.inline if inline is ... else inline,
            requires_approval=(
                self.requires_approval if requires_approval is None else requires_approval
            ),
        )


def tool_from_function(
    function: Callable[P, R],
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    retries: int = DEFAULT_RETRIES,
    sequential: bool = False,
    inline: bool | None = None,
    requires_approval: bool = False,
) -> Tool[P, R]:
    """Build a `Tool` from a typed function (see `tool` for the options)."""
    tool_name = _default_name(function) if name is None else name
    if tool_name == "<lambda>":
        raise ToolDefinitionError(
            "a lambda has no name to offer the model: use agentkit.tool(fn, name=...) "
            "or a def with a docstring"
        )
    signature: FunctionSignature = analyse_function(function, tool_name)
    return Tool(
        function,
        name=tool_name,
        description=signature.description if description is None else description,
        parameters=signature.parameters_schema,
        bind=signature.bind,
        timeout=timeout,
        retries=retries,
        sequential=sequential,
        inline=inline,
        requires_approval=requires_approval,
    )


def _default_name(function: Callable[..., Any]) -> str:
    target: Any = function
    while isinstance(target, functools.partial):
        target = target.func
    name = getattr(target, "__name__", None)
    return name if isinstance(name, str) else type(target).__name__


@overload
def tool(
    function: Callable[P, R],
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    retries: int = DEFAULT_RETRIES,
    sequential: bool = False,
    inline: bool | None = None,
    requires_approval: bool = False,
) -> Tool[P, R]: ...
@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    retries: int = DEFAULT_RETRIES,
    sequential: bool = False,
    inline: bool | None = None,
    requires_approval: bool = False,
) -> Callable[[Callable[P, R]], Tool[P, R]]: ...
def tool(
    function: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    retries: int = DEFAULT_RETRIES,
    sequential: bool = False,
    inline: bool | None = None,
    requires_approval: bool = False,
) -> Tool[P, R] | Callable[[Callable[P, R]], Tool[P, R]]:
    """Make a function a tool, optionally overriding its name and description.

    Args:
        function: the function (when used as `@tool` without parentheses).
        name: the tool name the model sees; defaults to the function name.
        description: what the tool does; defaults to the docstring's summary.
        timeout: seconds after which a call is cancelled and reported to the model as failed.
        retries: failed calls in a row the model may make before act() gives up.
        sequential: never run this tool at the same time as any other call.
        inline: where a sync function runs: None (default) lets agentkit run a fast one in
            the event loop's thread, True always does, False never does (see `Tool`).
        requires_approval: a call pauses the run until a person approves it (the `Agent`
            runtime's approval flow; plain act() runs ask its `approval` policy).
    """

    def decorate(fn: Callable[P, R]) -> Tool[P, R]:
        return tool_from_function(
            fn,
            name=name,
            description=description,
            timeout=timeout,
            retries=retries,
            sequential=sequential,
            inline=inline,
            requires_approval=requires_approval,
        )

    return decorate if function is None else decorate(function)


def define_tool(
    name: str,
    description: str,
    parameters: Mapping[str, Any],
    implementation: Callable[..., Any] | Callable[..., Awaitable[Any]],
    *,
    timeout: float | None = None,
    retries: int = DEFAULT_RETRIES,
    sequential: bool = False,
    inline: bool | None = None,
    requires_approval: bool = False,
) -> Tool[..., Any]:
    """A tool from an explicit JSON Schema; the implementation gets the arguments as keywords.

    Use it for tools described elsewhere (MCP servers, OpenAPI, configuration files). The schema
    is checked now; arguments are validated against it on every call.
    """
    if not callable(implementation):
        raise ToolDefinitionError(f"tool {name!r}: implementation must be callable")
    if not isinstance(parameters, Mapping):
        raise ToolDefinitionError(
            f"tool {name!r}: the parameters schema must be a JSON object (a dict), "
            f"got {type(parameters).__name__}"
        )
    schema = dict(parameters)
    if schema.get("type", "object") != "object":
        raise ToolDefinitionError(
            f"tool {name!r}: the parameters schema must describe an object, "
            f"got type {_clipped(schema.get('type'))}"
        )
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    try:
        validator = json_schema.SchemaValidator(schema)  # compiled once, for every call
    except json_schema.SchemaError as error:
        raise ToolDefinitionError(f"tool {name!r}: invalid parameters schema: {error}") from error

    def bind(tool_name: str, arguments: Mapping[str, Any]) -> BoundArguments:
        problems = validator.errors(arguments)
        if problems:
            raise ToolArgumentsError(tool_name, problems)
        return BoundArguments((), dict(arguments))

    return Tool(
        implementation,
        name=name,
        description=description,
        parameters=schema,
        bind=bind,
        timeout=timeout,
        retries=retries,
        sequential=sequential,
        inline=inline,
        requires_approval=requires_approval,
    )


def _clipped(value: object, limit: int = 80) -> str:
    text = _safe_repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render_result(value: object) -> str:
    """Tool output as the text the model reads: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return value
    try:
        return pydantic_core.to_json(value, fallback=_safe_repr).decode()
    except (pydantic_core.PydanticSerializationError, ValueError):  # bad UTF-8, cycles
        return _safe_repr(value)


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:
        return object.__repr__(value)
