"""`agentkit eval --workers N|URL` and `agentkit eval --serve DATABASE`: evaluations spread over
worker processes through a DBOS queue (see `agentkit.durable.evaluation`).

`--workers N` starts N local workers on a SQLite database in a temp folder, sends them the
cases, merges the report and stops them. `--workers postgresql://...` only sends the cases and
merges: workers anywhere run `agentkit eval DATASET --serve postgresql://... [same agent and
scorer options]`. A worker that dies mid-case has its cases taken over by a live one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from agentkit.errors import ConfigurationError
from agentkit.tracing.evaluation.evaluate import Agent, Case
from agentkit.tracing.evaluation.report import EvalReport
from agentkit.tracing.evaluation.scorers import Scorer

from .liveness import new_executor_id
from .runtime import Runtime

__all__ = ["distributed_eval", "serve_eval"]


def serve_eval(
    database: str, name: str, agent: Agent, scorers: Sequence[Scorer], concurrency: int
) -> int:
    """Work on `name`'s queued cases until SIGTERM or Ctrl-C."""
    runtime = Runtime(database, executor_id=new_executor_id())
    runtime.evaluation(name, agent, scorers, concurrency=concurrency)
    runtime.launch()
    signal.signal(signal.SIGTERM, lambda *_: runtime.stop())
    print(f"agentkit eval: worker {runtime.executor_id} serving {name!r}", flush=True)
    try:
        runtime.serve()
    except KeyboardInterrupt:
        pass
    finally:
        runtime.shutdown()
    return 0


def distributed_eval(
    cases: list[Case],
    workers: str,
    worker_command: Sequence[str],
    name: str,
    agent: Agent,
    scorers: Sequence[Scorer],
    *,
    concurrency: int,
    repeats: int,
) -> EvalReport:
    """Run the evaluation on `workers` (a count of local workers, or a database URL)."""
    with _database(workers, worker_command) as database:
        runtime = Runtime(database, work=False)
        evaluation = runtime.evaluation(name, agent, scorers, concurrency=concurrency)
        runtime.launch()
        try:
            return evaluation.evaluate(cases, repeats=repeats)
        finally:
            runtime.shutdown()


@contextlib.contextmanager
def _database(workers: str, worker_command: Sequence[str]) -> Iterator[str]:
    if "://" in workers:
        yield workers
        return
    try:
        count = int(workers)
    except ValueError:
        count = 0
    if count < 1:
        raise ConfigurationError(
            f"--workers is a number of local workers (>= 1) or a database URL, got {workers!r}"
        )
    with tempfile.TemporaryDirectory(prefix="agentkit-eval-") as folder:
        database = str(Path(folder, "runs.sqlite"))
        # The first launch creates DBOS's tables: the coordinator's, before any worker's.
        Runtime(database, work=False).launch().shutdown()
        command = [*worker_command, "--serve", database]
        processes = [
            subprocess.Popen(command, stdout=subprocess.DEVNULL, env=os.environ.copy())
            for _ in range(count)
        ]
        try:
            yield database
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()


def worker_command(argv: Sequence[str]) -> list[str]:
    """This `agentkit eval` command line as a worker's: `--workers` and its value left out."""
    kept: list[str] = []
    skip = False
    for argument in argv:
        if skip:
            skip = False
        elif argument == "--workers":
            skip = True
        elif not argument.startswith("--workers="):
            kept.append(argument)
    return [
        sys.executable,
        "-c",
        "import sys; from agentkit.cli import main; sys.exit(main())",
        *kept,
    ]
