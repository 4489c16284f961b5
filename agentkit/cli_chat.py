"""`agentkit chat`: an interactive terminal chat with tools, on any engine.

`ChatSession` is the REPL. It streams each reply as it is generated, shows tool calls and their
results as they come, keeps the history, and takes slash commands (/help lists them). Ctrl-C
while a reply is generated cancels that act() run through its `CancelToken`: the turn (the
user's message included) is dropped, so the history never holds half a round and the session
goes on. At the prompt, a second Ctrl-C in a row or Ctrl-D ends the session.

Input and output are injectable (`ChatIO`), and `open_model` takes `scripted:module:attr` for a
scripted model (`agentkit.testing`), so a chat can be driven without a terminal or inference.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import agentkit as ak
from agentkit.errors import ActCancelled, AgentkitError, ChatFormatError, ConfigurationError
from agentkit.results import PredictionFragment
from agentkit.tools.tool import render_result
from agentkit.tools.toolset import ToolLike, Toolset

__all__ = ["ChatIO", "ChatSession", "LoadedModel", "open_model", "terminal_io"]

SCRIPTED_PREFIX = "scripted:"
_URL_SCHEMES = ("lmstudio://", "ws://", "wss://", "http://", "https://")
_MAX_CHAT_FILE_BYTES = 64 * 1024 * 1024  # a chat file is untrusted: read a bounded amount

HELP = """\
commands:
  /help          this list
  /reset         start over (keeps the system prompt)
  /save FILE     write the conversation as JSON
  /load FILE     continue a conversation saved with /save
  /model         show the model; /model KEY|PATH|URL|scripted:module:attr switches
  /tools         list the tools the model may call
  /exit          end the session (or Ctrl-D)
