"""One error hierarchy for agentkit.

Every error derives from `AgentkitError`, so `except agentkit.AgentkitError` catches all of them.
Messages say what happened and what to do about it.

Invalid tool requests (`InvalidToolRequest` and its subclasses) are special: act() does not raise
them, it turns them into a message the model can act on. They reach user code only as the first
argument of `handle_invalid_tool_request`, and as the cause of `ToolRetriesExceededError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from agentkit.results import ActResult


class AgentkitError(Exception):
    """Base class of every error agentkit raises.

    Errors pickle whatever their constructor takes (a durable run records them), keeping their
    message and attributes; the `__cause__` chain is not kept, as for any pickled exception.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_error, (type(self), self.args, self.__dict__))


def _rebuild_error(
    cls: type[AgentkitError], args: tuple[Any, ...], state: dict[str, Any]
) -> AgentkitError:
    # Subclasses' __init__ take other arguments than the message they pass on: skip them.
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class ConfigurationError(AgentkitError, ValueError):
    """An argument or setting is invalid; the message names it and the accepted values."""


class ToolDefinitionError(AgentkitError, TypeError):
    """A function cannot become a tool (names the function and the parameter at fault)."""


class ChatFormatError(AgentkitError, ValueError):
    """Chat history data (a dict, list or JSON string) is not valid; names the message index."""


class EngineError(AgentkitError):
    """An inference engine failed to load a model or to run a prediction."""


class EngineUnavailableError(EngineError):
    """The requested engine cannot be used on this installation."""


class NotSupportedError(EngineError):
    """The engine does not offer this capability (tokenize on a remote server, say)."""

    def __init__(self, provider: str, capability: str) -> None:
        super().__init__(f"the {provider} engine does not support {capability}")
        self.provider = provider
        self.capability = capability


class ModelNotFoundError(EngineError):
    """No model with the requested key or identifier is known to the engine."""


class ClientClosedError(AgentkitError):
    """A client or model handle was used after its client was closed."""


class ActError(AgentkitError):
    """An act() run ended early. `result` holds everything the run did before it ended."""

    def __init__(self, message: str, result: ActResult | None = None) -> None:
        super().__init__(message)
        self.result = result


class ActCancelled(ActError):
    """The run was cancelled through its `CancelToken`; the chat received no partial round."""


class ApprovalError(AgentkitError, ValueError):
    """Approval decisions that do not fit what is pending (an unknown or already decided call,
    a missing decision, edited arguments the tool's schema rejects); nothing ran."""


class ApprovalPendingError(AgentkitError):
    """The session waits for approval decisions; resume it before sending a new message."""

    def __init__(self, session_id: str, call_ids: Sequence[str]) -> None:
        super().__init__(
            f"session {session_id!r} waits for decisions on tool call(s) "
            f"{', '.join(map(repr, call_ids))}; resume it with agent.resume(...) first"
        )
        self.session_id = session_id
        self.call_ids = tuple(call_ids)


class ToolRetriesExceededError(ActError):
    """A tool (or the model's output format) failed more times in a row than its retry budget."""

    def __init__(
        self,
        tool_name: str | None,
        failures: int,
        last_error: InvalidToolRequest,
        result: ActResult | None = None,
    ) -> None:
        what = f"tool {tool_name!r}" if tool_name else "the model's tool calls"
        super().__init__(
            f"{what} failed {failures} times in a row, exceeding its retry budget; "
            f"last error: {last_error}. Raise the budget with @agentkit.tool(retries=N), "
            "fix the tool, or handle the error in handle_invalid_tool_request.",
            result,
        )
        self.tool_name = tool_name
        self.failures = failures
        self.last_error = last_error


class StructuredOutputError(ActError):
    """The model's final answer never matched `response_format` within the retry budget."""

    def __init__(self, message: str, raw: str, result: ActResult | None = None) -> None:
        super().__init__(message, result)
        self.raw = raw


class ContextOverflowError(AgentkitError):
    """A context policy cannot fit the pinned messages and the newest message block in its
    token budget. `pinned` and `newest` are their sizes, `budget` the tokens allowed."""

    def __init__(self, budget: int, pinned: int, newest: int, detail: str = "") -> None:
        super().__init__(
            f"the history does not fit the context: the pinned messages take {pinned:,} tokens "
            f"and the newest message block {newest:,}, {pinned + newest:,} in all, over the "
            f"budget of {budget:,} tokens{detail}. Raise the budget (a longer context or less "
            "room for the reply), pin fewer messages, or elide large tool results"
        )
        self.budget = budget
        self.pinned = pinned
        self.newest = newest


class SessionStoreError(AgentkitError):
    """A session store failed; the message names the store, the session and what to do."""


class SessionNotFoundError(SessionStoreError, KeyError):
    """No session with this id is in the store."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"no session {session_id!r} in the store")
        self.session_id = session_id

    def __str__(self) -> str:  # KeyError would repr the message
        return str(self.args[0])


class SessionExistsError(SessionStoreError):
    """A session with this id already exists (the target of a fork)."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"session {session_id!r} already exists")
        self.session_id = session_id


