"""Properties of Chat.from_dict / from_json on hostile data, and of its JSON round trip.

Whatever a file, a client or a server sends as chat data, the result is a Chat or a
ChatFormatError; a Chat that was built always encodes to UTF-8 and reads back equal.
"""

from __future__ import annotations

import json
from typing import Any

from fuzzing import fuzz
from hypothesis import given
from hypothesis import strategies as st

import agentkit as ak
from agentkit.errors import ChatFormatError

CHARACTERS = st.characters(codec=None, exclude_categories=())
texts = st.text(CHARACTERS, max_size=30)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | texts
    | st.sampled_from([10**500, float("inf"), "\ud800", b"bytes", object()])
)
anything = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["role", "content", "x", "id", "name"]), inner)
    ),
    max_leaves=10,
)


def nest(depth: int, leaf: Any) -> Any:
    for _ in range(depth):
        leaf = {"content": [leaf]} if depth % 2 else [leaf]
    return leaf


roles = st.sampled_from(["system", "user", "assistant", "tool", "developer", "bot", ""]) | texts
tool_calls = st.lists(
    st.fixed_dictionaries(
        {
            "id": texts | st.integers(),
            "type": st.just("function"),
            "function": st.fixed_dictionaries(
                {"name": texts | st.none(), "arguments": texts | anything}
            ),
        }
    )
    | anything,
    max_size=3,
)
content = (
    texts
    | st.none()
    | st.lists(
        st.fixed_dictionaries(
            {"type": st.sampled_from(["text", "image_url", "?"]), "text": texts | anything}
        )
        | anything,
        max_size=3,
    )
    | anything
)
messages = st.fixed_dictionaries(
    {"role": roles, "content": content},
    optional={
        "tool_calls": tool_calls,
        "tool_call_id": texts | anything,
        "name": texts | anything,
        "reasoning": texts | anything,
    },
)
hostile_arguments = st.sampled_from(
    ["{}", '{"a": 1e400}', '{"a": ' + "9" * 5000 + "}", "[" * 3000 + "]" * 3000, "{", '"\\ud800"']
)
plausible_calls = st.lists(
    st.fixed_dictionaries(
        {
            "id": texts,
            "type": st.just("function"),
            "function": st.fixed_dictionaries(
                {"name": texts, "arguments": hostile_arguments | texts}
            ),
        }
    ),
    max_size=2,
)
plausible = st.one_of(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "user", "developer"]), "content": texts}
    ),
    st.fixed_dictionaries(
        {"role": st.just("assistant"), "content": texts | st.none()},
        optional={"tool_calls": plausible_calls, "reasoning": texts},
    ),
    st.fixed_dictionaries(
        {"role": st.just("tool"), "content": texts, "tool_call_id": texts},
        optional={"name": texts},
    ),
)
chat_data = st.one_of(
    st.lists(plausible, max_size=6),
    st.lists(plausible | messages | anything, max_size=5),
    st.fixed_dictionaries({"messages": st.lists(messages, max_size=5) | anything}),
    anything,
    st.builds(nest, st.integers(50, 5000), messages | anything),
)


def check_built(chat: ak.Chat) -> None:
    text = chat.to_json()
    text.encode("utf-8")
    assert ak.Chat.from_json(text) == chat
    assert ak.Chat.from_dict(chat.to_dict()) == chat


@fuzz(400)
@given(chat_data)
def test_from_dict_gives_a_chat_or_chat_format_error(data: Any) -> None:
    try:
        chat = ak.Chat.from_dict(data)
    except ChatFormatError as error:
        message = str(error)
    else:
        check_built(chat)
        return
    assert len(message) < 5000  # the error names the fault, not the whole input


json_texts = st.one_of(
    st.text(CHARACTERS, max_size=200),
    st.builds(
        lambda data: json.dumps(data, default=repr, ensure_ascii=False),
        st.lists(plausible | messages, max_size=4).filter(lambda m: len(repr(m)) < 20_000),
    ),
    st.integers(50, 20_000).map(lambda d: '{"messages": ' + "[" * d + "]" * d + "}"),
    st.sampled_from(
        [
            '[{"role": "user", "content": "\\ud800"}]',
            '[{"role": "user", "content": 1e400}]',
            '[{"role": "user", "content": ' + "9" * 5000 + "}]",
            '[{"role": "user", "content": NaN}]',
            '[{"role": "user", "content": "a"}',
        ]
    ),
)


