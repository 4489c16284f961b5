"""`Agent`: act() with sessions, for web backends. Load, run, persist each round; pause for
approval; resume later, anywhere.

One Agent serves any number of sessions at once on one model handle. Per request it loads the
session from its store, runs act() on it (with the Agent's instructions, tools and context
policy), and appends each committed round to the store as it ends, so a crash or a cancel
leaves whole rounds. It keeps no conversation state of its own.

Concurrent writers. Requests for one session in one process take turns (a lock per session).
Across processes the store's revisions decide: the user message is committed first, on its own,
and a conflict there (another worker wrote in between) is retried on the reloaded session, up to
`conflict_retries` times, since nothing has run yet. Once the run has started, a conflict on a
round ends the run with `SessionConflict`: the other writer's messages are never merged into
this run's, and what this run committed before stays.

Approval. A tool with `requires_approval=True`, or any call the Agent's `approval` policy flags,
pauses the run before it executes: the round's assistant message and the results of its other
calls are persisted, and the run ends with `stop_reason="approval_required"` and the waiting
calls in `result.pending_approvals`. `resume(session_id, decisions)` runs (or refuses) exactly
those calls, in this process or another, and continues the run. Only the decisions come from the
client: which calls wait is read from the store.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Any

import anyio

from agentkit.agent_events import (
    AgentEvent,
    ApprovalRequested,
    ReasoningDelta,
    RoundFinished,
    RunFailed,
    RunFinished,
    RunStarted,
    TextDelta,
    ToolCallStarted,
    ToolResult,
)
from agentkit.approval import (
    ApprovalPolicy,
    Decision,
    Deny,
    checked_decisions,
    needs_approval,
    pending_calls,
)
from agentkit.callbacks import fire
from agentkit.cancel import CancelToken
from agentkit.chat import Chat
from agentkit.errors import (
    ApprovalPendingError,
    ConfigurationError,
    SessionConflict,
)
from agentkit.handles import LLM, AsyncLLM
from agentkit.memory.context import ContextPolicy
from agentkit.memory.in_memory import InMemoryStore
from agentkit.memory.sessions import Session, SessionStore, check_session_id
from agentkit.messages import Message, SystemMessage, ToolResultMessage, UserMessage
from agentkit.results import ActResult, PredictionFragment, PredictionResult
from agentkit.steps import DIRECT, StepRunner
from agentkit.tool_round import run_tool_calls
from agentkit.tools.toolset import ToolLike, Toolset, as_tool

__all__ = ["Agent", "AsyncAgent"]

EventHandler = Callable[[AgentEvent], Any]


def _user_message(message: object) -> UserMessage:
    if isinstance(message, UserMessage):
        return message
    if isinstance(message, str):
        return UserMessage(content=message)
    raise ConfigurationError(
        f"an Agent message is a str or a UserMessage, not {type(message).__name__}"
    )


@dataclass(slots=True)
class _SessionLock:
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    users: int = 0


class AsyncAgent:
    """The Agent runtime on an async model handle (see the module docstring).

    Args:
        model: the model every session runs on.
        tools: the tools offered in every run.
        instructions: a system prompt put before each session's history (not stored, so a
            change applies to existing sessions).
        store: where sessions live (default: a new `InMemoryStore`).
        context: a context policy choosing what of a long history the model sees.
        approval: `(call) -> bool`, True when a person must approve the call first.
        conflict_retries: how often a conflict on the user message is retried.
        **act_options: defaults for act() (max_prediction_rounds, config, ...).
    """

    def __init__(
        self,
        model: AsyncLLM,
        *,
        tools: Iterable[ToolLike] | None = None,
        instructions: str | None = None,
        store: SessionStore | None = None,
        context: ContextPolicy | None = None,
        approval: ApprovalPolicy | None = None,
        conflict_retries: int = 3,
        **act_options: Any,
    ) -> None:
        if not isinstance(model, AsyncLLM):
            raise ConfigurationError(
                f"AsyncAgent needs an AsyncLLM; got {type(model).__name__} (use ak.Agent for a "
                "sync handle)"
            )
        reserved = {"on_message", "on_round_end", "cancel_token", "approval", "context", "steps"}
        if reserved & act_options.keys():
            raise ConfigurationError(f"the Agent sets {sorted(reserved & act_options.keys())}")
        self.model = model
        self.tools = [as_tool(item) for item in tools or ()]  # converted once, not per run
        self.toolset = Toolset(self.tools)
        self.instructions = instructions
        self.store: SessionStore = InMemoryStore() if store is None else store
        self.context = context
        self.approval = approval
        self.conflict_retries = conflict_retries
        self.act_options = act_options
        self._locks: dict[str, _SessionLock] = {}

    # -- public API ----------------------------------------------------------------------------

    async def act(
        self,
        session_id: str,
        message: str | UserMessage,
        *,
        on_event: EventHandler | None = None,
        cancel_token: CancelToken | None = None,
        steps: StepRunner | None = None,
        **options: Any,
    ) -> ActResult:
        """Add `message` to the session, run act() on it, persist each round; the ActResult.

        `steps` (see act()) also runs the Agent's store reads and writes; `agentkit.durable`
        records them all, so a run resumed after a crash neither redoes nor repeats any.
        """
        check_session_id(session_id)
        user = _user_message(message)
        store = _StoreSteps(self.store, session_id, steps)
        async with self._session(session_id):
            # started once admitted (the user message committed), as resume() starts once its
            # decisions are accepted: a refused run (calls wait for approval) yields RunFailed
            # alone, so a web app can answer it with a status instead of a stream
            history, revision = await self._claim(store, user)
            await fire(on_event, RunStarted(session_id))
            return await self._run(store, history, revision, on_event, cancel_token, options)

    async def resume(
        self,
        session_id: str,
        decisions: Iterable[Decision],
        *,
        on_event: EventHandler | None = None,
        cancel_token: CancelToken | None = None,
        steps: StepRunner | None = None,
        **options: Any,
    ) -> ActResult:
        """Decide on the calls a paused run waits for, run the approved ones, and go on."""
        check_session_id(session_id)
        store = _StoreSteps(self.store, session_id, steps)
        async with self._session(session_id):
            session = await store.load(missing_ok=False)
            decided = checked_decisions(pending_calls(session.messages), decisions, self.toolset)
            await fire(on_event, RunStarted(session_id, resumed=True))
            results = await self._execute(decided, on_event, store.steps)
            revision = await store.append(results, session.revision, "approved calls")
            history = (*session.messages, *results)
            return await self._run(store, history, revision, on_event, cancel_token, options)

    async def stream(
        self, session_id: str, message: str | UserMessage, **options: Any
    ) -> AsyncIterator[AgentEvent]:
        """`act` as an async iterator of events, ending with `RunFinished` or `RunFailed`.

        Stopping the iteration (break, or closing it) cancels the run; the store keeps the
        rounds committed before. Iterate it from one task (`contextlib.aclosing` closes it).
        """
        check_session_id(session_id)
        _user_message(message)
        # closed here, in the consumer's task: left to the garbage collector, the inner
        # generator would be finalised in another task, outside its task group's cancel scope
        async with contextlib.aclosing(self._events(self.act, session_id, message, options)) as run:
            async for event in run:
                yield event

    async def stream_resume(
        self, session_id: str, decisions: Iterable[Decision], **options: Any
    ) -> AsyncIterator[AgentEvent]:
        """`resume` as an async iterator of events (see `stream`)."""
        decided = list(decisions)
        async with contextlib.aclosing(
            self._events(self.resume, session_id, decided, options)
        ) as run:
            async for event in run:
                yield event

    async def history(self, session_id: str) -> tuple[Message, ...]:
        """The session's stored messages (none for an unknown session)."""
        return (await self.store.aload(session_id, missing_ok=True)).messages

    # -- internals -----------------------------------------------------------------------------

    async def _events(
        self,
        run: Callable[..., Awaitable[ActResult]],
        session_id: str,
        argument: object,
        options: Mapping[str, Any],
    ) -> AsyncGenerator[AgentEvent, None]:
        send, receive = anyio.create_memory_object_stream[AgentEvent](max_buffer_size=256)

        async def produce() -> None:
            async with send:
                try:
                    await run(session_id, argument, on_event=send.send, **options)
                except Exception as error:
                    await send.send(RunFailed(error))

        # Not `async with` around the yield: a consumer that closes the iterator throws
        # GeneratorExit there, which a task group would report as a failure of its own.
        group = anyio.create_task_group()
        await group.__aenter__()
        try:
            group.start_soon(produce)
            async with receive:
                async for event in receive:
                    yield event
        finally:
            group.cancel_scope.cancel()
            await group.__aexit__(None, None, None)

    def _session(self, session_id: str) -> _SessionGuard:
        return _SessionGuard(self._locks, session_id)

    async def _claim(
        self, store: _StoreSteps, user: UserMessage
    ) -> tuple[tuple[Message, ...], int]:
        """Commit the user message alone; retried on a conflict, as nothing has run yet."""
        for attempt in range(self.conflict_retries + 1):
            session = await store.load(missing_ok=True)
            waiting = pending_calls(session.messages)
            if waiting:
                raise ApprovalPendingError(store.session_id, [call.id for call in waiting])
            try:
                revision = await store.append([user], session.revision, "user message")
            except SessionConflict:
                if attempt == self.conflict_retries:
                    raise
                continue
            return (*session.messages, user), revision
        raise AssertionError("unreachable")  # pragma: no cover

    async def _execute(
        self, decided: list[tuple[Any, Decision]], on_event: EventHandler | None, steps: StepRunner
    ) -> list[ToolResultMessage]:
        approved = [call for call, decision in decided if not isinstance(decision, Deny)]
        for call in approved:
            await fire(on_event, ToolCallStarted(call, -1))
        outcomes = await run_tool_calls(
            approved, self.toolset, final_round=False, max_parallel=None, handler=None, steps=steps
        )
        by_id = {outcome.call.id: outcome.message() for outcome in outcomes}
        results = []
        for call, decision in decided:
            if isinstance(decision, Deny):
                result = ToolResultMessage(
                    tool_call_id=call.id, name=call.name, content=decision.reason, is_error=True
                )
            else:
                result = by_id[call.id]
            results.append(result)
            await fire(on_event, ToolResult(result, -1))
        return results

    async def _run(
        self,
        store: _StoreSteps,
        history: tuple[Message, ...],
        revision: int,
        on_event: EventHandler | None,
        cancel_token: CancelToken | None,
        options: Mapping[str, Any],
    ) -> ActResult:
        persist = _RoundPersister(store, revision, on_event)
        session_id = store.session_id
        chat_messages: list[Message] = list(history)
        if self.instructions:
            chat_messages.insert(0, SystemMessage(content=self.instructions))
        toolset, policy = self.toolset, self.approval

        async def on_fragment(fragment: PredictionFragment, round_index: int) -> None:
            kind = ReasoningDelta if fragment.reasoning else TextDelta
            await fire(on_event, kind(fragment.content, round_index))

        async def on_prediction(result: PredictionResult) -> None:
            for call in result.tool_calls:
                if not needs_approval(call, toolset, policy):
                    await fire(on_event, ToolCallStarted(call, persist.round))

        # A policy's state (a summary) lives in the session's metadata, for every worker.
        context = None if self.context is None else self.context.for_session(self.store, session_id)
        with anyio.CancelScope() as scope:
            persist.scope = scope
            result = await self.model.act(
                Chat.from_history(chat_messages),
                self.tools,
                context=context,
                approval=self.approval,
                on_message=persist.on_message,
                on_round_end=persist.on_round_end,
                on_prediction_fragment=on_fragment if on_event is not None else None,
                on_prediction_completed=on_prediction if on_event is not None else None,
                cancel_token=cancel_token,
                steps=store.steps,
                **{**self.act_options, **options},
            )
        if persist.failure is not None:
            raise persist.failure
        if result.pending_approvals:
            await fire(on_event, ApprovalRequested(result.pending_approvals))
        await fire(on_event, RunFinished(result))
        return result


