"""The one module that uses private `lmstudio` SDK API, and the guard on the SDK's version.

The public SDK has no way to give a client an API token (1.5) and no prediction call that
returns tool call requests (`respond()` drops them; `act()` runs tools itself). So this module
authenticates by overriding the client's auth message and runs predictions the way the SDK's
own `act()` does: a prediction endpoint on a channel of the LLM session. Those pieces change
between SDK minor versions, which is why `check_version` refuses versions it was not checked
against. Everything else the engine does goes through public SDK API.

`tests/engines/lmstudio/test_sdk_adapter.py` fails when a private SDK name is used elsewhere.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncGenerator, Mapping
from typing import Any, cast

import anyio
import lmstudio
import msgspec
from lmstudio import (
    AsyncClient,
    Chat,
    DictObject,
    LlmPredictionConfigDict,
    LMStudioError,
    ToolCallRequest,
)

from agentkit import untrusted
from agentkit.engines.base import (
    FirstToken,
    MalformedToolCall,
    PredictionDone,
    PredictionEvent,
    PromptProgress,
    TextDelta,
    ToolCallRequested,
)
from agentkit.errors import EngineError, EngineUnavailableError
from agentkit.messages import ToolCall
from agentkit.results import PredictionStats, Usage

# An SDK that moved these is refused by check_version(), which names what is missing; an
# ImportError here would hide that message behind a traceback.
_IMPORT_PROBLEM: str | None = None
try:
    from lmstudio.async_api import AsyncChannel
    from lmstudio.json_api import (
        ChatResponseEndpoint,
        CompletionEndpoint,
        PredictionEndpoint,
        PredictionFragmentEvent,
        PredictionPrepProgressEvent,
        PredictionToolCallEvent,
    )
except ImportError as error:  # pragma: no cover - only on SDK versions check_version refuses
    _IMPORT_PROBLEM = str(error)

__all__ = [
    "SDK_DATA_ERRORS",
    "SUPPORTED_VERSIONS",
    "TokenClient",
    "chat_history",
    "check_version",
    "predict",
]

SUPPORTED_VERSIONS = ((1, 5),)
"""The (major, minor) SDK series this module's private API use was checked against."""

SDK_DATA_ERRORS: tuple[type[Exception], ...] = (
    msgspec.ValidationError,
    TypeError,
    KeyError,
    ValueError,
    AttributeError,
    IndexError,
)
"""What the SDK raises on server data of the wrong shape: it validates with msgspec, and reads
some messages (prompt progress, load configs, RPC results) without checking their types."""

_STOP_REASONS = {
    "userStopped": "cancelled",
    "maxPredictedTokensReached": "length",
    "contextLengthReached": "length",
    "toolCalls": "tool_calls",
    "eosFound": "stop",
    "stopStringFound": "stop",
    "failed": "error",
    "modelUnloaded": "error",
}
_CANCEL_DRAIN_SECONDS = 5.0
_MAX_TOKEN_COUNT = 2**53  # larger counts are no real prediction's


def check_version(version: str | None = None) -> None:
    """Raise `EngineUnavailableError` unless the installed SDK (or `version`) is supported."""
    installed = lmstudio.__version__ if version is None else version
    match = re.match(r"(\d+)\.(\d+)", installed)
    series = (int(match[1]), int(match[2])) if match else None
    if series in SUPPORTED_VERSIONS and _IMPORT_PROBLEM is None:
        return
    supported = ", ".join(f"{major}.{minor}.x" for major, minor in SUPPORTED_VERSIONS)
    missing = f" ({_IMPORT_PROBLEM})" if _IMPORT_PROBLEM else ""
    raise EngineUnavailableError(
        f"agentkit's LM Studio engine supports lmstudio {supported}, but lmstudio {installed} "
        f"is installed{missing}: it relies on SDK internals that change between minor "
        "versions. Install a supported SDK: pip install 'lmstudio>=1.5,<1.6'"
    )


class TokenClient(AsyncClient):
    """The SDK's async client, with an LM Studio API token (`sk-lm-<id>:<key>`) as identity."""

    def __init__(self, api_host: str, api_token: str | None) -> None:
        self._agentkit_api_token = api_token  # read by _create_auth_message in super().__init__
        super().__init__(api_host)

    def _create_auth_message(self, api_token: str | None = None) -> DictObject:
        # lmstudio 1.5 calls this without arguments; 1.6 passes the client's api_token.
        token = api_token if api_token is not None else self._agentkit_api_token
        if token is None:
            return self._format_auth_message()
        identifier, _, passkey = token.partition(":")
        return self._format_auth_message(identifier, passkey or None)


async def predict(
    client: TokenClient,
    identifier: str,
    *,
    chat: Chat | None,
    prompt: str | None,
    schema: dict[str, Any] | None,
    config: LlmPredictionConfigDict | None,
) -> AsyncGenerator[PredictionEvent, None]:
    """One prediction (a raw completion when `prompt` is set) as agentkit events.

    Ends with exactly one `PredictionDone`. Closed early, it cancels the prediction on the
    server and waits briefly for the server to confirm. SDK errors pass through unchanged.
    """
    # The SDK only reports prompt progress when a progress callback is registered.
    endpoint: PredictionEndpoint
    if prompt is not None:
        endpoint = CompletionEndpoint(
            identifier, prompt, schema, config, on_prompt_processing_progress=_ignore
        )
    else:
        endpoint = ChatResponseEndpoint(
            identifier, chat or Chat(), schema, config, on_prompt_processing_progress=_ignore
        )
    async with client.llm._create_channel(endpoint) as channel:
        finished = False
        try:
            async for event in _events(channel, endpoint):
                yield event
            finished = True
        except LMStudioError:
            finished = True  # the server ended the prediction itself
            raise
        finally:
            if not finished:
                with anyio.CancelScope(shield=True):
                    await _cancel(channel, endpoint)


