"""Clients, model handles, respond/complete, streaming and the default client."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from pydantic import BaseModel

import agentkit as ak
import agentkit.client
from agentkit.errors import ClientClosedError, ModelNotFoundError
from agentkit.testing import Reply, ScriptedEngine, ScriptedModel


def echo_engine() -> ScriptedEngine:
    return ScriptedEngine(lambda chat, i: f"echo: {chat[-1].content}")


def test_get_or_load_is_idempotent_and_instances_are_listed() -> None:
    with ak.Client(engine=echo_engine()) as client:
        first = client.llm.model("small")
        again = client.llm.model("small", config={"context_length": 2048})
        assert first.identifier == again.identifier == "small"
        extra = client.llm.load_new_instance("small", "small-2", config=ak.LoadConfig(seed=1))
        assert extra.info.load_config.seed == 1
        assert sorted(m.identifier for m in client.llm.list_loaded()) == ["small", "small-2"]
        extra.unload()
        assert [m.identifier for m in client.llm.list_loaded()] == ["small"]
        with pytest.raises(ModelNotFoundError, match="small-2"):
            client.llm.unload("small-2")


def test_one_handle_serves_many_chats() -> None:
    with ak.Client(engine=echo_engine()) as client:
        model = client.llm.model()
        answers = [model.respond(ak.Chat.from_history(f"q{n}")).content for n in range(3)]
    assert answers == ["echo: q0", "echo: q1", "echo: q2"]


def test_closed_client_refuses_work() -> None:
    client = ak.Client(engine=echo_engine())
    model = client.llm.model()
    client.close()
    client.close()  # idempotent
    with pytest.raises(ClientClosedError):
        model.respond("hi")
    with pytest.raises(ClientClosedError):
        client.llm.model()


def test_client_without_engine_explains_what_is_missing() -> None:
    with pytest.raises(ak.ConfigurationError, match="cannot tell which engine"):
        ak.Client("ftp://example")
    with pytest.raises(ak.ConfigurationError, match="either base_url or engine"):
        ak.Client("http://127.0.0.1:1/v1", engine=echo_engine())


def test_invalid_load_config_names_the_key() -> None:
    with (
        ak.Client(engine=echo_engine()) as client,
        pytest.raises(ak.ConfigurationError, match="context_lenght"),
    ):
        client.llm.model(config={"context_lenght": 10})


def test_respond_and_complete() -> None:
    model = ScriptedModel(["the answer", "continued text"])
    result = model.respond("question")
    assert result.content == "the answer" and result.finish_reason == "stop"
    assert result.usage.completion_tokens == 2 and result.time_to_first_token_seconds is not None
    completion = model.complete("Once upon a time")
    assert completion.content == "continued text"
    assert (
        model.engine.requests[1].prompt == "Once upon a time"
        and model.engine.requests[1].messages == ()
    )


class City(BaseModel):
    name: str
    population: int


def test_respond_with_structured_output() -> None:
    model = ScriptedModel(['{"name": "Oslo", "population": 700000}', "nonsense"])
    assert model.respond("city?", response_format=City).parsed == City(
        name="Oslo", population=700000
    )
    with pytest.raises(ak.StructuredOutputError, match="not valid JSON"):
        model.respond("city?", response_format=City)


def test_respond_stream_yields_fragments_then_the_result() -> None:
    model = ScriptedModel([Reply("one two three")])
    stream = model.respond_stream("count")
    assert [f.content for f in stream] == ["one ", "two ", "three"]
    assert stream.result().content == "one two three"


def test_stream_cancel_from_another_thread_stops_generation() -> None:
    model = ScriptedModel([Reply("word " * 200, fragment_delay=0.02)])
    stream = model.respond_stream("talk")
    received: list[str] = []
    canceller = threading.Timer(0.15, stream.cancel)
    canceller.start()
    started = time.perf_counter()
    for fragment in stream:
        received.append(fragment.content)
    assert time.perf_counter() - started < 1.0
    result = stream.result()
    assert result.finish_reason == "cancelled"
    assert 2 <= len(received) < 50 and result.content == "".join(received)


def test_stream_close_releases_it_early() -> None:
    model = ScriptedModel([Reply("a b c d e f")])
    with model.complete_stream("x") as stream:
        assert next(iter(stream)).content == "a "
    assert stream.result().finish_reason == "cancelled"


@pytest.mark.anyio
async def test_async_client_and_async_stream() -> None:
    async with ak.AsyncClient(engine=echo_engine()) as client:
        model = await client.llm.model()
        stream = model.respond_stream("hello world")
        fragments = [f.content async for f in stream]
        result = await stream.result()
        assert "".join(fragments) == result.content == "echo: hello world"
        loaded = await client.llm.list_loaded()
        assert [m.identifier for m in loaded] == [model.identifier]


@pytest.fixture
def fresh_default_client() -> Iterator[None]:
    saved = agentkit.client._default_client
    agentkit.client._default_client = None
    yield
    if agentkit.client._default_client is not None:
        agentkit.client._default_client.close()
    agentkit.client._default_client = saved


@pytest.mark.usefixtures("fresh_default_client")
def test_default_client_convenience_api() -> None:
    client = ak.configure_default_client(engine=echo_engine())
    assert ak.get_default_client() is client
    assert ak.llm().respond("hi").content == "echo: hi"
    with pytest.raises(ak.ConfigurationError, match="already exists"):
        ak.configure_default_client(engine=echo_engine())


def test_blocking_call_from_the_loop_thread_is_refused() -> None:
    model = ScriptedModel(["a", "b"])
    errors: list[BaseException] = []

    def on_round_start(index: int) -> None:
        try:
            model.respond("nested")
        except RuntimeError as error:
            errors.append(error)

    model.act("hi", on_round_start=on_round_start)
    assert len(errors) == 1 and "async_handle" in str(errors[0])


def test_import_is_lazy() -> None:
    code = (
        "import sys, agentkit\n"
        "heavy = ['llama_cpp', 'lmstudio', 'opentelemetry.sdk', 'httpx', 'websockets']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == "[]"


def test_model_metadata_tokenizer_and_embeddings_on_the_scripted_engine() -> None:
    with ak.Client(engine=echo_engine()) as client:
        model = client.llm.model(config={"context_length": 2048})
        assert model.get_info().architecture == "scripted"
        assert model.get_context_length() == 2048
        assert model.get_load_config().context_length == 2048
        assert model.tokenize("a b a") == [0, 1, 0] and model.count_tokens("x y z") == 3
        assert [m.model_key for m in client.llm.list_downloaded_models()] == ["scripted-model"]
        embedder = client.embedding.model()
        assert embedder.identifier == "scripted-model:embedding"
        [vector] = embedder.embed("abc")
        assert len(vector) == 26 and vector[0] == pytest.approx(3**-0.5)
        assert [m.identifier for m in client.embedding.list_loaded()] == [embedder.identifier]
        assert [m.identifier for m in client.llm.list_loaded()] == [model.identifier]


def test_urls_select_the_remote_engines() -> None:
    from agentkit.engines.lmstudio.engine import LMStudioEngine
    from agentkit.engines.openai.engine import OpenAIEngine

    with ak.Client("http://127.0.0.1:9/v1") as client:
        assert isinstance(client.async_client.engine, OpenAIEngine)
    with ak.Client("lmstudio://127.0.0.1:9") as client:
        assert isinstance(client.async_client.engine, LMStudioEngine)


def test_without_llama_cpp_python_the_local_engine_says_how_to_build_it() -> None:
    code = (
        "import sys; sys.modules['llama_cpp'] = None\n"  # an import of it now fails
        "from agentkit.engines import engine_for_url\n"
        "from agentkit.errors import EngineUnavailableError\n"
        "try:\n"
        "    engine_for_url(None)\n"
        "except EngineUnavailableError as error:\n"
        "    print(error)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "agentkit install-engine" in out.stdout