class SessionConflict(SessionStoreError):
    """Another writer committed to the session since this writer loaded it.

    `expected_revision` is the revision the writer last saw, `actual_revision` the store's
    (0: the session does not exist). Reload the session and decide again; nothing was written.
    """

    def __init__(self, session_id: str, expected_revision: int, actual_revision: int) -> None:
        now = "does not exist" if actual_revision == 0 else f"is at revision {actual_revision}"
        super().__init__(
            f"session {session_id!r} {now}, but the writer expected revision "
            f"{expected_revision}: another writer committed first; reload it and retry"
        )
        self.session_id = session_id
        self.expected_revision = expected_revision
        self.actual_revision = actual_revision


class MessageTooLargeError(SessionStoreError, ValueError):
    """A message (or metadata) is larger than the store's limit; nothing was written."""

    def __init__(self, session_id: str, what: str, size: int, limit: int) -> None:
        super().__init__(
            f"session {session_id!r}: {what} is {size:,} bytes of JSON, over the store's limit "
            f"of {limit:,} (raise it with max_message_bytes=...)"
        )
        self.session_id = session_id
        self.size = size
        self.limit = limit


class StoreCorruptedError(SessionStoreError):
    """The store's data cannot be read (not a database, or a row agentkit did not write)."""


class StoreVersionError(SessionStoreError):
    """The store was written by an agentkit with a schema this version cannot read."""


class MemoryIndexError(AgentkitError):
    """A memory index (`agentkit.memory.MemoryIndex`) failed; the message says what to do."""


class IndexCorruptedError(MemoryIndexError):
    """The index file cannot be read (not a database, or tables agentkit did not write)."""


class EmbeddingMismatchError(MemoryIndexError):
    """The embedding model differs from the one the index was built with.

    Vectors of two models (or widths) cannot be compared; use the index's model or a new file.
    """

    def __init__(
        self,
        path: str,
        expected: tuple[str, int | None],
        actual: tuple[str, int | None],
    ) -> None:
        def name(model: str, dimension: int | None) -> str:
            return f"{model!r}" + (f" ({dimension} dimensions)" if dimension else "")

        super().__init__(
            f"the index {path!r} was built with embedding model {name(*expected)}, but the "
            f"handle gives {name(*actual)}; embed with the index's model or use another file"
        )
        self.path = path
        self.expected_model, self.expected_dimension = expected
        self.actual_model, self.actual_dimension = actual


class InvalidEmbeddingError(MemoryIndexError, ValueError):
    """An embedding handle returned unusable vectors (NaN, infinite, zero, ragged, too few)."""


class InvalidDocumentError(MemoryIndexError, ValueError):
    """A document cannot be indexed (empty, not text, bad id or metadata); nothing was written."""


class DocumentTooLargeError(InvalidDocumentError):
    """A document is longer than the index's limit; nothing was written."""

    def __init__(self, document_id: str, size: int, limit: int) -> None:
        super().__init__(
            f"document {document_id!r} is {size:,} characters, over the index's limit of "
            f"{limit:,} (split it, or raise the limit with max_document_chars=...)"
        )
        self.document_id = document_id
        self.size = size
        self.limit = limit


class DocumentNotFoundError(MemoryIndexError, KeyError):
    """No document with this id is in the index."""

    def __init__(self, document_id: str) -> None:
        super().__init__(f"no document {document_id!r} in the index")
        self.document_id = document_id

    def __str__(self) -> str:  # KeyError would repr the message
        return str(self.args[0])


class InvalidToolRequest(AgentkitError):
    """Base of the problems with one tool call that act() reports back to the model."""

    kind: str = "invalid_request"


class UnknownToolError(InvalidToolRequest):
    """The model asked for a tool that was not offered."""

    kind = "unknown_tool"

    def __init__(self, name: str, available: Sequence[str]) -> None:
        names = ", ".join(repr(n) for n in available) or "none"
        super().__init__(f"There is no tool named {name!r}. Available tools: {names}.")
        self.name = name
        self.available = tuple(available)


class ToolArgumentsError(InvalidToolRequest):
    """The arguments were not a JSON object, or failed validation against the tool's schema."""

    kind = "invalid_arguments"

    def __init__(self, tool_name: str, problems: Sequence[str]) -> None:
        listed = "; ".join(problems)
        super().__init__(
            f"Invalid arguments for tool {tool_name!r}: {listed}. "
            "Call the tool again with arguments that match its parameters schema."
        )
        self.tool_name = tool_name
        self.problems = tuple(problems)


class ToolExecutionError(InvalidToolRequest):
    """The tool raised an exception; the original is the `__cause__`."""

    kind = "tool_error"

    def __init__(self, tool_name: str, error: BaseException) -> None:
        from agentkit.untrusted import describe_exception  # untrusted builds on this module

        super().__init__(f"Tool {tool_name!r} failed: {describe_exception(error)}")
        self.tool_name = tool_name


