"""The local llama.cpp engine on the real default model (SmolLM2-135M-Instruct, greedy, seeded).

Kept few and short: every prediction is capped at a handful of tokens.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

import agentkit as ak
from agentkit.engines.llama_cpp.engine import EngineBusyError, LlamaCppEngine, PromptTooLongError
from agentkit.engines.llama_cpp.models import InvalidModelFileError, resolve_model
from agentkit.errors import ModelNotFoundError
from agentkit.tools import calculator

GREEDY: dict[str, Any] = {"temperature": 0, "max_tokens": 12, "seed": 7}


def engine_of(client: ak.Client) -> LlamaCppEngine:
    engine = client.async_client.engine
    assert isinstance(engine, LlamaCppEngine)
    return engine


def test_grammar_constrained_tool_call_round_trip(client: ak.Client, model: ak.LLM) -> None:
    chat = ak.Chat("Use the calculator.")
    chat.add_user_message("What is 12345 times 54321?")
    result = model.act(
        chat,
        [calculator],
        max_prediction_rounds=2,
        config={**GREEDY, "max_tokens": 40, "tool_choice": "required"},
        on_message=chat.append,
    )
    first = result.round_records[0]
    assert len(first.tool_calls) >= 1
    call = first.tool_calls[0]
    # Valid by construction: the call names an offered tool with schema-valid arguments.
    assert call.call.name == "calculator" and isinstance(call.call.arguments, dict)
    assert isinstance(call.call.arguments["expression"], str)
    assert call.error in (None, "tool_error")  # the expression itself may not be arithmetic
    assert [m.role for m in chat][:4] == ["system", "user", "assistant", "tool"]
    assert result.rounds == 2 and result.usage.prompt_tokens > 0


def test_the_calculator_agent_answers_with_the_result(model: ak.LLM) -> None:
    """The main job: one call, then a sentence stating the product (SmolLM2 answers; the old
    default, a base model, wrote junk here)."""
    from agentkit.cli import INSTRUCTIONS

    chat = ak.Chat(INSTRUCTIONS)
    chat.add_user_message("What is 12345 times 54321?")
    result = model.act(
        chat,
        [calculator],
        max_prediction_rounds=2,
        config={**GREEDY, "max_tokens": 64, "tool_choice": "required"},
    )
    [call] = result.round_records[0].tool_calls  # the repeat the model began is not a call
    assert call.result == "670592745"
    assert result.final is not None and "670592745" in result.final.text
    assert not result.final.text.lstrip().startswith("{")


def test_a_repeated_call_ends_the_prediction_early(model: ak.LLM) -> None:
    """SmolLM2 repeats its first call; the repeat ends generation instead of max_tokens."""
    chat = ak.Chat.from_history("What is 12345 times 54321? Use the calculator.")
    result = model.act(
        chat,
        [calculator],
        max_prediction_rounds=2,
        config={**GREEDY, "max_tokens": 200, "tool_choice": "required"},
    )
    prediction = result.round_records[0].prediction
    assert len(prediction.tool_calls) == 1
    assert prediction.finish_reason == "stop"
    assert prediction.usage.completion_tokens < 120


def test_structured_output_is_valid_by_construction(model: ak.LLM) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 12}, "rank": {"type": "integer"}},
        "required": ["city", "rank"],
    }
    result = model.act(
        "Name a city and its rank as JSON.",
        response_format=schema,
        max_prediction_rounds=1,
        config={**GREEDY, "max_tokens": 40},
    )
    assert isinstance(result.parsed, dict)
    assert isinstance(result.parsed["city"], str) and isinstance(result.parsed["rank"], int)


def test_streaming_fragments_and_cancel(model: ak.LLM) -> None:
    stream = model.respond_stream("Tell me a long story.", config={**GREEDY, "max_tokens": 200})
    fragments = []
    for fragment in stream:
        fragments.append(fragment.content)
        if len(fragments) == 3:
            stream.cancel()
    result = stream.result()
    assert result.finish_reason == "cancelled"
    assert 3 <= len(fragments) <= 6 and result.content == "".join(fragments)


def test_first_token_and_prompt_progress_reach_callbacks(model: ak.LLM) -> None:
    events: list[str] = []
    model.act(
        "Hello",
        config={**GREEDY, "max_tokens": 3},
        on_prompt_processing_progress=lambda p, i: events.append(f"progress {p:.1f}"),
        on_first_token=lambda i: events.append("first"),
    )
    assert events[0] == "progress 0.0" and "progress 1.0" in events
    assert events.index("first") > events.index("progress 1.0")


def test_max_tokens_stops_a_model_that_never_stops(model: ak.LLM) -> None:
    result = model.respond("Count forever:", config={**GREEDY, "max_tokens": 5})
    assert result.finish_reason == "length" and result.usage.completion_tokens == 5


def test_kv_cache_reuse_evaluates_only_new_tokens(client: ak.Client, model: ak.LLM) -> None:
    stats = engine_of(client).stats(model.identifier)
    chat = ak.Chat("You are terse.")
    chat.add_user_message("First question?")
    model.act(chat, config=GREEDY, on_message=chat.append)
    before = stats.evaluated_prompt_tokens
    total_before = stats.prompt_tokens
    chat.add_user_message("Second question?")
    model.act(chat, config=GREEDY, on_message=chat.append)
    evaluated = stats.evaluated_prompt_tokens - before
    prompt = stats.prompt_tokens - total_before
    assert evaluated < prompt / 2, f"evaluated {evaluated} of {prompt} prompt tokens"
    assert evaluated <= 30  # the new turn plus the previous reply's tail


def test_interleaved_chats_restore_their_saved_state(client: ak.Client, model: ak.LLM) -> None:
    stats = engine_of(client).stats(model.identifier)
    chats = [ak.Chat(f"You are assistant number {n}. " + "Context. " * 40) for n in range(2)]
    for chat in chats:
        chat.add_user_message("Hi")
        model.act(chat, config=GREEDY, on_message=chat.append)
    restores, before = stats.state_restores, stats.evaluated_prompt_tokens
    for chat in chats:
        chat.add_user_message("And then?")
        model.act(chat, config=GREEDY, on_message=chat.append)
    assert stats.state_restores - restores >= 1
    assert stats.evaluated_prompt_tokens - before < 80  # not the 2 x ~100-token prefixes


def test_concurrent_sessions_queue_and_do_not_mix(model: ak.LLM) -> None:
    prompts = [f"Say the number {n}." for n in range(4)]
    sequential = [model.respond(p, config=GREEDY).content for p in prompts]
    results: dict[int, str] = {}

    def run(n: int) -> None:
        results[n] = model.respond(prompts[n], config=GREEDY).content

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [results[n] for n in range(4)] == sequential


def test_full_queue_is_a_clear_error() -> None:
    engine = LlamaCppEngine(max_queue=1, kv_cache_bytes=0)
    with ak.Client(engine=engine) as client:
        model = client.llm.model()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                model.respond("Go on and on.", config={**GREEDY, "max_tokens": 30})
            except EngineBusyError as error:
                errors.append(error)

        threads = [threading.Thread(target=run) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors and "already waiting" in str(errors[0])


def test_lifecycle(client: ak.Client, model: ak.LLM) -> None:
    with pytest.warns(UserWarning, match="is ignored"):
        again = client.llm.model(config={"context_length": 512})
    assert again.identifier == model.identifier
    extra = client.llm.load_new_instance(model.model_key, config={"context_length": 256})
    assert extra.identifier != model.identifier
    assert extra.get_context_length() == 256
    assert extra.get_load_config().context_length == 256
    assert {m.identifier for m in client.llm.list_loaded()} >= {model.identifier, extra.identifier}
    extra.unload()
    assert extra.identifier not in {m.identifier for m in client.llm.list_loaded()}
    info = model.get_info()
    assert info.architecture == "llama" and info.quantization == "Q4_1"
    assert info.size_bytes is not None and info.size_bytes > 90_000_000
    downloaded = {m.model_key for m in client.llm.list_downloaded_models()}
    assert model.model_key in downloaded


def test_tokenizer(model: ak.LLM) -> None:
    tokens = model.tokenize("Hello world, hello agents!")
    assert 3 <= len(tokens) <= 10 and all(isinstance(t, int) for t in tokens)
    assert model.count_tokens("Hello world, hello agents!") == len(tokens)
    assert model.count_tokens("word " * 50) > model.count_tokens("word " * 10)


def test_embeddings(client: ak.Client) -> None:
    embedder = client.embedding.model()
    cat, kitten, invoice = embedder.embed(["a small cat", "a little kitten", "quarterly invoice"])
    assert len(cat) == len(kitten) > 100

    def cosine(a: list[float], b: list[float]) -> float:
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        return dot / (sum(x * x for x in a) ** 0.5 * sum(y * y for y in b) ** 0.5)

    assert cosine(cat, kitten) > cosine(cat, invoice)
    assert embedder.embed("one text")[0] != cat
    language_model = client.llm.model(embedder.model_key)
    engine = engine_of(client)
    with pytest.raises(ak.ConfigurationError, match="loaded as a language model"):
        client._portal.call(engine.embed, language_model.identifier, ["x"])


def test_ttl_unloads_an_idle_instance(client: ak.Client, model: ak.LLM) -> None:
    short = client.llm.load_new_instance(
        model.model_key, "short-lived", config={"context_length": 256}, ttl=0.3
    )
    deadline = time.monotonic() + 5
    while short.identifier in {m.identifier for m in client.llm.list_loaded()}:
        assert time.monotonic() < deadline, "the idle instance was not unloaded"
        time.sleep(0.05)


def test_prompt_longer_than_the_context_names_both_lengths(
    client: ak.Client, model: ak.LLM
) -> None:
    tiny = client.llm.load_new_instance(model.model_key, "tiny", config={"context_length": 64})
    try:
        with pytest.raises(
            PromptTooLongError, match=r"the prompt is \d+ tokens but 'tiny' has a 64-token context"
        ):
            tiny.respond("word " * 200, config=GREEDY)
    finally:
        tiny.unload()


def test_missing_and_broken_model_files(client: ak.Client, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        client.llm.model(str(tmp_path / "absent.gguf"))
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"<html>not a model</html>" * 10)
    with pytest.raises(InvalidModelFileError, match="not a GGUF file"):
        client.llm.model(str(junk))
    _, real = resolve_model(None)
    truncated = tmp_path / "truncated.gguf"
    with real.open("rb") as source:
        truncated.write_bytes(source.read(2_000_000))
    with pytest.raises(InvalidModelFileError, match="truncated"):
        client.llm.model(str(truncated))


def gguf_header_only(architecture: str) -> bytes:
    """A GGUF v3 file with one metadata entry and no tensors."""
    import struct

    key, value = b"general.architecture", architecture.encode()
    header = (
        b"GGUF"
        + struct.pack("<IQQ", 3, 0, 1)
        + struct.pack("<Q", len(key))
        + key
        + struct.pack("<IQ", 8, len(value))
        + value
    )
    return header + b"\0" * (-len(header) % 32)  # the data section starts aligned


def test_unknown_architecture_needs_a_chat_format(client: ak.Client, tmp_path: Path) -> None:
    path = tmp_path / "odd.gguf"
    path.write_bytes(gguf_header_only("mamba-x"))
    with pytest.raises(
        ak.ConfigurationError, match="no chat format is known for architecture 'mamba-x'"
    ):
        client.llm.model(str(path))
    # Naming a format gets past that check; llama.cpp then refuses the tensorless file clearly.
    with pytest.raises(ak.AgentkitError, match="could not load"):
        client.llm.model(str(path), config={"chat_format": "gemma"})


def test_stop_strings_end_generation_before_the_stop(model: ak.LLM) -> None:
    free = model.complete("The capital of France is", config={**GREEDY, "max_tokens": 16}).content
    words = free.split()
    assert len(words) >= 3
    stop = words[2]
    stopped = model.complete("The capital of France is", config={**GREEDY, "stop_strings": [stop]})
    assert stopped.finish_reason == "stop"
    assert stop not in stopped.content and free.startswith(stopped.content)
    assert stopped.content == free[: free.index(stop)]


@pytest.mark.parametrize(
    ("offload", "layers", "expected"),
    [
        (None, 18, 0),
        ("off", 18, 0),
        (0, 18, 0),
        ("max", 18, -1),
        (1.0, 18, -1),
        (0.5, 18, 9),
        (0.01, 18, 1),
    ],
)
def test_gpu_offload_maps_to_layers(
    offload: str | float | None, layers: int, expected: int
) -> None:
    from agentkit.engines.llama_cpp.engine import _gpu_layers

    assert _gpu_layers(offload, layers) == expected


def test_gpu_offload_out_of_range_is_rejected() -> None:
    from agentkit.engines.llama_cpp.engine import _gpu_layers

    with pytest.raises(ak.ConfigurationError, match="gpu_offload"):
        _gpu_layers(1.5, 18)


HERMES_TEMPLATE = """\
{%- if tools %}<|im_start|>system
You may call functions. <tools>{% for tool in tools %}{{ tool | tojson }}{% endfor %}</tools>
Return each call as <tool_call>{"name": <name>, "arguments": <args>}</tool_call><|im_end|>
{% endif %}{% for message in messages %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""


def test_native_mode_from_a_tool_aware_chat_template(client: ak.Client, model: ak.LLM) -> None:
    native = client.llm.load_new_instance(
        model.model_key, "hermes", config={"context_length": 1024, "chat_template": HERMES_TEMPLATE}
    )
    try:
        instance = engine_of(client)._instance(native.identifier)
        assert instance.native is not None and instance.native.tool_format.name == "hermes"
        chat = ak.Chat.from_history("What is 12345 times 54321?")
        free = native.act(chat, [calculator], max_prediction_rounds=1, config=GREEDY)
        assert free.rounds == 1 and free.final is not None  # free output, parsed by the format
        forced = native.act(
            chat,
            [calculator],
            max_prediction_rounds=2,
            config={**GREEDY, "max_tokens": 40, "tool_choice": "required"},
        )
        call = forced.round_records[0].tool_calls[0].call
        assert call.name == "calculator" and isinstance(call.arguments, dict)
    finally:
        native.unload()


def test_cancel_during_prompt_evaluation_frees_the_worker(model: ak.LLM) -> None:
    stream = model.respond_stream("filler " * 1500, config=GREEDY)
    started = time.monotonic()
    threading.Timer(0.3, stream.cancel).start()
    assert list(stream) == []
    assert stream.result().finish_reason == "cancelled"
    assert time.monotonic() - started < 3.0  # did not sit through the ~5 s of prompt batches
    follow_up = model.respond("Hello", config={**GREEDY, "max_tokens": 2})
    assert follow_up.usage.completion_tokens == 2
