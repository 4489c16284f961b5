"""agentkit's MCP client against real servers started by the tests (see conftest.py)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import TOOLBOX, HTTPServerProcess, toolbox_args
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentkit.agent import Agent, AsyncAgent
from agentkit.approval import Approve
from agentkit.chat import UserMessage
from agentkit.errors import (
    MCPConfigError,
    MCPConnectionError,
    MCPToolError,
    ToolArgumentsError,
    ToolTimeoutError,
)
from agentkit.mcp import MCPServer, content_text, tool_result
from agentkit.observe import set_observer
from agentkit.testing import AsyncScriptedModel, ScriptedModel, ToolCall
from agentkit.tracing import instrument

pytestmark = pytest.mark.anyio


def toolbox(**options: Any) -> MCPServer:
    return MCPServer.stdio(sys.executable, toolbox_args(), name="toolbox", **options)


def calls_then(calls: list[ToolCall], answer: str = "done") -> Any:
    return lambda chat, i: calls if i == 0 else answer


async def test_act_calls_mcp_server_time() -> None:
    async with MCPServer.stdio("mcp-server-time", prefix="time_") as server:
        tools = await server.tools()
        assert {t.name for t in tools} == {"time_get_current_time", "time_convert_time"}
        model = AsyncScriptedModel(
            calls_then([ToolCall("time_get_current_time", {"timezone": "Asia/Tokyo"})], "noted")
        )
        result = await model.act("What time is it in Tokyo?", tools)
    (record,) = result.round_records[0].tool_calls
    assert record.ok, record.error
    assert '"timezone":"Asia/Tokyo"' in record.result
    assert "+09:00" in record.result
    assert result.final is not None and result.final.text == "noted"
    assert not server.connected  # closed by `async with`


async def test_results_errors_and_validation_reach_the_model() -> None:
    async with toolbox() as server:
        tools = await server.tools()
        assert "dotted_name" in {t.name for t in tools}  # '.' is not allowed in agentkit names
        model = AsyncScriptedModel(
            calls_then(
                [
                    ToolCall("add", {"a": 2, "b": 3}),
                    ToolCall("picture", {}),
                    ToolCall("fail", {"message": "boom"}),
                    ToolCall("add", {"a": "two", "b": 3}),
                    ToolCall("dotted_name", {}),
                ]
            )
        )
        result = await model.act("go", tools)
    add, picture, fail, invalid, dotted = result.round_records[0].tool_calls
    assert add.ok and add.result == '{"result":5}'  # structured content, as JSON
    assert picture.result == "[image: image/png, 4 bytes, not shown]"
    assert fail.error == "tool_error" and "Error executing tool fail" in fail.result
    assert invalid.error == "invalid_arguments"  # agentkit's validator, the server's schema
    assert "$.a" in invalid.result
    assert dotted.ok and dotted.result == '{"result":"dotted"}'


async def test_direct_calls_raise_typed_errors() -> None:
    async with toolbox() as server:
        (add,) = [t for t in await server.tools() if t.name == "add"]
        with pytest.raises(ToolArgumentsError):
            add.bind({"a": 1})
        unknown = await server.call_tool("nope", {})
        assert unknown.is_error  # this server reports unknown tools in the result
        with pytest.raises(MCPToolError, match=r"'nope' failed: .*Unknown tool"):
            tool_result("nope", "toolbox", unknown)
        raw = await server.call_tool("add", {"a": 1, "b": 1})
        assert raw.structured_content == {"result": 2}


async def test_filters_prefix_and_approval() -> None:
    server = toolbox(
        allow={"add", "fail", "pid"}, deny={"pid"}, prefix="tb_", requires_approval={"fail"}
    )
    async with server:
        tools = {t.name: t for t in await server.tools()}
    assert set(tools) == {"tb_add", "tb_fail"}
    assert tools["tb_fail"].requires_approval and not tools["tb_add"].requires_approval
    calls = [ToolCall("tb_fail", {"message": "x"}), ToolCall("tb_add", {"a": 1, "b": 1})]
    async with server:
        result = await AsyncScriptedModel(calls_then(calls)).act("go", list(tools.values()))
    assert result.stop_reason == "approval_required"
    assert [call.name for call in result.pending_approvals] == ["tb_fail"]
    assert [r.result for r in result.round_records[0].tool_calls] == ['{"result":2}']


async def test_lazy_connect_reuses_one_session_across_runs() -> None:
    server = toolbox()
    assert not server.connected
    tools = await server.tools()  # no `async with`: asyncio keeps the session in a task
    model = AsyncScriptedModel(calls_then([ToolCall("pid", {})]))
    try:
        first = await model.act("go", tools)
        second = await model.act("go", tools)
        assert server.connections == 1
        pids = {r.round_records[0].tool_calls[0].result for r in (first, second)}
        assert len(pids) == 1
    finally:
        await server.aclose()
    assert not server.connected


async def test_many_parallel_calls_share_the_session() -> None:
    async with toolbox() as server:
        tools = await server.tools()
        calls = [ToolCall("sleep", {"seconds": 0.3}) for _ in range(12)]
        calls += [ToolCall("add", {"a": n, "b": 1}) for n in range(12)]
        started = anyio.current_time()
        result = await AsyncScriptedModel(calls_then(calls)).act("go", tools)
        elapsed = anyio.current_time() - started
        records = result.round_records[0].tool_calls
        assert all(r.ok for r in records), [r.result for r in records if not r.ok]
        assert [r.result for r in records[12:]] == [f'{{"result":{n + 1}}}' for n in range(12)]
        assert elapsed < 0.3 * 6  # concurrent, not one after another
        assert server.connections == 1


async def test_a_call_past_its_timeout_is_reported_and_the_session_lives_on() -> None:
    async with toolbox(timeout=0.5, retries=10) as server:  # 8 timeouts in one round
        tools = await server.tools()
        calls = [ToolCall("sleep", {"seconds": 5}), ToolCall("add", {"a": 1, "b": 2})] * 8
        result = await AsyncScriptedModel(calls_then(calls)).act("go", tools)
        records = result.round_records[0].tool_calls
        for slow, quick in zip(records[::2], records[1::2], strict=True):
            assert slow.error == "timeout" and "0.5 s" in slow.result
            assert quick.ok and quick.result == '{"result":3}'
        with pytest.raises(ToolTimeoutError):
            await server.call_tool("sleep", {"seconds": 5}, timeout=0.2)
        assert (await server.call_tool("add", {"a": 2, "b": 2})).structured_content == {"result": 4}
        assert server.connections == 1


async def test_a_killed_server_is_restarted_once_transparently() -> None:
    async with toolbox() as server:
        first = (await server.call_tool("pid", {})).structured_content["result"]
        os.kill(first, signal.SIGKILL)
        await anyio.sleep(0.2)
        second = (await server.call_tool("pid", {})).structured_content["result"]
        assert second != first
        assert server.connections == 2
        # killed mid-call: the call is sent again on a new session
        async with anyio.create_task_group() as group:
            group.start_soon(server.call_tool, "sleep", {"seconds": 1.0})
            await anyio.sleep(0.4)
            os.kill(second, signal.SIGKILL)
        assert server.connections == 3


async def test_a_call_in_flight_is_not_resent_when_told_not_to() -> None:
    async with toolbox(retry_lost_calls=False) as server:
        victim = (await server.call_tool("pid", {})).structured_content["result"]

        async def kill_soon() -> None:
            await anyio.sleep(0.4)
            os.kill(victim, signal.SIGKILL)

        async with anyio.create_task_group() as group:
            group.start_soon(kill_soon)
            with pytest.raises(MCPConnectionError, match="may not have run"):
                await server.call_tool("sleep", {"seconds": 2.0})
        assert (await server.call_tool("add", {"a": 1, "b": 1})).structured_content == {"result": 2}


async def test_a_server_that_dies_again_gives_a_typed_error(tmp_path: Path) -> None:
    # a "server" that initialises, then exits on its first tool call, every time
    script = tmp_path / "dies.py"
    script.write_text(
        "import runpy, sys, os\n"
        f"sys.argv = [{TOOLBOX!r}, 'stdio']\n"
        "import mcp.server.mcpserver as m\n"
        "ns = runpy.run_path(sys.argv[0], run_name='toolbox')\n"
        "server = ns['server']\n"
        "@server.tool(name='die')\n"
        "def die() -> str:\n"
        "    os._exit(3)\n"
        "server.run('stdio')\n"
    )
    async with MCPServer.stdio(sys.executable, [str(script)], name="fragile") as server:
        tools = {t.name: t for t in await server.tools()}
        assert "die" in tools
        with pytest.raises(MCPConnectionError, match=r"'fragile'.*lost again"):
            await server.call_tool("die", {})
        assert server.connections == 2
        result = await AsyncScriptedModel(calls_then([ToolCall("die", {})])).act(
            "go", [tools["die"]]
        )
        record = result.round_records[0].tool_calls[0]
        assert record.error == "tool_error" and "MCPConnectionError" in record.result


async def test_a_server_that_is_not_installed() -> None:
    server = MCPServer.stdio("agentkit-no-such-mcp-server", name="ghost")
    with pytest.raises(MCPConnectionError, match=r"'ghost'.*not installed"):
        await server.tools()
    server = MCPServer.stdio("/nonexistent/bin/server", name="ghost")
    with pytest.raises(MCPConnectionError, match="does not exist"):
        await server.connect()


async def test_a_server_that_does_not_initialise_in_time(tmp_path: Path) -> None:
    silent = MCPServer.stdio(
        sys.executable, ["-c", "import time; time.sleep(30)"], init_timeout=0.5
    )
    started = anyio.current_time()
    with pytest.raises(MCPConnectionError, match=r"did not initialise within 0\.5 s"):
        await silent.connect()
    assert anyio.current_time() - started < 10
    assert not silent.connected


async def test_list_changed_refreshes_the_tools() -> None:
    async with toolbox() as server:
        before = {t.name for t in await server.tools()}
        assert "extra" not in before
        assert await server.tools() is not None and server.connections == 1
        await server.call_tool("grow", {"name": "extra"})
        after = {t.name: t for t in await server.tools()}
        assert set(after) == before | {"extra"}
        assert await after["extra"].function() == {"result": "extra ran"}


async def test_bad_options_are_typed_errors() -> None:
    with pytest.raises(MCPConfigError):
        MCPServer.stdio("")
    with pytest.raises(MCPConfigError):
        MCPServer.http("ftp://example.com")
    with pytest.raises(MCPConfigError):
        MCPServer.stdio("x", prefix="bad prefix")
    with pytest.raises(MCPConfigError):
        MCPServer.stdio("x", allow="add")
    with pytest.raises(MCPConfigError):
        MCPServer.stdio("x", timeout=0)


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_under_async_with() -> None:
    async with toolbox() as server:
        result = await AsyncScriptedModel(calls_then([ToolCall("add", {"a": 1, "b": 2})])).act(
            "go", await server.tools()
        )
    assert result.round_records[0].tool_calls[0].result == '{"result":3}'
    with pytest.raises(MCPConfigError, match="async with"):
        await toolbox().tools()


# server-everything (npm), over stdio and streamable HTTP


async def test_everything_over_stdio(everything: Path) -> None:
    async with MCPServer.stdio("node", [str(everything), "stdio"], name="everything") as server:
        tools = {t.name: t for t in await server.tools()}
        assert {"echo", "get-sum", "get-tiny-image", "get-structured-content"} <= set(tools)
        model = AsyncScriptedModel(
            calls_then(
                [
                    ToolCall("echo", {"message": "hi"}),
                    ToolCall("get-sum", {"a": 2, "b": 40}),
                    ToolCall("get-tiny-image", {}),
                    ToolCall("get-structured-content", {"location": "Chicago"}),
                    ToolCall("get-structured-content", {"location": "Paris"}),
                ]
            )
        )
        result = await model.act("go", list(tools.values()))
    echo, total, image, weather, invalid = result.round_records[0].tool_calls
    assert echo.result == "Echo: hi"
    assert "42" in total.result
    assert "[image: image/png" in image.result
    assert '"temperature"' in weather.result
    assert invalid.error == "invalid_arguments"  # enum checked before the call


async def test_everything_list_changed_after_initialisation(everything: Path) -> None:
    # server-everything registers tools when initialised and sends list_changed: the cached
    # list must be marked stale and refreshed, not kept
    async with MCPServer.stdio("node", [str(everything), "stdio"]) as server:
        await server.tools()
        with anyio.fail_after(5):
            while "simulate-research-query" not in {t.name for t in await server.tools()}:  # noqa: ASYNC110
                await anyio.sleep(0.05)


async def test_everything_over_http(everything_http: HTTPServerProcess) -> None:
    async with MCPServer.http(everything_http.url, headers={"X-Test": "1"}, prefix="e_") as server:
        tools = {t.name: t for t in await server.tools()}
        calls = [ToolCall("e_get-sum", {"a": n, "b": 1}) for n in range(8)]
        result = await AsyncScriptedModel(calls_then(calls)).act("go", list(tools.values()))
        assert all(
            r.ok and str(n + 1) in r.result
            for n, r in enumerate(result.round_records[0].tool_calls)
        )
        with pytest.raises(ToolTimeoutError):
            await server.call_tool(
                "trigger-long-running-operation", {"duration": 5, "steps": 5}, timeout=0.5
            )
        echo = await server.call_tool("echo", {"message": "again"})
        assert content_text(echo.content) == "Echo: again"
        assert server.connections == 1
        # restarted, the server answers our old session id with 400 (not the spec's 404) and
        # a body the SDK cannot read; a ping on the session shows it is gone: one reconnect
        everything_http.restart()
        echo = await server.call_tool("echo", {"message": "after restart"})
        assert content_text(echo.content) == "Echo: after restart"
        assert server.connections == 2


async def test_http_session_not_found_reconnects(toolbox_http: HTTPServerProcess) -> None:
    async with MCPServer.http(toolbox_http.url) as server:
        first = (await server.call_tool("pid", {})).structured_content["result"]
        toolbox_http.restart()  # the new process answers our session id with 404
        second = (await server.call_tool("pid", {})).structured_content["result"]
        assert second != first and server.connections == 2
        toolbox_http.stop()
        with pytest.raises(MCPConnectionError):
            await server.call_tool("pid", {})


async def test_agent_approval_then_the_mcp_call() -> None:
    def script(chat: Any, i: int) -> Any:
        if isinstance(chat.messages[-1], UserMessage):
            return [
                ToolCall("add", {"a": 20, "b": 22}, id="c-add"),
                ToolCall("pid", {}, id="c-pid"),
            ]
        (added,) = [m for m in chat.messages if getattr(m, "tool_call_id", None) == "c-add"]
        return "sum: " + added.content

    async with toolbox(requires_approval={"add"}) as server:
        agent = AsyncAgent(AsyncScriptedModel(script), tools=await server.tools())
        paused = await agent.act("s", "add them")
        assert paused.stop_reason == "approval_required"
        assert [call.id for call in paused.pending_approvals] == ["c-add"]
        assert paused.round_records[0].tool_calls[0].call.name == "pid"  # ran meanwhile
        result = await agent.resume("s", [Approve("c-add")])
    assert result.final is not None and result.final.text == 'sum: {"result":42}'


# the sync API


def test_sync_act_with_mcp_tools() -> None:
    with toolbox() as server:
        tools = server.tools_sync()
        calls = [ToolCall("sleep", {"seconds": 0.3}) for _ in range(6)]
        calls.append(ToolCall("add", {"a": 1, "b": 2}))
        model = ScriptedModel(calls_then(calls))
        started = time.perf_counter()
        first = model.act("go", tools)
        assert time.perf_counter() - started < 0.3 * 4  # the calls ran at once
        second = model.act("again", tools)
        for result in (first, second):
            records = result.round_records[0].tool_calls
            assert all(r.ok for r in records) and records[-1].result == '{"result":3}'
        assert server.call_tool_sync("add", {"a": 2, "b": 2}).structured_content == {"result": 4}
        assert server.connections == 1
    assert not server.connected
    with pytest.raises(MCPConfigError, match="inside `with server:`"):
        server.tools_sync()


def test_sync_agent_and_a_timeout() -> None:
    with toolbox(timeout=0.5) as server:
        script = calls_then([ToolCall("sleep", {"seconds": 3}), ToolCall("pid", {})])
        result = Agent(ScriptedModel(script), tools=server.tools_sync()).act("s", "go")
        slow, quick = result.round_records[0].tool_calls
        assert slow.error == "timeout" and quick.ok


def test_mcp_calls_are_execute_tool_spans_with_the_server_name() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument(provider, MeterProvider(metric_readers=[InMemoryMetricReader()]))
    try:
        with toolbox(prefix="tb_") as server:
            script = calls_then([ToolCall("tb_add", {"a": 1, "b": 2})])
            ScriptedModel(script).act("go", server.tools_sync())
    finally:
        set_observer(None)
    (span,) = [s for s in exporter.get_finished_spans() if s.name.startswith("execute_tool")]
    assert span.name == "execute_tool tb_add"
    assert span.attributes is not None
    assert span.attributes["agentkit.mcp.server"] == "toolbox"
    assert span.attributes["agentkit.mcp.tool"] == "add"
    assert span.attributes["mcp.method.name"] == "tools/call"
    assert span.attributes["agentkit.tool.outcome"] == "ok"