class _SessionGuard:
    """`async with`: one request of a session at a time in this process."""

    __slots__ = ("_entry", "_locks", "_session_id")

    def __init__(self, locks: dict[str, _SessionLock], session_id: str) -> None:
        self._locks = locks
        self._session_id = session_id

    async def __aenter__(self) -> None:
        entry = self._locks.get(self._session_id)
        if entry is None:
            entry = self._locks[self._session_id] = _SessionLock()
        entry.users += 1
        self._entry = entry
        try:
            await entry.lock.acquire()
        except BaseException:
            self._leave()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._entry.lock.release()
        self._leave()

    def _leave(self) -> None:
        self._entry.users -= 1
        if not self._entry.users:
            del self._locks[self._session_id]


class _RoundPersister:
    """act() callbacks that append each committed round to the store as it ends."""

    def __init__(self, store: _StoreSteps, revision: int, on_event: EventHandler | None) -> None:
        self.store = store
        self.revision = revision
        self.on_event = on_event
        self.round = 0
        self.pending: list[Message] = []
        # A conflict or a store error: a callback's exception would be logged and the run go on
        # unpersisted, so it is kept here, the run cancelled, and the error raised after.
        self.failure: Exception | None = None
        self.scope: anyio.CancelScope | None = None

    async def on_message(self, message: Message) -> None:
        self.pending.append(message)
        if isinstance(message, ToolResultMessage):
            await fire(self.on_event, ToolResult(message, self.round))

    async def on_round_end(self, round_index: int) -> None:
        messages, self.pending = self.pending, []
        if messages and self.failure is None:
            with anyio.CancelScope(shield=True):  # a round is persisted whole or not at all
                try:
                    self.revision = await self.store.append(
                        messages, self.revision, f"round {round_index}"
                    )
                except Exception as error:
                    self.failure = error
            if self.failure is not None:
                assert self.scope is not None
                self.scope.cancel()
                return
        await fire(self.on_event, RoundFinished(round_index, self.revision))
        self.round = round_index + 1


