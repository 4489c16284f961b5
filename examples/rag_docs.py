"""Questions answered from a folder of Markdown, on the local default model, citing its sources.

    python examples/rag_docs.py                          # agentkit's own README.md
    python examples/rag_docs.py docs/ notes/ -q "How do tools time out?"

Every *.md file under the paths given is indexed into a `MemoryIndex` file (default:
~/.cache/agentkit/rag_docs.db); a file whose text has not changed is not embedded again, and
files no longer there leave the index. Each question then runs act() with the index as a tool
(`retrieval_tool`): the model must search first (tool_choice names the tool), reads the best
chunks under their citations `[source#position]`, and answers; the chunks it was given are
printed under the answer. The default GGUF serves as the embedding model and, unless
`--model` names another, as the language model. SmolLM2-135M often searches for odd words
and answers beside the passages; the chunks it was given are what to read.

LM Studio's built-in "chat with documents" cannot be driven from its SDK; this is the
programmatic version of it, on any agentkit engine.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import agentkit as ak
from agentkit.memory import MemoryIndex, retrieval_tool
from agentkit.memory.retrieval import parse_citations
from agentkit.messages import ToolCall, ToolResultMessage

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INDEX = Path.home() / ".cache" / "agentkit" / "rag_docs.db"
DEFAULT_QUESTIONS = ("How do I give a tool a timeout?", "Which engines does agentkit support?")
SYSTEM = (
    "You answer questions about the documents. Search them with search_documents, then "
    "answer in one or two sentences from the passages only, citing them as [source#position]."
)


def markdown_files(paths: list[Path]) -> dict[str, Path]:
    """Document id (the path as given, or relative to a folder given) -> file."""
    found: dict[str, Path] = {}
    for path in paths:
        if path.is_dir():
            for file in sorted(path.rglob("*.md")):
                found[file.relative_to(path).as_posix()] = file
        else:
            found[path.name] = path
    return found


def sync_index(index: MemoryIndex, files: dict[str, Path]) -> None:
    """Make the index hold exactly these files; only new or changed ones are embedded."""
    started, embedded = time.perf_counter(), 0
    for document_id, file in files.items():
        before = index.get(document_id)
        info = index.add(document_id, file.read_text(encoding="utf-8"))
        embedded += before is None or before.fingerprint != info.fingerprint
    stale = {d.id for d in index.documents(limit=100_000)} - set(files)
    for document_id in stale:
        index.delete(document_id)
    documents, chunks = index.counts()
    print(
        f"Indexed files: {documents}, chunks: {chunks}, embedded now: {embedded}, "
        f"removed: {len(stale)} ({time.perf_counter() - started:.1f} s)"
    )


def answer(model: ak.LLM, index: MemoryIndex, question: str, k: int) -> None:
    """One act() run: a forced search, then an answer; prints it with the chunks it cites."""
    chat = ak.Chat(SYSTEM)
    chat.add_user_message(question)
    result = model.act(
        chat,
        [retrieval_tool(index, k=k)],
        max_prediction_rounds=2,  # round 1 searches, the last round (no tools) answers
        config={"tool_choice": {"name": "search_documents"}, "temperature": 0, "max_tokens": 160},
    )
    queries = [
        call.arguments.get("query")
        for message in result.messages
        for call in getattr(message, "tool_calls", ())
        if isinstance(call, ToolCall) and isinstance(call.arguments, dict)
    ]
    cited = [
        citation
        for message in result.messages
        if isinstance(message, ToolResultMessage)
        for citation in parse_citations(message.content)
    ]
    print(f"\nQ: {question}")
    print(f"searched for: {', '.join(repr(q) for q in queries) or '(no search)'}")
    print(f"A: {result.final.text.strip() if result.final else '(no answer)'}")
    print("Sources: " + (", ".join(f"[{s}#{p}]" for s, p in cited) or "none"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[ROOT / "README.md"])
    parser.add_argument("-q", "--question", action="append", dest="questions")
    parser.add_argument("--index", type=Path, default=DEFAULT_INDEX)
    parser.add_argument("-k", type=int, default=3, help="chunks per search")
    parser.add_argument("--model", help="the language model (default: the default model)")
    args = parser.parse_args()
    files = markdown_files(args.paths)
    if not files:
        parser.error("no Markdown files under the paths given")
    args.index.parent.mkdir(parents=True, exist_ok=True)
    with ak.Client() as client:
        embedding = client.embedding.model()
        model = client.llm.model(args.model)
        with MemoryIndex(args.index, embedding, chunk_tokens=160) as index:
            sync_index(index, files)
            for question in args.questions or DEFAULT_QUESTIONS:
                answer(model, index, question, args.k)


if __name__ == "__main__":
    main()
