"""`retrieval_tool`: a `MemoryIndex` as a tool for act(), returning cited chunks.

    search_docs = retrieval_tool(index, k=4)
    result = model.act("How do tools time out?", [search_docs])

The model calls the tool with a query and reads the best chunks, each headed by its citation
`[source#position]` (the document and which of its chunks), so its answer can cite them and
your code can map the citations back to the chunks (`parse_citations`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from agentkit.errors import ConfigurationError
from agentkit.tools import Tool, define_tool

from .index import MAX_K, Hit, MemoryIndex
from .index_sql import Filter

__all__ = ["format_hits", "parse_citations", "retrieval_tool"]

DEFAULT_DESCRIPTION = (
    "Search the documents for passages about a question. Returns the best passages, each "
    "headed by its citation [source#position]; cite the ones you use."
)
NO_MATCH = "No passage matches the query."

_CITATION = re.compile(r"^\[([^\[\]\n]+)#(\d+)\]$", re.MULTILINE)


def format_hits(hits: Sequence[Hit]) -> str:
    """Hits as the text a model reads: each chunk under its `[source#position]` line."""
    if not hits:
        return NO_MATCH
    return "\n\n".join(f"[{hit.citation}]\n{hit.text}" for hit in hits)


def parse_citations(text: str) -> list[tuple[str, int]]:
    """The (source, position) pairs `format_hits` headed chunks with, in order."""
    return [(source, int(position)) for source, position in _CITATION.findall(text)]


def retrieval_tool(
    index: MemoryIndex,
    *,
    k: int = 4,
    where: Filter | None = None,
    name: str = "search_documents",
    description: str = DEFAULT_DESCRIPTION,
    timeout: float | None = 60.0,
) -> Tool[..., str]:
    """A tool that searches `index` for the model's query and returns the top `k` chunks.

    `where` restricts every search to matching documents (the model cannot widen it). The tool
    is async, so it works in act() of both APIs and with either kind of embedding handle.
    """
    if not isinstance(index, MemoryIndex):
        raise ConfigurationError(f"retrieval_tool needs a MemoryIndex, got {index!r}")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ConfigurationError(f"k is an int from 1 to {MAX_K}, got {k!r}")

    async def search(query: str) -> str:
        return format_hits(await index.asearch(query, k=k, where=where))

    parameters = {
        "type": "object",
        "properties": {
            # No description (small models copy it into the query) and no maxLength (a local
            # engine's grammar would repeat a rule 2,000 times): the index refuses a longer
            # query and the model reads why.
            "query": {"type": "string", "minLength": 1}
        },
        "required": ["query"],
        "additionalProperties": False,
    }
    return define_tool(name, description, parameters, search, timeout=timeout)
