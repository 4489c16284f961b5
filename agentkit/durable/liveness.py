"""Which workers are alive: a lock per worker that dies with its process.

Each agentkit worker holds a lock named by its executor id for as long as it runs: a Postgres
session advisory lock (on a connection of its own) or, on SQLite, an flock on a file beside the
database. The server or the kernel drops it the moment the process dies, SIGKILL included. A
sweeper thread in every worker looks for runs left PENDING by other agentkit executors whose
lock it can take: their worker is gone, so it hands their runs to DBOS's recovery, which
re-queues each for exactly one worker to continue from its last recorded step.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import psycopg
from dbos import DBOS

__all__ = ["EXECUTOR_PREFIX", "FileLocks", "Liveness", "PostgresLocks", "new_executor_id"]

EXECUTOR_PREFIX = "agentkit-"
_log = logging.getLogger("agentkit.durable")


def new_executor_id() -> str:
    """A fresh id for one of many workers (its prefix marks it as one whose lock is watched)."""
    return f"{EXECUTOR_PREFIX}{uuid.uuid4().hex[:12]}"


class ExecutorLocks(Protocol):
    """Named locks that are released when the process holding them dies."""

    def hold(self, executor: str) -> None:
        """Take this worker's lock and keep it until `close()`."""

    def try_take(self, executor: str) -> bool:
        """Take another worker's lock if free (its worker is dead); `release` it after."""

    def release(self, executor: str) -> None:
        """Let go of a lock `try_take` took."""

    def close(self) -> None:
        """Let go of every lock."""


class PostgresLocks:
    """Session advisory locks on one connection of this worker's own."""

    def __init__(self, url: str) -> None:
        self._connection = psycopg.connect(url, autocommit=True)
        self._mutex = threading.Lock()  # a psycopg connection serves one thread at a time

    def _call(self, function: str, executor: str) -> bool:
        with self._mutex:
            row = self._connection.execute(
                f"SELECT {function}(hashtextextended(%s, 0))", [executor]
            ).fetchone()
        return bool(row and row[0] is not False)

    def hold(self, executor: str) -> None:
        self._call("pg_advisory_lock", executor)

    def try_take(self, executor: str) -> bool:
        return self._call("pg_try_advisory_lock", executor)

    def release(self, executor: str) -> None:
        self._call("pg_advisory_unlock", executor)

    def close(self) -> None:
        with self._mutex:
            self._connection.close()


class FileLocks:
    """flock()ed files in a folder beside the SQLite database (one machine)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._held: dict[str, int] = {}

    def _take(self, executor: str, wait: bool) -> bool:
        descriptor = os.open(self.folder / f"{executor}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(descriptor)
            return False
        self._held[executor] = descriptor
        return True

    def hold(self, executor: str) -> None:
        self._take(executor, wait=True)

    def try_take(self, executor: str) -> bool:
        return self._take(executor, wait=False)

    def release(self, executor: str) -> None:
        descriptor = self._held.pop(executor, None)
        if descriptor is not None:
            os.close(descriptor)  # closing the last descriptor drops the flock

    def close(self) -> None:
        for executor in list(self._held):
            self.release(executor)


class Liveness:
    """Holds this worker's lock; every `interval` seconds recovers dead workers' runs."""

    def __init__(
        self,
        locks: ExecutorLocks,
        executor_id: str,
        interval: float,
        recover: Callable[[list[str]], object],
    ) -> None:
        self.locks = locks
        self.executor_id = executor_id
        self.interval = interval
        self.recover = recover  # DBOS's recovery of the given executors' pending runs
        locks.hold(executor_id)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agentkit-liveness", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def sweep(self) -> list[str]:
        """Recover the runs of every dead agentkit worker now; the executor ids recovered."""
        pending = DBOS.list_workflows(status="PENDING", load_input=False, load_output=False)
        others = {
            status.executor_id
            for status in pending
            if status.executor_id
            and status.executor_id.startswith(EXECUTOR_PREFIX)
            and status.executor_id != self.executor_id
        }
        recovered = []
        for executor in sorted(others):
            if not self.locks.try_take(executor):
                continue  # its worker is alive
            try:
                self.recover([executor])
                recovered.append(executor)
            finally:
                self.locks.release(executor)
        return recovered

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                for executor in self.sweep():
                    _log.warning("recovered the runs of dead worker %s", executor)
            except Exception:  # a sweep that fails is retried on the next tick
                _log.exception("agentkit durable: sweeping for dead workers failed")

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.locks.close()
