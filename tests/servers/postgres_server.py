"""A throwaway Postgres server for tests and benchmarks: initdb + pg_ctl in a temp dir.

Postgres refuses to run as root, so as root the cluster is owned by and run as the `postgres`
user (or `nobody`). It listens on 127.0.0.1 on a free port with trust authentication, and is
stopped and deleted on exit.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PostgresServer", "find_binaries", "running_postgres"]


def find_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/N/bin."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(Path(folder, "initdb"), os.X_OK) and os.access(
            Path(folder, "pg_ctl"), os.X_OK
        ):
            return Path(folder)
    return None


@dataclass(frozen=True)
class PostgresServer:
    port: int
    data_dir: Path

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://agentkit@127.0.0.1:{self.port}/{database}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run Postgres as")


@contextlib.contextmanager
def running_postgres(*settings: str) -> Iterator[PostgresServer]:
    """Start a fresh cluster (extra `-c name=value` settings allowed), yield it, stop it."""
    binaries = find_binaries()
    if binaries is None:
        raise FileNotFoundError("no Postgres binaries (initdb, pg_ctl)")
    user = _run_as()
    base = Path(tempfile.mkdtemp(prefix="agentkit-pg-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    data = base / "data"
    port = _free_port()

    def run(*command: str) -> None:
        subprocess.run(command, check=True, user=user, capture_output=True, cwd=base, timeout=120)

    try:
        run(
            str(binaries / "initdb"), "-D", str(data), "-U", "agentkit", "--auth=trust",
            "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        options = [f"-p {port}", f"-k {base}", "-c listen_addresses=127.0.0.1"]
        options += [f"-c {setting}" for setting in settings]
        pg_ctl = str(binaries / "pg_ctl")
        log = str(base / "log")
        run(pg_ctl, "-D", str(data), "-o", " ".join(options), "-l", log, "-w", "start")
        try:
            yield PostgresServer(port, data)
        finally:
            run(pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(base, ignore_errors=True)