class _StoreSteps:
    """The Agent's reads and writes of one session, each run as a step of `steps`.

    Recorded steps make a write's outcome replayable, but a crash can still fall between the
    store's commit and the record of it: the replayed write then finds its own messages already
    there (a conflict at exactly the revision it would have made) and counts that as done.
    """

    __slots__ = ("recording", "session_id", "steps", "store")

    def __init__(self, store: SessionStore, session_id: str, steps: StepRunner | None) -> None:
        self.store = store
        self.session_id = session_id
        self.steps = DIRECT if steps is None else steps
        self.recording = steps is not None and steps is not DIRECT

    async def load(self, *, missing_ok: bool) -> Session:
        async def load() -> Session:
            return await self.store.aload(self.session_id, missing_ok=missing_ok)

        return await self.steps.run("load session", load)

    async def append(self, messages: Sequence[Message], expected: int, what: str) -> int:
        async def append() -> int:
            try:
                return await self.store.aappend(
                    self.session_id, messages, expected_revision=expected
                )
            except SessionConflict:
                if self.recording and await self._already_committed(messages, expected):
                    return expected + 1
                raise

        return await self.steps.run(f"commit {what}", append)

    async def _already_committed(self, messages: Sequence[Message], expected: int) -> bool:
        stored = await self.store.aload(self.session_id, missing_ok=True)
        tail = stored.messages[len(stored.messages) - len(messages) :]
        return stored.revision == expected + 1 and list(tail) == list(messages)


