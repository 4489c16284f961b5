"""MCP servers started by the tests: toolbox.py (the official Python SDK), mcp-server-time
(PyPI) and @modelcontextprotocol/server-everything (npm, installed into tests/mcp/node_modules
by .ci/run or, when missing, by the first test that needs it)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
TOOLBOX = str(HERE / "servers" / "toolbox.py")
EVERYTHING = (
    HERE / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # test_mcp_client.py runs its trio test explicitly


def toolbox_args() -> list[str]:
    return [TOOLBOX, "stdio"]


@pytest.fixture(scope="session")
def everything() -> Path:
    """server-everything's entry point, npm-installed into this folder if it is not yet."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node/npm not installed: the server-everything tests need Node 20")
    if not EVERYTHING.exists():
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund"], cwd=HERE, check=True, timeout=600
        )
    return EVERYTHING


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listened on port {port} within {timeout} s")


class HTTPServerProcess:
    """A server process listening on 127.0.0.1:port that a test can restart on the same port."""

    def __init__(self, command: list[str], env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.command = [part.replace("{port}", str(self.port)) for part in command]
        self.env = {**os.environ, **(env or {}), "PORT": str(self.port)}
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.command, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port, self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def toolbox_http() -> Iterator[HTTPServerProcess]:
    server = HTTPServerProcess([sys.executable, TOOLBOX, "http", "{port}"])
    yield server
    server.stop()


@pytest.fixture
def everything_http(everything: Path) -> Iterator[HTTPServerProcess]:
    server = HTTPServerProcess(["node", str(everything), "streamableHttp"])
    yield server
    server.stop()
