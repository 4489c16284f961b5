"""Tests for agentkit.chat: messages, the Chat container, and OpenAI-style conversion."""

from __future__ import annotations

import base64
import json
import random
import re
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from pydantic import ValidationError

from agentkit.chat import (
    AssistantMessage,
    Chat,
    Image,
    SystemMessage,
    ToolCall,
    ToolResultMessage,
    UserMessage,
    new_call_id,
)
from agentkit.errors import AgentkitError, ChatFormatError
from agentkit.untrusted import UntrustedDataError

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
GIF87 = b"GIF87a\x01\x00\x01\x00"
GIF89 = b"GIF89a\x01\x00\x01\x00"
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8 "
UNKNOWN = b"\x00\x01\x02\x03 definitely not an image"

DATA_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()


def data_url_parts(url: str) -> tuple[str, bytes]:
    match = re.fullmatch(r"data:([^;]+);base64,(.*)", url)
    assert match is not None, url
    return match.group(1), base64.b64decode(match.group(2))


def full_chat() -> Chat:
    """A chat holding every kind of message and every optional field."""
    chat = Chat("You are helpful. ünïcödé ✓")
    chat.add_user_message("Look at these", images=[PNG, Image(url=DATA_URL, detail="low")])
    chat.add_assistant_response(
        "Let me check.",
        [
            ToolCall(
                "lookup", {"query": "weather", "days": 3, "nested": {"a": [1, 2.5, None]}}, "c1"
            ),
            ToolCall("broken", '{"unterminated": ', "c2"),
            ToolCall("listy", "[1, 2]", "c3"),
        ],
        reasoning="The user wants weather.",
    )
    chat.add_tool_result("c1", "sunny", name="lookup")
    chat.add_tool_result("c2", "bad arguments", is_error=True)
    chat.append(ToolResultMessage(tool_call_id="c3", name="", content=""))
    chat.add_assistant_response("", reasoning="")
    chat.add_user_message("")
    chat.add_assistant_response("It is sunny.")
    return chat


# -- builders ----------------------------------------------------------------------------------


def test_new_chat_is_empty() -> None:
    chat = Chat()
    assert len(chat) == 0
    assert list(chat) == []
    assert chat.to_dict() == {"messages": []}


@pytest.mark.parametrize("prompt", ["Be brief.", ""])
def test_initial_prompt_becomes_a_system_message(prompt: str) -> None:
    chat = Chat(initial_prompt=prompt)
    assert chat.messages == (SystemMessage(content=prompt),)


def test_add_system_prompt_appends_and_returns_the_message() -> None:
    chat = Chat()
    message = chat.add_system_prompt("rules")
    assert message == SystemMessage(content="rules")
    assert chat[-1] is message


def test_add_user_message_without_images() -> None:
    chat = Chat()
    message = chat.add_user_message("hello")
    assert message == UserMessage(content="hello")
    assert message.images == ()
    assert chat[0] is message


def test_add_assistant_response_with_tool_calls_and_reasoning() -> None:
    chat = Chat()
    call = ToolCall("add", {"a": 1, "b": 2})
    message = chat.add_assistant_response("adding", [call], reasoning="think")
    assert message.content == message.text == "adding"
    assert message.tool_calls == (call,)
    assert message.reasoning == "think"
    assert chat[0] is message


def test_add_assistant_response_defaults() -> None:
    message = Chat().add_assistant_response("hi")
    assert message.tool_calls == ()
    assert message.reasoning is None


def test_add_tool_result_takes_the_name_from_the_matching_call() -> None:
    chat = Chat()
    chat.add_assistant_response("", [ToolCall("search", {}, "c1")])
    result = chat.add_tool_result("c1", "found")
    assert result == ToolResultMessage(tool_call_id="c1", name="search", content="found")
    assert chat.add_tool_result("c1", "x", name="explicit").name == "explicit"
    assert chat.add_tool_result("unknown", "x").name == ""
    error = chat.add_tool_result("c1", "boom", is_error=True)
    assert error.is_error is True
    assert error.name == "search"
    assert len(chat) == 5


def test_add_tool_results_accepts_models_and_dicts() -> None:
    chat = Chat()
    chat.add_assistant_response("", [ToolCall("a", {}, "c1"), ToolCall("b", {}, "c2")])
    model = ToolResultMessage(tool_call_id="c1", name="a", content="one")
    added = chat.add_tool_results(
        [
            model,
            {"tool_call_id": "c2", "content": "two"},
            {"toolCallId": "c1", "content": "camel"},  # lmstudio's spelling
            {"role": "tool", "tool_call_id": "c9", "name": "z", "content": "e", "is_error": True},
        ]
    )
    assert added == [
        model,
        ToolResultMessage(tool_call_id="c2", name="b", content="two"),
        ToolResultMessage(tool_call_id="c1", name="a", content="camel"),
        ToolResultMessage(tool_call_id="c9", name="z", content="e", is_error=True),
    ]
    assert added[0] is model
    assert chat[1:] == added


