"""The session store protocol: conversations kept across requests, processes and machines.

A session is an ordered list of messages and a revision: the number of commits it has had. A
writer loads a session, runs a round, and appends that round's messages together with the
revision it loaded; the store commits them atomically only if nobody committed in between, and
otherwise raises `SessionConflict` (optimistic concurrency). So two writers never lose an update
and a crash never leaves half a round. The Agent runtime is the one writer a backend needs;
act() itself never touches a store.

Every store offers the same methods twice, like the rest of agentkit: blocking (`load`,
`append`, ...) and as coroutines (`aload`, `aappend`, ...). A backend implements one family;
`BlockingStore` and `AsyncStore` derive the other.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from agentkit.errors import ConfigurationError
from agentkit.messages import AssistantMessage, Message, ToolResultMessage

from .blocking import in_thread

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "AsyncStore",
    "BlockingStore",
    "Session",
    "SessionInfo",
    "SessionStore",
    "check_fork_point",
    "check_session_id",
]

T = TypeVar("T")

DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
"""Largest message (its JSON) a store accepts unless told otherwise: 8 MiB."""

MAX_SESSION_ID_CHARS = 512


@dataclass(frozen=True, slots=True)
class Session:
    """A session as loaded: its messages and the revision to append against.

    A session that does not exist yet (loaded with `missing_ok=True`) has no messages and
    revision 0; appending with `expected_revision=0` creates it.
    """

    id: str
    messages: tuple[Message, ...] = ()
    revision: int = 0
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One row of `list_sessions()`: a session's id, size, times and metadata."""

    id: str
    revision: int
    message_count: int
    created_at: float
    updated_at: float
    metadata: Mapping[str, Any] = field(default_factory=dict)
    forked_from: str | None = None


def check_session_id(session_id: object) -> str:
    """`session_id` if it is a usable id: a non-empty str of at most 512 characters, no NUL."""
    if not isinstance(session_id, str):
        raise ConfigurationError(f"a session id is a str, not {type(session_id).__name__}")
    if not session_id or len(session_id) > MAX_SESSION_ID_CHARS or "\x00" in session_id:
        raise ConfigurationError(
            f"a session id has 1 to {MAX_SESSION_ID_CHARS} characters and no NUL; "
            f"got {session_id[:40]!r}{'…' if len(session_id) > 40 else ''}"
        )
    try:
        session_id.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigurationError(
            f"a session id must be valid Unicode (no lone surrogates): {session_id!r}"
        ) from None
    return session_id


def check_fork_point(messages: tuple[Message, ...], upto: int | None) -> int:
    """How many messages a fork keeps; refuses a point that splits tool calls from results."""
    if upto is None:
        return len(messages)
    if isinstance(upto, bool) or not isinstance(upto, int) or not 0 <= upto <= len(messages):
        raise ConfigurationError(
            f"upto must be a message count from 0 to {len(messages)}, got {upto!r}"
        )
    before = messages[upto - 1] if upto else None
    after = messages[upto] if upto < len(messages) else None
    if (isinstance(before, AssistantMessage) and before.tool_calls) or isinstance(
        after, ToolResultMessage
    ):
        raise ConfigurationError(
            f"a fork at message {upto} would split tool calls from their results; "
            "fork before the assistant message that made the calls or after the last result"
        )
    return upto


def check_revision(revision: object) -> int:
    if isinstance(revision, bool) or not isinstance(revision, int) or revision < 0:
        raise ConfigurationError(f"expected_revision is an int >= 0, got {revision!r}")
    return revision


def now() -> float:
    """Wall-clock seconds, as stores record them."""
    return time.time()


