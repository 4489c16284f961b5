"""Model handles: `AsyncLLM` (coroutines) and `LLM` (the same methods, blocking).

A handle names one loaded model instance and holds no conversation, so one handle can serve
any number of chats at once. The sync `LLM` forwards every call to its `AsyncLLM` on the
client's background loop; callbacks therefore run on that loop's thread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from agentkit.act import ActCallbacks, ActOptions, run_act
from agentkit.approval import ApprovalPolicy
from agentkit.cancel import CancelToken
from agentkit.chat import Chat, Message
from agentkit.config import PredictionConfig, PredictionConfigInput, coerce_config
from agentkit.engines.base import BaseEngine, Engine, PredictionRequest
from agentkit.errors import StructuredOutputError
from agentkit.model_handle import AsyncModelHandle, ModelHandle, blocking
from agentkit.portal import Portal, default_portal
from agentkit.prediction import PredictionBuilder, PredictionCallbacks, run_prediction
from agentkit.results import ActResult, PredictionFragment, PredictionResult
from agentkit.steps import DIRECT, StepRunner
from agentkit.structured import OutputFormat, OutputInvalid, ResponseFormat
from agentkit.tool_round import InvalidRequestHandler
from agentkit.tools.toolset import ToolLike

if TYPE_CHECKING:
    from agentkit.memory.context import ContextPolicy

__all__ = ["LLM", "AsyncLLM", "AsyncPredictionStream", "PredictionStream"]

T = TypeVar("T")


class AsyncLLM(AsyncModelHandle):
    """An async handle on a loaded language model."""

    __slots__ = ()

    @classmethod
    def standalone(cls, engine: BaseEngine, model_key: str | None = None) -> AsyncLLM:
        """A handle on a model-less engine (scripted, replay) of its own, with no client.

        The instance is registered at once (such engines load nothing), so this needs no
        event loop.
        """
        key = engine.resolve_key(model_key, "llm")
        return cls(engine, engine.instances.get_or_add(key, None, None, "llm"))

    async def act(
        self,
        chat: Chat | str,
        tools: Iterable[ToolLike] | None = None,
        *,
        max_prediction_rounds: int | None = None,
        max_parallel_tool_calls: int | None = None,
        config: PredictionConfigInput = None,
        response_format: ResponseFormat | None = None,
        on_message: Callable[[Message], Any] | None = None,
        on_first_token: Callable[[int], Any] | None = None,
        on_prediction_fragment: Callable[[PredictionFragment, int], Any] | None = None,
        on_round_start: Callable[[int], Any] | None = None,
        on_round_end: Callable[[int], Any] | None = None,
        on_prediction_completed: Callable[[PredictionResult], Any] | None = None,
        on_prompt_processing_progress: Callable[[float, int], Any] | None = None,
        handle_invalid_tool_request: InvalidRequestHandler | None = None,
        cancel_token: CancelToken | None = None,
        context: ContextPolicy | None = None,
        approval: ApprovalPolicy | None = None,
        steps: StepRunner | None = None,
    ) -> ActResult:
        """Run a ReAct loop: predict, run the requested tools in parallel, repeat until done.

        Args:
            chat: the conversation so far (not modified; use on_message=chat.append to keep
                what the run adds), or a user prompt.
            tools: functions or `Tool`s the model may call.
            max_prediction_rounds: at most this many predictions; the last is offered no tools.
            max_parallel_tool_calls: how many calls of one round run at once (default: all).
            config: prediction config (sampling, max_tokens...), a `PredictionConfig` or dict.
            response_format: a pydantic class or JSON Schema for the final answer; the
                validated answer is `result.parsed`.
            on_message: receives every message the run adds, when its round is committed.
            on_first_token, on_prediction_fragment, on_prompt_processing_progress: streaming
                callbacks; each receives the round index last.
            on_round_start, on_round_end: receive the round index.
            on_prediction_completed: receives each round's `PredictionResult`.
            handle_invalid_tool_request: `(error, call) -> str | None`; a str replaces the
                message the model gets, None keeps it, raising ends the run.
            cancel_token: a `CancelToken` that cancels the run from any thread.
            context: a context policy (`agentkit.memory`) choosing, before each prediction,
                what of the history is sent (the run's history itself stays whole).
            approval: `(call) -> bool`; a call it flags (or of a tool with
                `requires_approval=True`) is not run: the run stops after committing the
                round, with `stop_reason="approval_required"` and the call in
                `pending_approvals` (the `Agent` runtime resumes such runs).
            steps: runs each prediction and tool call; `agentkit.durable` passes one that
                records them so a crashed run resumes without redoing them.

        Raises:
            ToolRetriesExceededError: a tool kept failing past its retry budget.
            StructuredOutputError: the answer never matched `response_format`.
            ActCancelled: the run was cancelled through `cancel_token`.
            ContextOverflowError: the context policy cannot fit the newest messages.
        """
        act_options = ActOptions(
            max_prediction_rounds=max_prediction_rounds,
            max_parallel_tool_calls=max_parallel_tool_calls,
            config=coerce_config(PredictionConfig, config),
            response_format=None if response_format is None else OutputFormat(response_format),
            handle_invalid_tool_request=handle_invalid_tool_request,
            cancel_token=cancel_token,
            context=context,
            approval=approval,
            steps=DIRECT if steps is None else steps,
        )
        callbacks = ActCallbacks(
            on_message=on_message,
            on_round_start=on_round_start,
            on_round_end=on_round_end,
            on_prediction_completed=on_prediction_completed,
            stream=PredictionCallbacks(
                on_first_token, on_prediction_fragment, on_prompt_processing_progress
            ),
        )
        history = Chat.from_history(chat) if isinstance(chat, str) else chat
        return await run_act(
            self._engine, self.identifier, self.model_key, history, tools, act_options, callbacks
        )

    async def respond(
        self,
        chat: Chat | str,
        *,
        config: PredictionConfigInput = None,
        response_format: ResponseFormat | None = None,
        on_first_token: Callable[[int], Any] | None = None,
        on_prediction_fragment: Callable[[PredictionFragment, int], Any] | None = None,
        on_prompt_processing_progress: Callable[[float, int], Any] | None = None,
    ) -> PredictionResult:
        """One prediction for the chat, no tools; `result.parsed` holds a structured answer.

        The keyword options mean what they mean for `act()`.
        """
        history = Chat.from_history(chat) if isinstance(chat, str) else chat
        callbacks = PredictionCallbacks(
            on_first_token, on_prediction_fragment, on_prompt_processing_progress
        )
        request = PredictionRequest(messages=history.messages)
        return await self._predict(request, config, response_format, callbacks)

    async def complete(
        self,
        prompt: str,
        *,
        config: PredictionConfigInput = None,
        response_format: ResponseFormat | None = None,
        on_first_token: Callable[[int], Any] | None = None,
        on_prediction_fragment: Callable[[PredictionFragment, int], Any] | None = None,
        on_prompt_processing_progress: Callable[[float, int], Any] | None = None,
    ) -> PredictionResult:
        """Continue raw text, without the chat template (options as for `respond()`)."""
        callbacks = PredictionCallbacks(
            on_first_token, on_prediction_fragment, on_prompt_processing_progress
        )
        request = PredictionRequest(prompt=prompt)
        return await self._predict(request, config, response_format, callbacks)

    def respond_stream(
        self,
        chat: Chat | str,
        *,
        config: PredictionConfigInput = None,
        response_format: ResponseFormat | None = None,
    ) -> AsyncPredictionStream:
        """Stream the fragments of a respond(); `.result()` when done, `.cancel()` to stop."""
        history = Chat.from_history(chat) if isinstance(chat, str) else chat
        request = PredictionRequest(messages=history.messages)
        return self._stream(request, config, response_format)

    def complete_stream(
        self,
        prompt: str,
        *,
        config: PredictionConfigInput = None,
        response_format: ResponseFormat | None = None,
    ) -> AsyncPredictionStream:
        """Stream the fragments of a complete()."""
        return self._stream(PredictionRequest(prompt=prompt), config, response_format)

    async def _predict(
        self,
        request: PredictionRequest,
        config: PredictionConfigInput,
        response_format: ResponseFormat | None,
        callbacks: PredictionCallbacks,
    ) -> PredictionResult:
        output, request = _prepared(request, config, response_format)
        predicted = await run_prediction(
            self._engine, self.identifier, self.model_key, request, callbacks
        )
        return _parsed(predicted.result, output)

    def _stream(
        self,
        request: PredictionRequest,
        config: PredictionConfigInput,
        response_format: ResponseFormat | None,
    ) -> AsyncPredictionStream:
        output, request = _prepared(request, config, response_format)
        return AsyncPredictionStream(self._engine, self.identifier, self.model_key, request, output)


def _prepared(
    request: PredictionRequest,
    config: PredictionConfigInput,
    response_format: ResponseFormat | None,
) -> tuple[OutputFormat | None, PredictionRequest]:
    output = None if response_format is None else OutputFormat(response_format)
    return output, PredictionRequest(
        messages=request.messages,
        prompt=request.prompt,
        config=coerce_config(PredictionConfig, config),
        response_format=None if output is None else output.spec,
    )


def _parsed(result: PredictionResult, output: OutputFormat | None) -> PredictionResult:
    if output is None or result.finish_reason == "cancelled":
        return result
    try:
        parsed = output.parse(result.content)
    except OutputInvalid as invalid:
        raise StructuredOutputError(
            f"the response does not match response_format: {invalid}", result.content
        ) from invalid
    return dataclasses.replace(result, parsed=parsed)


class AsyncPredictionStream:
    """Fragments of one prediction as they are generated.

    Iterate it (`async for fragment in stream`), then call `result()`. `cancel()` stops the
    generation from any task or thread; the result then has finish_reason "cancelled".
    """

    def __init__(
        self,
        engine: Engine,
        identifier: str,
        model_name: str,
        request: PredictionRequest,
        output: OutputFormat | None,
    ) -> None:
        self._events = engine.predict(identifier, request)
        self._builder = PredictionBuilder(model_name)
        self._output = output
        self._token = CancelToken()
        self._result: PredictionResult | None = None

    def __aiter__(self) -> AsyncIterator[PredictionFragment]:
        return self

    async def __anext__(self) -> PredictionFragment:
        while self._result is None:
            with self._token.attach() as scope:
                event = await anext(self._events, None)
            if scope.cancelled_caught or event is None:
                await self._finish(cancelled=scope.cancelled_caught or self._token.cancelled)
                break
            _, fragment = self._builder.add(event)
            if fragment is not None:
                return fragment
        raise StopAsyncIteration

    def cancel(self) -> None:
        """Stop generating; safe from any thread."""
        self._token.cancel()

    async def result(self) -> PredictionResult:
        """The finished prediction (consumes any fragments not yet read)."""
        async for _ in self:
            pass
        assert self._result is not None
        return self._result

    async def aclose(self) -> None:
        """Stop and release the underlying prediction."""
        if self._result is None:
            self.cancel()
            await self._finish(cancelled=True)

    async def _finish(self, *, cancelled: bool) -> None:
        with anyio.CancelScope(shield=True):
            await self._events.aclose()
        self._result = _parsed(self._builder.finish(cancelled=cancelled), self._output)


class PredictionStream:
    """The blocking twin of `AsyncPredictionStream`: a plain iterator of fragments."""

    def __init__(self, inner: AsyncPredictionStream, portal: Portal) -> None:
        self._inner = inner
        self._portal = portal

    def __iter__(self) -> Iterator[PredictionFragment]:
        return self

    def __next__(self) -> PredictionFragment:
        try:
            return self._portal.call(self._inner.__anext__)
        except StopAsyncIteration:
            raise StopIteration from None

    def cancel(self) -> None:
        """Stop generating; safe from any thread."""
        self._inner.cancel()

    def result(self) -> PredictionResult:
        """The finished prediction."""
        return self._portal.call(self._inner.result)

    def close(self) -> None:
        """Stop and release the prediction."""
        self._portal.call(self._inner.aclose)

    def __enter__(self) -> PredictionStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LLM(ModelHandle[AsyncLLM]):
    """A blocking handle on a loaded language model; same methods as `AsyncLLM`.

    `act`, `respond` and `complete` are generated from their `AsyncLLM` twins, so they keep
    identical parameters (names, order, defaults) by construction, and type checkers see them.
    The streaming methods return a blocking iterator and are written out; a test compares
    their signatures with the async ones.
    """

    __slots__ = ()

    @classmethod
    def standalone(cls, engine: BaseEngine, model_key: str | None = None) -> LLM:
        """The blocking twin of `AsyncLLM.standalone`, on the shared default loop thread."""
        return cls(AsyncLLM.standalone(engine, model_key), default_portal())

    act = blocking(AsyncLLM.act)
    respond = blocking(AsyncLLM.respond)
    complete = blocking(AsyncLLM.complete)

    def respond_stream(
        self,
        chat: Chat | str,
        *,
        config: PredictionConfigInput = None,
        response_format: ResponseFormat | None = None,
    ) -> PredictionStream:
        """Iterate the fragments of a respond(); `.cancel()` stops it from any thread."""
        stream = self._async.respond_stream(chat, config=config, response_format=response_format)
        return PredictionStream(stream, self._portal)

    def complete_stream(
        self,
        prompt: str,
        *,
        config: PredictionConfigInput = None,
        response_format: ResponseFormat | None = None,
    ) -> PredictionStream:
        """Iterate the fragments of a complete()."""
        stream = self._async.complete_stream(prompt, config=config, response_format=response_format)
        return PredictionStream(stream, self._portal)
