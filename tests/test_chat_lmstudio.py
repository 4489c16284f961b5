"""Code written against lmstudio-python's `Chat` runs on `agentkit.Chat` unchanged.

The same functions build a conversation on `lmstudio.Chat` and on `agentkit.Chat`; the LM Studio
protocol test server records what each SDK sends, and the histories must be equal. The rest
checks each lmstudio input shape, the file parts' round trips and other engines' handling of
them, and that bad input of the new shapes is a `ChatFormatError`.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import lmstudio as lms
import msgspec
import pytest
from lmstudio_server import Fragment, LMStudioTestServer, Step, ToolCallGen
from openai_fault_server import FaultServer, sse, text_stream

import agentkit as ak
from agentkit.chat import (
    AssistantMessage,
    Chat,
    FileHandle,
    Image,
    SystemMessage,
    ToolCall,
    ToolResultMessage,
)
from agentkit.engines.lmstudio import sdk
from agentkit.engines.lmstudio.engine import LMStudioEngine
from agentkit.engines.openai.engine import OpenAIEngine
from agentkit.errors import ChatFormatError, NotSupportedError
from agentkit.testing import Reply, ScriptedModel

PNG_URL = "data:image/png;base64,iVBORw0KGgo="
CAT = lms.FileHandle(name="cat.png", identifier="file-1", size_bytes=120, file_type="image")
CAT_DICT = {"type": "file", "name": "cat.png", "identifier": "file-1", "sizeBytes": 120,
            "fileType": "image"}  # fmt: skip
DOC = FileHandle(name="a.pdf", identifier="file-2", size_bytes=9, file_type="application/pdf")


@pytest.fixture
def anyio_backend() -> str:
    """The lmstudio SDK's async client is asyncio-only."""
    return "asyncio"


@pytest.fixture
def server() -> Iterator[LMStudioTestServer]:
    with LMStudioTestServer() as running:
        yield running


def request(name: str, call_id: str, **arguments: Any) -> lms.ToolCallRequest:
    return lms.ToolCallRequest(type="function", name=name, id=call_id, arguments=arguments)


# -- one piece of lmstudio code, run on both Chat classes ---------------------------------------


def lmstudio_code(chat_class: Any) -> Any:
    """lmstudio-python code as its users write it; must run on either Chat class."""
    chat = chat_class({"text": "You answer briefly."})
    chat.add_user_message("What is in this picture?", images=[CAT])
    chat.add_user_message(lms.TextData(text="And this one?"), images=[CAT_DICT])
    chat.add_assistant_response(
        lms.TextData(text="Let me look closer."),
        [
            request("zoom", "call_1", snake_key=2, nested={"inner_key": [1, None]}),
            {"type": "toolCallRequest", "toolCallRequest": {
                "type": "function", "name": "crop", "id": "call_2", "arguments": {"x": 0}}},
            # (lmstudio would rewrite a snake_case key of a dict request to camelCase; agentkit
            # sends arguments as given, so this one has none)
        ],
    )  # fmt: skip
    chat.add_tool_results(
        [
            lms.ToolCallResultData(content="a cat", tool_call_id="call_1"),
            {"toolCallId": "call_2", "content": "cropped"},
        ]
    )
    chat.add_assistant_response({"text": "A cat, twice."})
    chat.add_entry("user", ["Thanks", {"text": "!"}])
    chat.add_entry("assistant", [{"type": "text", "text": "Welcome."}])
    chat.add_user_message(["Last:", CAT, "what breed?"])
    copied = copy.copy(chat)
    copied.add_assistant_response("not in the original")
    clone = chat_class.from_history(chat)
    clone.add_assistant_response("nor this")
    return chat


def more_lmstudio_code(chat_class: Any, result: Any) -> Any:
    """The other half of lmstudio's builders: results, single tool results, append."""
    chat = chat_class.from_history(
        {
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": "hi"},
            ]
        }
    )
    chat.add_assistant_response(result)
    chat.add_user_message("use a tool")
    chat.add_assistant_response("", [request("f", "c9", a=1)])
    chat.add_tool_result({"toolCallId": "c9", "content": "one"})
    source = lms.Chat()
    for message in [
        source.add_user_message("from another chat"),
        source.add_assistant_response("appended", [request("g", "c10")]),
        source.add_tool_results([{"toolCallId": "c10", "content": "ten"}]),
        {"role": "user", "content": [{"type": "text", "text": "a dict"}]},
    ]:
        chat.append(message)
    return chat


