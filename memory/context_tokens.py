"""Token counts for context policies: the loaded model's own tokenizer, cached per message.

A policy runs before every prediction over a history that grows by a few messages a round, so
each message is tokenized once: counts are cached by message identity (messages are immutable),
and by the message's text for equal messages made anew (a session loaded from a store).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from agentkit.engines.base import Engine, ToolDefinition
from agentkit.messages import AssistantMessage, Message, ToolResultMessage
from agentkit.model_handle import AsyncModelHandle, ModelHandle

__all__ = ["DEFAULT_MESSAGE_OVERHEAD", "ContextModel", "TokenCounter", "message_text"]

DEFAULT_MESSAGE_OVERHEAD = 6
"""Tokens a chat template adds around one message (role markers, separators): ChatML takes 5
(measured on SmolLM2: 5.5 a message on average), one more errs on the side of fitting."""

K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """A least-recently-added cache of at most `size` entries."""

    __slots__ = ("_entries", "_size")

    def __init__(self, size: int) -> None:
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._size = size

    def get(self, key: K) -> V | None:
        return self._entries.get(key)

    def put(self, key: K, value: V) -> None:
        entries = self._entries
        entries[key] = value
        if len(entries) > self._size:
            entries.popitem(last=False)


@dataclass(frozen=True, slots=True)
class ContextModel:
    """The model a history is fitted to: its engine, loaded instance and the tools offered.

    act() builds one per prediction; elsewhere use `ContextModel.of(handle)`.
    """

    engine: Engine
    identifier: str
    model_key: str
    tools: Sequence[ToolDefinition] = field(default=())

    @classmethod
    def of(
        cls,
        model: ContextModel | AsyncModelHandle | ModelHandle[AsyncModelHandle],
        tools: Sequence[ToolDefinition] = (),
    ) -> ContextModel:
        """The context model of a model handle (sync or async)."""
        if isinstance(model, ContextModel):
            return model
        return cls(model.engine, model.identifier, model.model_key, tuple(tools))

    async def count_tokens(self, text: str) -> int:
        """Tokens of text with the model's own tokenizer."""
        return len(await self.engine.tokenize(self.identifier, text))

    async def context_length(self) -> int:
        """The context length the instance was loaded with."""
        return await self.engine.get_context_length(self.identifier)


def message_text(message: Message) -> str:
    """The text of a message as chat templates commonly render it: tool calls as a JSON
    `{"tool_calls": [...]}` object, a tool result after its tool's name (images not counted)."""
    if isinstance(message, AssistantMessage) and message.tool_calls:
        calls = [{"name": call.name, "arguments": call.arguments} for call in message.tool_calls]
        rendered = json.dumps({"tool_calls": calls}, ensure_ascii=False)
        return f"{message.content}\n{rendered}" if message.content else rendered
    if isinstance(message, ToolResultMessage) and message.name:
        return f"{message.name}: {message.content}"
    return message.content


class TokenCounter:
    """Counts tokens of messages per model, each message tokenized once.

    Entries hold their message, so an id is never reused while its entry lives; `size` bounds
    the entries per model (the least recently added go first).
    """

    def __init__(self, *, message_overhead: int = DEFAULT_MESSAGE_OVERHEAD, size: int = 50_000):
        self.message_overhead = message_overhead
        self._size = size
        self._by_id: dict[tuple[str, str], BoundedCache[int, tuple[object, int]]] = {}
        self._by_text: dict[tuple[str, str], BoundedCache[str, int]] = {}
        self.tokenized = 0
        """How many texts were sent to a tokenizer (the rest came from the cache)."""

    def _caches(
        self, model: ContextModel
    ) -> tuple[BoundedCache[int, tuple[object, int]], BoundedCache[str, int]]:
        # One tokenizer per model file, whatever instance or engine object loaded it.
        key = (model.engine.provider_name, model.model_key)
        by_id = self._by_id.get(key)
        if by_id is None:
            by_id = self._by_id[key] = BoundedCache(self._size)
            self._by_text[key] = BoundedCache(self._size)
        return by_id, self._by_text[key]

    async def count(
        self, messages: Sequence[Message | ToolDefinition], model: ContextModel
    ) -> list[int]:
        """Tokens of each message (`message_overhead` included); tool definitions count too."""
        by_id, by_text = self._caches(model)
        counts: list[int] = []
        for message in messages:
            entry = by_id.get(id(message))
            if entry is not None and entry[0] is message:
                counts.append(entry[1])
                continue
            if isinstance(message, ToolDefinition):
                text = _definition_text(message)
            else:
                text = message_text(message)
            tokens = by_text.get(text)
            if tokens is None:
                tokens = await model.count_tokens(text) + self.message_overhead
                self.tokenized += 1
                by_text.put(text, tokens)
            by_id.put(id(message), (message, tokens))
            counts.append(tokens)
        return counts

    async def tools(self, model: ContextModel) -> int:
        """Tokens the tool definitions offered take."""
        return sum(await self.count(model.tools, model)) if model.tools else 0


def _definition_text(definition: ToolDefinition) -> str:
    return json.dumps(
        {
            "name": definition.name,
            "description": definition.description,
            "parameters": definition.parameters,
        },
        ensure_ascii=False,
    )
