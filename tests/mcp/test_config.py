"""LM Studio's mcp.json: servers loaded from a file and used with act()."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import TOOLBOX, HTTPServerProcess

from agentkit.errors import MCPConfigError
from agentkit.mcp import (
    HTTPTransport,
    MCPServers,
    StdioTransport,
    default_mcp_json_path,
    load_mcp_json,
    parse_mcp_json,
)
from agentkit.testing import AsyncScriptedModel, ScriptedModel, ToolCall

pytestmark = pytest.mark.anyio


def write(path: Path, servers: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"mcpServers": servers}))
    return path


async def test_servers_from_mcp_json_serve_act(
    tmp_path: Path, toolbox_http: HTTPServerProcess
) -> None:
    time_command = shutil.which("mcp-server-time")
    assert time_command is not None
    file = write(
        tmp_path / "mcp.json",
        {
            "time": {"command": time_command, "args": [], "env": {"TZ": "UTC"}},
            "box": {"url": toolbox_http.url, "headers": {"X-Test": "1"}},
            "off": {"command": "never-started", "disabled": True},
        },
    )
    servers = load_mcp_json(file, prefix=True, timeout=30)
    assert list(servers) == ["time", "box"]
    assert servers["time"].transport == StdioTransport(time_command, (), {"TZ": "UTC"})
    assert servers["box"].transport == HTTPTransport(toolbox_http.url, {"X-Test": "1"})
    assert servers["box"].timeout == 30
    async with servers:
        tools = await servers.tools()
        names = {t.name for t in tools}
        assert {"time_get_current_time", "box_add"} <= names
        calls = [
            ToolCall("time_get_current_time", {"timezone": "Europe/Paris"}),
            ToolCall("box_add", {"a": 40, "b": 2}),
        ]
        result = await AsyncScriptedModel(lambda chat, i: calls if i == 0 else "ok").act(
            "go", tools
        )
        now, total = result.round_records[0].tool_calls
        assert "Europe/Paris" in now.result and total.result == '{"result":42}'
    assert not servers["time"].connected and not servers["box"].connected


async def test_tools_of_the_same_name_need_prefixes(tmp_path: Path) -> None:
    box = {"command": sys.executable, "args": [TOOLBOX, "stdio"]}
    servers = parse_mcp_json({"mcpServers": {"one": box, "two": box}})
    async with servers:
        with pytest.raises(MCPConfigError, match=r"'one' and 'two' both offer a tool named"):
            await servers.tools()


def test_default_path_is_lm_studios(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_mcp_json_path() == tmp_path / ".lmstudio" / "mcp.json"
    with pytest.raises(MCPConfigError, match=r"no mcp\.json at .*\.lmstudio"):
        load_mcp_json()
    write(tmp_path / ".cache" / "lm-studio" / "mcp.json", {"cached": {"command": "a"}})
    assert list(load_mcp_json()) == ["cached"]  # some macOS installs keep it here
    write(tmp_path / ".lmstudio" / "mcp.json", {"app": {"command": "b", "args": ["x"]}})
    servers = load_mcp_json()
    assert list(servers) == ["app"]
    assert servers["app"].transport == StdioTransport("b", ("x",))


def test_unknown_keys_warn_and_are_ignored() -> None:
    with pytest.warns(UserWarning, match=r"'t': ignoring unknown key\(s\) autoApprove, icon"):
        servers = parse_mcp_json(
            {"mcpServers": {"t": {"command": "x", "icon": "⏰", "autoApprove": []}}}
        )
    assert servers["t"].transport == StdioTransport("x")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"args": ["x"]}, r"server 'bad': missing command \(or url\)"),
        ({"command": ""}, r"server 'bad': missing command"),
        ({"command": "x", "args": "-v"}, r"'bad': args must be a list of strings"),
        ({"command": "x", "env": {"A": None}}, r"'bad': env: 'A' must be a string"),
        ({"command": "x", "url": "http://h/mcp"}, "not both"),
        ({"url": "http://h/mcp", "type": "sse"}, "'sse' is not supported"),
        ({"type": "http"}, "missing url"),
        ({"url": "ftp://h"}, "http:// or https://"),
        ("x", "must be an object"),
    ],
)
def test_bad_entries_name_the_server(entry: Any, message: str) -> None:
    with pytest.raises(MCPConfigError, match=message):
        parse_mcp_json({"mcpServers": {"bad": entry}})


def test_bad_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    with pytest.raises(MCPConfigError, match="not valid JSON"):
        load_mcp_json(broken)
    with pytest.raises(MCPConfigError, match='"mcpServers"'):
        parse_mcp_json({"servers": {}})
    assert isinstance(parse_mcp_json({"mcpServers": {}}), MCPServers)


def test_sync_servers_from_mcp_json(tmp_path: Path) -> None:
    box = {"command": sys.executable, "args": [TOOLBOX, "stdio"]}
    with load_mcp_json(write(tmp_path / "mcp.json", {"a": box, "b": box}), prefix=True) as servers:
        tools = {t.name: t for t in servers.tools_sync()}
        assert {"a_add", "b_add"} <= set(tools)
        calls = [ToolCall("a_add", {"a": 1, "b": 1}), ToolCall("b_add", {"a": 2, "b": 2})]
        result = ScriptedModel(lambda chat, i: calls if i == 0 else "ok").act(
            "go", list(tools.values())
        )
        assert [r.result for r in result.round_records[0].tool_calls] == [
            '{"result":2}',
            '{"result":4}',
        ]
    assert not servers["a"].connected and not servers["b"].connected
