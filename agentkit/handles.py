"""Model handles: `AsyncLLM` (coroutines) and `LLM` (the same methods, blocking).

A handle names one loaded model instance and holds no conversation, so one handle can serve
any number of chats at once. The sync `LLM` forwards every call to its `AsyncLLM` on the
client's background loop; callbacks therefore run on that loop's thread.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any, TypedDict, TypeVar

import anyio
from typing_extensions import Unpack

from agentkit.act import ActCallbacks, ActOptions, run_act
from agentkit.cancel import CancelToken
from agentkit.chat import Chat, Message
from agentkit.config import PredictionConfig, PredictionConfigInput, coerce_config
from agentkit.engines.base import Engine, PredictionRequest
from agentkit.errors import StructuredOutputError
from agentkit.model_handle import AsyncModelHandle, ModelHandle
from agentkit.portal import Portal
from agentkit.prediction import PredictionBuilder, PredictionCallbacks, run_prediction
from agentkit.results import ActResult, PredictionFragment, PredictionResult
from agentkit.structured import OutputFormat, OutputInvalid, ResponseFormat
from agentkit.tool_round import InvalidRequestHandler
from agentkit.tools.toolset import ToolLike

__all__ = [
    "LLM",
    "ActKwargs",
    "AsyncLLM",
    "AsyncPredictionStream",
    "PredictionStream",
    "RespondKwargs",
]

T = TypeVar("T")


class RespondKwargs(TypedDict, total=False):
    """Keyword options of respond() and complete()."""

    config: PredictionConfigInput
    response_format: ResponseFormat | None
    on_first_token: Callable[[int], Any] | None
    on_prediction_fragment: Callable[[PredictionFragment, int], Any] | None
    on_prompt_processing_progress: Callable[[float, int], Any] | None


class ActKwargs(RespondKwargs, total=False):
    """Keyword options of act() (see `AsyncLLM.act`)."""

    max_prediction_rounds: int | None
    max_parallel_tool_calls: int | None
    on_message: Callable[[Message], Any] | None
    on_round_start: Callable[[int], Any] | None
    on_round_end: Callable[[int], Any] | None
    on_prediction_completed: Callable[[PredictionResult], Any] | None
    handle_invalid_tool_request: InvalidRequestHandler | None
    cancel_token: CancelToken | None


class AsyncLLM(AsyncModelHandle):
    """An async handle on a loaded language model."""

    __slots__ = ()

    async def act(
        self,
        chat: Chat | str,
        tools: Iterable[ToolLike] | None = None,
        **options: Unpack[ActKwargs],
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

        Raises:
            ToolRetriesExceededError: a tool kept failing past its retry budget.
            StructuredOutputError: the answer never matched `response_format`.
            ActCancelled: the run was cancelled through `cancel_token`.
        """
        response_format = options.get("response_format")
        act_options = ActOptions(
            max_prediction_rounds=options.get("max_prediction_rounds"),
            max_parallel_tool_calls=options.get("max_parallel_tool_calls"),
            config=coerce_config(PredictionConfig, options.get("config")),
            response_format=None if response_format is None else OutputFormat(response_format),
            handle_invalid_tool_request=options.get("handle_invalid_tool_request"),
            cancel_token=options.get("cancel_token"),
        )
        callbacks = ActCallbacks(
            on_message=options.get("on_message"),
            on_round_start=options.get("on_round_start"),
            on_round_end=options.get("on_round_end"),
            on_prediction_completed=options.get("on_prediction_completed"),
            stream=_stream_callbacks(options),
        )
        history = Chat.from_history(chat) if isinstance(chat, str) else chat
        return await run_act(
            self._engine, self.identifier, self.model_key, history, tools, act_options, callbacks
        )

    async def respond(self, chat: Chat | str, **options: Unpack[RespondKwargs]) -> PredictionResult:
        """One prediction for the chat, no tools; `result.parsed` holds a structured answer."""
        history = Chat.from_history(chat) if isinstance(chat, str) else chat
        return await self._predict(PredictionRequest(messages=history.messages), options)

    async def complete(self, prompt: str, **options: Unpack[RespondKwargs]) -> PredictionResult:
        """Continue raw text, without the chat template."""
        return await self._predict(PredictionRequest(prompt=prompt), options)

    def respond_stream(
        self, chat: Chat | str, **options: Unpack[RespondKwargs]
    ) -> AsyncPredictionStream:
        """Stream the fragments of a respond(); `.result()` when done, `.cancel()` to stop."""
        history = Chat.from_history(chat) if isinstance(chat, str) else chat
        return self._stream(PredictionRequest(messages=history.messages), options)

    def complete_stream(
        self, prompt: str, **options: Unpack[RespondKwargs]
    ) -> AsyncPredictionStream:
        """Stream the fragments of a complete()."""
        return self._stream(PredictionRequest(prompt=prompt), options)

    async def _predict(
        self, request: PredictionRequest, options: RespondKwargs
    ) -> PredictionResult:
        output, request = _prepared(request, options)
        predicted = await run_prediction(
            self._engine, self.identifier, self.model_key, request, _stream_callbacks(options)
        )
        return _parsed(predicted.result, output)

    def _stream(self, request: PredictionRequest, options: RespondKwargs) -> AsyncPredictionStream:
        output, request = _prepared(request, options)
        return AsyncPredictionStream(self._engine, self.identifier, self.model_key, request, output)


