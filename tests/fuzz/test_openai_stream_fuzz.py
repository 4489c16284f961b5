"""Properties of the OpenAI stream readers on arbitrary server bytes.

Whatever bytes a server sends, in whatever pieces, decoding them ends in prediction events or an
`EngineError`; and how a well-formed stream is split into network reads never changes the events.
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import json
from typing import Any

from fuzzing import fuzz
from hypothesis import given
from hypothesis import strategies as st

from agentkit.engines.base import PredictionEvent
from agentkit.engines.openai.stream import ContentDecoder, SSEParser, StreamAssembler
from agentkit.errors import EngineError

LINE_CAP = 4096
EVENT_CAP = 8192


def decode_all(pieces: list[bytes], encoding: str | None = None) -> list[PredictionEvent]:
    """Everything the engine's read loop does with a body, without the network."""
    decoder = ContentDecoder(encoding)
    parser = SSEParser(LINE_CAP, EVENT_CAP)
    assembler = StreamAssembler(max_event_bytes=EVENT_CAP)
    events: list[PredictionEvent] = []
    for piece in pieces:
        for decoded in decoder.decode(piece):
            for data in parser.feed(decoded):
                events += assembler.feed(data)
                if assembler.done:
                    return events + assembler.finish()
    return events + assembler.finish()


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


# JSON a chunk might hold: right shapes, wrong types, deep nesting, huge numbers.
JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
DELTA = st.fixed_dictionaries(
    {},
    optional={
        "content": st.one_of(st.text(max_size=20), JSON_VALUE),
        "reasoning_content": st.one_of(st.text(max_size=20), JSON_VALUE),
        "tool_calls": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "index": st.one_of(st.integers(-2, 3), JSON_VALUE),
                    "id": st.one_of(st.text(max_size=8), JSON_VALUE),
                    "function": st.fixed_dictionaries(
                        {},
                        optional={
                            "name": st.one_of(st.text(max_size=8), JSON_VALUE),
                            "arguments": st.one_of(
                                st.sampled_from(['{"a": 1}', '{"a": ', "1}", "[", "nul"]),
                                st.text(max_size=12),
                                JSON_VALUE,
                            ),
                        },
                    ),
                },
            ),
            max_size=3,
        ),
    },
)
CHUNK = st.fixed_dictionaries(
    {},
    optional={
        "choices": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "index": st.one_of(st.just(0), JSON_VALUE),
                    "delta": st.one_of(DELTA, JSON_VALUE),
                    "finish_reason": st.one_of(st.sampled_from(["stop", "tool_calls"]), JSON_VALUE),
                },
            ),
            max_size=2,
        ),
        "usage": st.one_of(
            st.fixed_dictionaries(
                {"prompt_tokens": st.integers(-1, 10**20), "completion_tokens": st.integers(0, 9)}
            ),
            JSON_VALUE,
        ),
        "error": st.one_of(st.none(), JSON_VALUE),
    },
)
NOISE = st.sampled_from(
    [
        b"\r\n",
        b"\r",
        b"\n",
        b": ping\n\n",
        b"data: [DONE]\n\n",
        b"data: {\n\n",
        b"\xff\xfe",
        b"data:",
    ]
)


def sse(chunks: list[Any], done: bool) -> bytes:
    body = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
    return body + (b"data: [DONE]\n\n" if done else b"")


@fuzz(300)
@given(
    chunks=st.lists(CHUNK, max_size=6),
    noise=st.lists(NOISE, max_size=4),
    done=st.booleans(),
    cuts=st.lists(st.integers(0, 10_000), max_size=8),
    gzipped=st.booleans(),
)
def test_any_stream_ends_in_events_or_an_engine_error(
    chunks: list[Any], noise: list[bytes], done: bool, cuts: list[int], gzipped: bool
) -> None:
    body = sse(chunks, done) + b"".join(noise)
    encoding = None
    if gzipped:
        body, encoding = gzip.compress(body), "gzip"
    try:
        events = decode_all(split(body, cuts), encoding)
    except EngineError:
        return
    assert type(events[-1]).__name__ == "PredictionDone"


@fuzz(200)
@given(data=st.binary(max_size=2000), cuts=st.lists(st.integers(0, 3000), max_size=6))
def test_arbitrary_bytes_end_in_events_or_an_engine_error(data: bytes, cuts: list[int]) -> None:
    for encoding in (None, "gzip", "deflate"):
        with contextlib.suppress(EngineError):
            decode_all(split(data, cuts), encoding)


TEXT_CHUNK = st.builds(
    lambda text: {"choices": [{"index": 0, "delta": {"content": text}}]},
    st.text(min_size=1, max_size=40),
)


@fuzz(200)
@given(
    chunks=st.lists(TEXT_CHUNK, min_size=1, max_size=8),
    cuts=st.lists(st.integers(0, 10_000), max_size=12),
    eol=st.sampled_from([b"\n", b"\r\n", b"\r"]),
)
def test_how_a_stream_is_split_never_changes_its_events(
    chunks: list[Any], cuts: list[int], eol: bytes
) -> None:
    body = sse(chunks, done=True).replace(b"\n", eol)
    whole = decode_all([body])
    assert [e for e in decode_all(split(body, cuts))] == whole
    texts = "".join(getattr(e, "text", "") for e in whole)
    assert texts == "".join(c["choices"][0]["delta"]["content"] for c in chunks)
