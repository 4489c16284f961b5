"""MemoryIndex search speed: hybrid search over 10,000 chunks, top 10.

    python bench/memory_search.py                 # random vectors, 576 wide
    python bench/memory_search.py --model         # also end to end, the query embedded live

Target (issue 10): hybrid search over 10,000 chunks of the default model's embedding width
(SmolLM2-135M-Instruct: 576), top 10: p99 <= 50 ms.

The index: a SQLite file of `--chunks` chunks in documents of 10 chunks, each chunk 120 words
drawn from agentkit's README (real vocabulary for FTS5), each vector random (Gaussian, seeded):
embedding 10,000 chunks with the real model would take hours on this CPU, and the search cost
does not depend on what the vectors mean. Queries are 2-6 README words with a random vector,
passed as `vector=` so the timing is the index's: the vec0 cosine scan, the FTS5 bm25 query, the
fusion and the chunk fetch. A filtered variant keeps 10% of the documents (a metadata filter
pushed into both scans). `--model` adds the end-to-end figure, the query embedded by the
default model on the local engine (the index still holds random vectors). Each row gives
wall-clock and CPU time (the process's, all threads: a file index runs its vector scan and its
keyword ranking at once, on two connections) percentiles: on a shared machine the wall figure
includes waiting for a core, the CPU figure does not.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import agentkit as ak
from agentkit.memory import MemoryIndex
from agentkit.testing import ScriptedEngine

README = Path(__file__).resolve().parent.parent / "README.md"
WIDTH = 576
CHUNK_WORDS = 120


def build(index: MemoryIndex, chunks: int, words: list[str], rng: random.Random) -> float:
    started = time.perf_counter()
    for document in range(0, chunks, 10):
        count = min(10, chunks - document)
        texts = []
        for _ in range(count):
            at = rng.randrange(len(words) - CHUNK_WORDS)
            texts.append(" ".join(words[at : at + CHUNK_WORDS]))
        vectors = [[rng.gauss(0, 1) for _ in range(WIDTH)] for _ in range(count)]
        index.add_embedded(
            f"doc{document // 10}", texts, vectors, metadata={"group": document // 10 % 10}
        )
    return time.perf_counter() - started


def percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000


def measure(run: Callable[[], object], rounds: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds (the process's, all threads) of each run."""
    for _ in range(10):  # warm the page cache and SQLite's statement cache
        run()
    wall, cpu = [], []
    for _ in range(rounds):
        started, used = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - used)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--model", action="store_true", help="also embed queries live")
    args = parser.parse_args()
    rng = random.Random(10)
    words = README.read_text(encoding="utf-8").split()
    queries = [" ".join(rng.sample(words, rng.randint(2, 6))) for _ in range(args.queries)]

    def vector() -> list[float]:
        return [rng.gauss(0, 1) for _ in range(WIDTH)]

    rows: list[tuple[str, tuple[list[float], list[float]]]] = []
    with tempfile.TemporaryDirectory() as folder, ak.Client(engine=ScriptedEngine([])) as client:
        # The scripted handle only names the model: every vector here is given, none embedded.
        index = MemoryIndex(Path(folder) / "bench.db", client.embedding.model())
        seconds = build(index, args.chunks, words, rng)
        print(f"built {args.chunks:,} chunks ({WIDTH} wide) in {seconds:.1f} s")
        picks = iter(range(10**9))

        def hybrid() -> object:
            return index.search(queries[next(picks) % len(queries)], k=10, vector=vector())

        def filtered() -> object:
            query = queries[next(picks) % len(queries)]
            return index.search(query, k=10, vector=vector(), where={"group": 3})

        rows.append(("hybrid, top 10", measure(hybrid, args.queries)))
        rows.append(("hybrid + filter (10%), top 10", measure(filtered, args.queries)))
        index.close()

        if args.model:
            with ak.Client() as local:
                model = local.embedding.model()
                embedded = MemoryIndex(Path(folder) / "model.db", model)
                build(embedded, args.chunks, words, rng)

                def live() -> object:
                    return embedded.search(queries[next(picks) % len(queries)], k=10)

                rows.append(
                    (f"end to end, query embedded by {model.model_key}", measure(live, 100))
                )
                embedded.close()

    load = os.getloadavg()[0]
    print(f"(load average {load:.1f} on {os.cpu_count()} CPUs: wall times include waiting for one)")
    print(f"{'search':<52} {'p50 ms':>8} {'p99 ms':>8} {'CPU p50':>8} {'CPU p99':>8}")
    for name, (wall, cpu) in rows:
        cells = [f"{number:>8.2f}" for number in (*percentiles(wall), *percentiles(cpu))]
        print(f"{name:<52} " + " ".join(cells))


if __name__ == "__main__":
    main()