class ToolThreadsExhaustedError(InvalidToolRequest):
    """A sync tool was not started: too many tool threads still run past their timeouts.

    Python cannot stop a thread, so agentkit caps the threads it abandoned (see
    `agentkit.tool_threads`); the cap is reached until some of them return.
    """

    kind = "threads_exhausted"

    def __init__(self, tool_name: str, running: int) -> None:
        super().__init__(
            f"Tool {tool_name!r} was not run: {running} earlier tool calls are still running "
            "past their timeouts, the most agentkit allows. Try again later or answer without it."
        )
        self.tool_name = tool_name
        self.running = running


class ToolResultTooLongError(InvalidToolRequest):
    """A tool returned a generator that yielded more items than agentkit collects."""

    kind = "result_too_long"

    def __init__(self, tool_name: str, limit: int) -> None:
        super().__init__(f"Tool {tool_name!r} produced more than {limit} items; it was stopped.")
        self.tool_name = tool_name
        self.limit = limit


class ToolTimeoutError(InvalidToolRequest):
    """The tool did not finish within its timeout: it timed out and was cancelled."""

    kind = "timeout"

    def __init__(self, tool_name: str, timeout: float) -> None:
        super().__init__(f"Tool {tool_name!r} timed out after {timeout:g} s and was stopped.")
        self.tool_name = tool_name
        self.timeout = timeout


class ToolCallOnFinalRoundError(InvalidToolRequest):
    """The model called a tool on the last round, where no tools are offered."""

    kind = "final_round"

    def __init__(self, tool_name: str) -> None:
        super().__init__(
            f"Tool {tool_name!r} was not run: no tools are available in the final round. "
            "Answer with what you have."
        )
        self.tool_name = tool_name


class MalformedToolCallError(InvalidToolRequest):
    """The model's output looked like a tool call but could not be parsed."""

    kind = "malformed_output"

    def __init__(self, raw: str, reason: str) -> None:
        super().__init__(
            f"Your tool call could not be parsed ({reason}). "
            "Emit each tool call as a JSON object with a tool name and an arguments object."
        )
        self.raw = raw
        self.reason = reason


class MCPError(AgentkitError):
    """Base of the problems with an MCP server connection or its configuration."""


class MCPConfigError(MCPError, ConfigurationError):
    """An MCP server's configuration (an mcp.json entry, a transport's options) is unusable."""


class MCPConnectionError(MCPError):
    """An MCP server could not be started or reached, did not initialise in time, or its
    connection was lost again right after agentkit's one reconnect."""

    def __init__(self, server: str, detail: str) -> None:
        super().__init__(f"MCP server {server!r}: {detail}")
        self.server = server
        self.detail = detail


class MCPToolError(ToolExecutionError):
    """An MCP server answered a tool call with an error (a result flagged `isError` or a
    JSON-RPC error): reported to the model, which may call again differently."""

    def __init__(self, tool_name: str, server: str, detail: str, code: int | None = None) -> None:
        from agentkit.untrusted import clip  # untrusted builds on this module

        InvalidToolRequest.__init__(self, f"Tool {tool_name!r} failed: {clip(detail)}")
        self.tool_name = tool_name
        self.server = server
        self.detail = detail
        self.code = code


MAX_PROBLEMS = 10
"""The most problems one error message for a model lists; the rest are counted."""

MAX_PROBLEM_CHARS = 300
"""The longest one listed problem may be (an enum of 100,000 values would make it 1.5 MB)."""

_T = TypeVar("_T")


def cap_problems(
    problems: Iterable[_T], render: Callable[[_T], str], *, at_least: bool = False
) -> list[str]:
    """At most `MAX_PROBLEMS` rendered problems of at most `MAX_PROBLEM_CHARS` each, then
    "… and N more problems": what a model is told about invalid arguments or output stays a
    few KB, whatever it sent. Only the problems shown are rendered. `at_least` says the
    problems given were already cut short, so N is a lower bound.
    """
    shown: list[str] = []
    more = 0
    for problem in problems:
        if len(shown) < MAX_PROBLEMS:
            text = render(problem)
            if len(text) > MAX_PROBLEM_CHARS:
                text = text[: MAX_PROBLEM_CHARS - 1] + "…"
            shown.append(text)
        else:
            more += 1
    if more or at_least:
        count = more + 1 if at_least else more
        plural = "" if count == 1 else "s"
        shown.append(f"… and {'at least ' if at_least else ''}{count} more problem{plural}")
    return shown


def describe_validation_errors(
    errors: Sequence[Mapping[str, Any]], *, subject: str = "arguments"
) -> list[str]:
    """Render pydantic `ValidationError.errors()` as short 'where: what' lines for a model,
    capped by `cap_problems`. `subject` names the whole value, for errors located at its top.
    """

    def render(error: Mapping[str, Any]) -> str:
        where = ".".join(str(part) for part in error.get("loc", ())) or subject
        return f"{where}: {error.get('msg', 'invalid value')}"

    return cap_problems(errors, render)
