"""A real backend: act() spans exported over OTLP to Arize Phoenix and read back from it.

Starts `phoenix serve` on 127.0.0.1 (free ports, a temporary working dir). Skip it locally with
`pytest -m "not phoenix"`; CI runs it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import agentkit as ak
from agentkit.observe import set_observer
from agentkit.testing import ScriptedModel, ToolCall
from agentkit.tracing import configure

pytestmark = pytest.mark.phoenix


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = dict(
        os.environ,
        PHOENIX_WORKING_DIR=str(tmp_path_factory.mktemp("phoenix")),
        PHOENIX_HOST="127.0.0.1",
        PHOENIX_PORT=str(port),
        PHOENIX_GRPC_PORT=str(free_port()),
    )
    log = Path(env["PHOENIX_WORKING_DIR"]) / "server.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "phoenix.server.main", "serve"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"Phoenix did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def multiply(a: float, b: float) -> float:
    """Multiply two numbers."""
    return a * b


def test_spans_round_trip_through_phoenix(phoenix: str) -> None:
    handle = configure(otlp_endpoint=phoenix, otlp_metrics=False, set_global=False)
    try:
        model = ScriptedModel(
            lambda chat, i: [ToolCall("multiply", {"a": 2, "b": 3})] if i == 0 else "6"
        )
        result = model.act("What is 2 times 3?", [multiply])
        handle.force_flush()
    finally:
        set_observer(None)
        handle.shutdown()
    assert result.final is not None and result.final.text == "6"

    deadline = time.monotonic() + 30
    spans: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        spans = get_json(f"{phoenix}/v1/projects/default/spans?limit=100")["data"]
        if any(span["name"] == "invoke_agent" for span in spans) and len(spans) >= 6:
            break
        time.sleep(0.5)
    by_name = {span["name"]: span for span in spans}
    run = by_name["invoke_agent"]
    rounds = [by_name["round 0"], by_name["round 1"]]
    tool = by_name["execute_tool multiply"]
    chats = [span for span in spans if span["name"] == "chat scripted-model"]

    ids = {span["context"]["span_id"]: span for span in spans}
    assert run["parent_id"] is None
    assert all(r["parent_id"] == run["context"]["span_id"] for r in rounds)
    assert tool["parent_id"] == rounds[0]["context"]["span_id"]
    assert {ids[c["parent_id"]]["name"] for c in chats} == {"round 0", "round 1"}
    assert len({span["context"]["trace_id"] for span in spans}) == 1

    assert run["attributes"]["gen_ai.operation.name"] == "invoke_agent"
    assert run["attributes"]["gen_ai.usage.input_tokens"] == result.usage.prompt_tokens
    assert run["attributes"]["gen_ai.usage.output_tokens"] == result.usage.completion_tokens
    chat_tokens = sorted(c["attributes"]["gen_ai.usage.input_tokens"] for c in chats)
    assert chat_tokens == sorted(r.usage.prompt_tokens for r in result.round_records)
    assert all(c["attributes"]["gen_ai.request.model"] == "scripted-model" for c in chats)
    assert tool["attributes"]["gen_ai.tool.name"] == "multiply"
    assert tool["attributes"]["agentkit.tool.outcome"] == "ok"
    assert isinstance(ak.__version__, str)
