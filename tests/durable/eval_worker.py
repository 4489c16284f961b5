"""A process of the distributed evaluation test.

    python eval_worker.py DATABASE WORKDIR worker [KILL_AT_START]   # works until killed
    python eval_worker.py DATABASE WORKDIR coordinator              # enqueues 40 cases, merges

The agent logs each start and each completion of a case (with its pid) in WORKDIR; a worker
given KILL_AT_START SIGKILLs itself in the middle of its N-th case, once.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from agentkit.durable import Runtime
from agentkit.tracing.evaluation.evaluate import Case, evaluate
from agentkit.tracing.evaluation.scorers import contains

database, workdir, role = sys.argv[1:4]
kill_at = int(sys.argv[4]) if len(sys.argv) > 4 else 0
work = Path(workdir)
started = 0


def _log(name: str, line: str) -> None:
    with open(work / name, "a") as log:
        log.write(line + "\n")


def agent(case: Case) -> str:
    global started
    started += 1
    order = started  # cases run two at a time: `started` moves on during the sleep
    _log("starts", f"{case.id} {os.getpid()}")
    time.sleep(0.05)
    if order == kill_at:
        _log("killed", f"{case.id} {os.getpid()}")
        os.kill(os.getpid(), signal.SIGKILL)
    _log("completions", f"{case.id} {os.getpid()}")
    return f"answer to {case.input} from {os.getpid()}"


runtime = Runtime(database, liveness_interval=0.2, poll_interval=0.02, work=role == "worker")
scorers = [contains()]
runtime.evaluation("split", agent, scorers, concurrency=2)
runtime.launch()
if role == "worker":
    print("ready", flush=True)
    runtime.serve()
else:
    cases = [{"id": f"c{i}", "input": f"q{i}", "expected": f"q{i}"} for i in range(40)]
    # The coordinator goes through evaluate(workers=...), the workers' way in from evaluate().
    report = evaluate(cases, agent, scorers, workers=runtime, name="split", progress=False)
    rows = [{"id": r.case_id, "passed": r.passed, "output": r.output} for r in report.results]
    print(json.dumps(rows), flush=True)
    runtime.shutdown()