Ctrl-C stops a reply; at the prompt, Ctrl-C twice or Ctrl-D exits."""


@dataclass(slots=True)
class ChatIO:
    """Where the session reads lines and writes text.

    `read(prompt)` returns a line without its newline, raising EOFError at end of input and
    KeyboardInterrupt on Ctrl-C (as `input()` does). `write(text)` shows text as it comes.
    """

    read: Callable[[str], str]
    write: Callable[[str], None]


def terminal_io() -> ChatIO:
    """`input()` (with line editing and history through readline when available) and stdout."""
    if sys.stdin.isatty():
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  # importing it gives input() line editing

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    return ChatIO(input, write)


@dataclass(slots=True)
class LoadedModel:
    """A model the session talks to, with the client that owns it (None for scripted models)."""

    llm: ak.LLM
    url: str | None = None
    load_seconds: float = 0.0
    client: ak.Client | None = None

    @property
    def description(self) -> str:
        """`KEY on the ENGINE engine`."""
        return f"{self.llm.model_key} on the {self.llm.engine.provider_name} engine"

    def close(self) -> None:
        """Close the client (which unloads what it loaded on the local engine)."""
        if self.client is not None:
            self.client.close()


def open_model(spec: str | None, url: str | None = None) -> LoadedModel:
    """Load the model `spec` names, timing the load.

    `spec` is a model key or GGUF path (on the engine of `url`, the local engine when None), an
    engine URL (that engine's default model), or `scripted:module:attr` where attr is a
    scripted responder (see `agentkit.testing`) or a model handle.
    """
    if spec is not None and spec.startswith(SCRIPTED_PREFIX):
        return LoadedModel(_scripted_model(spec[len(SCRIPTED_PREFIX) :]))
    if spec is not None and spec.startswith(_URL_SCHEMES):
        url, spec = spec, None
    client = ak.Client(url)
    try:
        started = time.perf_counter()
        llm = client.llm.model(spec)
        return LoadedModel(llm, url, time.perf_counter() - started, client)
    except BaseException:
        client.close()
        raise


def _scripted_model(spec: str) -> ak.LLM:
    from agentkit.cli import import_spec
    from agentkit.testing import ScriptedModel

    found = import_spec(spec, "--model scripted:")
    if isinstance(found, ak.LLM):
        return found
    try:
        return ScriptedModel(found, model_key=spec.rpartition(":")[2])  # type: ignore[arg-type]
    except ConfigurationError as error:
        raise ConfigurationError(f"--model scripted:{spec}: {error}") from None


@dataclass(slots=True)
class _TurnPrinter:
    """Prints one turn as it happens: streamed text, tool calls, results, feedback."""

    write: Callable[[str], None]
    at_line_start: bool = True
    streaming: str | None = None  # "text" or "reasoning" while a round streams

    def out(self, text: str) -> None:
        if text:
            self.write(text)
            self.at_line_start = text.endswith("\n")

    def line(self, text: str) -> None:
        """A line of its own, after whatever was streamed."""
        self.end_stream()
        self.out(text + "\n")

    def end_stream(self) -> None:
        if not self.at_line_start:
            self.out("\n")
        self.streaming = None

    def fragment(self, fragment: PredictionFragment, _round: int) -> None:
        kind = "reasoning" if fragment.reasoning else "text"
        if kind != self.streaming:
            self.end_stream()
            self.streaming = kind
            if kind == "reasoning":
                self.out("(thinking) ")
        self.out(fragment.content)

    def round_start(self, index: int) -> None:
        self.end_stream()

    def prediction_completed(self, prediction: ak.PredictionResult) -> None:
        # Calls show when the model asks for them; their results once the round's tools ran.
        for call in prediction.tool_calls:
            self.line(f"  tool call   {call.name}({render_result(call.arguments)})")

    def message(self, message: ak.Message) -> None:
        if isinstance(message, ak.ToolResultMessage):
            marker = "error" if message.is_error else "result"
            self.line(f"  tool {marker:<6} {message.content}")
        elif isinstance(message, ak.UserMessage):  # feedback on output that did not parse
            self.line(f"  feedback    {message.content}")


@dataclass
class ChatSession:
    """An interactive chat: `run()` reads lines until the user leaves.

    Args:
        model: the model to talk to (closed when the session ends or switches model).
        tools: what the model may call.
        io: where lines come from and text goes (`terminal_io()` for a terminal).
        system: the system prompt, kept across /reset.
        config: prediction config for every round.
        max_rounds: prediction rounds per turn; the last one is offered no tools.
        load_model: how /model opens a model (`open_model` by default).
    """

    model: LoadedModel
    tools: Sequence[ToolLike]
    io: ChatIO
    system: str | None = None
    config: ak.PredictionConfig | None = None
    max_rounds: int = 6
    load_model: Callable[[str | None, str | None], LoadedModel] = open_model
    chat: ak.Chat = field(init=False)
    _token: ak.CancelToken | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.chat = ak.Chat(self.system)

    def run(self) -> int:
        """The read-eval-print loop; returns the exit code (0) when the user leaves."""
        write = self.io.write
        write(f"agentkit chat: {self.model.description}{self._load_note(self.model)}\n")
        write(f"tools: {self._tool_names()}. /help for commands, Ctrl-D to exit.\n")
        interrupted = False
        try:
            while True:
                try:
                    line = self.io.read("> ")
                except EOFError:
                    write("\n")
                    return 0
                except KeyboardInterrupt:
                    if interrupted:
                        write("\n")
                        return 0
                    interrupted = True
                    write("\n(Ctrl-C again or Ctrl-D to exit)\n")
                    continue
                interrupted = False
                try:
                    if not self.handle(line):
                        return 0
                except KeyboardInterrupt:  # landed outside a reply (a /model load, say)
                    write("\n[interrupted]\n")
        finally:
            self.model.close()

    def handle(self, line: str) -> bool:
        """Act on one input line; False when the session should end."""
        text = line.strip()
        if not text:
            return True
        if text.startswith("/"):
            command, _, argument = text.partition(" ")
            return self._command(command, argument.strip())
        self.send(text)
        return True

    def send(self, text: str) -> ak.ActResult | None:
        """One turn: the user's message, act() with streaming, and the history updated.

        A stopped or failed turn leaves the history as it was before the message.
        """
        printer = _TurnPrinter(self.io.write)
        turn = self.chat.copy()
        turn.add_user_message(text)
        self._token = ak.CancelToken()
        try:
            with _sigint_cancels(self._token):
                result = self.model.llm.act(
                    turn,
                    self.tools,
                    max_prediction_rounds=self.max_rounds,
                    config=self.config,
                    on_round_start=printer.round_start,
                    on_prediction_fragment=printer.fragment,
                    on_prediction_completed=printer.prediction_completed,
                    on_message=printer.message,
                    cancel_token=self._token,
                )
        except (ActCancelled, KeyboardInterrupt):
            printer.line("[stopped; this turn is not kept]")
            return None
        except AgentkitError as error:
            printer.line(f"[error: {error}; this turn is not kept]")
            return None
        finally:
            self._token = None
        for message in result.messages:
            turn.append(message)
        self.chat = turn
        usage = result.usage
        printer.line(
            f"  ({result.rounds} round{'s' if result.rounds != 1 else ''}, "
            f"{result.total_time_seconds:.2f} s, {usage.prompt_tokens} prompt + "
            f"{usage.completion_tokens} completion tokens)"
        )
        return result

    def stop(self) -> None:
        """Stop the reply being generated (from any thread), as Ctrl-C does."""
        token = self._token
        if token is not None:
            token.cancel()

    # -- commands ---------------------------------------------------------------------------

    def _command(self, command: str, argument: str) -> bool:
        write = self.io.write
        if command in ("/exit", "/quit"):
            return False
        if command == "/help":
            write(HELP + "\n")
        elif command == "/reset":
            self.chat = ak.Chat(self.system)
            write("[history cleared]\n")
        elif command == "/save":
            self._save(argument)
        elif command == "/load":
            self._load(argument)
        elif command == "/model":
            self._switch_model(argument)
        elif command == "/tools":
            write(f"tools: {self._tool_names()}\n")
        else:
            write(f"unknown command {command}; /help lists the commands\n")
        return True

    def _save(self, path: str) -> None:
        if not path:
            self.io.write("/save takes a file name\n")
            return
        try:
            Path(path).write_text(self.chat.to_json(indent=2), encoding="utf-8")
        except OSError as error:
            self.io.write(f"cannot save to {path}: {error.strerror or error}\n")
            return
        self.io.write(f"[saved {len(self.chat)} messages to {path}]\n")

    def _load(self, path: str) -> None:
        if not path:
            self.io.write("/load takes a file name\n")
            return
        try:
            with open(path, "rb") as file:
                data = file.read(_MAX_CHAT_FILE_BYTES + 1)
            if len(data) > _MAX_CHAT_FILE_BYTES:
                raise ChatFormatError(f"the file is over {_MAX_CHAT_FILE_BYTES} bytes")
            chat = ak.Chat.from_json(data)
        except OSError as error:
            self.io.write(f"cannot load {path}: {error.strerror or error}\n")
            return
        except ChatFormatError as error:
            self.io.write(f"cannot load {path}: not a saved chat ({error})\n")
            return
        self.chat = chat
        self.io.write(f"[loaded {len(chat)} messages from {path}]\n")

    def _switch_model(self, spec: str) -> None:
        if not spec:
            self.io.write(f"model: {self.model.description}\n")
            return
        self.io.write(f"loading {spec} ...\n")
        try:
            loaded = self.load_model(spec, self.model.url)
        except AgentkitError as error:
            self.io.write(f"cannot load {spec}: {error}; still on {self.model.description}\n")
            return
        self.model.close()
        self.model = loaded
        self.io.write(f"model: {loaded.description}{self._load_note(loaded)}\n")

    def _tool_names(self) -> str:
        return ", ".join(Toolset(self.tools).names) or "none"

    @staticmethod
    def _load_note(model: LoadedModel) -> str:
        return f" (loaded in {model.load_seconds:.2f} s)" if model.client is not None else ""


@contextlib.contextmanager
def _sigint_cancels(token: ak.CancelToken) -> Iterator[None]:
    """While inside, Ctrl-C cancels the token; a second Ctrl-C raises KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers; Ctrl-C stays KeyboardInterrupt
        return

    def cancel(_signum: int, _frame: FrameType | None) -> None:
        if token.cancelled:  # the run has not stopped yet: stop waiting for it
            raise KeyboardInterrupt
        token.cancel()

    previous = signal.signal(signal.SIGINT, cancel)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