class Agent:
    """The Agent runtime on a sync model handle: the same API as `AsyncAgent`, blocking.

    `stream()` is a plain iterator of events; closing it early cancels the run.
    """

    def __init__(self, model: LLM, **options: Any) -> None:
        if not isinstance(model, LLM):
            raise ConfigurationError(
                f"Agent needs a sync LLM handle; got {type(model).__name__} (use ak.AsyncAgent "
                "with an async handle)"
            )
        self.model = model
        self.async_agent = AsyncAgent(model.async_handle, **options)
        self._portal = model._portal

    @property
    def store(self) -> SessionStore:
        """The session store."""
        return self.async_agent.store

    def act(self, session_id: str, message: str | UserMessage, **options: Any) -> ActResult:
        """See `AsyncAgent.act`."""
        return self._portal.call(self._bound(self.async_agent.act, session_id, message, options))

    def resume(self, session_id: str, decisions: Iterable[Decision], **options: Any) -> ActResult:
        """See `AsyncAgent.resume`."""
        decided = list(decisions)
        return self._portal.call(self._bound(self.async_agent.resume, session_id, decided, options))

    def history(self, session_id: str) -> tuple[Message, ...]:
        """The session's stored messages (none for an unknown session)."""
        return self.store.load(session_id, missing_ok=True).messages

    def stream(
        self, session_id: str, message: str | UserMessage, **options: Any
    ) -> Iterator[AgentEvent]:
        """See `AsyncAgent.stream`."""
        check_session_id(session_id)
        _user_message(message)
        return self._events(self.act, session_id, message, options)

    def stream_resume(
        self, session_id: str, decisions: Iterable[Decision], **options: Any
    ) -> Iterator[AgentEvent]:
        """See `AsyncAgent.stream_resume`."""
        return self._events(self.resume, session_id, list(decisions), options)

    @staticmethod
    def _bound(
        function: Callable[..., Awaitable[ActResult]],
        session_id: str,
        argument: object,
        options: Mapping[str, Any],
    ) -> Callable[[], Awaitable[ActResult]]:
        async def call() -> ActResult:
            return await function(session_id, argument, **options)

        return call

    def _events(
        self,
        run: Callable[..., ActResult],
        session_id: str,
        argument: object,
        options: Mapping[str, Any],
    ) -> Iterator[AgentEvent]:
        """Run in a worker thread, events handed over through a queue; closing cancels."""
        events: queue.Queue[AgentEvent | None] = queue.Queue()
        token = CancelToken()

        def produce() -> None:
            try:
                run(session_id, argument, on_event=events.put, cancel_token=token, **options)
            except Exception as error:
                events.put(RunFailed(error))
            finally:
                events.put(None)

        worker = threading.Thread(target=produce, name="agentkit-agent-stream", daemon=True)
        worker.start()
        try:
            while (event := events.get()) is not None:
                yield event
        finally:
            token.cancel()
            worker.join()
