"""Summarisation: older turns replaced by a summary a model writes, kept and grown incrementally.

A `Summary` says which messages it covers: the number of leading messages of the history and a
digest of them (a hash chain over the messages' JSON), so a summary is used only for the history
it was written for. When more turns must go, the next summary is written from the previous one
and the newly dropped messages only; nothing is summarised twice.

Summaries live in a `SummaryStore`: `InMemorySummaries` (the default; any number of chats, keyed
by digest) or `SessionSummaries`, one summary in a session's metadata under "agentkit.summary",
which every worker sharing the session store sees. `policy.for_session(store, session_id)` gives
a policy that keeps its summary there.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agentkit.chat import Chat
from agentkit.config import PredictionConfig
from agentkit.errors import ConfigurationError, StoreCorruptedError
from agentkit.handles import LLM, AsyncLLM
from agentkit.messages import (
    Message,
    SystemMessage,
    ToolResultMessage,
    UserMessage,
)
from agentkit.tool_threads import run_in_worker

from .context import Block, ContextPolicy, block_sizes, check_count, flatten
from .context_tokens import BoundedCache, ContextModel, TokenCounter, message_text
from .sessions import SessionStore

__all__ = [
    "METADATA_KEY",
    "InMemorySummaries",
    "SessionSummaries",
    "Summarize",
    "Summary",
    "SummaryStore",
    "digest_chain",
]

METADATA_KEY = "agentkit.summary"
"""The session metadata key `SessionSummaries` keeps a summary under."""

SUMMARY_HEADING = "Summary of the earlier conversation:\n"

DEFAULT_INSTRUCTIONS = (
    "You keep a running summary of a conversation: the facts, names, numbers, decisions, tool "
    "results and open questions someone needs to continue it. Reply with the summary only."
)

CLOSING = "Write the new summary of everything above in at most {words} words."

_MAX_QUOTED_CHARS = 2000
"""Longest message text quoted to the summary writer (a long tool result is cut)."""


@dataclass(frozen=True, slots=True)
class Summary:
    """A summary of the first `covered` messages of a history, which hash to `digest`."""

    text: str
    covered: int
    digest: str
    model: str
    created_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The summary as JSON data (for session metadata)."""
        return {
            "text": self.text,
            "covered": self.covered,
            "digest": self.digest,
            "model": self.model,
            "created_at": self.created_at,
        }

    @classmethod
    def from_json(cls, data: object) -> Summary:
        """A summary from `to_json` data; anything else is a `StoreCorruptedError`."""
        fields = data if isinstance(data, Mapping) else {}
        text, covered = fields.get("text"), fields.get("covered")
        digest, model = fields.get("digest"), fields.get("model")
        created_at = fields.get("created_at", 0.0)
        if not (
            isinstance(text, str)
            and isinstance(digest, str)
            and isinstance(model, str)
            and type(covered) is int
            and covered > 0
            and type(created_at) in (int, float)
        ):
            raise StoreCorruptedError(
                f"session metadata {METADATA_KEY!r} is not a summary agentkit wrote: "
                f"{str(data)[:200]!r}; remove it with update_metadata(id, {{{METADATA_KEY!r}: "
                "None}})"
            )
        return cls(text, covered, digest, model, float(created_at))


class SummaryStore(Protocol):
    """Where a summarising policy keeps its summaries."""

    async def find(self, chain: Sequence[str], *, refresh: bool = False) -> Summary | None:
        """The summary covering the most leading messages of the history whose digest chain
        is `chain` (`chain[i]` covers the first i + 1 messages), or None. `refresh` rereads a
        shared place before a new summary is written."""
        ...

    async def save(self, summary: Summary) -> None:
        """Keep a new summary."""
        ...


class InMemorySummaries:
    """Summaries in this process, keyed by the digest of what they cover (at most `size`)."""

    def __init__(self, size: int = 10_000) -> None:
        self._summaries: BoundedCache[str, Summary] = BoundedCache(size)

    async def find(self, chain: Sequence[str], *, refresh: bool = False) -> Summary | None:
        for index in range(len(chain) - 1, -1, -1):
            summary = self._summaries.get(chain[index])
            if summary is not None and summary.covered == index + 1:
                return summary
        return None

    async def save(self, summary: Summary) -> None:
        self._summaries.put(summary.digest, summary)