async def sent_history(server: LMStudioTestServer, sdk_chat: Any, agentkit_chat: Chat) -> Any:
    """Sends both chats for a prediction and checks the server got the same history."""
    seen: list[Any] = []

    def record(param: dict[str, Any], _index: int) -> list[Step]:
        seen.append(param["history"])
        return [Fragment("ok")]

    server.responder = record
    async with lms.AsyncClient(server.host) as client:
        await (await client.llm.model("qwen-test")).respond(sdk_chat)
    async with ak.AsyncClient(engine=LMStudioEngine(server.host)) as client:
        await (await client.llm.model("qwen-test")).respond(agentkit_chat)
    assert len(seen) == 2
    assert seen[1] == seen[0]
    return seen[0]


@pytest.mark.anyio
async def test_lmstudio_code_runs_unchanged_and_sends_the_same_history(
    server: LMStudioTestServer,
) -> None:
    sdk_chat, agentkit_chat = lmstudio_code(lms.Chat), lmstudio_code(Chat)
    history = await sent_history(server, sdk_chat, agentkit_chat)
    roles = [message["role"] for message in history["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user", "assistant",
                     "user"]  # fmt: skip
    # snake_case argument keys survive (lmstudio's from_history(dict) would camelCase them)
    request_part = history["messages"][2]["content"][1]["toolCallRequest"]
    assert request_part["arguments"] == {"snake_key": 2, "nested": {"inner_key": [1, None]}}
    assert len(history["messages"][3]["content"]) == 2  # one tool message, two results
    assert len(agentkit_chat) == 12  # agentkit keeps one message per user turn and result


@pytest.mark.anyio
async def test_more_lmstudio_code_sends_the_same_history(server: LMStudioTestServer) -> None:
    server.responder = lambda _p, _i: [Fragment("Hello there.")]
    async with lms.AsyncClient(server.host) as client:
        sdk_result = await (await client.llm.model("qwen-test")).respond("hi")
    async with ak.AsyncClient(engine=LMStudioEngine(server.host)) as client:
        agentkit_result = await (await client.llm.model("qwen-test")).respond("hi")
    assert isinstance(sdk_result, lms.PredictionResult)
    sdk_chat = more_lmstudio_code(lms.Chat, sdk_result)
    for result in (sdk_result, agentkit_result):
        agentkit_chat = more_lmstudio_code(Chat, result)
        history = await sent_history(server, sdk_chat, agentkit_chat)
        assert history["messages"][2]["content"] == [{"type": "text", "text": "Hello there."}]


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def _tool_round(param: dict[str, Any], _index: int) -> list[Step]:
    if param["history"]["messages"][-1]["role"] == "tool":
        return [Fragment("Done.")]
    return [
        Fragment("Adding."),
        ToolCallGen("add", {"a": 2, "b": 3}, id="call_1"),
        ToolCallGen("add", {"a": 4, "b": 5}, id="call_2"),
    ]


@pytest.mark.anyio
async def test_a_tool_round_goes_as_lmstudio_act_sends_it(server: LMStudioTestServer) -> None:
    histories: list[Any] = []

    def record(param: dict[str, Any], index: int) -> list[Step]:
        histories.append(param["history"])
        return _tool_round(param, index)

    server.responder = record
    async with lms.AsyncClient(server.host) as client:
        model = await client.llm.model("qwen-test")
        await model.act(lms.Chat.from_history("add 2+3 and 4+5"), [add])
    async with ak.AsyncClient(engine=LMStudioEngine(server.host)) as client:
        model = await client.llm.model("qwen-test")
        await model.act("add 2+3 and 4+5", [add])
    sdk_round, agentkit_round = histories[1], histories[3]
    assert len(histories) == 4
    assert agentkit_round == sdk_round
    assert [part["content"] for part in agentkit_round["messages"][-1]["content"]] == ["5", "9"]


# -- each input shape ---------------------------------------------------------------------------


def test_results_of_either_library_are_assistant_responses() -> None:
    agentkit_result = ScriptedModel(["Paris."]).respond("capital of France?")
    chat = Chat()
    message = chat.add_assistant_response(agentkit_result)
    assert message == AssistantMessage(content="Paris.")
    called = ScriptedModel([Reply("", [ToolCall("f", {"a": 1}, "c1")])]).respond("q")
    assert chat.add_assistant_response(called).tool_calls == (ToolCall("f", {"a": 1}, "c1"),)
    assert (
        chat.add_assistant_response(AssistantMessage(content="x", reasoning="r")).reasoning == "r"
    )


@pytest.mark.parametrize(
    "prompt",
    ["rules", lms.TextData(text="rules"), {"text": "rules"}, {"type": "text", "text": "rules"},
     [{"text": "ru"}, lms.TextData(text="les")], ["rules"]],
)  # fmt: skip
def test_system_prompts_of_every_shape(prompt: Any) -> None:
    assert Chat(prompt).messages == (SystemMessage(content="rules"),)
    assert Chat().add_system_prompt(prompt) == SystemMessage(content="rules")
    assert Chat().add_entry("system", prompt) == SystemMessage(content="rules")


@pytest.mark.parametrize(
    "response",
    ["ok", lms.TextData(text="ok"), {"text": "ok"}, [{"type": "text", "text": "ok"}]],
)
def test_assistant_responses_of_every_shape(response: Any) -> None:
    assert Chat().add_assistant_response(response) == AssistantMessage(content="ok")


@pytest.mark.parametrize(
    "call",
    [
        request("f", "c1", a=1),
        lms.ToolCallRequest.from_dict({"type": "function", "name": "f", "id": "c1",
                                       "arguments": {"a": 1}}),
        {"type": "function", "name": "f", "id": "c1", "arguments": {"a": 1}},
        {"type": "toolCallRequest", "toolCallRequest": {"type": "function", "name": "f",
                                                        "id": "c1", "arguments": {"a": 1}}},
        {"tool_call_request": {"type": "function", "name": "f", "id": "c1", "arguments": {"a": 1}}},
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
        ToolCall("f", {"a": 1}, "c1"),
    ],
)  # fmt: skip
def test_tool_call_requests_of_every_shape(call: Any) -> None:
    message = Chat().add_assistant_response("calling", [call])
    assert message.tool_calls == (ToolCall("f", {"a": 1}, "c1"),)


def test_a_request_without_id_or_arguments_gets_an_id_and_no_arguments() -> None:
    message = Chat().add_assistant_response("", [lms.ToolCallRequest(type="function", name="f")])
    (call,) = message.tool_calls
    assert call.name == "f"
    assert call.arguments == {}
    assert call.id.startswith("call_")


@pytest.mark.parametrize(
    "image",
    [CAT, CAT_DICT, {"name": "cat.png", "identifier": "file-1", "size_bytes": 120,
                     "file_type": "image"},
     FileHandle(name="cat.png", identifier="file-1", size_bytes=120, file_type="image")],
)  # fmt: skip
def test_file_handles_as_images(image: Any) -> None:
    message = Chat().add_user_message("look", images=[image])
    assert message.files == (
        FileHandle(name="cat.png", identifier="file-1", size_bytes=120, file_type="image"),
    )
    assert message.images == ()


def test_file_handles_and_images_mix() -> None:
    message = Chat().add_user_message("look", images=[CAT, Image(url=PNG_URL)])
    assert (len(message.files), len(message.images)) == (1, 1)


def test_user_parts_keep_lmstudios_order_across_messages() -> None:
    chat = Chat()
    last = chat.add_user_message(["a", CAT, {"text": "b"}, DOC])
    assert [(m.content, len(m.files)) for m in chat] == [("a", 1), ("b", 1)]
    assert last is chat[-1]


def test_add_entry_takes_each_role() -> None:
    chat = Chat()
    chat.add_entry("system", "s")
    chat.add_entry("user", [lms.TextData(text="u"), CAT])
    chat.add_entry("assistant", ["", request("f", "c1"), request("g", "c2")])
    second = lms.ToolCallResultData(content="2", tool_call_id="c2")
    results = chat.add_entry("tool", [{"toolCallId": "c1", "content": "1"}, second])
    assert results == [
        ToolResultMessage(tool_call_id="c1", name="f", content="1"),
        ToolResultMessage(tool_call_id="c2", name="g", content="2"),
    ]
    assert chat.add_entry("tool", {"toolCallId": "c1", "content": "3"}) == [
        ToolResultMessage(tool_call_id="c1", name="f", content="3")
    ]
    assert [m.role for m in chat] == ["system", "user", "assistant", "tool", "tool", "tool"]
    with pytest.raises(ChatFormatError, match="unknown role 'robot'"):
        chat.add_entry("robot", "x")


def test_add_tool_result_takes_both_signatures() -> None:
    chat = Chat()
    chat.add_assistant_response("", [ToolCall("f", {}, "c1")])
    expected = ToolResultMessage(tool_call_id="c1", name="f", content="r")
    assert chat.add_tool_result("c1", "r") == expected
    assert chat.add_tool_result({"toolCallId": "c1", "content": "r"}) == expected
    assert chat.add_tool_result({"tool_call_id": "c1", "content": "r"}) == expected
    assert chat.add_tool_result(lms.ToolCallResultData(content="r", tool_call_id="c1")) == expected
    flagged = chat.add_tool_result({"toolCallId": "c1", "content": "r"}, is_error=True)
    assert flagged.is_error
    no_id = chat.add_tool_result(lms.ToolCallResultData(content="r"))
    assert (no_id.tool_call_id, no_id.name) == ("", "")


def test_copy_module_copies_do_not_share_messages() -> None:
    original = Chat("s")
    for clone in (copy.copy(original), copy.deepcopy(original)):
        clone.add_user_message("only in the clone")
        assert len(clone) == 2
    assert len(original) == 1


def test_from_history_takes_lmstudio_data() -> None:
    source = lmstudio_code(lms.Chat)
    expected = lmstudio_code(Chat)
    wire = sdk.chat_history(source)
    assert Chat.from_history(source) == expected
    assert Chat.from_history(wire) == expected
    # (not ChatHistoryData.from_dict, which camelCases the keys inside tool call arguments)
    assert Chat.from_history(msgspec.convert(wire, lms.ChatHistoryData)) == expected
    pairs = Chat.from_history([("system", "s"), ("user", ["u", CAT]), ("assistant", "a")])
    assert [m.role for m in pairs] == ["system", "user", "assistant"]
    assert pairs[1].files


def test_append_takes_lmstudio_messages_and_dicts() -> None:
    source = lms.Chat()
    chat = Chat()
    chat.append(source.add_system_prompt("s"))
    chat.append(source.add_user_message("u", images=[CAT]))
    chat.append(source.add_assistant_response("a", [request("f", "c1"), request("g", "c2")]))
    chat.append(source.add_tool_results([{"toolCallId": "c1", "content": "1"},
                                         {"toolCallId": "c2", "content": "2"}]))  # fmt: skip
    chat.append({"role": "tool", "content": [{"type": "toolCallResult", "content": "3"}]})
    assert [m.role for m in chat] == ["system", "user", "assistant", "tool", "tool", "tool"]
    assert chat[3] == ToolResultMessage(tool_call_id="c1", name="f", content="1")
    assert chat[5] == ToolResultMessage(tool_call_id="", content="3")
    with pytest.raises(ChatFormatError, match="holds 2 messages"):
        chat.replace(0, source.add_tool_results([{"toolCallId": "c1", "content": "1"}] * 2))


# -- file parts: round trips, and the engines that cannot take them ------------------------------


def test_file_parts_round_trip() -> None:
    chat = Chat()
    chat.add_user_message("read these", images=[CAT, Image(url=PNG_URL)])
    chat.add_user_message("", images=[DOC])
    assert chat.to_dict()["messages"][0]["content"][2] == CAT_DICT
    assert Chat.from_dict(chat.to_dict()) == chat
    assert Chat.from_json(chat.to_json()) == chat
    assert Chat.from_history(chat.to_dict()) == chat
    assert Chat.from_dict(json.loads(json.dumps([m.model_dump() for m in chat]))) == chat


@pytest.mark.anyio
async def test_lmstudio_refuses_images_it_cannot_send(server: LMStudioTestServer) -> None:
    chat = Chat()
    chat.add_user_message("look", images=[Image(url=PNG_URL)])
    async with ak.AsyncClient(engine=LMStudioEngine(server.host)) as client:
        model = await client.llm.model("qwen-test")
        with pytest.raises(NotSupportedError, match=r"message 0\): upload the image"):
            await model.respond(chat)


@pytest.mark.anyio
async def test_openai_servers_get_images_as_parts_and_refuse_files() -> None:
    with FaultServer() as server:
        server.script("/v1/chat/completions", sse(text_stream("seen")))
        chat = Chat()
        chat.add_user_message("what is it?", images=[Image(url=PNG_URL, detail="low")])
        async with ak.AsyncClient(engine=OpenAIEngine(server.url)) as client:
            model = await client.llm.model()
            assert (await model.respond(chat)).content == "seen"
            chat.add_user_message("and this?", images=[CAT])
            with pytest.raises(NotSupportedError, match=r"file handles \(message 1 attaches"):
                await model.respond(chat)
        (sent,) = server.posts("/v1/chat/completions")
    assert sent.body["messages"] == [
        {"role": "user", "content": [
            {"type": "text", "text": "what is it?"},
            {"type": "image_url", "image_url": {"url": PNG_URL, "detail": "low"}},
        ]}
    ]  # fmt: skip


# -- bad input of the new shapes ------------------------------------------------------------------


def _deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"k": value}
    return value