def test_add_tool_results_accepts_a_generator() -> None:
    chat = Chat()
    added = chat.add_tool_results(
        ToolResultMessage(tool_call_id=f"c{i}", content=str(i)) for i in range(3)
    )
    assert [m.content for m in added] == ["0", "1", "2"]
    assert len(chat) == 3


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ({"content": "no id"}, "message 2: a tool message needs a 'tool_call_id'"),
        ({"role": "user", "content": "x"}, "message 2: expected a tool result, got a user"),
        ("just text", "message 2: expected a ToolResultMessage"),
        (UserMessage(content="x"), "message 2: expected a ToolResultMessage"),
    ],
)
def test_add_tool_results_is_all_or_nothing(bad: object, expected: str) -> None:
    chat = Chat()
    chat.add_assistant_response("", [ToolCall("a", {}, "c1")])
    good = ToolResultMessage(tool_call_id="c1", content="ok")
    with pytest.raises(ChatFormatError, match=re.escape(expected)):
        chat.add_tool_results([good, bad])  # type: ignore[list-item]
    assert len(chat) == 1


def test_append_accepts_models_and_dicts() -> None:
    chat = Chat()
    chat.append(SystemMessage(content="s"))
    chat.append({"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    ]})  # fmt: skip
    chat.append({"role": "tool", "tool_call_id": "c1", "content": "r"})
    assert chat[1] == AssistantMessage(content="", tool_calls=(ToolCall("f", {}, "c1"),))
    assert chat[2] == ToolResultMessage(tool_call_id="c1", name="f", content="r")


@pytest.mark.parametrize("bad", ["text", 42, None, ToolCall("f"), Image(url=DATA_URL)])
def test_append_rejects_what_is_not_a_message(bad: object) -> None:
    chat = Chat("s")
    with pytest.raises(ChatFormatError, match="message 1: expected a message model or a dict"):
        chat.append(bad)  # type: ignore[arg-type]
    assert len(chat) == 1


def test_from_history_with_a_string() -> None:
    chat = Chat.from_history("hi there")
    assert chat.messages == (UserMessage(content="hi there"),)


def test_from_history_with_a_chat_copies_it() -> None:
    original = full_chat()
    chat = Chat.from_history(original)
    assert chat == original
    assert chat is not original
    chat.add_user_message("more")
    assert len(chat) == len(original) + 1


@pytest.mark.parametrize("wrap", [lambda m: {"messages": m}, lambda m: m, tuple])
def test_from_history_with_data(wrap: Any) -> None:
    data = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    chat = Chat.from_history(wrap(data))
    assert chat.messages == (SystemMessage(content="s"), UserMessage(content="u"))


def test_from_history_with_bad_data() -> None:
    with pytest.raises(ChatFormatError, match="message 0"):
        Chat.from_history([{"role": "nobody"}])


# -- images ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (GIF87, "image/gif"),
        (GIF89, "image/gif"),
        (WEBP, "image/webp"),
    ],
)
def test_image_from_bytes_sniffs_the_type(data: bytes, mime: str) -> None:
    image = Image.from_bytes(data)
    assert data_url_parts(image.url) == (mime, data)
    message = Chat().add_user_message("see", images=[data])
    assert message.images == (image,)


@pytest.mark.parametrize(
    "data",
    [UNKNOWN, b"", b"\x89PN", b"RIFF\x00\x00\x00\x00WAVE", b"GIF88a", b"\xff\xd8"],
)
def test_unknown_image_bytes_raise(data: bytes) -> None:
    with pytest.raises(ChatFormatError, match="cannot tell the image type"):
        Image.from_bytes(data)
    chat = Chat()
    with pytest.raises(ChatFormatError, match="cannot tell the image type"):
        chat.add_user_message("x", images=[data])
    assert len(chat) == 0


def test_image_from_bytes_with_an_explicit_type() -> None:
    image = Image.from_bytes(UNKNOWN, mime_type="image/bmp")
    assert data_url_parts(image.url) == ("image/bmp", UNKNOWN)


def test_bytearray_and_memoryview_images() -> None:
    message = Chat().add_user_message("x", images=[bytearray(PNG), memoryview(JPEG)])
    assert [data_url_parts(i.url)[0] for i in message.images] == ["image/png", "image/jpeg"]


@pytest.mark.parametrize("as_str", [True, False])
def test_image_from_a_file_path(tmp_path: Path, as_str: bool) -> None:
    path = tmp_path / "picture.gif"
    path.write_bytes(GIF89)
    message = Chat().add_user_message("x", images=[str(path) if as_str else path])
    assert data_url_parts(message.images[0].url) == ("image/gif", GIF89)
    assert Image.from_path(path) == message.images[0]


def test_image_file_type_comes_from_bytes_before_the_name(tmp_path: Path) -> None:
    path = tmp_path / "mislabelled.png"
    path.write_bytes(JPEG)
    assert data_url_parts(Image.from_path(path).url)[0] == "image/jpeg"


def test_image_file_with_unknown_bytes_uses_the_name(tmp_path: Path) -> None:
    path = tmp_path / "odd.png"
    path.write_bytes(UNKNOWN)
    assert data_url_parts(Image.from_path(path).url) == ("image/png", UNKNOWN)