@fuzz(400)
@given(json_texts, st.booleans())
def test_from_json_gives_a_chat_or_chat_format_error(text: str, as_bytes: bool) -> None:
    raw: str | bytes = text.encode("utf-8", "surrogatepass") if as_bytes else text
    try:
        chat = ak.Chat.from_json(raw)
    except ChatFormatError:
        return
    check_built(chat)


@fuzz(200)
@given(st.lists(st.tuples(st.sampled_from(["user", "system", "assistant"]), texts), max_size=6))
def test_a_built_chat_round_trips_exactly(turns: list[tuple[str, str]]) -> None:
    chat = ak.Chat()
    for role, text in turns:
        {
            "user": chat.add_user_message,
            "system": chat.add_system_prompt,
            "assistant": chat.add_assistant_response,
        }[role](text)
    check_built(chat)
    for message, (_, text) in zip(chat, turns, strict=True):
        surrogates = [c for c in text if "\ud800" <= c <= "\udfff"]
        if surrogates:
            assert message.content.count("\ufffd") == text.count("\ufffd") + len(surrogates)
        else:
            assert message.content == text


# -- lmstudio-python's shapes ---------------------------------------------------------------------

file_parts = st.fixed_dictionaries(
    {
        "type": st.just("file"),
        "name": texts | anything,
        "identifier": texts | anything,
        "sizeBytes": st.integers(-5, 10**20) | st.sampled_from([10**500, 1.5, True]) | anything,
        "fileType": st.sampled_from(["image", "text/plain", "video"]) | anything,
    }
)
request_parts = st.fixed_dictionaries(
    {
        "type": st.just("toolCallRequest"),
        "toolCallRequest": st.fixed_dictionaries(
            {"type": st.just("function"), "name": texts | anything},
            optional={
                "id": texts | anything,
                "arguments": st.dictionaries(texts, anything, max_size=3)
                | hostile_arguments
                | st.builds(nest, st.integers(50, 3000), st.just({}))
                | anything,
            },
        )
        | anything,
    }
)
result_parts = st.fixed_dictionaries(
    {"type": st.just("toolCallResult"), "content": texts | anything},
    optional={"toolCallId": texts | anything},
)
text_parts = st.fixed_dictionaries({"type": st.just("text"), "text": texts | anything}) | texts
lmstudio_parts = text_parts | file_parts | request_parts | result_parts | anything
lmstudio_messages = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["system", "user", "assistant", "tool"]) | roles,
        "content": st.lists(lmstudio_parts, max_size=4) | texts | anything,
    }
)
lmstudio_history = st.one_of(
    st.fixed_dictionaries({"messages": st.lists(lmstudio_messages, max_size=5)}),
    st.lists(lmstudio_messages | st.tuples(roles, lmstudio_parts), max_size=5),
    st.builds(nest, st.integers(50, 3000), lmstudio_messages),
    anything,
)


@fuzz(300)
@given(lmstudio_history)
def test_from_history_of_lmstudio_data_gives_a_chat_or_chat_format_error(data: Any) -> None:
    try:
        chat = ak.Chat.from_history(data)
    except ChatFormatError as error:
        message = str(error)
    else:
        check_built(chat)
        return
    assert len(message) < 5000


@fuzz(300)
@given(
    st.sampled_from(["system", "user", "assistant", "tool"]) | roles,
    lmstudio_parts | st.lists(lmstudio_parts, max_size=4),
)
def test_add_entry_gives_a_message_or_chat_format_error(role: str, content: Any) -> None:
    chat = ak.Chat("s")
    try:
        chat.add_entry(role, content)
    except ChatFormatError:
        assert len(chat) == 1  # nothing half-added
        return
    check_built(chat)


# A string image is a file path; reading one that is missing is an OSError by design.
not_paths = anything.filter(lambda value: not isinstance(value, str))
images = st.lists(
    file_parts | not_paths | st.just("data:image/png;base64,iVBORw0KGgo="), max_size=3
)


@fuzz(300)
@given(lmstudio_parts | st.lists(lmstudio_parts, max_size=4), images)
def test_add_user_message_gives_a_message_or_chat_format_error(content: Any, found: Any) -> None:
    chat = ak.Chat()
    try:
        chat.add_user_message(content, images=found)
    except ChatFormatError:
        assert len(chat) == 0
        return
    check_built(chat)


@fuzz(300)
@given(lmstudio_parts | st.lists(lmstudio_parts, max_size=3), st.lists(request_parts, max_size=3))
def test_add_assistant_response_gives_a_message_or_chat_format_error(
    response: Any, requests: Any
) -> None:
    chat = ak.Chat()
    try:
        chat.add_assistant_response(response, requests)
    except ChatFormatError:
        assert len(chat) == 0
        return
    check_built(chat)