def check_limit(limit: int, offset: int) -> None:
    for name, value in (("limit", limit), ("offset", offset)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigurationError(f"{name} is an int >= 0, got {value!r}")


class SessionStore(ABC):
    """Where sessions live. See the module docstring for the revision rule."""

    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES

    # -- blocking API --------------------------------------------------------------------------

    @abstractmethod
    def load(self, session_id: str, *, missing_ok: bool = False) -> Session:
        """The session's messages, revision and metadata.

        Raises `SessionNotFoundError` when it does not exist, unless `missing_ok`, which gives
        an empty session at revision 0.
        """

    @abstractmethod
    def append(
        self,
        session_id: str,
        messages: Iterable[Message | Mapping[str, Any]],
        *,
        expected_revision: int,
    ) -> int:
        """Commit one round's messages atomically; returns the session's new revision.

        `expected_revision` is the revision the writer loaded (0 creates the session). If the
        store's differs, raises `SessionConflict` and writes nothing. Messages may be message
        models or dicts (agentkit's, OpenAI's or lmstudio's forms).
        """

    @abstractmethod
    def list_sessions(self, *, limit: int = 100, offset: int = 0) -> list[SessionInfo]:
        """Sessions, most recently updated first."""

    @abstractmethod
    def delete(self, session_id: str) -> bool:
        """Remove a session and its messages; False if there was none."""

    @abstractmethod
    def fork(self, session_id: str, new_session_id: str, *, upto: int | None = None) -> Session:
        """A new session holding the first `upto` messages (all by default) of another.

        The fork records where it came from (`SessionInfo.forked_from`) and copies the
        metadata; it starts at revision 1. Raises `SessionExistsError` if the new id is taken.
        """

    @abstractmethod
    def update_metadata(self, session_id: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """Merge JSON values into the session's metadata (a None value removes the key).

        Returns the metadata after the change. Metadata does not change the revision.
        """

    @abstractmethod
    def close(self) -> None:
        """Release connections; the store cannot be used afterwards."""

    # -- async API -----------------------------------------------------------------------------

    @abstractmethod
    async def aload(self, session_id: str, *, missing_ok: bool = False) -> Session:
        """`load` as a coroutine."""

    @abstractmethod
    async def aappend(
        self,
        session_id: str,
        messages: Iterable[Message | Mapping[str, Any]],
        *,
        expected_revision: int,
    ) -> int:
        """`append` as a coroutine."""

    @abstractmethod
    async def alist_sessions(self, *, limit: int = 100, offset: int = 0) -> list[SessionInfo]:
        """`list_sessions` as a coroutine."""

    @abstractmethod
    async def adelete(self, session_id: str) -> bool:
        """`delete` as a coroutine."""

    @abstractmethod
    async def afork(
        self, session_id: str, new_session_id: str, *, upto: int | None = None
    ) -> Session:
        """`fork` as a coroutine."""

    @abstractmethod
    async def aupdate_metadata(self, session_id: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """`update_metadata` as a coroutine."""

    @abstractmethod
    async def aclose(self) -> None:
        """`close` as a coroutine."""

    # -- context management ----------------------------------------------------------------------

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self: T) -> T:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class BlockingStore(SessionStore):
    """A store implemented with blocking calls; its coroutines run them in worker threads."""

    async def aload(self, session_id: str, *, missing_ok: bool = False) -> Session:
        return await in_thread(self.load, session_id, missing_ok=missing_ok)

    async def aappend(
        self,
        session_id: str,
        messages: Iterable[Message | Mapping[str, Any]],
        *,
        expected_revision: int,
    ) -> int:
        return await in_thread(
            self.append, session_id, list(messages), expected_revision=expected_revision
        )

    async def alist_sessions(self, *, limit: int = 100, offset: int = 0) -> list[SessionInfo]:
        return await in_thread(self.list_sessions, limit=limit, offset=offset)

    async def adelete(self, session_id: str) -> bool:
        return await in_thread(self.delete, session_id)

    async def afork(
        self, session_id: str, new_session_id: str, *, upto: int | None = None
    ) -> Session:
        return await in_thread(self.fork, session_id, new_session_id, upto=upto)

    async def aupdate_metadata(self, session_id: str, values: Mapping[str, Any]) -> dict[str, Any]:
        return await in_thread(self.update_metadata, session_id, dict(values))

    async def aclose(self) -> None:
        await in_thread(self.close)


class AsyncStore(SessionStore):
    """A store implemented with coroutines; its blocking methods run them on a private loop."""

    @abstractmethod
    def _call(self, function: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Run a coroutine function to completion from blocking code."""

    def load(self, session_id: str, *, missing_ok: bool = False) -> Session:
        return self._call(self.aload, session_id, missing_ok=missing_ok)

    def append(
        self,
        session_id: str,
        messages: Iterable[Message | Mapping[str, Any]],
        *,
        expected_revision: int,
    ) -> int:
        return self._call(
            self.aappend, session_id, list(messages), expected_revision=expected_revision
        )

    def list_sessions(self, *, limit: int = 100, offset: int = 0) -> list[SessionInfo]:
        return self._call(self.alist_sessions, limit=limit, offset=offset)

    def delete(self, session_id: str) -> bool:
        return self._call(self.adelete, session_id)

    def fork(self, session_id: str, new_session_id: str, *, upto: int | None = None) -> Session:
        return self._call(self.afork, session_id, new_session_id, upto=upto)

    def update_metadata(self, session_id: str, values: Mapping[str, Any]) -> dict[str, Any]:
        return self._call(self.aupdate_metadata, session_id, dict(values))
