"""Record and replay: runs replay without inference and fail loudly on what was not recorded."""

from __future__ import annotations

import json
import re
import threading
import warnings
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import BaseModel

import agentkit as ak
from agentkit.engines.base import PredictionRequest
from agentkit.errors import EngineError, ModelNotFoundError
from agentkit.testing import Malformed, Reply, ScriptedEngine, ToolCall, user_text
from agentkit.tracing.replay.engines import (
    AsyncReplayModel,
    RecordingEngine,
    RecordingFormatError,
    ReplayEngine,
    ReplayMissError,
    ReplayModel,
)


class Multiplier:
    """A multiply tool that counts its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def multiply(self, a: int, b: int) -> int:
        """Multiply two integers."""
        self.calls.append((a, b))
        return a * b


def arithmetic(chat: ak.Chat, index: int, request: PredictionRequest) -> Any:
    """Asks for multiply(a, b) for 'What is A times B?', then answers with the tool's result."""
    last = request.messages[-1]
    if isinstance(last, ak.ToolResultMessage):
        return Reply(f"The answer is {last.content}.", reasoning="The tool said so.")
    words = user_text(request).rstrip("?").split()
    a, b = int(words[2]), int(words[4])
    return [ToolCall("multiply", {"a": a, "b": b})]


def new_chat(question: str = "What is 6 times 7?") -> ak.Chat:
    chat = ak.Chat("You are a calculator.")
    chat.add_user_message(question)
    return chat