def _deep_lmstudio_chat() -> lms.Chat:
    chat = lms.Chat()
    chat.add_assistant_response("", [request("f", "c", deep=_deep(5000))])
    return chat


BAD: list[tuple[Callable[[Chat], object], str]] = [
    (lambda c: c.add_user_message(42), "content must be a string or a list"),
    (lambda c: c.add_user_message("x", images=[object()]), "an image must be"),
    (lambda c: c.add_user_message("x", images=[{"name": "a"}]), "image 0: a file"),
    (lambda c: c.add_user_message("x", images=[{**CAT_DICT, "sizeBytes": 10**500}]), "size_bytes"),
    (lambda c: c.add_user_message("x", images=[{**CAT_DICT, "fileType": "video"}]), "file_type"),
    (lambda c: c.add_user_message([{"type": "audio"}]), "part 0 is not supported"),
    (lambda c: c.add_user_message([[["nested"]]]), "part 0 is not supported"),
    (lambda c: c.add_system_prompt(CAT), "a system prompt is text, got a 'file' part"),
    (lambda c: c.add_system_prompt({"text": 3}), "needs a 'text' string"),
    (lambda c: c.add_assistant_response(CAT), "assistant messages hold no files"),
    (lambda c: c.add_assistant_response(3.5), "got a float"),
    (lambda c: c.add_assistant_response("x", request("f", "c")), "tool calls must be a list"),
    (lambda c: c.add_assistant_response("x", [{"name": 5}]), "function name string"),
    (lambda c: c.add_assistant_response("x", [request("f", "c", deep=_deep(5000))]), "cannot read"),
    (lambda c: c.add_assistant_response("x", [{"name": "f", "arguments": _deep(500)}]), "deeper"),
    (lambda c: c.add_assistant_response("x", [{"name": "f", "id": 7}]), "tool call 0: id"),
    (lambda c: c.add_tool_result(42), "expected a ToolResultMessage"),
    (lambda c: c.add_tool_result("c1", None), "content must be a string"),
    (lambda c: c.add_tool_result("c1"), "content must be a string"),
    (lambda c: c.add_tool_result({"toolCallId": "c", "content": "x"}, "y"), "either"),
    (lambda c: c.add_tool_result({"type": "toolCallResult", "content": 5}), "'content' string"),
    (lambda c: c.add_tool_results({"toolCallId": "c", "content": "x"}), "must be a list"),
    (lambda c: c.add_entry("tool", 5), "must be a list"),
    (lambda c: c.add_entry(["user"], "x"), "unknown role"),
    (lambda c: c.append({"role": "tool", "content": [{"type": "text", "text": "x"}]}), "part 0"),
    (lambda c: c.append(lms.Chat()), "expected a message model or a dict, got Chat"),
    (lambda c: Chat.from_history(lms.TextData(text="x")), 'the dict has no "messages"'),
    (lambda c: Chat.from_history([("user", 5)]), "content must be"),
    (lambda c: Chat.from_history(_deep_lmstudio_chat()), "cannot read the lmstudio Chat"),
]