def test_image_file_of_unknown_type_raises(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(UNKNOWN)
    with pytest.raises(ChatFormatError, match=r"notes\.txt"):
        Image.from_path(path)


def test_missing_image_file_raises_file_not_found(tmp_path: Path) -> None:
    chat = Chat()
    with pytest.raises(FileNotFoundError):
        chat.add_user_message("x", images=[tmp_path / "absent.png"])
    assert len(chat) == 0


@pytest.mark.parametrize("url", [DATA_URL, "https://example.com/cat.png", "http://x/y.jpg"])
def test_image_urls_are_kept_verbatim(url: str) -> None:
    message = Chat().add_user_message("x", images=[url])
    assert message.images == (Image(url=url),)


def test_image_instances_are_kept() -> None:
    image = Image(url=DATA_URL, detail="high")
    assert Chat().add_user_message("x", images=[image]).images[0] is image


@pytest.mark.parametrize("single", [PNG, DATA_URL, Image(url=DATA_URL)])
def test_a_single_image_not_in_a_list_counts_as_one(single: Any) -> None:
    message = Chat().add_user_message("x", images=single)
    assert len(message.images) == 1
    assert data_url_parts(message.images[0].url) == ("image/png", PNG)


@pytest.mark.parametrize("bad", [42, None, 3.5])
def test_images_of_a_wrong_type_raise(bad: object) -> None:
    with pytest.raises(ChatFormatError, match="an image must be"):
        Chat().add_user_message("x", images=[bad])  # type: ignore[list-item]


# -- tool calls --------------------------------------------------------------------------------


def test_tool_call_positional_construction() -> None:
    call = ToolCall("name", {"a": 1})
    assert call.name == "name"
    assert call.arguments == {"a": 1}
    assert ToolCall("n", {"a": 1}, "given").id == "given"
    assert ToolCall(name="n", arguments={"b": 2}, id="k") == ToolCall("n", {"b": 2}, "k")


def test_tool_call_defaults() -> None:
    call = ToolCall("noargs")
    assert call.arguments == {}
    assert ToolCall("x", None, "i").arguments == {}


def test_tool_call_ids_are_unique_and_openai_style() -> None:
    ids = {ToolCall("f").id for _ in range(500)} | {new_call_id() for _ in range(500)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"call_[0-9a-f]{24}", i) for i in ids)


def test_two_calls_differ_by_their_auto_id() -> None:
    assert ToolCall("f", {"a": 1}) != ToolCall("f", {"a": 1})
    assert ToolCall("f", {"a": 1}, "x") == ToolCall("f", {"a": 1}, "x")


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ('{"a": 1}', {"a": 1}),
        (' {"a": [1, "two"]} ', {"a": [1, "two"]}),
        ("", {}),
        ("   ", {}),
        ('{"a": ', '{"a": '),
        ("not json", "not json"),
        ("[1, 2]", "[1, 2]"),
        ("42", "42"),
        ("null", "null"),
        ('"text"', '"text"'),
        ('{"a": NaN}', '{"a": NaN}'),
        ('{"a": Infinity}', '{"a": Infinity}'),
        ('{"a": 1e999}', '{"a": 1e999}'),
    ],
)
def test_tool_call_arguments_text(given: str, stored: object) -> None:
    call = ToolCall("f", given)
    assert call.arguments == stored
    assert type(call.arguments) is type(stored)


def test_tool_call_arguments_are_copied_deeply() -> None:
    source: dict[str, Any] = {"items": [1, 2], "inner": {"k": "v"}}
    call = ToolCall("f", source)
    source["items"].append(3)
    source["inner"]["k"] = "changed"
    source["new"] = True
    assert call.arguments == {"items": [1, 2], "inner": {"k": "v"}}


def test_tool_call_arguments_accept_any_mapping() -> None:
    assert ToolCall("f", MappingProxyType({"a": 1})).arguments == {"a": 1}


@pytest.mark.parametrize(
    "bad",
    [{"a": float("nan")}, {"a": float("inf")}, {1: "int key"}, {"a": {1, 2}}, {"a": object()}],
)
def test_tool_call_arguments_must_be_json_data(bad: dict[Any, Any]) -> None:
    with pytest.raises(ValidationError, match="arguments"):
        ToolCall("f", bad)


# -- frozen messages ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        (SystemMessage(content="s"), "content", "changed"),
        (UserMessage(content="u"), "content", "changed"),
        (UserMessage(content="u"), "images", ()),
        (AssistantMessage(content="a"), "tool_calls", ()),
        (AssistantMessage(content="a"), "reasoning", "r"),
        (ToolResultMessage(tool_call_id="c", content="r"), "is_error", True),
        (ToolCall("f", {}), "arguments", {"x": 1}),
        (ToolCall("f", {}), "name", "g"),
        (Image(url=DATA_URL), "url", "https://x"),
    ],
)
def test_messages_are_frozen(model: Any, field: str, value: object) -> None:
    before = getattr(model, field)
    with pytest.raises(ValidationError, match="frozen"):
        setattr(model, field, value)
    assert getattr(model, field) == before


