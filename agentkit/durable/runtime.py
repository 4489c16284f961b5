"""`Runtime`: agentkit's durable runs on DBOS, in one process or many.

One Runtime per process (DBOS is a process-wide library). Create it, create the durable agents
and loops with the same names in every process, then `launch()`: runs a crashed process left
unfinished continue from their last recorded step.

- A path or `sqlite:///...` URL (the default, `agentkit-runs.sqlite`): DBOS's state in one
  SQLite file beside your data; one worker process, which on restart resumes what it left.
- A `postgresql://` URL: any number of worker processes on any machines share it. Runs go
  through one DBOS queue per model with `concurrency` runs at a time per worker (one loaded
  model per worker); a worker that dies has its runs taken over by a live one (see `liveness`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Coroutine, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

import sqlalchemy as sa
from dbos import DBOS, DBOSConfig, SetWorkflowID

from agentkit.errors import ConfigurationError

from . import evaluation, registry, workflows  # noqa: F401 (importing registers workflows)
from .liveness import (
    EXECUTOR_PREFIX,
    ExecutorLocks,
    FileLocks,
    Liveness,
    PostgresLocks,
    new_executor_id,
)

if TYPE_CHECKING:
    from dbos import Queue

    from agentkit.agent import Agent, AsyncAgent
    from agentkit.handles import LLM, AsyncLLM
    from agentkit.tools.toolset import ToolLike
    from agentkit.tracing.evaluation.evaluate import Agent as Agent_
    from agentkit.tracing.evaluation.scorers import Scorer

    from .agent import DurableAgent
    from .evaluation import DurableEvaluation
    from .loop import DurableLoop

__all__ = ["Runtime"]

R = TypeVar("R")


def _database_url(database: str | os.PathLike[str]) -> str:
    text = os.fspath(database)
    if text.startswith(("postgresql://", "postgres://", "sqlite:///")):
        return text
    if "://" in text:
        raise ConfigurationError(
            f"a durable runtime's database is a file path, sqlite:/// or postgresql:// URL, "
            f"got {text!r}"
        )
    return f"sqlite:///{Path(text).resolve()}"


class Runtime:
    """Durable runs for this process (see the module docstring).

    Args:
        database: where DBOS keeps runs: a SQLite path (default) or a Postgres URL.
        executor_id: this worker's name in the database. Default: `local` on SQLite (one
            process, which on restart finds its runs), a fresh `agentkit-...` id on Postgres.
            Workers with `agentkit-...` ids take over the runs of those that died (on SQLite:
            processes on one machine, e.g. `agentkit eval --workers N`).
        queue: route runs through a DBOS queue (default: on Postgres only; one process needs
            none, and starting directly saves the queue's polling delay).
        poll_interval: how often workers poll the queue, and a caller a queued run's result,
            in seconds (DBOS's default, 1 s, made each queued run take a second).
        liveness_interval: how often a Postgres worker looks for dead workers' runs.
        name: the DBOS application name; processes that share work share it.
        work: run queued runs in this process; False for one that only enqueues and waits
            (a web front end, the process merging a distributed evaluation).
    """

    def __init__(
        self,
        database: str | os.PathLike[str] = "agentkit-runs.sqlite",
        *,
        executor_id: str | None = None,
        queue: bool | None = None,
        poll_interval: float = 0.05,
        liveness_interval: float = 1.0,
        name: str = "agentkit",
        work: bool = True,
    ) -> None:
        self.url = _database_url(database)
        self.postgres = not self.url.startswith("sqlite:")
        self.queue = self.postgres if queue is None else queue
        if executor_id is None:
            executor_id = new_executor_id() if self.postgres else "local"
        self.executor_id = executor_id
        self.poll_interval = poll_interval
        self.liveness_interval = liveness_interval
        self.name = name
        self.work = work
        self.launched = False
        self._queues: dict[str, int] = {}  # queue name -> runs at once per worker
        self._queue_of: dict[str, str] = {}  # durable name -> queue name
        self._queue_objects: dict[str, Queue] = {}  # queue name -> DBOS's, once launched
        self._liveness: Liveness | None = None
        self._stopped = threading.Event()

    # -- what runs durably ---------------------------------------------------------------------

    def agent(self, name: str, agent: Agent | AsyncAgent, *, concurrency: int = 1) -> DurableAgent:
        """`agent` with durable `act`/`resume`; `concurrency`: runs at once per worker on its
        model (agents and loops on one model share one queue and one limit)."""
        from .agent import DurableAgent

        durable = DurableAgent(self, name, agent)
        self._register(name, durable, f"model:{durable.async_agent.model.model_key}", concurrency)
        return durable

    def loop(
        self,
        name: str,
        model: LLM | AsyncLLM,
        tools: Iterable[ToolLike] | None = None,
        *,
        concurrency: int = 1,
        **act_options: Any,
    ) -> DurableLoop:
        """act() on `model` with `tools` and `act_options`, durable (see `DurableLoop`)."""
        from .loop import DurableLoop

        durable = DurableLoop(self, name, model, tools, act_options)
        self._register(name, durable, f"model:{durable.model.model_key}", concurrency)
        return durable

    def evaluation(
        self, name: str, agent: Agent_, scorers: Sequence[Scorer] = (), *, concurrency: int = 1
    ) -> DurableEvaluation:
        """An evaluation whose cases any worker with the same registration runs (see
        `DurableEvaluation`); `concurrency`: cases at once per worker."""
        from .evaluation import DurableEvaluation

        durable = DurableEvaluation(self, name, agent, scorers)
        self._register(name, durable, f"eval:{name}", concurrency)
        return durable

    def _register(self, name: str, target: registry.Target, queue: str, concurrency: int) -> None:
        """Register `target`; its runs share `queue` (one per model) with `concurrency`."""
        if self.launched:
            raise ConfigurationError(
                f"create durable agent {name!r} before Runtime.launch(): launch resumes the "
                "runs a crash left, and they must find their agent"
            )
        if concurrency < 1:
            raise ConfigurationError(f"concurrency is at least 1, got {concurrency}")
        if self._queues.setdefault(queue, concurrency) != concurrency:
            raise ConfigurationError(
                f"{name!r} asks for concurrency {concurrency} on queue {queue!r}, which another "
                f"registration set to {self._queues[queue]}: runs on one model share one limit"
            )
        registry.register(name, target)
        self._queue_of[name] = queue

    # -- lifecycle -----------------------------------------------------------------------------

    def launch(self) -> Runtime:
        """Start DBOS: resume unfinished runs, and on Postgres take queued and orphaned ones."""
        if self.launched:
            raise ConfigurationError("this Runtime is launched already")
        config: DBOSConfig = {
            "name": self.name,
            "system_database_url": self.url,
            "executor_id": self.executor_id,
            "log_level": os.environ.get("AGENTKIT_DBOS_LOG_LEVEL", "WARNING"),
        }
        if not self.postgres:
            config["system_database_engine"] = _sqlite_engine(self.url)
        DBOS(config=config)
        if not self.work:
            DBOS.listen_queues([])
        DBOS.launch()
        self.launched = True
        for name, concurrency in self._queues.items():
            self._queue_objects[name] = DBOS.register_queue(
                f"agentkit:{name}",
                worker_concurrency=concurrency,
                polling_interval_sec=self.poll_interval,
                on_conflict="always_update",
            )
        if self.executor_id.startswith(EXECUTOR_PREFIX):  # one of many workers
            self._liveness = Liveness(
                self._locks(),
                self.executor_id,
                self.liveness_interval,
                DBOS._recover_pending_workflows,  # no public API recovers another executor's
            )
            self._liveness.start()
        return self

    def _locks(self) -> ExecutorLocks:
        if self.postgres:
            return PostgresLocks(self.url.replace("postgres://", "postgresql://", 1))
        return FileLocks(Path(self.url.removeprefix("sqlite:///") + ".workers"))

    def recover_dead_workers(self) -> list[str]:
        """Take over the runs of every dead worker now (Postgres); their executor ids."""
        if self._liveness is None:
            return []
        return self._liveness.sweep()

    def serve(self) -> None:
        """Block, working on queued runs, until `stop()` or `shutdown()` (another thread or a
        signal handler may call `stop()`)."""
        self._stopped.wait()

    def stop(self) -> None:
        """Make `serve()` return (safe in a signal handler; `shutdown()` does the rest)."""
        self._stopped.set()

    def shutdown(self) -> None:
        """Stop DBOS and forget this process's durable agents; unfinished runs stay recorded."""
        self._stopped.set()
        if self._liveness is not None:
            self._liveness.close()
            self._liveness = None
        if self.launched:
            DBOS.destroy(destroy_registry=False)
            self.launched = False
        registry.forget(self._queue_of)
        self._queue_of.clear()
        self._queues.clear()
        self._queue_objects.clear()

    def __enter__(self) -> Runtime:
        return self if self.launched else self.launch()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    # -- starting runs -------------------------------------------------------------------------

    def _check_launched(self) -> None:
        if not self.launched:
            raise ConfigurationError("call Runtime.launch() before running durable agents")

    def start(
        self, name: str, run_id: str, workflow: Callable[..., Coroutine[Any, Any, R]], *args: Any
    ) -> R:
        """Start (or join, if `run_id` exists) a run and wait for its result."""
        self._check_launched()
        with SetWorkflowID(run_id):
            if self.queue:
                handle = self._queue(name).enqueue(workflow, *args)
            else:
                handle = DBOS.start_workflow(workflow, *args)
        return cast(R, handle.get_result(polling_interval_sec=self.poll_interval))

    async def astart(
        self, name: str, run_id: str, workflow: Callable[..., Coroutine[Any, Any, R]], *args: Any
    ) -> R:
        """`start`, for the event loop."""
        self._check_launched()
        with SetWorkflowID(run_id):
            if self.queue:
                handle = await self._queue(name).enqueue_async(workflow, *args)
            else:
                handle = await DBOS.start_workflow_async(workflow, *args)
        return await handle.get_result(polling_interval_sec=self.poll_interval)

    def concurrency(self, name: str) -> int:
        """Runs at once per worker on the queue of the durable agent, loop or evaluation `name`."""
        return self._queues[self._queue_of[name]]

    def _queue(self, name: str) -> Queue:
        # Kept from launch: DBOS's lookup is a query, and refused on a running event loop.
        return self._queue_objects[self._queue_of[name]]


def _sqlite_engine(url: str) -> sa.Engine:
    """DBOS's SQLite engine with agentkit's session-store settings: WAL, synchronous=NORMAL.

    DBOS's own uses a rollback journal with synchronous=FULL: several fsyncs per step, 20 ms a
    step on this machine's disk. In WAL with synchronous=NORMAL a commit survives the process
    being killed (the WAL is in the OS's cache); only a power cut can lose the last commits.
    Writers still take the lock at BEGIN (IMMEDIATE) and wait out each other, as in DBOS's.
    """
    engine = sa.create_engine(url)

    @sa.event.listens_for(engine, "connect")
    def configure(connection: Any, record: Any) -> None:
        connection.isolation_level = "IMMEDIATE"
        connection.execute("PRAGMA busy_timeout=30000")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")

    return engine
