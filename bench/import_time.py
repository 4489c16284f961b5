"""Cold `import agentkit` in fresh interpreters, beside the imports it cannot avoid and its peers.

    python bench/import_time.py            # 21 rounds
    python bench/import_time.py --rounds 5

Each round starts one fresh interpreter per subject, in an order that rotates every round, and
times the import inside it (interpreter start-up excluded). Bytecode is compiled into a
temporary cache first, as an installed package has it (this machine sets
PYTHONDONTWRITEBYTECODE, which would otherwise time the compiler). The table shows medians; the
target is `import agentkit` <= 150 ms. `pydantic + anyio` is the floor agentkit stands on.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile

TARGET_MS = 150.0
SUBJECTS = {
    "agentkit": "agentkit",
    "pydantic + anyio (floor)": "pydantic.main, anyio",
    "pydantic_ai": "pydantic_ai",
    "agno.agent": "agno.agent",
}


def available(statement: str) -> bool:
    return all(
        importlib.util.find_spec(module.strip().split(".")[0]) is not None
        for module in statement.split(",")
    )


def time_import(statement: str, env: dict[str, str]) -> float:
    code = (
        f"import time; t = time.perf_counter(); import {statement}; print(time.perf_counter() - t)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return float(out.stdout) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    rounds = parser.parse_args().rounds
    subjects = {name: stmt for name, stmt in SUBJECTS.items() if available(stmt)}
    with tempfile.TemporaryDirectory() as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        for statement in subjects.values():  # a warm-up that writes the bytecode
            time_import(statement, env)
        times: dict[str, list[float]] = {name: [] for name in subjects}
        names = list(subjects)
        for index in range(rounds):
            shift = index % len(names)
            for name in names[shift:] + names[:shift]:
                times[name].append(time_import(subjects[name], env))
    print(f"cold import, median of {rounds} fresh interpreters (ms):")
    agentkit_ms = statistics.median(times["agentkit"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:<26} {median:7.1f}   ratio to agentkit {median / agentkit_ms:5.2f}")
    verdict = "met" if agentkit_ms <= TARGET_MS else "NOT met"
    print(f"target: import agentkit <= {TARGET_MS:.0f} ms: {verdict} ({agentkit_ms:.1f} ms)")


if __name__ == "__main__":
    main()