async def _events(
    channel: AsyncChannel[Any], endpoint: PredictionEndpoint
) -> AsyncGenerator[PredictionEvent, None]:
    first = True
    async for contents in channel.rx_stream():
        if isinstance(contents, Mapping) and contents.get("type") == "toolCallGenerationFailed":
            yield _malformed(contents)
            continue
        for event in endpoint.iter_message_events(contents):
            if isinstance(event, PredictionPrepProgressEvent):
                yield PromptProgress(_fraction(event.arg))
            elif isinstance(event, PredictionFragmentEvent):
                fragment = event.arg
                if first:
                    first = False
                    yield FirstToken()
                # reasoningStartTag/EndTag fragments are the <think> tags themselves
                kind = fragment.reasoning_type
                if fragment.content and kind in ("none", "reasoning"):
                    yield TextDelta(untrusted.clean_text(fragment.content), kind == "reasoning")
            elif isinstance(event, PredictionToolCallEvent):
                yield _tool_call(event.arg)
        if endpoint.is_finished:
            break
    stats = endpoint.result().stats
    prompt, predicted = _count(stats.prompt_tokens_count), _count(stats.predicted_tokens_count)
    reported = PredictionStats(
        prompt_tokens=None if stats.prompt_tokens_count is None else prompt,
        generated_tokens=None if stats.predicted_tokens_count is None else predicted,
        time_to_first_token_seconds=_figure(stats.time_to_first_token_sec, "time to first token"),
        tokens_per_second=_figure(stats.tokens_per_second, "tokens per second"),
    )
    reason = _STOP_REASONS.get(stats.stop_reason, "stop")
    yield PredictionDone(Usage(prompt, predicted), reason, reported)


async def _cancel(channel: AsyncChannel[Any], endpoint: PredictionEndpoint) -> None:
    """Send the SDK's cancel and wait (briefly) for the server to confirm the stop."""
    endpoint.mark_cancelled()
    with contextlib.suppress(LMStudioError, OSError, *SDK_DATA_ERRORS):
        await channel.cancel()
        with anyio.move_on_after(_CANCEL_DRAIN_SECONDS):
            async for contents in channel.rx_stream():
                if isinstance(contents, Mapping) and contents.get("type") in ("success", "error"):
                    break


def _ignore(_progress: float) -> None:
    """Progress reaches agentkit as events; the SDK callback has nothing to do."""


def _fraction(progress: object) -> float:
    # `0 <= x <= 1` is also false for NaN, which the SDK's JSON reader accepts
    if type(progress) in (int, float) and 0.0 <= cast(float, progress) <= 1.0:
        return float(cast(float, progress))
    raise EngineError(f"LM Studio sent a prompt progress that is not a fraction: {_show(progress)}")


def _figure(value: float | None, what: str) -> float | None:
    """A duration or rate from the server's stats: a finite number >= 0, or absent."""
    if value is None:
        return None
    if type(value) in (int, float) and 0.0 <= value < float("inf"):
        return float(value)
    raise EngineError(f"LM Studio sent an impossible {what}: {_show(value)}")


def _count(count: int | None) -> int:
    if count is None:
        return 0
    if 0 <= count < _MAX_TOKEN_COUNT:
        return count
    raise EngineError(f"LM Studio sent an impossible token count: {_show(count)}")


def _tool_call(request: ToolCallRequest) -> ToolCallRequested | MalformedToolCall:
    """The model's tool call; arguments breaking agentkit's limits go back to the model."""
    name = untrusted.clean_text(request.name)
    raw = untrusted.clip(name, 200)
    try:
        arguments = dict(request.arguments or {})
        untrusted.check_depth(arguments, what="the tool call's arguments")
        arguments = untrusted.clean_value(arguments)
        return ToolCallRequested(ToolCall(name, arguments, request.id or None))
    except untrusted.UntrustedDataError as error:
        return MalformedToolCall(raw, error.problem)
    except (ValueError, TypeError, RecursionError) as error:
        return MalformedToolCall(raw, untrusted.describe_exception(error, 300))


def _malformed(contents: Mapping[str, Any]) -> MalformedToolCall:
    """A tool call LM Studio could not parse out of the model's output."""
    error = contents.get("error")
    raw = contents.get("rawContent")
    title = error.get("title") if isinstance(error, Mapping) else None
    if not isinstance(error, Mapping | None) or not isinstance(title, str | None):
        raise EngineError(f"LM Studio sent a tool call failure of the wrong shape: {_show(error)}")
    if not isinstance(raw, str | None):
        raise EngineError(f"LM Studio sent a tool call's raw content as {type(raw).__name__}")
    reason = untrusted.clip(untrusted.clean_text(title), 500) if title else None
    return MalformedToolCall(
        untrusted.clean_text(raw or ""), reason or "tool call generation failed"
    )


def _show(value: object) -> str:
    try:
        text = repr(value)
    except RecursionError:
        text = f"a {type(value).__name__} nested too deep to show"
    return untrusted.clip(untrusted.clean_text(text), 200)


def chat_history(chat: Chat) -> dict[str, Any]:
    """An lmstudio `Chat`'s history as its wire dict: what the SDK sends for a prediction."""
    return cast(dict[str, Any], chat._get_history_for_prediction())
