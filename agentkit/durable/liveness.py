"""Which workers are alive, on Postgres: a session advisory lock per worker.

Each worker holds a lock keyed by its executor id on a connection of its own for as long as it
runs; the server drops the lock the moment the process dies (its connection closes), SIGKILL
included. A sweeper thread in every worker looks for runs left PENDING by other agentkit
executors whose lock it can take: their worker is gone, so it hands their runs back to DBOS's
recovery, which re-queues each run for exactly one worker to continue from its last step.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg

__all__ = ["EXECUTOR_PREFIX", "Liveness"]

EXECUTOR_PREFIX = "agentkit-"
_log = logging.getLogger("agentkit.durable")

_ORPHANED = """
    SELECT DISTINCT executor_id FROM {schema}.workflow_status
    WHERE status = 'PENDING' AND executor_id LIKE %s AND executor_id <> %s
"""


class Liveness:
    """Holds this worker's lock; every `interval` seconds recovers dead workers' runs."""

    def __init__(
        self, url: str, executor_id: str, interval: float, schema: str, recover: Any
    ) -> None:
        self.executor_id = executor_id
        self.interval = interval
        self.schema = schema
        self.recover = recover  # (executor_ids) -> None: DBOS's recovery for those executors
        self._connection = psycopg.connect(url, autocommit=True)
        self._connection.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [executor_id])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agentkit-liveness", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def sweep(self) -> list[str]:
        """Recover the runs of every dead agentkit worker now; the executor ids recovered."""
        query = _ORPHANED.format(schema=self.schema)
        rows = self._connection.execute(query, [EXECUTOR_PREFIX + "%", self.executor_id]).fetchall()
        recovered = []
        for (executor,) in rows:
            taken = self._connection.execute(
                "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", [executor]
            ).fetchone()
            if not taken or not taken[0]:
                continue  # its worker is alive
            try:
                self.recover([executor])
                recovered.append(executor)
            finally:
                self._connection.execute(
                    "SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [executor]
                )
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
        self._connection.close()
