"""Context-window policies: which messages of a history a prediction sends to the model.

A policy is a function of (history, model) -> the messages sent, run before every prediction;
it never changes the history, the chat or a stored session. Policies compose with `|`, each
working on the output of the one before:

    policy = Pin(first=2) | ElideToolResults(max_chars=2000) | TokenBudget(reply_tokens=512)
    result = model.act(chat, tools, context=policy)

Policies see the history as blocks, the units kept or dropped whole: a message, or an assistant
message with tool calls together with the results that follow it, so no policy ever splits a
call from its results. A block is pinned (always kept) if it holds a system message or a message
`Pin` chose. A policy that cannot fit the pinned blocks and the newest one raises
`ContextOverflowError`, naming the sizes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from agentkit.errors import ConfigurationError, ContextOverflowError
from agentkit.messages import (
    AssistantMessage,
    Message,
    SystemMessage,
    ToolResultMessage,
    UserMessage,
)
from agentkit.model_handle import AsyncModelHandle, ModelHandle

from .context_tokens import BoundedCache, ContextModel, TokenCounter

if TYPE_CHECKING:
    from .sessions import SessionStore

__all__ = [
    "Block",
    "ContextPolicy",
    "ElideToolResults",
    "KeepLastTurns",
    "Pin",
    "Pipeline",
    "TokenBudget",
    "split_blocks",
]

ModelLike = ContextModel | AsyncModelHandle | ModelHandle[AsyncModelHandle]


@dataclass(frozen=True, slots=True)
class Block:
    """Messages kept or dropped together: one message, or a call and its results."""

    messages: tuple[Message, ...]
    pinned: bool = False

    @property
    def starts_turn(self) -> bool:
        """A turn starts at each user message."""
        return isinstance(self.messages[0], UserMessage)


def split_blocks(history: Sequence[Message]) -> list[Block]:
    """The history as blocks; blocks with a system message are pinned."""
    blocks: list[Block] = []
    index, end = 0, len(history)
    while index < end:
        message = history[index]
        if isinstance(message, AssistantMessage) and message.tool_calls:
            stop = index + 1
            while stop < end and isinstance(history[stop], ToolResultMessage):
                stop += 1
            blocks.append(Block(tuple(history[index:stop])))
            index = stop
        else:
            blocks.append(Block((message,), isinstance(message, SystemMessage)))
            index += 1
    return blocks


def flatten(blocks: Sequence[Block]) -> list[Message]:
    return [message for block in blocks for message in block.messages]


class ContextPolicy(ABC):
    """Decides what of a history is sent, per prediction. Compose policies with `|`."""

    async def apply(self, history: Sequence[Message], model: ModelLike) -> list[Message]:
        """The messages to send for this history and model (the history is not changed)."""
        return flatten(await self.fit(split_blocks(history), ContextModel.of(model)))

    @abstractmethod
    async def fit(self, blocks: Sequence[Block], model: ContextModel) -> Sequence[Block]:
        """The blocks to keep (new lists and blocks; the input is never changed)."""

    def for_session(self, store: SessionStore, session_id: str) -> ContextPolicy:
        """This policy with its state (a summary) kept in a session's metadata; most policies
        have none and return themselves."""
        del store, session_id
        return self

    def __or__(self, other: ContextPolicy) -> Pipeline:
        return Pipeline(self, other)


class Pipeline(ContextPolicy):
    """Policies applied in order, each to the blocks the previous one kept."""

    policies: tuple[ContextPolicy, ...]

    def __init__(self, *policies: ContextPolicy) -> None:
        flat: list[ContextPolicy] = []
        for policy in policies:
            if not isinstance(policy, ContextPolicy):
                raise ConfigurationError(
                    f"a context policy is a ContextPolicy, not {type(policy).__name__}"
                )
            flat.extend(policy.policies if isinstance(policy, Pipeline) else [policy])
        self.policies = tuple(flat)

    async def fit(self, blocks: Sequence[Block], model: ContextModel) -> Sequence[Block]:
        for policy in self.policies:
            blocks = await policy.fit(blocks, model)
        return blocks

    def for_session(self, store: SessionStore, session_id: str) -> ContextPolicy:
        return Pipeline(*(policy.for_session(store, session_id) for policy in self.policies))

    def __repr__(self) -> str:
        return " | ".join(map(repr, self.policies))


class Pin(ContextPolicy):
    """Pins more messages (system messages always are): the first `first` messages, the
    newest user message (`last_user`), and those `where(message)` is true for. Pinning a
    message pins its block."""

    def __init__(
        self,
        where: Callable[[Message], bool] | None = None,
        *,
        first: int = 0,
        last_user: bool = False,
    ) -> None:
        check_count("first", first, minimum=0)
        self.where = where
        self.first = first
        self.last_user = last_user

    async def fit(self, blocks: Sequence[Block], model: ContextModel) -> Sequence[Block]:
        last_user = -1
        if self.last_user:
            last_user = next(
                (i for i in range(len(blocks) - 1, -1, -1) if blocks[i].starts_turn), -1
            )
        pinned: list[Block] = []
        position = 0
        for index, block in enumerate(blocks):
            pin = (
                block.pinned
                or position < self.first
                or index == last_user
                or (self.where is not None and any(map(self.where, block.messages)))
            )
            pinned.append(block if pin == block.pinned else replace(block, pinned=True))
            position += len(block.messages)
        return pinned

    def __repr__(self) -> str:
        return f"Pin(where={self.where!r}, first={self.first}, last_user={self.last_user})"


class KeepLastTurns(ContextPolicy):
    """Keeps the pinned blocks and the last `turns` turns (a turn starts at a user message)."""

    def __init__(self, turns: int) -> None:
        check_count("turns", turns, minimum=1)
        self.turns = turns

    async def fit(self, blocks: Sequence[Block], model: ContextModel) -> Sequence[Block]:
        starts = [i for i, block in enumerate(blocks) if block.starts_turn and not block.pinned]
        if len(starts) <= self.turns:
            return list(blocks)
        cut = starts[-self.turns]
        return [block for i, block in enumerate(blocks) if i >= cut or block.pinned]

    def __repr__(self) -> str:
        return f"KeepLastTurns({self.turns})"


class TokenBudget(ContextPolicy):
    """Keeps the pinned blocks and as many of the newest blocks as fit in a token budget.

    The budget is `max_tokens` (default: the model's loaded context length) less
    `reply_tokens` for the reply and the tokens of the tool definitions offered. Tokens are
    counted with the model's own tokenizer, each message once (`counter` caches the counts;
    pass one counter to several policies to share it). Raises `ContextOverflowError` when the
    pinned blocks and the newest block alone exceed the budget.
    """

    def __init__(
        self,
        max_tokens: int | None = None,
        *,
        reply_tokens: int = 512,
        counter: TokenCounter | None = None,
    ) -> None:
        if max_tokens is not None:
            check_count("max_tokens", max_tokens, minimum=1)
        check_count("reply_tokens", reply_tokens, minimum=0)
        if max_tokens is not None and reply_tokens >= max_tokens:
            raise ConfigurationError(
                f"reply_tokens ({reply_tokens}) leaves no room for messages in max_tokens "
                f"({max_tokens}); the budget for messages is max_tokens - reply_tokens"
            )
        self.max_tokens = max_tokens
        self.reply_tokens = reply_tokens
        self.counter = counter or TokenCounter()

    async def budget(self, model: ContextModel) -> tuple[int, str]:
        """The tokens the messages may take, and how that was worked out."""
        total = self.max_tokens if self.max_tokens is not None else await model.context_length()
        tools = await self.counter.tools(model)
        source = "max_tokens" if self.max_tokens is not None else "context"
        tools_part = f" - {tools:,} for the tool definitions" if tools else ""
        detail = f" ({total:,} {source} - {self.reply_tokens:,} for the reply{tools_part})"
        return total - self.reply_tokens - tools, detail

    async def fit(self, blocks: Sequence[Block], model: ContextModel) -> Sequence[Block]:
        budget, detail = await self.budget(model)
        sizes = await block_sizes(self.counter, blocks, model)
        pinned = sum(size for block, size in zip(blocks, sizes, strict=True) if block.pinned)
        left = budget - pinned
        keep = [block.pinned for block in blocks]
        newest = True
        for index in range(len(blocks) - 1, -1, -1):
            if blocks[index].pinned:
                continue
            if sizes[index] > left:
                if newest:
                    raise ContextOverflowError(budget, pinned, sizes[index], detail)
                break  # older blocks go too: what is sent stays one contiguous stretch
            left -= sizes[index]
            keep[index] = True
            newest = False
        if left < 0:  # only pinned blocks, and too many of them
            raise ContextOverflowError(budget, pinned, 0, detail)
        return [block for block, kept in zip(blocks, keep, strict=True) if kept]

    def __repr__(self) -> str:
        return f"TokenBudget(max_tokens={self.max_tokens}, reply_tokens={self.reply_tokens})"


async def block_sizes(
    counter: TokenCounter, blocks: Sequence[Block], model: ContextModel
) -> list[int]:
    """Tokens of each block."""
    counts = await counter.count(flatten(blocks), model)
    sizes: list[int] = []
    position = 0
    for block in blocks:
        length = len(block.messages)
        sizes.append(counts[position] if length == 1 else sum(counts[position : position + length]))
        position += length
    return sizes


ELISION_MARKER = (
    "\n[agentkit elided this tool result: {chars:,} characters, the first {kept:,} shown]"
)


class ElideToolResults(ContextPolicy):
    """Shortens old tool results longer than `max_chars` to their first `keep_chars`
    characters (default: 200, at most `max_chars`) and a marker saying so. The results of the
    newest `keep_last` rounds of calls and pinned blocks stay whole."""

    def __init__(
        self, max_chars: int = 2000, *, keep_chars: int | None = None, keep_last: int = 1
    ) -> None:
        check_count("max_chars", max_chars, minimum=0)
        if keep_chars is None:
            keep_chars = min(200, max_chars)
        check_count("keep_chars", keep_chars, minimum=0)
        check_count("keep_last", keep_last, minimum=0)
        if keep_chars > max_chars:
            raise ConfigurationError(
                f"keep_chars ({keep_chars}) must not exceed max_chars ({max_chars})"
            )
        self.max_chars = max_chars
        self.keep_chars = keep_chars
        self.keep_last = keep_last
        # The same elided copy every round keeps the token counts cached by identity.
        self._elided: BoundedCache[int, tuple[ToolResultMessage, ToolResultMessage]] = BoundedCache(
            50_000
        )

    async def fit(self, blocks: Sequence[Block], model: ContextModel) -> Sequence[Block]:
        output = list(blocks)
        calls_seen = 0
        for index in range(len(blocks) - 1, -1, -1):
            block = blocks[index]
            first = block.messages[0]
            if not (isinstance(first, AssistantMessage) and first.tool_calls):
                continue
            calls_seen += 1
            if calls_seen <= self.keep_last or block.pinned:
                continue
            if any(len(m.content) > self.max_chars for m in block.messages[1:]):
                output[index] = Block(tuple(map(self.elide, block.messages)), block.pinned)
        return output

    def elide(self, message: Message) -> Message:
        """The message, or its shortened copy if it is a tool result over `max_chars`."""
        if not isinstance(message, ToolResultMessage) or len(message.content) <= self.max_chars:
            return message
        cached = self._elided.get(id(message))
        if cached is not None and cached[0] is message:
            return cached[1]
        content = message.content
        marker = ELISION_MARKER.format(chars=len(content), kept=self.keep_chars)
        short = message.model_copy(update={"content": content[: self.keep_chars] + marker})
        self._elided.put(id(message), (message, short))
        return short

    def __repr__(self) -> str:
        return (
            f"ElideToolResults(max_chars={self.max_chars}, keep_chars={self.keep_chars}, "
            f"keep_last={self.keep_last})"
        )


def check_count(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an int >= {minimum}, got {value!r}")