@pytest.mark.parametrize(
    ("model", "kwargs"),
    [
        (SystemMessage, {"content": "s", "extra": 1}),
        (UserMessage, {"content": "u", "role": "assistant"}),
        (ToolResultMessage, {"content": "r"}),
    ],
)
def test_messages_validate_their_fields(model: Any, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model(**kwargs)


def test_messages_snapshot_is_a_tuple() -> None:
    chat = Chat("s")
    snapshot = chat.messages
    chat.add_user_message("u")
    assert isinstance(snapshot, tuple)
    assert len(snapshot) == 1
    assert len(chat.messages) == 2


# -- copy --------------------------------------------------------------------------------------


def test_copy_is_equal_but_independent() -> None:
    original = full_chat()
    size = len(original)
    clone = original.copy()
    assert clone == original
    assert clone is not original

    clone.add_user_message("only in the clone")
    clone.replace(0, SystemMessage(content="new rules"))
    del clone[1]
    assert len(original) == size
    assert original[0] == SystemMessage(content="You are helpful. ünïcödé ✓")
    assert original[1].role == "user"

    original.pop()
    original.clear()
    assert len(original) == 0
    assert len(clone) == size
    assert clone[-1] == UserMessage(content="only in the clone")


def test_copy_shares_the_frozen_messages() -> None:
    original = full_chat()
    clone = original.copy()
    assert all(a is b for a, b in zip(original, clone, strict=True))


# -- list-like editing -------------------------------------------------------------------------


def numbered(count: int) -> Chat:
    chat = Chat()
    for number in range(count):
        chat.add_user_message(str(number))
    return chat


def texts(chat: Chat) -> list[str]:
    return [message.content for message in chat]


def test_len_iteration_and_indexing() -> None:
    chat = numbered(5)
    assert len(chat) == 5
    assert texts(chat) == ["0", "1", "2", "3", "4"]
    assert chat[0].content == "0"
    assert chat[-1].content == "4"
    assert chat[-5].content == "0"
    assert [m.content for m in chat[1:3]] == ["1", "2"]
    assert [m.content for m in chat[::-2]] == ["4", "2", "0"]
    assert isinstance(chat[1:3], list)
    assert chat[10:] == []


@pytest.mark.parametrize("index", [5, -6, 100])
def test_indexing_out_of_range(index: int) -> None:
    with pytest.raises(IndexError):
        numbered(5)[index]


def test_slice_is_a_copy() -> None:
    chat = numbered(3)
    part = chat[:]
    part.clear()
    assert len(chat) == 3


def test_pop() -> None:
    chat = numbered(4)
    assert chat.pop().content == "3"
    assert chat.pop(0).content == "0"
    assert chat.pop(-1).content == "2"
    assert texts(chat) == ["1"]
    chat.pop()
    with pytest.raises(IndexError):
        chat.pop()


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        (0, ["new", "0", "1", "2"]),
        (1, ["0", "new", "1", "2"]),
        (3, ["0", "1", "2", "new"]),
        (99, ["0", "1", "2", "new"]),
        (-1, ["0", "1", "new", "2"]),
        (-99, ["new", "0", "1", "2"]),
    ],
)
def test_insert(index: int, expected: list[str]) -> None:
    chat = numbered(3)
    chat.insert(index, UserMessage(content="new"))
    assert texts(chat) == expected


def test_insert_a_dict_uses_earlier_tool_calls_only() -> None:
    chat = Chat()
    chat.add_assistant_response("", [ToolCall("first", {}, "c1")])
    chat.add_assistant_response("", [ToolCall("later", {}, "c2")])
    chat.insert(1, {"role": "tool", "tool_call_id": "c1", "content": "r"})
    chat.insert(1, {"role": "tool", "tool_call_id": "c2", "content": "r"})
    assert chat[1] == ToolResultMessage(tool_call_id="c2", name="", content="r")
    assert chat[2] == ToolResultMessage(tool_call_id="c1", name="first", content="r")


@pytest.mark.parametrize(("index", "position"), [(1, 1), (-1, 2), (99, 3), (-99, 0)])
def test_insert_errors_name_the_position(index: int, position: int) -> None:
    chat = numbered(3)
    with pytest.raises(ChatFormatError, match=f"message {position}: unknown role"):
        chat.insert(index, {"role": "robot", "content": "x"})
    assert texts(chat) == ["0", "1", "2"]


def test_replace_returns_the_old_message() -> None:
    chat = numbered(3)
    old = chat[1]
    assert chat.replace(1, SystemMessage(content="s")) is old
    assert chat.replace(-1, {"role": "assistant", "content": "a"}).content == "2"
    assert chat.messages == (
        UserMessage(content="0"),
        SystemMessage(content="s"),
        AssistantMessage(content="a"),
    )


def test_replace_fills_the_tool_name_from_earlier_messages() -> None:
    chat = Chat()
    chat.add_assistant_response("", [ToolCall("f", {}, "c1")])
    chat.add_user_message("placeholder")
    chat.replace(1, {"role": "tool", "tool_call_id": "c1", "content": "r"})
    assert chat[1] == ToolResultMessage(tool_call_id="c1", name="f", content="r")


@pytest.mark.parametrize("index", [3, -4])
def test_replace_out_of_range(index: int) -> None:
    chat = numbered(3)
    with pytest.raises(IndexError):
        chat.replace(index, UserMessage(content="x"))
    assert texts(chat) == ["0", "1", "2"]


@pytest.mark.parametrize(("index", "position"), [(2, 2), (-1, 2), (-3, 0)])
def test_replace_with_bad_data_changes_nothing(index: int, position: int) -> None:
    chat = numbered(3)
    with pytest.raises(ChatFormatError, match=f"message {position}: "):
        chat.replace(index, {"role": "tool", "content": "no id"})
    assert texts(chat) == ["0", "1", "2"]


def test_remove_takes_the_first_equal_message() -> None:
    chat = Chat()
    chat.add_user_message("dup")
    chat.add_system_prompt("s")
    chat.add_user_message("dup")
    chat.remove(UserMessage(content="dup"))
    assert chat.messages == (SystemMessage(content="s"), UserMessage(content="dup"))
    with pytest.raises(ValueError, match="not in list"):
        chat.remove(UserMessage(content="absent"))


def test_del_index_and_slice() -> None:
    chat = numbered(5)
    del chat[0]
    assert texts(chat) == ["1", "2", "3", "4"]
    del chat[-1]
    assert texts(chat) == ["1", "2", "3"]
    del chat[1:]
    assert texts(chat) == ["1"]
    with pytest.raises(IndexError):
        del chat[5]