@pytest.mark.parametrize(("bad", "expected"), BAD)
def test_bad_lmstudio_shapes_raise_chat_format_error(
    bad: Callable[[Chat], object], expected: str
) -> None:
    chat = Chat("s")
    with pytest.raises(ChatFormatError, match=expected.replace("(", r"\(")):
        bad(chat)
    assert len(chat) == 1


def test_the_local_engine_refuses_file_handles() -> None:
    chat = Chat()
    chat.add_user_message("what is in the file?", images=[DOC])
    with ak.Client() as client:
        model = client.llm.model()
        with pytest.raises(NotSupportedError, match=r"llama_cpp engine .* 'a\.pdf'"):
            model.respond(chat)


def test_reading_lmstudio_shapes_does_not_import_lmstudio() -> None:
    code = (
        "import sys, agentkit as ak\n"
        f"history = {{'messages': [{{'role': 'user', 'content': [{CAT_DICT!r}]}}]}}\n"
        "chat = ak.Chat.from_history(history)\n"
        "chat.add_entry('assistant', ['', {'type': 'function', 'name': 'f', 'id': 'c'}])\n"
        "chat.add_tool_result({'toolCallId': 'c', 'content': 'r'})\n"
        "print(len(chat), 'lmstudio' in sys.modules)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert output.stdout.split() == ["3", "False"]
