"""`agentkit chat`: the REPL on scripted models, and one session through a real terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from openai_fault_server import FaultServer, sse, text_stream

import agentkit as ak
from agentkit.cli import load_tools, main
from agentkit.cli_chat import ChatIO, ChatSession, LoadedModel, open_model
from agentkit.errors import EngineError
from agentkit.testing import Reply, ScriptedModel, ToolCall, scripted_engine
from agentkit.tools import calculator

CHAT = "/v1/chat/completions"


class Script:
    """Scripted terminal I/O: lines to read (or exceptions to raise), and everything written."""

    def __init__(self, lines: Iterable[str | BaseException]) -> None:
        self.lines = list(lines)
        self.writes: list[str] = []
        self.on_write: Callable[[str], None] | None = None

    def read(self, prompt: str) -> str:
        self.writes.append(prompt)
        if not self.lines:
            raise EOFError
        line = self.lines.pop(0)
        if isinstance(line, BaseException):
            raise line
        return line

    def write(self, text: str) -> None:
        self.writes.append(text)
        if self.on_write is not None:
            self.on_write(text)

    @property
    def io(self) -> ChatIO:
        return ChatIO(self.read, self.write)

    @property
    def text(self) -> str:
        return "".join(self.writes)


def calculating(chat: ak.Chat, round_index: int) -> str | list[ToolCall] | Reply:
    """Round 0 calls the calculator on the question, round 1 states the result."""
    if round_index == 0:
        return [ToolCall("calculator", {"expression": chat[-1].content})]
    return Reply(content=f"The answer is {chat[-1].content}.")


def session(
    responder: object, script: Script, *, system: str | None = "Be brief.", **options: object
) -> ChatSession:
    model = ScriptedModel(responder)  # type: ignore[arg-type]
    return ChatSession(LoadedModel(model), [calculator], script.io, system=system, **options)  # type: ignore[arg-type]


def test_a_turn_streams_shows_tool_calls_and_results_and_keeps_history() -> None:
    script = Script(["2 + 2"])
    chat_session = session(calculating, script)
    assert chat_session.run() == 0
    out = script.text
    call = out.index('  tool call   calculator({"expression":"2 + 2"})')
    result = out.index("  tool result 4")
    answer = out.index("The answer is 4.")
    assert call < result < answer
    assert "(2 rounds," in out and "prompt +" in out
    # Streamed: the answer reached the terminal word by word, as separate writes.
    assert "The " in script.writes and "answer " in script.writes
    roles = [message.role for message in chat_session.chat]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    assert chat_session.chat[-1].content == "The answer is 4."


def test_the_model_sees_the_history_of_earlier_turns() -> None:
    script = Script(["2 + 2", "3 * 3"])
    chat_session = session(calculating, script)
    chat_session.run()
    requests = scripted_engine(chat_session.model.llm).requests
    last = [message.content for message in requests[-1].messages]
    assert last[:6] == ["Be brief.", "2 + 2", "", "4", "The answer is 4.", "3 * 3"]
    assert "The answer is 9." in script.text


def test_ctrl_c_during_a_reply_stops_it_drops_the_turn_and_the_session_goes_on() -> None:
    def responder(chat: ak.Chat, round_index: int) -> Reply:
        if chat[-1].content == "slow":
            return Reply(content="one two three four five six", fragment_delay=0.5)
        return Reply(content="fast answer")

    script = Script(["slow", "quick"])
    chat_session = session(responder, script)

    def interrupt_on_first_word(text: str) -> None:
        if text == "one ":  # the reply is streaming: press Ctrl-C
            handlers.append(signal.getsignal(signal.SIGINT))
            os.kill(os.getpid(), signal.SIGINT)

    handlers: list[object] = []
    script.on_write = interrupt_on_first_word
    started = time.perf_counter()
    assert chat_session.run() == 0
    assert time.perf_counter() - started < 2  # did not wait for the other five words
    out = script.text
    assert "one " in out and "six" not in out
    assert "[stopped; this turn is not kept]" in out
    assert "fast answer" in out  # the session went on
    assert [m.content for m in chat_session.chat] == ["Be brief.", "quick", "fast answer"]
    # Ctrl-C went to the session's handler, which cancels the run's token; then it is restored.
    assert len(handlers) == 1 and handlers[0] is not signal.default_int_handler
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_stop_cancels_the_reply_from_another_thread() -> None:
    script = Script([])
    chat_session = session([Reply(content="a b c d e f", fragment_delay=0.5)], script)
    timer = threading.Timer(0.3, chat_session.stop)
    timer.start()
    assert chat_session.send("go") is None
    timer.join()
    assert "a " in script.writes and "f" not in script.writes  # stopped before the last word
    assert "[stopped; this turn is not kept]" in script.text
    assert [m.role for m in chat_session.chat] == ["system"]


def test_a_failed_turn_is_reported_and_dropped() -> None:
    script = Script(["boom", "again"])
    chat_session = session([EngineError("the engine fell over"), "fine"], script)
    assert chat_session.run() == 0
    assert "[error: the engine fell over; this turn is not kept]" in script.text
    assert [m.content for m in chat_session.chat] == ["Be brief.", "again", "fine"]


def test_ctrl_c_at_the_prompt_warns_once_and_exits_the_second_time() -> None:
    script = Script([KeyboardInterrupt(), "hi", KeyboardInterrupt(), KeyboardInterrupt(), "never"])
    chat_session = session(["hello"], script)
    assert chat_session.run() == 0
    assert script.text.count("(Ctrl-C again or Ctrl-D to exit)") == 2
    assert script.lines == ["never"]  # left after the second Ctrl-C in a row
    assert chat_session.chat[-1].content == "hello"


def test_ctrl_d_exits_and_closes_the_model() -> None:
    closed: list[bool] = []

    class Tracked(LoadedModel):
        def close(self) -> None:
            closed.append(True)

    script = Script([EOFError(), "never"])
    chat_session = ChatSession(Tracked(ScriptedModel(["x"])), [], script.io)
    assert chat_session.run() == 0
    assert closed == [True] and script.lines == ["never"]
    assert "tools: none." in script.text


def test_reset_save_and_load(tmp_path: Path) -> None:
    saved = tmp_path / "chat.json"
    script = Script(["2 + 2", f"/save {saved}", "/reset", "/tools", f"/load {saved}", "/help"])
    chat_session = session(calculating, script)
    chat_session.run()
    out = script.text
    assert f"[saved 5 messages to {saved}]" in out
    assert "[history cleared]" in out
    assert "tools: calculator" in out
    assert f"[loaded 5 messages from {saved}]" in out
    assert "/save FILE" in out  # the help
    assert ak.Chat.from_json(saved.read_text()).to_json() == chat_session.chat.to_json()
    assert chat_session.chat[-1].content == "The answer is 4."


def test_reset_keeps_the_system_prompt() -> None:
    script = Script(["2 + 2", "/reset"])
    chat_session = session(calculating, script, system="You add numbers.")
    chat_session.run()
    assert [m.content for m in chat_session.chat] == ["You add numbers."]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "No such file or directory"),
        (b"not json {", "not a saved chat"),
        (b'{"messages": [{"role": "wizard", "content": "x"}]}', "not a saved chat"),
        (b"\xff\xfe\x00", "not a saved chat"),
    ],
)
def test_load_of_a_bad_file_is_a_message_not_a_traceback(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_bytes(content)
    script = Script([f"/load {path}", "/load"])
    chat_session = session(["x"], script)
    chat_session.run()
    assert f"cannot load {path}: " in script.text and message in script.text
    assert "/load takes a file name" in script.text
    assert [m.content for m in chat_session.chat] == ["Be brief."]


def test_save_to_an_unwritable_place_is_a_message(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "chat.json"
    script = Script([f"/save {target}", "/save", "/nonsense"])
    session(["x"], script).run()
    assert f"cannot save to {target}: No such file or directory" in script.text
    assert "/save takes a file name" in script.text
    assert "unknown command /nonsense; /help lists the commands" in script.text


@pytest.fixture
def script_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], str]:
    """Writes a module under a fresh name importable for this test; returns its name."""

    def write(stem: str, source: str) -> str:
        name = f"{stem}_{os.getpid()}_{time.monotonic_ns()}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        return name

    monkeypatch.syspath_prepend(str(tmp_path))
    return write


def test_model_command_shows_and_switches_models(script_module: Callable[[str, str], str]) -> None:
    name = script_module("other", "replies = ['from the other model']\n")
    script = Script(["/model", f"/model scripted:{name}:replies", "/model", "hi"])
    chat_session = session(["never used"], script)
    chat_session.run()
    out = script.text
    assert "model: scripted-model on the agentkit.testing engine" in out
    assert "model: replies on the agentkit.testing engine" in out
    assert "from the other model" in out


def test_model_command_with_a_bad_spec_keeps_the_model() -> None:
    script = Script(["/model scripted:no_such_module_here:x", "/model scripted:nocolon", "hi"])
    session(["still here"], script).run()
    out = script.text
    assert "cannot load scripted:no_such_module_here:x: --model scripted: " in out
    assert "No module named 'no_such_module_here'" in out
    assert "--model scripted: takes module:attribute" in out
    assert out.count("still on scripted-model on the agentkit.testing engine") == 2
    assert "still here" in out


def test_open_model_takes_a_handle_or_a_responder(script_module: Callable[[str, str], str]) -> None:
    name = script_module(
        "models",
        """
        from agentkit.testing import ScriptedModel
        handle = ScriptedModel(["hi"], model_key="my-handle")
        responder = lambda chat, index: "ok"
        not_a_responder = 42
        """,
    )
    assert open_model(f"scripted:{name}:handle").llm.model_key == "my-handle"
    assert open_model(f"scripted:{name}:responder").llm.act("x").final.text == "ok"  # type: ignore[union-attr]
    with pytest.raises(ak.ConfigurationError, match="a responder is a list of replies"):
        open_model(f"scripted:{name}:not_a_responder")


def test_a_url_chats_with_that_engine_and_model_switches_keep_it() -> None:
    with FaultServer(models=["served-model", "other-model"]) as server:
        server.script(CHAT, sse(text_stream("Hello ", "from ", "the server.")))
        loaded = open_model(server.url)
        assert loaded.description == "served-model on the openai engine"
        assert loaded.url == server.url and loaded.client is not None
        script = Script(["hi", "/model other-model", "hi again"])
        ChatSession(loaded, [calculator], script.io).run()
        posts = server.posts(CHAT)
    out = script.text
    assert "Hello from the server." in out and "(1 round," in out
    assert "model: other-model on the openai engine (loaded in " in out
    assert [post.body["model"] for post in posts] == ["served-model", "other-model"]
    assert [m["content"] for m in posts[-1].body["messages"]][-3:] == [
        "hi",
        "Hello from the server.",
        "hi again",
    ]
    assert "calculator" in json.dumps(posts[0].body["tools"])


def test_open_model_on_an_unknown_url_scheme_is_a_configuration_error() -> None:
    with pytest.raises(ak.ConfigurationError, match="cannot tell which engine"):
        open_model("key", "ftp://nowhere")


def test_load_tools_takes_a_tool_a_list_or_a_toolset(
    script_module: Callable[[str, str], str],
) -> None:
    name = script_module(
        "tools",
        '''
        import agentkit as ak
        from agentkit.tools import Toolset

        def add(a: int, b: int) -> int:
            """Add two numbers."""
            return a + b

        def neg(a: int) -> int:
            """Negate a number."""
            return -a

        both = [add, neg]
        toolset = Toolset([neg])
        untyped = lambda x: x
        not_a_tool = "hello"
        ''',
    )
    tools = load_tools([f"{name}:add", f"{name}:toolset"])
    assert [ak.tools.as_tool(t).name for t in tools] == ["add", "neg"]
    assert [ak.tools.as_tool(t).name for t in load_tools([f"{name}:both"])] == ["add", "neg"]
    with pytest.raises(ak.ConfigurationError, match="two tools are named 'add'"):
        load_tools([f"{name}:add", f"{name}:both"])
    with pytest.raises(ak.ConfigurationError, match="str is not a tool"):
        load_tools([f"{name}:not_a_tool"])
    with pytest.raises(ak.ConfigurationError, match=r"--tools: .*lambda"):
        load_tools([f"{name}:untyped"])
    with pytest.raises(ak.ConfigurationError, match="has no attribute 'nothing'"):
        load_tools([f"{name}:nothing"])


def test_chat_command_reports_bad_tools_with_exit_code_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["chat", "--tools", "no_such_module_here:tools"]) == 2
    assert "agentkit: --tools no_such_module_here:tools: No module named" in capsys.readouterr().err


# -- a real terminal --------------------------------------------------------------------------


class Terminal:
    """The parent's side of a pseudo-terminal running a child process."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.output = b""

    def expect(self, wanted: bytes, timeout: float = 60) -> bytes:
        """Read until `wanted` shows up after what was already matched; returns all read."""
        deadline = time.monotonic() + timeout
        while wanted not in self.output:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{wanted!r} never came; got {self.output[-2000:]!r}"
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                assert chunk, f"the terminal closed before {wanted!r}; got {self.output!r}"
                self.output += chunk
        seen, _, self.output = self.output.partition(wanted)
        return seen + wanted

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)