def test_clear() -> None:
    chat = full_chat()
    chat.clear()
    assert len(chat) == 0
    assert chat == Chat()


def test_iteration_while_editing_sees_a_snapshot() -> None:
    chat = numbered(3)
    seen = []
    for message in chat:
        seen.append(message.content)
        chat.append(UserMessage(content=message.content + "!"))
        chat.pop(0)
    assert seen == ["0", "1", "2"]
    assert texts(chat) == ["0!", "1!", "2!"]


def test_membership() -> None:
    chat = numbered(2)
    assert UserMessage(content="1") in chat
    assert UserMessage(content="9") not in chat


def test_equality() -> None:
    assert full_chat() == full_chat()
    assert Chat() == Chat()
    assert Chat("a") != Chat("b")
    assert numbered(2) != numbered(3)
    different_role = Chat()
    different_role.add_system_prompt("0")
    assert numbered(1) != different_role
    assert numbered(1) != [UserMessage(content="0")]
    assert Chat() != None  # noqa: E711


def test_chat_is_not_hashable() -> None:
    with pytest.raises(TypeError):
        hash(Chat())


def test_repr_shows_the_messages() -> None:
    text = repr(numbered(1))
    assert text.startswith("Chat(")
    assert "UserMessage" in text
    assert "'0'" in text


# -- to_dict -----------------------------------------------------------------------------------


def test_to_dict_shape_is_openai_style() -> None:
    png_url = Image.from_bytes(PNG).url
    assert full_chat().to_dict() == {
        "messages": [
            {"role": "system", "content": "You are helpful. ünïcödé ✓"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look at these"},
                    {"type": "image_url", "image_url": {"url": png_url}},
                    {"type": "image_url", "image_url": {"url": DATA_URL, "detail": "low"}},
                ],
            },
            {
                "role": "assistant",
                "content": "Let me check.",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {
                            "name": "lookup",
                            "arguments": json.dumps(
                                {"query": "weather", "days": 3, "nested": {"a": [1, 2.5, None]}}
                            ),
                        },
                    },
                    {
                        "id": "c2",
                        "type": "function",
                        "function": {"name": "broken", "arguments": '{"unterminated": '},
                    },
                    {
                        "id": "c3",
                        "type": "function",
                        "function": {"name": "listy", "arguments": "[1, 2]"},
                    },
                ],
                "reasoning_content": "The user wants weather.",
            },
            {"role": "tool", "tool_call_id": "c1", "name": "lookup", "content": "sunny"},
            {
                "role": "tool",
                "tool_call_id": "c2",
                "name": "broken",
                "content": "bad arguments",
                "is_error": True,
            },
            {"role": "tool", "tool_call_id": "c3", "name": "", "content": ""},
            {"role": "assistant", "content": "", "reasoning_content": ""},
            {"role": "user", "content": ""},
            {"role": "assistant", "content": "It is sunny."},
        ]
    }


def test_to_dict_arguments_are_json_strings() -> None:
    chat = Chat()
    chat.add_assistant_response("", [ToolCall("f", {"city": "Zürich", "n": 1})])
    arguments = chat.to_dict()["messages"][0]["tool_calls"][0]["function"]["arguments"]
    assert isinstance(arguments, str)
    assert json.loads(arguments) == {"city": "Zürich", "n": 1}


def test_to_dict_leaves_out_optional_fields() -> None:
    chat = Chat()
    chat.add_assistant_response("plain")
    chat.add_tool_result("c", "ok")
    chat.add_user_message("plain")
    assistant, tool, user = chat.to_dict()["messages"]
    assert "reasoning_content" not in assistant
    assert "tool_calls" not in assistant
    assert "is_error" not in tool
    assert user == {"role": "user", "content": "plain"}


def test_to_dict_is_a_fresh_structure() -> None:
    chat = full_chat()
    data = chat.to_dict()
    data["messages"].clear()
    assert len(chat.to_dict()["messages"]) == len(chat)


def test_to_json_is_the_dict_form() -> None:
    chat = full_chat()
    assert json.loads(chat.to_json()) == chat.to_dict()
    assert "ünïcödé ✓" in chat.to_json()
    assert chat.to_json(indent=2).startswith('{\n  "messages"')


# -- from_dict ---------------------------------------------------------------------------------


def test_from_dict_assistant_with_null_content() -> None:
    chat = Chat.from_dict(
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
                "refusal": None,
                "annotations": [],
            }
        ]
    )
    assert chat[0] == AssistantMessage(content="", tool_calls=(ToolCall("f", {}, "c1"),))


@pytest.mark.parametrize("role", ["system", "user", "assistant", "tool", "developer"])
def test_from_dict_content_as_text_parts(role: str) -> None:
    message: dict[str, Any] = {
        "role": role,
        "content": [{"type": "text", "text": "Hello, "}, {"type": "text", "text": "world"}],
    }
    if role == "tool":
        message["tool_call_id"] = "c1"
    assert Chat.from_dict([message])[0].content == "Hello, world"


def test_from_dict_content_none_and_missing() -> None:
    chat = Chat.from_dict(
        [
            {"role": "user", "content": None},
            {"role": "assistant"},
            {"role": "tool", "tool_call_id": "c", "content": None},
            {"role": "system", "content": ""},
        ]
    )
    assert [m.content for m in chat] == ["", "", "", ""]


def test_from_dict_developer_role_is_a_system_message() -> None:
    assert Chat.from_dict([{"role": "developer", "content": "rules"}])[0] == SystemMessage(
        content="rules"
    )


