"""Two worker processes on Postgres split an evaluation; one dies mid-case.

Real processes and a real Postgres started by the tests (tests/durable/eval_worker.py): the
coordinator enqueues 40 cases, worker A SIGKILLs itself in the middle of its 5th case, worker B
(started then) takes A's unfinished cases over and runs the rest. Every case is reported
once; the killed case is completed once, by B.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

WORKER = Path(__file__).with_name("eval_worker.py")


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _ready(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip() == "ready", process.stderr.read() if process.stderr else line


def test_two_workers_split_40_cases_and_survive_a_kill(tmp_path: Path, postgres_dsn: str) -> None:
    # Worker A alone first, so it certainly reaches its 5th case and dies there; worker B starts
    # after A died, takes A's unfinished cases over and runs the rest.
    killer = _start(postgres_dsn, str(tmp_path), "worker", "5")
    _ready(killer)
    coordinator = _start(postgres_dsn, str(tmp_path), "coordinator")
    survivor = None
    try:
        assert killer.wait(timeout=120) == -signal.SIGKILL
        survivor = _start(postgres_dsn, str(tmp_path), "worker")
        _ready(survivor)
        out, err = coordinator.communicate(timeout=180)
        assert coordinator.returncode == 0, err
    finally:
        for process in (killer, survivor, coordinator):
            if process is not None:
                process.kill()
                process.wait()
    assert survivor is not None
    rows = json.loads(out.strip().splitlines()[-1])
    assert sorted(row["id"] for row in rows) == sorted(f"c{i}" for i in range(40))
    assert all(row["passed"] for row in rows)

    completions = [line.split() for line in (tmp_path / "completions").read_text().splitlines()]
    counted = Counter(case for case, _ in completions)
    assert set(counted) == {f"c{i}" for i in range(40)}
    # A case is one step: the one running beside the killed case may have returned without its
    # result recorded yet. That one runs again on the survivor (the report still counts it
    # once, above); every other case ran to completion exactly once.
    twice = [case for case, times in counted.items() if times > 1]
    assert len(twice) <= 1 and all(counted[case] == 2 for case in twice)
    for case in twice:
        assert sorted(pid for done, pid in completions if done == case) == sorted(
            [str(killer.pid), str(survivor.pid)]
        )
    by_pid = Counter(pid for _, pid in completions)
    assert set(by_pid) == {str(killer.pid), str(survivor.pid)}  # both did work
    # It ran two cases at a time: at least the first three completed before its 5th start
    # killed it (a case started beside the 5th may have slipped in too).
    assert 3 <= by_pid[str(killer.pid)] <= 6

    killed_case, killed_pid = (tmp_path / "killed").read_text().split()
    assert killed_pid == str(killer.pid)
    assert [pid for done, pid in completions if done == killed_case] == [str(survivor.pid)]
    outputs = {row["id"]: row["output"] for row in rows}
    assert outputs[killed_case].endswith(f"from {survivor.pid}")
    starts = Counter(line.split()[0] for line in (tmp_path / "starts").read_text().splitlines())
    assert starts[killed_case] == 2