def test_a_terminal_session_streams_stops_on_ctrl_c_and_exits_on_ctrl_d(tmp_path: Path) -> None:
    (tmp_path / "pty_script.py").write_text(
        textwrap.dedent(
            """
            from agentkit.testing import Reply

            def responder(chat, round_index):
                if "slow" in chat[-1].content:
                    return Reply(content="slowly " * 100, fragment_delay=0.3)
                return Reply(content="Hello from the scripted model.", fragment_delay=0.3)
            """
        )
    )
    command = [sys.executable, "-m", "agentkit.cli", "chat", "--model"]
    command += ["scripted:pty_script:responder", "--system", "Be brief."]
    pid, fd = pty.fork()
    if pid == 0:  # the child: a terminal session of its own, as a user's shell would give
        try:
            os.chdir(tmp_path)
            os.execv(sys.executable, command)
        finally:
            os._exit(127)
    terminal = Terminal(fd)
    try:
        terminal.expect(b"/help for commands")
        terminal.expect(b"> ")
        terminal.send(b"hello\r")
        first = terminal.expect(b"Hello ")
        assert b"model." not in first  # the first word showed before the reply was complete
        terminal.expect(b"Hello from the scripted model.".removeprefix(b"Hello "))
        terminal.expect(b"> ")

        terminal.send(b"go slow\r")
        terminal.expect(b"slowly ")
        terminal.send(b"\x03")  # Ctrl-C: the terminal sends SIGINT to the chat
        terminal.expect(b"[stopped; this turn is not kept]")
        terminal.expect(b"> ")

        terminal.send(b"/save kept.json\r")
        terminal.expect(b"[saved 3 messages to kept.json]")
        terminal.expect(b"> ")
        terminal.send(b"\x04")  # Ctrl-D at the prompt
        _, status = os.waitpid(pid, 0)
        pid = 0
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    saved = json.loads((tmp_path / "kept.json").read_text())
    contents = [message["content"] for message in saved["messages"]]
    assert contents == ["Be brief.", "hello", "Hello from the scripted model."]


@pytest.mark.parametrize("command", ["chat", "run"])
@pytest.mark.parametrize("option", ["--max-tokens", "--max-rounds"])
def test_round_and_token_limits_must_be_positive(
    command: str, option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = [command, option, "0"] + (["hi"] if command == "run" else [])
    with pytest.raises(SystemExit) as exit_info:
        main(arguments)
    assert exit_info.value.code == 2
    assert f"{option}: expected a whole number of at least 1, got '0'" in capsys.readouterr().err