def test_from_dict_tool_name_from_the_earlier_call() -> None:
    chat = Chat.from_dict(
        [
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "alpha", "arguments": ""}},
                    {"id": "b", "type": "function", "function": {"name": "beta", "arguments": ""}},
                ],
            },
            {"role": "tool", "tool_call_id": "b", "content": "B"},
            {"role": "tool", "tool_call_id": "a", "content": "A"},
            {"role": "tool", "tool_call_id": "zzz", "content": "?"},
            {"role": "tool", "tool_call_id": "a", "name": None, "content": "A"},
            {"role": "tool", "tool_call_id": "a", "name": "given", "content": "A"},
            {"role": "tool", "tool_call_id": "a", "name": "", "content": "A"},
        ]
    )
    assert [getattr(m, "name", None) for m in chat[1:]] == [
        "beta",
        "alpha",
        "",
        "alpha",
        "given",
        "",
    ]


def test_from_dict_tool_name_needs_an_earlier_call() -> None:
    chat = Chat.from_dict(
        [
            {"role": "tool", "tool_call_id": "a", "content": "A"},
            {"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "late"}}]},
        ]
    )
    assert chat[0].name == ""  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"x": 1}', {"x": 1}),
        ({"x": 1}, {"x": 1}),
        ("", {}),
        (None, {}),
        ("{bad json", "{bad json"),
        ("[1]", "[1]"),
        ([1, 2], "[1, 2]"),
        (7, "7"),
        ('{"x": NaN}', '{"x": NaN}'),
    ],
)
def test_from_dict_tool_call_arguments(arguments: object, expected: object) -> None:
    chat = Chat.from_dict(
        [
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": arguments}}],
            }
        ]
    )
    assert chat[0].tool_calls[0].arguments == expected  # type: ignore[union-attr]


def test_from_dict_tool_call_without_arguments_or_id() -> None:
    chat = Chat.from_dict([{"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}])
    call = chat[0].tool_calls[0]  # type: ignore[union-attr]
    assert call.arguments == {}
    assert call.id.startswith("call_")


def test_from_dict_flat_tool_calls() -> None:
    chat = Chat.from_dict(
        [{"role": "assistant", "tool_calls": [{"name": "f", "arguments": {"a": 1}, "id": "i"}]}]
    )
    assert chat[0].tool_calls == (ToolCall("f", {"a": 1}, "i"),)  # type: ignore[union-attr]


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning"])
def test_from_dict_reasoning(key: str) -> None:
    chat = Chat.from_dict([{"role": "assistant", "content": "answer", key: "thoughts"}])
    assert chat[0] == AssistantMessage(content="answer", reasoning="thoughts")


def test_from_dict_null_reasoning_is_no_reasoning() -> None:
    chat = Chat.from_dict([{"role": "assistant", "content": "a", "reasoning_content": None}])
    assert chat[0].reasoning is None  # type: ignore[union-attr]
    assert "reasoning_content" not in chat.to_dict()["messages"][0]


def test_from_dict_user_images() -> None:
    chat = Chat.from_dict(
        [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": DATA_URL, "detail": "high"}},
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": "https://example.com/a.png"},
                ],
            }
        ]
    )
    assert chat[0] == UserMessage(
        content="what is this?",
        images=(Image(url=DATA_URL, detail="high"), Image(url="https://example.com/a.png")),
    )


def test_from_dict_is_error_flag() -> None:
    chat = Chat.from_dict(
        [
            {"role": "tool", "tool_call_id": "a", "content": "x", "is_error": True},
            {"role": "tool", "tool_call_id": "a", "content": "x", "is_error": False},
            {"role": "tool", "tool_call_id": "a", "content": "x", "is_error": None},
        ]
    )
    assert [m.is_error for m in chat] == [True, False, False]  # type: ignore[union-attr]


def test_from_dict_accepts_message_models() -> None:
    call = ToolCall("f", {}, "c1")
    chat = Chat.from_dict(
        [
            AssistantMessage(tool_calls=(call,)),
            {"role": "tool", "tool_call_id": "c1", "content": ""},
        ]
    )
    assert chat[1].name == "f"  # type: ignore[union-attr]


def test_from_dict_accepts_pydantic_dumps() -> None:
    chat = full_chat()
    assert Chat.from_dict([message.model_dump() for message in chat]) == chat
    assert Chat.from_dict([message.model_dump(mode="json") for message in chat]) == chat


def test_from_dict_does_not_change_its_input() -> None:
    data = full_chat().to_dict()
    snapshot = json.dumps(data)
    Chat.from_dict(data)
    assert json.dumps(data) == snapshot


# -- round trips -------------------------------------------------------------------------------


def test_dict_round_trip_is_exact() -> None:
    chat = full_chat()
    again = Chat.from_dict(chat.to_dict())
    assert again == chat
    assert again.to_dict() == chat.to_dict()
    assert [type(m) for m in again] == [type(m) for m in chat]


@pytest.mark.parametrize("indent", [None, 2])
def test_json_round_trip_is_exact(indent: int | None) -> None:
    chat = full_chat()
    text = chat.to_json(indent=indent)
    again = Chat.from_json(text)
    assert again == chat
    assert again.to_json(indent=indent) == text
    assert Chat.from_json(text.encode()) == chat


def test_round_trip_keeps_malformed_arguments_verbatim() -> None:
    chat = Chat()
    raw = '{"a": 1,, "b": '
    chat.add_assistant_response("", [ToolCall("f", raw, "c")])
    again = Chat.from_json(chat.to_json())
    assert again[0].tool_calls[0].arguments == raw  # type: ignore[union-attr]


def test_round_trip_of_an_empty_chat() -> None:
    assert Chat.from_json(Chat().to_json()) == Chat()


def _random_text(rng: random.Random) -> str:
    alphabet = ["a", "Z", " ", "\n", '"', "\\", "{", "}", "é", "✓", "\x00", "😀"]
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 8)))


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(7 if depth < 2 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.randrange(-(10**20), 10**20)
    if kind == 3:
        return rng.uniform(-1e6, 1e6)
    if kind == 4:
        return _random_text(rng)
    if kind == 5:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {_random_text(rng): _random_json(rng, depth + 1) for _ in range(rng.randrange(3))}


def _random_chat(rng: random.Random) -> Chat:
    chat = Chat()
    for _ in range(rng.randrange(0, 8)):
        kind = rng.randrange(4)
        if kind == 0:
            chat.add_system_prompt(_random_text(rng))
        elif kind == 1:
            images = [
                Image(url=DATA_URL, detail=rng.choice([None, "low", "auto"]))
                for _ in range(rng.randrange(3))
            ]
            chat.add_user_message(_random_text(rng), images=images)
        elif kind == 2:
            calls = []
            for _ in range(rng.randrange(3)):
                arguments: Any = (
                    _random_text(rng) + "{"  # never a JSON object: stays text
                    if rng.random() < 0.3
                    else {_random_text(rng): _random_json(rng) for _ in range(rng.randrange(3))}
                )
                calls.append(ToolCall(_random_text(rng), arguments, _random_text(rng)))
            reasoning = rng.choice([None, _random_text(rng)])
            chat.add_assistant_response(_random_text(rng), calls, reasoning=reasoning)
        else:
            chat.append(
                ToolResultMessage(
                    tool_call_id=_random_text(rng),
                    name=_random_text(rng),
                    content=_random_text(rng),
                    is_error=rng.random() < 0.5,
                )
            )
    return chat


@pytest.mark.parametrize("seed", range(200))
def test_random_chats_round_trip_exactly(seed: int) -> None:
    # A seeded stand-in for a hypothesis property test (hypothesis is not a dependency).
    chat = _random_chat(random.Random(seed))
    assert Chat.from_dict(chat.to_dict()) == chat
    text = chat.to_json()
    assert Chat.from_json(text) == chat
    assert Chat.from_json(text).to_json() == text


# -- malformed input ---------------------------------------------------------------------------


GOOD = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]