class SessionSummaries:
    """One summary in a session's metadata (`METADATA_KEY`), shared by every process using
    the store. It is read once and on `refresh`; a summary for another history (the session
    was forked earlier, say) is ignored."""

    def __init__(self, store: SessionStore, session_id: str) -> None:
        self.store = store
        self.session_id = session_id
        self._cached: Summary | None = None
        self._loaded = False

    async def find(self, chain: Sequence[str], *, refresh: bool = False) -> Summary | None:
        if refresh or not self._loaded:
            session = await self.store.aload(self.session_id, missing_ok=True)
            data = session.metadata.get(METADATA_KEY)
            self._cached = None if data is None else Summary.from_json(data)
            self._loaded = True
        summary = self._cached
        if summary is None or summary.covered > len(chain):
            return None
        return summary if chain[summary.covered - 1] == summary.digest else None

    async def save(self, summary: Summary) -> None:
        await self.store.aupdate_metadata(self.session_id, {METADATA_KEY: summary.to_json()})
        self._cached = summary
        self._loaded = True


class Summarize(ContextPolicy):
    """Replaces older turns by a summary `writer` (any agentkit LLM handle) writes.

    When more than `max_turns` turns (or, with `max_tokens`, more tokens) follow the current
    summary, all but the newest `keep_turns` are folded into a new summary, written from the
    previous one and the newly dropped messages. The summary is sent as a system message after
    the leading pinned messages, and is pinned; pinned messages are never summarised away.
    Place it before policies that drop messages: a summary covers leading messages of the
    history it is given. `instructions` is the writer's system prompt; `config` its prediction
    config (default: greedy, room for about `summary_words` words).
    """

    def __init__(
        self,
        writer: LLM | AsyncLLM,
        *,
        keep_turns: int = 4,
        max_turns: int = 8,
        max_tokens: int | None = None,
        summaries: SummaryStore | None = None,
        summary_words: int = 150,
        instructions: str = DEFAULT_INSTRUCTIONS,
        config: PredictionConfig | None = None,
        counter: TokenCounter | None = None,
    ) -> None:
        if not isinstance(writer, LLM | AsyncLLM):
            raise ConfigurationError(
                f"the summary writer is an agentkit LLM handle, not {type(writer).__name__}"
            )
        check_count("keep_turns", keep_turns, minimum=1)
        check_count("max_turns", max_turns, minimum=1)
        if keep_turns > max_turns:
            raise ConfigurationError(
                f"keep_turns ({keep_turns}) must not exceed max_turns ({max_turns})"
            )
        if max_tokens is not None:
            check_count("max_tokens", max_tokens, minimum=1)
        check_count("summary_words", summary_words, minimum=1)
        self.writer = writer
        self.keep_turns = keep_turns
        self.max_turns = max_turns
        self.max_tokens = max_tokens
        self.summaries: SummaryStore = summaries if summaries is not None else InMemorySummaries()
        self.summary_words = summary_words
        self.instructions = instructions
        self.config = config or PredictionConfig(max_tokens=summary_words * 3, temperature=0.0)
        self.counter = counter or TokenCounter()
        self._digests: BoundedCache[int, tuple[Message, bytes]] = BoundedCache(50_000)
        self.written = 0
        """Summaries this policy wrote (in this process)."""

    def for_session(self, store: SessionStore, session_id: str) -> Summarize:
        """This policy with its summary in the session's metadata (token counts shared)."""
        bound = Summarize(
            self.writer,
            keep_turns=self.keep_turns,
            max_turns=self.max_turns,
            max_tokens=self.max_tokens,
            summaries=SessionSummaries(store, session_id),
            summary_words=self.summary_words,
            instructions=self.instructions,
            config=self.config,
            counter=self.counter,
        )
        bound._digests = self._digests
        return bound

    async def fit(self, blocks: Sequence[Block], model: ContextModel) -> Sequence[Block]:
        messages = flatten(blocks)
        chain = self.chain(messages)
        summary = await self.summaries.find(chain)
        covered = summary.covered if summary is not None else 0
        starts = _block_starts(blocks)
        turns = [
            start
            for start, block in zip(starts, blocks, strict=True)
            if start >= covered and block.starts_turn and not block.pinned
        ]
        if len(turns) > self.keep_turns and await self._over(blocks, starts, covered, model):
            cut = turns[-self.keep_turns]
            fresh = await self.summaries.find(chain, refresh=True)
            if fresh is not None and fresh.covered >= cut:
                summary = fresh  # another worker wrote it meanwhile
            else:
                if fresh is not None and fresh.covered > covered:
                    summary, covered = fresh, fresh.covered
                summary = await self._write(summary, blocks, starts, covered, cut, chain)
        if summary is None:
            return list(blocks)
        return _with_summary(blocks, starts, summary)

    async def _over(
        self, blocks: Sequence[Block], starts: list[int], covered: int, model: ContextModel
    ) -> bool:
        loose = [b for s, b in zip(starts, blocks, strict=True) if s >= covered and not b.pinned]
        if sum(block.starts_turn for block in loose) > self.max_turns:
            return True
        if self.max_tokens is None:
            return False
        return sum(await block_sizes(self.counter, loose, model)) > self.max_tokens

    async def _write(
        self,
        previous: Summary | None,
        blocks: Sequence[Block],
        starts: list[int],
        covered: int,
        cut: int,
        chain: Sequence[str],
    ) -> Summary:
        dropped = [
            message
            for start, block in zip(starts, blocks, strict=True)
            if covered <= start < cut and not block.pinned
            for message in block.messages
        ]
        request: list[Message] = [
            SystemMessage(content=self.instructions),
            UserMessage(content=_writer_prompt(previous, dropped, self.summary_words)),
        ]
        text = (await self._respond(request)).strip()
        summary = Summary(
            text=text or (previous.text if previous else ""),
            covered=cut,
            digest=chain[cut - 1],
            model=self.writer.model_key,
            created_at=time.time(),
        )
        await self.summaries.save(summary)
        self.written += 1
        return summary

    async def _respond(self, messages: list[Message]) -> str:
        chat = Chat.from_dict(messages)
        writer = self.writer
        if isinstance(writer, AsyncLLM):
            return (await writer.respond(chat, config=self.config)).content
        # A blocking handle waits on its client's loop, which may be this one: from a thread.
        result = await run_in_worker(
            lambda: writer.respond(chat, config=self.config), "the summary writer"
        )
        return str(result.content)

    def chain(self, messages: Sequence[Message]) -> list[str]:
        """Digests of the history's leading messages: `[i]` covers the first i + 1."""
        return digest_chain(messages, self._digests)

    def __repr__(self) -> str:
        return (
            f"Summarize({self.writer!r}, keep_turns={self.keep_turns}, "
            f"max_turns={self.max_turns}, max_tokens={self.max_tokens})"
        )