def _stream_callbacks(options: RespondKwargs) -> PredictionCallbacks:
    return PredictionCallbacks(
        on_first_token=options.get("on_first_token"),
        on_prediction_fragment=options.get("on_prediction_fragment"),
        on_prompt_processing_progress=options.get("on_prompt_processing_progress"),
    )


def _prepared(
    request: PredictionRequest, options: RespondKwargs
) -> tuple[OutputFormat | None, PredictionRequest]:
    response_format = options.get("response_format")
    output = None if response_format is None else OutputFormat(response_format)
    return output, PredictionRequest(
        messages=request.messages,
        prompt=request.prompt,
        config=coerce_config(PredictionConfig, options.get("config")),
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
    return PredictionResult(
        message=result.message,
        usage=result.usage,
        finish_reason=result.finish_reason,
        model=result.model,
        time_to_first_token_seconds=result.time_to_first_token_seconds,
        duration_seconds=result.duration_seconds,
        parsed=parsed,
    )


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
        aclose = getattr(self._events, "aclose", None)
        if aclose is not None:
            with anyio.CancelScope(shield=True):
                await aclose()
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
    """A blocking handle on a loaded language model; same methods as `AsyncLLM`."""

    __slots__ = ()

    def act(
        self,
        chat: Chat | str,
        tools: Iterable[ToolLike] | None = None,
        **options: Unpack[ActKwargs],
    ) -> ActResult:
        """Run a ReAct loop (blocking); see `AsyncLLM.act`."""
        return self._call(functools.partial(self._async.act, chat, tools, **options))

    def respond(self, chat: Chat | str, **options: Unpack[RespondKwargs]) -> PredictionResult:
        """One prediction for the chat, no tools (blocking)."""
        return self._call(functools.partial(self._async.respond, chat, **options))

    def complete(self, prompt: str, **options: Unpack[RespondKwargs]) -> PredictionResult:
        """Continue raw text (blocking)."""
        return self._call(functools.partial(self._async.complete, prompt, **options))

    def respond_stream(
        self, chat: Chat | str, **options: Unpack[RespondKwargs]
    ) -> PredictionStream:
        """Iterate the fragments of a respond(); `.cancel()` stops it from any thread."""
        return PredictionStream(self._async.respond_stream(chat, **options), self._portal)

    def complete_stream(self, prompt: str, **options: Unpack[RespondKwargs]) -> PredictionStream:
        """Iterate the fragments of a complete()."""
        return PredictionStream(self._async.complete_stream(prompt, **options), self._portal)