MALFORMED_MESSAGES: list[tuple[object, str]] = [
    ("just a string", "message 2: expected a message model or a dict, got str"),
    (["role", "user"], "message 2: expected a message model or a dict, got list"),
    (None, "message 2: expected a message model or a dict, got NoneType"),
    ({"content": "no role"}, "message 2: the message has no 'role'"),
    ({"role": "function", "content": "x"}, "message 2: unknown role 'function'"),
    ({"role": 5, "content": "x"}, "message 2: unknown role 5"),
    ({"role": "tool", "content": "x"}, "message 2: a tool message needs a 'tool_call_id'"),
    ({"role": "tool", "tool_call_id": 7, "content": "x"}, "message 2: a tool message needs"),
    ({"role": "tool", "tool_call_id": "c", "content": 3}, "message 2: content must be"),
    ({"role": "tool", "tool_call_id": "c", "name": 3, "content": ""}, "message 2: name"),
    (
        {"role": "tool", "tool_call_id": "c", "content": "", "is_error": "false"},
        "message 2: is_error must be true or false, got 'false'",
    ),
    ({"role": "tool", "tool_call_id": "c", "content": "", "is_error": 1}, "message 2: is_error"),
    ({"role": "user", "content": 42}, "message 2: content must be a string or a list"),
    ({"role": "user", "content": {"type": "text", "text": "x"}}, "message 2: content must be"),
    ({"role": "user", "content": [{"type": "text"}]}, "message 2: content part 0 needs a 'text'"),
    ({"role": "user", "content": [{"type": "text", "text": None}]}, "message 2: content part 0"),
    ({"role": "user", "content": ["ok", 5]}, "message 2: content part 1 is not supported"),
    ({"role": "user", "content": [{"type": "audio"}]}, "message 2: content part 0 is not"),
    ({"role": "user", "content": [{"type": "image_url"}]}, "message 2: an image needs a 'url'"),
    (
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": 1}}]},
        "message 2: an image needs a 'url'",
    ),
    (
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "u", "detail": 1}}],
        },
        "message 2: an image needs",
    ),
    ({"role": "user", "content": "x", "images": "not a list"}, "message 2: images must be a list"),
    ({"role": "user", "content": "x", "images": [5]}, "message 2: an image needs a 'url'"),
    (
        {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "u"}}]},
        "message 2: content part 0 is not supported",
    ),
    ({"role": "system", "content": 1.5}, "message 2: content must be"),
    ({"role": "assistant", "content": 0}, "message 2: content must be"),
    ({"role": "assistant", "reasoning_content": 5}, "message 2: reasoning"),
    ({"role": "assistant", "tool_calls": "f()"}, "message 2: tool_calls must be a list, got str"),
    ({"role": "assistant", "tool_calls": {"id": "c"}}, "message 2: tool_calls must be a list"),
    ({"role": "assistant", "tool_calls": ["f"]}, "message 2, tool call 0: expected a dict"),
    (
        {"role": "assistant", "tool_calls": [{"function": {"name": "f"}}, {"function": {}}]},
        "message 2, tool call 1: a tool call needs a function name",
    ),
    (
        {"role": "assistant", "tool_calls": [{"function": {"name": None}}]},
        "message 2, tool call 0: a tool call needs a function name",
    ),
    (
        {"role": "assistant", "tool_calls": [{"function": "f"}]},
        "message 2, tool call 0: a tool call needs a function name",
    ),
    (
        {"role": "assistant", "tool_calls": [{"id": 5, "function": {"name": "f"}}]},
        "message 2, tool call 0: id",
    ),
    (
        {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {1, 2}}}]},
        "message 2, tool call 0: arguments",
    ),
    (
        {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {2: 1}}}]},
        "message 2, tool call 0: arguments",
    ),
]