def record_act(path: Path, question: str = "What is 6 times 7?") -> tuple[ak.Chat, ak.ActResult]:
    chat = new_chat(question)
    with ak.Client(engine=RecordingEngine(ScriptedEngine(arithmetic), path)) as client:
        result = client.llm.model().act(chat, [Multiplier().multiply], on_message=chat.append)
    return chat, result


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_an_act_run_with_tools_replays_identically(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    recorded_chat, recorded = record_act(path)
    assert [r["type"] for r in records(path)] == ["prediction", "prediction"]
    assert records(path)[0]["events"][-2]["name"] == "multiply"

    tool = Multiplier()
    chat = new_chat()
    engine = ReplayEngine(path)
    with ak.Client(engine=engine) as client:
        model = client.llm.model()
        assert model.model_key == "scripted-model"
        result = model.act(chat, [tool.multiply], on_message=chat.append)

    assert tool.calls == [(6, 7)]  # tools run for real; only predictions are replayed
    assert chat.to_dict() == recorded_chat.to_dict()  # recorded tool call ids included
    assert result.final is not None and recorded.final is not None
    assert result.final.text == recorded.final.text == "The answer is 42."
    assert result.final.reasoning == "The tool said so."
    assert (result.rounds, result.usage, result.stop_reason) == (
        recorded.rounds,
        recorded.usage,
        recorded.stop_reason,
    )
    assert engine.unserved == []


def test_a_changed_prompt_is_a_miss_that_says_what_was_asked(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    record_act(path)
    with ak.Client(engine=ReplayEngine(path)) as client:
        model = client.llm.model()
        with pytest.raises(ReplayMissError) as caught:
            model.act(new_chat("What is 6 times 8?"), [Multiplier().multiply])
    message = str(caught.value)
    assert isinstance(caught.value, EngineError)
    assert message.startswith(
        "no recording matches the request (round 0, model 'scripted-model') that asks "
        "user 'What is 6 times 8?'. "
    )
    assert "holds 2 recorded prediction(s)" in message
    assert "closest (line 1) differs at message 1: recorded user 'What is 6 times 7?'" in message


def test_a_miss_after_tool_results_shows_them_and_the_closest_recording(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    record_act(path)

    def wrong_multiply(a: int, b: int) -> int:
        """Multiply two integers."""  # but wrongly
        return a * b + 1

    wrong_multiply.__name__ = "multiply"
    with ak.Client(engine=ReplayEngine(path)) as client, pytest.raises(ReplayMissError) as caught:
        client.llm.model().act(new_chat(), [wrong_multiply])
    message = str(caught.value)
    assert "tool result of multiply '43' (after user 'What is 6 times 7?')" in message
    assert "(round 1, model 'scripted-model')" in message
    assert "differs at message 3: recorded tool result of multiply '42'" in message


def test_changed_tools_config_and_model_are_named_in_the_miss(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    record_act(path)

    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    with ak.Client(engine=ReplayEngine(path)) as client:
        model = client.llm.model()
        with pytest.raises(ReplayMissError, match=r"offered tools \['multiply'\], this request"):
            model.act(new_chat(), [Multiplier().multiply, add])
        with pytest.raises(
            ReplayMissError,
            match=re.escape("""differs in config: recorded '{}', asked '{"temperature":0.5}'"""),
        ):
            model.act(new_chat(), [Multiplier().multiply], config={"temperature": 0.5})
        with pytest.raises(ModelNotFoundError, match="recorded models: 'scripted-model'"):
            client.llm.model("another-model")


def test_tool_call_ids_in_the_history_do_not_affect_matching(tmp_path: Path) -> None:
    def history() -> ak.Chat:  # fresh random tool call ids on every call
        chat = new_chat("What is 2 times 3?")
        call = ToolCall("multiply", {"a": 2, "b": 3})
        chat.add_assistant_response("", tool_calls=[call])
        chat.add_tool_result(call.id, "6")
        return chat

    path = tmp_path / "run.jsonl"
    first, second = history(), history()
    assert first.to_dict() != second.to_dict()
    with ak.Client(engine=RecordingEngine(ScriptedEngine(["It is 6."]), path)) as client:
        client.llm.model().respond(first)
    with ak.Client(engine=ReplayEngine(path)) as client:
        assert client.llm.model().respond(second).content == "It is 6."


def test_identical_requests_are_served_in_recording_order(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    with ak.Client(engine=RecordingEngine(ScriptedEngine(["one", "two", "three"]), path)) as c:
        model = c.llm.model()
        assert [model.respond("q").content for _ in range(3)] == ["one", "two", "three"]

    replay = ReplayModel(path)
    assert [replay.respond("q").content for _ in range(3)] == ["one", "two", "three"]
    with pytest.raises(
        ReplayMissError,
        match=r"has been served: it was recorded 3 time\(s\) .*\(line\(s\) 1, 2, 3\)",
    ):
        replay.respond("q")

    repeating = ReplayModel(path, allow_repeats=True)
    assert [repeating.respond("q").content for _ in range(4)] == ["one", "two", "three", "three"]


@pytest.mark.anyio
async def test_concurrent_runs_record_and_replay(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    questions = [f"What is {n} times {n + 1}?" for n in range(1, 7)]
    recorded: dict[str, str] = {}
    engine = RecordingEngine(ScriptedEngine(arithmetic, delay=0.01), path)

    async def run(model: ak.AsyncLLM, question: str, into: dict[str, str]) -> None:
        result = await model.act(new_chat(question), [Multiplier().multiply])
        assert result.final is not None
        into[question] = result.final.text

    async with ak.AsyncClient(engine=engine) as client:
        model = await client.llm.model()
        async with anyio.create_task_group() as group:
            for question in questions:
                group.start_soon(run, model, question, recorded)
    lines = records(path)
    assert len(lines) == 2 * len(questions)
    # Whole lines from concurrent writers, one per prediction; which run's round 1 lands
    # before another's round 0 is up to the scheduler (a loaded machine reorders them).
    assert sorted(line["request"]["round_index"] for line in lines) == [0] * 6 + [1] * 6

    replayed: dict[str, str] = {}
    replay = AsyncReplayModel(path)
    async with anyio.create_task_group() as group:
        for question in reversed(questions):
            group.start_soon(run, replay, question, replayed)
    assert replayed == recorded
    assert recorded["What is 3 times 4?"] == "The answer is 12."
    assert replay.engine.unserved == []


def test_threads_recording_long_predictions_to_one_file_write_whole_lines(
    tmp_path: Path,
) -> None:
    path = tmp_path / "run.jsonl"

    def essay(chat: ak.Chat, index: int) -> str:  # thousands of events: lines of ~100 kB
        topic = chat.messages[-1].content
        return " ".join(f"{topic}-{n}" for n in range(2000))

    def worker(topics: list[str]) -> None:
        with ak.Client(engine=RecordingEngine(ScriptedEngine(essay), path)) as client:
            model = client.llm.model()
            for topic in topics:
                model.respond(topic)

    topics = [[f"t{worker}.{n}" for n in range(5)] for worker in range(4)]
    threads = [threading.Thread(target=worker, args=(batch,)) for batch in topics]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(records(path)) == 20
    model = ReplayModel(path)
    for topic in ("t0.0", "t3.4", "t2.2"):
        assert model.respond(topic).content.split()[1999] == f"{topic}-1999"
    assert len(model.engine.unserved) == 17


def test_streamed_fragments_and_progress_replay(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    reply = Reply("Four score and seven", reasoning="Counting up")

    def respond(engine: ak.Client) -> tuple[list[tuple[str, bool, int]], list[float], str]:
        fragments: list[tuple[str, bool, int]] = []
        progress: list[float] = []
        result = engine.llm.model().respond(
            "Recite",
            on_prediction_fragment=lambda f, i: fragments.append((f.content, f.reasoning, i)),
            on_prompt_processing_progress=lambda p, i: progress.append(p),
        )
        return fragments, progress, result.content

    with ak.Client(engine=RecordingEngine(ScriptedEngine([reply]), path)) as client:
        recorded = respond(client)
    with ak.Client(engine=ReplayEngine(path)) as client:
        replayed = respond(client)
    assert replayed == recorded
    assert recorded[0][:3] == [("Counting ", True, 0), ("up", True, 0), ("Four ", False, 0)]
    assert recorded[1] == [0.0, 1.0]

    stream = ReplayModel(path).respond_stream("Recite")
    assert [f.content for f in stream if not f.reasoning] == ["Four ", "score ", "and ", "seven"]
    assert stream.result().message.reasoning == "Counting up"


class Answer(BaseModel):
    value: int
    unit: str


def test_structured_output_replays(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    script = ['{"value": 42, "unit": "m"}', '{"value": 7, "unit": "s"}']
    with ak.Client(engine=RecordingEngine(ScriptedEngine(script), path)) as client:
        model = client.llm.model()
        model.respond("How far?", response_format=Answer)
        model.act("How long?", response_format=Answer)
    assert records(path)[0]["request"]["response_format"]["name"] == "Answer"

    replay = ReplayModel(path)
    assert replay.respond("How far?", response_format=Answer).parsed == Answer(value=42, unit="m")
    assert replay.act("How long?", response_format=Answer).parsed == Answer(value=7, unit="s")
    with pytest.raises(ReplayMissError, match="differs in response_format"):
        replay.respond("How far?", response_format={"type": "object", "title": "Answer"})


def test_raw_completions_replay(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    with ak.Client(engine=RecordingEngine(ScriptedEngine(["upon a time"]), path)) as client:
        client.llm.model().complete("Once")
    assert ReplayModel(path).complete("Once").content == "upon a time"
    with pytest.raises(ReplayMissError, match="prompt 'Twice'"):
        ReplayModel(path).complete("Twice")


def test_malformed_tool_calls_replay(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    script: list[Any] = [[Malformed("{oops", "not JSON")], "sorry"]
    with ak.Client(engine=RecordingEngine(ScriptedEngine(script), path)) as client:
        recorded = client.llm.model().act("q", [Multiplier().multiply])
    replayed = ReplayModel(path).act("q", [Multiplier().multiply])
    assert [m.content for m in replayed.messages] == [m.content for m in recorded.messages]
    assert replayed.messages[1].role == "user" and "not JSON" in replayed.messages[1].content


def test_failed_and_cancelled_predictions_are_not_recorded(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    script: list[Any] = [
        RuntimeError("engine down"),
        Reply("a b c d e f", fragment_delay=0.01),
        "fine",
    ]
    with ak.Client(engine=RecordingEngine(ScriptedEngine(script), path)) as client:
        model = client.llm.model()
        with pytest.raises(RuntimeError, match="engine down"):
            model.respond("first")
        stream = model.respond_stream("second")
        next(stream)
        stream.cancel()
        assert stream.result().finish_reason == "cancelled"
        model.respond("third")
    assert [r["request"]["messages"][0]["content"] for r in records(path)] == ["third"]


def test_embeddings_tokens_and_model_metadata_replay(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    with ak.Client(engine=RecordingEngine(ScriptedEngine(["x"]), path)) as client:
        embedder = client.embedding.model()
        vectors = embedder.embed(["apple", "banana"])
        llm = client.llm.model(config={"context_length": 4096})
        tokens = llm.tokenize("one two one")
        length = llm.get_context_length()
        info = llm.get_info()
        llm.get_info()  # recorded once
    assert [r["method"] for r in records(path)] == [
        "embed",
        "tokenize",
        "get_context_length",
        "get_info",
    ]

    with ak.Client(engine=ReplayEngine(path)) as client:
        embedder = client.embedding.model()
        assert embedder.embed(["banana"]) == vectors[1:]
        assert embedder.embed(["apple", "banana"]) == vectors
        with pytest.raises(ReplayMissError, match="no embedding of 'cherry'"):
            embedder.embed(["apple", "cherry"])
        llm = client.llm.model()
        assert llm.tokenize("one two one") == tokens == [0, 1, 0]
        assert llm.count_tokens("one two one") == 3
        assert llm.get_context_length() == length == 4096
        assert llm.get_info() == info
        with pytest.raises(ReplayMissError, match="no tokenization of 'two'"):
            llm.tokenize("two")


def test_an_empty_recording_has_no_model_to_replay(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    with ak.Client(engine=ReplayEngine(path)) as client, pytest.raises(ModelNotFoundError):
        client.llm.model()


GOOD: dict[str, Any] = {
    "type": "prediction",
    "model_key": "m",
    "request": {"messages": [{"role": "user", "content": "hi"}], "tools": [], "config": {}},
    "events": [
        {"type": "text", "text": "hello"},
        {
            "type": "done",
            "usage": {"prompt_tokens": 1, "completion_tokens": 1},
            "finish_reason": "stop",
        },
    ],
}


def with_event(event: dict[str, Any]) -> dict[str, Any]:
    return {**GOOD, "events": [event, *GOOD["events"]]}


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "a record must be a JSON object"),
        (json.dumps({**GOOD, "type": "photo"}), "unknown record type 'photo'"),
        (json.dumps({**GOOD, "model_key": None}), "'model_key' must be a string, got 'null'"),
        (json.dumps(with_event({"type": "sparkle"})), "unknown event type 'sparkle'"),
        (json.dumps(with_event({"type": "text"})), "'text' must be a string"),
        (json.dumps({**GOOD, "events": GOOD["events"][:1]}), "must end with one 'done' event"),
        (
            json.dumps({**GOOD, "request": {**GOOD["request"], "messages": [{"role": "robot"}]}}),
            "message 0: unknown role 'robot'",
        ),
        (
            json.dumps({"type": "call", "method": "dance", "model_key": "m", "args": {}}),
            "unknown recorded method 'dance'",
        ),
    ],
)
def test_malformed_lines_name_the_file_and_line(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(f"{json.dumps(GOOD)}\n{line}\n{json.dumps(GOOD)}\n", encoding="utf-8")
    with pytest.raises(RecordingFormatError) as caught:
        ReplayEngine(path)
    assert str(caught.value).startswith(f"{path}:2: ")
    assert problem in str(caught.value)
    assert caught.value.line == 2


def test_a_truncated_final_line_is_skipped_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "crashed.jsonl"
    good = json.dumps(GOOD)
    path.write_text(f"{good}\n{good[:40]}", encoding="utf-8")
    with pytest.warns(RuntimeWarning, match=r"crashed.jsonl:2: skipped an incomplete final"):
        model = ReplayModel(path)
    assert model.respond("hi").content == "hello"
    assert model.engine.unserved == []


@pytest.mark.parametrize("earlier", [1, 0])
@pytest.mark.parametrize("cut", [40, 200_000])
def test_recording_again_after_a_crash_drops_the_truncated_line(
    tmp_path: Path, earlier: int, cut: int
) -> None:
    path = tmp_path / "crashed.jsonl"
    long = {**GOOD, "events": [{"type": "text", "text": "x" * 300_000}, GOOD["events"][-1]]}
    path.write_text(f"{json.dumps(GOOD)}\n" * earlier + json.dumps(long)[:cut], encoding="utf-8")
    with pytest.warns(RuntimeWarning, match=f"removed an incomplete final line \\({cut} bytes"):
        engine = RecordingEngine(ScriptedEngine(["bye"], model_key="m"), path)
    with ak.Client(engine=engine) as client:
        client.llm.model().respond("later")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the file is whole again
        model = ReplayModel(path)
    assert model.respond("later").content == "bye"
    assert len(model.engine.unserved) == earlier


def test_a_final_line_missing_only_its_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "hand-written.jsonl"
    path.write_text(json.dumps(GOOD), encoding="utf-8")
    assert ReplayModel(path).respond("hi").content == "hello"
    with ak.Client(engine=RecordingEngine(ScriptedEngine(["bye"], model_key="m"), path)) as c:
        c.llm.model().respond("later")
    assert len(records(path)) == 2


@pytest.mark.anyio
async def test_async_replay_model_acts_with_tools(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    async with ak.AsyncClient(engine=RecordingEngine(ScriptedEngine(arithmetic), path)) as client:
        recorded = await (await client.llm.model()).act(new_chat(), [Multiplier().multiply])
    tool = Multiplier()
    result = await AsyncReplayModel(path).act(new_chat(), [tool.multiply])
    assert result.final is not None and result.final.text == "The answer is 42."
    assert tool.calls == [(6, 7)]
    assert [m.model_dump() for m in result.messages] == [m.model_dump() for m in recorded.messages]