def digest_chain(
    messages: Sequence[Message], cache: BoundedCache[int, tuple[Message, bytes]] | None = None
) -> list[str]:
    """A hash chain over the messages' JSON: `[i]` is the hex digest of the first i + 1."""
    chain: list[str] = []
    state = hashlib.sha256()
    for message in messages:
        entry = cache.get(id(message)) if cache is not None else None
        if entry is not None and entry[0] is message:
            digest = entry[1]
        else:
            digest = hashlib.sha256(message.model_dump_json().encode("utf-8")).digest()
            if cache is not None:
                cache.put(id(message), (message, digest))
        state.update(digest)
        chain.append(state.copy().hexdigest())
    return chain


def _block_starts(blocks: Sequence[Block]) -> list[int]:
    starts: list[int] = []
    position = 0
    for block in blocks:
        starts.append(position)
        position += len(block.messages)
    return starts


def _with_summary(blocks: Sequence[Block], starts: list[int], summary: Summary) -> list[Block]:
    """Pinned blocks, the summary after the leading pinned ones, then what it does not cover."""
    note = Block((SystemMessage(content=SUMMARY_HEADING + summary.text),), pinned=True)
    output: list[Block] = []
    placed = False
    for start, block in zip(starts, blocks, strict=True):
        if not placed and not block.pinned:
            output.append(note)
            placed = True
        # A block straddling the covered count (a history that changed) is kept whole.
        if block.pinned or start + len(block.messages) > summary.covered:
            output.append(block)
    if not placed:
        output.append(note)
    return output


def _writer_prompt(previous: Summary | None, dropped: Sequence[Message], words: int) -> str:
    # Small models continue a transcript rather than follow an instruction before it: the
    # instruction comes last.
    lines = [f"Summary so far: {previous.text if previous else '(none yet)'}", "", "Then:"]
    for message in dropped:
        text = message.content if isinstance(message, ToolResultMessage) else message_text(message)
        if len(text) > _MAX_QUOTED_CHARS:
            text = text[:_MAX_QUOTED_CHARS] + " […]"
        if isinstance(message, ToolResultMessage):
            who = f"Tool {message.name}".rstrip()
        else:
            who = message.role.capitalize()
        lines.append(f"{who}: {text}")
    lines += ["", CLOSING.format(words=words)]
    return "\n".join(lines)