@pytest.mark.parametrize(("bad", "expected"), MALFORMED_MESSAGES)
def test_malformed_messages_raise_chat_format_error(bad: object, expected: str) -> None:
    with pytest.raises(ChatFormatError) as caught:
        Chat.from_dict([*GOOD, bad])  # type: ignore[list-item]
    message = str(caught.value)
    assert message.startswith(expected)
    assert "errors.pydantic.dev" not in message
    assert "\n" not in message
    assert isinstance(caught.value, AgentkitError)


def _survives_json(value: object) -> bool:
    try:
        return bool(json.loads(json.dumps(value)) == value)
    except TypeError:
        return False


@pytest.mark.parametrize(
    ("bad", "expected"), [case for case in MALFORMED_MESSAGES if _survives_json(case[0])]
)
def test_malformed_messages_from_json(bad: object, expected: str) -> None:
    text = json.dumps({"messages": [*GOOD, bad]})
    with pytest.raises(ChatFormatError) as caught:
        Chat.from_json(text)
    assert str(caught.value).startswith(expected)


@pytest.mark.parametrize(("bad", "expected"), MALFORMED_MESSAGES)
def test_malformed_messages_through_append(bad: object, expected: str) -> None:
    chat = Chat.from_dict(GOOD)
    with pytest.raises(ChatFormatError, match=re.escape(expected)):
        chat.append(bad)  # type: ignore[arg-type]
    assert chat == Chat.from_dict(GOOD)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("a string", "chat messages must be a list, got str"),
        (b"bytes", "chat messages must be a list, got bytes"),
        (42, "chat messages must be a list, got int"),
        (None, "chat messages must be a list, got NoneType"),
        ({"msgs": []}, 'the dict has no "messages" key'),
        ({"messages": "x"}, "chat messages must be a list, got str"),
        ({"messages": {"role": "user"}}, "chat messages must be a list, got dict"),
        ({"messages": None}, "chat messages must be a list, got NoneType"),
    ],
)
def test_chat_data_that_is_not_a_list(data: Any, expected: str) -> None:
    with pytest.raises(ChatFormatError, match=re.escape(expected)):
        Chat.from_dict(data)


@pytest.mark.parametrize(
    "text",
    ["", "{not json", '{"messages": [', "[1, 2", b"\xff\xfe\x00", "NaN NaN", "[" * 100_000],
)
def test_invalid_json_text(text: str | bytes) -> None:
    with pytest.raises(
        ChatFormatError, match=r"^chat JSON: (not valid JSON|nested deeper|NaN is not)"
    ):
        Chat.from_json(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", "chat messages must be a list, got int"),
        ('"x"', "chat messages must be a list, got str"),
        ("{}", '"messages"'),
        ("[1]", "message 0: expected a message model or a dict, got int"),
        ('[{"role": "user", "content": "a"}, {"role": "x"}]', "message 1: unknown role 'x'"),
    ],
)
def test_valid_json_of_the_wrong_shape(text: str, expected: str) -> None:
    with pytest.raises(ChatFormatError, match=re.escape(expected)):
        Chat.from_json(text)


@pytest.mark.parametrize("value", [None, 42, ["[]"]])
def test_from_json_needs_text(value: Any) -> None:
    with pytest.raises(ChatFormatError, match="chat JSON must be str or bytes"):
        Chat.from_json(value)


def test_errors_chain_to_the_underlying_cause() -> None:
    with pytest.raises(ChatFormatError) as caught:
        Chat.from_json("{oops")
    assert isinstance(caught.value.__cause__, UntrustedDataError)
    with pytest.raises(ChatFormatError) as caught:
        Chat.from_dict([{"role": "assistant", "reasoning": 5}])
    assert isinstance(caught.value.__cause__, ValidationError)


def test_long_bad_values_are_shortened_in_errors() -> None:
    with pytest.raises(ChatFormatError) as caught:
        Chat.from_dict([{"role": "user", "content": [{"type": "audio", "data": "x" * 10_000}]}])
    assert len(str(caught.value)) < 200


def test_tool_call_arguments_given_as_other_json_data_lose_lone_surrogates() -> None:
    # Found by tests/fuzz/test_chat_fuzz.py: arguments given as a list were kept as JSON text
    # with the lone surrogate in it, and the chat could no longer be encoded.
    chat = Chat()
    request = {"type": "function", "name": "f", "arguments": ["\ud800"]}
    chat.add_entry("assistant", {"type": "toolCallRequest", "toolCallRequest": request})
    message = chat.messages[-1]
    assert isinstance(message, AssistantMessage)
    assert message.tool_calls[0].arguments == '["\ufffd"]'
    chat.to_json().encode("utf-8")
