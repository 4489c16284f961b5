"""Scripted models for testing agents without inference.

`ScriptedModel` (blocking) and `AsyncScriptedModel` are real model handles whose predictions come
from a responder instead of a model, so act(), tools, callbacks and errors run exactly as they
would on a real engine:

    answer = lambda chat, i: [ToolCall("multiply", {"a": 2, "b": 3})] if i == 0 else "6"
    model = ScriptedModel(answer)
    result = model.act("What is 2 times 3?", [multiply])
    assert result.final.text == "6"

A responder is a list of replies (one per prediction, in order) or a callable
`(chat, round_index)` or `(chat, round_index, request)` that returns one, sync or async. A reply
is a `str` (the answer), a list of `ToolCall`s (and `Malformed` tool-call text), a `Reply` for
full control (text with tool calls, reasoning, delays), or an exception instance to raise.
Text is streamed word by word; usage counts whitespace-separated words as tokens.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import anyio

from agentkit.chat import AssistantMessage, Chat, Message, ToolCall, UserMessage
from agentkit.engines.base import (
    BaseEngine,
    DownloadedModelInfo,
    FirstToken,
    MalformedToolCall,
    ModelInfo,
    ModelInstanceInfo,
    PredictionDone,
    PredictionEvent,
    PredictionRequest,
    PromptProgress,
    TextDelta,
    ToolCallRequested,
)
from agentkit.errors import AgentkitError, ConfigurationError
from agentkit.handles import LLM, AsyncLLM
from agentkit.results import Usage

__all__ = [
    "AsyncScriptedModel",
    "Malformed",
    "Reply",
    "ReplyLike",
    "Responder",
    "ScriptExhaustedError",
    "ScriptedEngine",
    "ScriptedModel",
    "ToolCall",
    "scripted_engine",
]


@dataclass(frozen=True, slots=True)
class Malformed:
    """Tool-call output the engine could not parse (as a real engine reports it)."""

    raw: str
    reason: str = "the tool call is not valid JSON"


@dataclass(frozen=True, slots=True)
class Reply:
    """A scripted prediction with every detail under control."""

    content: str = ""
    tool_calls: Sequence[ToolCall | Malformed] = ()
    reasoning: str | None = None
    delay: float = 0.0
    """Seconds to wait before the first token (cancellable, like real generation)."""
    fragment_delay: float = 0.0
    """Seconds to wait before each further fragment."""
    finish_reason: str | None = None


ReplyLike: TypeAlias = "str | Sequence[ToolCall | Malformed] | Reply | BaseException"
Responder: TypeAlias = "Sequence[ReplyLike] | Callable[..., ReplyLike | Awaitable[ReplyLike]]"


class ScriptExhaustedError(AgentkitError):
    """A list responder ran out of replies."""


SCRIPTED_CONTEXT = 1_000_000
_WORDS = re.compile(r"\s*\S+\s*|\s+")


class ScriptedEngine(BaseEngine):
    """An engine whose predictions come from a responder; records every request it gets.

    `requests` holds every prediction request in order and `usage` the tokens counted so far;
    `requests[i].tool_choice` and `requests[i].tool_offer()` show the tool_choice each got. The
    replies are not held to it (a test may script a model that disobeys); the results' `stats`
    count words as tokens, like `usage`.
    """

    def __init__(
        self, responder: Responder, *, model_key: str = "scripted-model", delay: float = 0.0
    ) -> None:
        super().__init__()
        if not callable(responder) and (
            isinstance(responder, str | bytes) or not isinstance(responder, Sequence)
        ):
            raise ConfigurationError("a responder is a list of replies or a callable")
        self.responder = responder
        self.default_model_key = model_key
        self.delay = delay
        self.requests: list[PredictionRequest] = []
        self.usage = Usage()
        self._vocabulary: dict[str, int] = {}
        self._next_index = 0
        self._wants_request = callable(responder) and _accepts_three_arguments(responder)

    @property
    def model_key(self) -> str:
        """The key of the scripted model."""
        assert self.default_model_key is not None
        return self.default_model_key

    @property
    def provider_name(self) -> str:
        """gen_ai.provider.name for scripted predictions."""
        return "agentkit.testing"

    async def list_downloaded(self) -> list[DownloadedModelInfo]:
        """The scripted model, as if it were a file."""
        return [DownloadedModelInfo(self.model_key, f"scripted://{self.model_key}", 0, "scripted")]

    async def get_info(self, identifier: str) -> ModelInfo:
        """Synthetic metadata."""
        info = self._info(identifier)
        return ModelInfo(info.model_key, "scripted", trained_context_length=SCRIPTED_CONTEXT)

    async def get_context_length(self, identifier: str) -> int:
        """The loaded context length (the load config's, or a large default)."""
        return self._info(identifier).load_config.context_length or SCRIPTED_CONTEXT

    async def tokenize(self, identifier: str, text: str) -> list[int]:
        """One token per whitespace-separated word, ids stable for this engine."""
        self._info(identifier)
        return [self._vocabulary.setdefault(word, len(self._vocabulary)) for word in text.split()]

    async def embed(self, identifier: str, texts: Sequence[str]) -> list[list[float]]:
        """A deterministic bag-of-letters vector per text (26 dimensions, unit length)."""
        self._info(identifier)
        vectors = []
        for text in texts:
            counts = [float(text.lower().count(chr(ord("a") + i))) for i in range(26)]
            norm = sum(c * c for c in counts) ** 0.5 or 1.0
            vectors.append([c / norm for c in counts])
        return vectors

    def _info(self, identifier: str) -> ModelInstanceInfo:
        return self.instances.get(identifier)

    async def predict(
        self, identifier: str, request: PredictionRequest
    ) -> AsyncGenerator[PredictionEvent, None]:
        """Stream the responder's reply as a real engine would."""
        self.instances.get(identifier)
        self.requests.append(request)
        reply = _as_reply(await self._reply_for(request))
        yield PromptProgress(0.0)
        yield PromptProgress(1.0)
        if reply.delay or self.delay:
            await anyio.sleep(reply.delay or self.delay)
        yield FirstToken()
        completion = 0
        for index, (text, reasoning) in enumerate(_fragments(reply)):
            if reply.fragment_delay and index:
                await anyio.sleep(reply.fragment_delay)
            completion += len(text.split())
            yield TextDelta(text, reasoning)
        for call in reply.tool_calls:
            if isinstance(call, Malformed):
                completion += len(call.raw.split())
                yield MalformedToolCall(call.raw, call.reason)
            else:
                completion += _count_words(_call_text(call))
                yield ToolCallRequested(call)
        usage = Usage(_prompt_tokens(request), completion)
        self.usage += usage
        finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        yield PredictionDone(usage, finish)

    async def _reply_for(self, request: PredictionRequest) -> ReplyLike:
        responder = self.responder
        if not callable(responder):
            index = self._next_index
            if index >= len(responder):
                raise ScriptExhaustedError(
                    f"the script has {len(responder)} replies and prediction {index + 1} "
                    "was requested; add replies or end the run sooner"
                )
            self._next_index += 1
            return responder[index]
        chat = (
            Chat.from_history(request.prompt)
            if request.prompt is not None
            else Chat.from_dict(list(request.messages))
        )
        args = (
            (chat, request.round_index, request)
            if self._wants_request
            else (
                chat,
                request.round_index,
            )
        )
        reply = responder(*args)
        if inspect.isawaitable(reply):
            reply = await reply
        return reply


def _accepts_three_arguments(function: Callable[..., object]) -> bool:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 3 or any(p.kind is p.VAR_POSITIONAL for p in parameters)


def _as_reply(value: object) -> Reply:
    if isinstance(value, Reply):
        return value
    if isinstance(value, BaseException):
        raise value
    if isinstance(value, str):
        return Reply(content=value)
    if isinstance(value, Sequence) and all(isinstance(c, ToolCall | Malformed) for c in value):
        return Reply(tool_calls=tuple(value))
    raise ConfigurationError(
        f"a scripted reply must be a str, a list of ToolCall/Malformed, a Reply or an exception; "
        f"got {value!r}"
    )


def _fragments(reply: Reply) -> list[tuple[str, bool]]:
    pieces = [(w, True) for w in _WORDS.findall(reply.reasoning or "")]
    return pieces + [(w, False) for w in _WORDS.findall(reply.content)]


def _call_text(call: ToolCall) -> str:
    arguments = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
    return f"{call.name} {arguments}"


def _count_words(text: str) -> int:
    return len(text.split())


def _prompt_tokens(request: PredictionRequest) -> int:
    if request.prompt is not None:
        return _count_words(request.prompt)
    return sum(_message_words(message) for message in request.messages)


def _message_words(message: Message) -> int:
    words = _count_words(message.content)
    if isinstance(message, AssistantMessage):
        words += sum(_count_words(_call_text(call)) for call in message.tool_calls)
    return words


def AsyncScriptedModel(
    responder: Responder, *, model_key: str = "scripted-model", delay: float = 0.0
) -> AsyncLLM:
    """An async model handle driven by a responder (see the module docstring).

    Its `engine` is the `ScriptedEngine`, with the recorded `requests` and counted `usage`.
    """
    return AsyncLLM.standalone(ScriptedEngine(responder, model_key=model_key, delay=delay))


def ScriptedModel(
    responder: Responder, *, model_key: str = "scripted-model", delay: float = 0.0
) -> LLM:
    """A blocking model handle driven by a responder (see the module docstring)."""
    return LLM.standalone(ScriptedEngine(responder, model_key=model_key, delay=delay))


def scripted_engine(model: LLM | AsyncLLM) -> ScriptedEngine:
    """The `ScriptedEngine` behind a scripted model, typed (for `requests` and `usage`)."""
    engine = model.engine
    if not isinstance(engine, ScriptedEngine):
        raise ConfigurationError(f"{model!r} does not run on a ScriptedEngine")
    return engine


def user_text(request: PredictionRequest) -> str:
    """The last user message's text in a request (handy inside responders)."""
    for message in reversed(request.messages):
        if isinstance(message, UserMessage):
            return message.content
    return request.prompt or ""
