"""tool_choice: its accepted forms, the request's check of a named tool, act() on scripted models,
and what reaches an OpenAI-compatible server and LM Studio (real protocol servers on 127.0.0.1).
The local engine's grammar side is in tests/engines/llama_cpp/test_tool_choice_llama.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from lmstudio_server import Fragment, LMStudioTestServer, Step, ToolCallGen
from openai_fault_server import Canned, FaultServer, chunk, sse, text_stream

import agentkit as ak
from agentkit.config import NamedToolChoice, PredictionConfig
from agentkit.engines.base import PredictionRequest, ToolDefinition, ToolOffer, offer_tools
from agentkit.engines.lmstudio.engine import LMStudioEngine
from agentkit.engines.openai.engine import OpenAIEngine
from agentkit.errors import ConfigurationError
from agentkit.testing import AsyncScriptedModel, ScriptedModel, scripted_engine

CHAT = "/v1/chat/completions"
ADD = ToolDefinition("add", "Add.", {"type": "object", "properties": {}})
WEATHER = ToolDefinition("weather", "Weather.", {"type": "object", "properties": {}})


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


# -- the config -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given",
    [
        {"name": "add"},
        {"type": "function", "function": {"name": "add"}},
        NamedToolChoice(name="add"),
    ],
)
def test_a_named_tool_in_either_form_is_one_typed_value(given: Any) -> None:
    config = ak.PredictionConfig(tool_choice=given)
    assert config.tool_choice == NamedToolChoice(name="add")
    assert ak.PredictionConfig(toolChoice=given) == config  # LM Studio's camelCase key


@pytest.mark.parametrize("mode", ["none", "auto", "required"])
def test_the_three_modes(mode: str) -> None:
    assert ak.PredictionConfig(tool_choice=mode).tool_choice == mode  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [
        "add",
        "any",
        {"name": ""},
        {"name": 3},
        {"name": "add", "strict": True},
        {"type": "function"},
        {"type": "custom", "function": {"name": "add"}},
        {"type": "function", "function": {"name": "add", "x": 1}},
        ["auto"],
        None,
    ],
)
def test_other_forms_are_configuration_errors(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="tool_choice"):
        ScriptedModel(["x"]).respond("q", config={"tool_choice": bad})


def test_a_bare_tool_name_is_refused_with_the_form_that_works() -> None:
    with pytest.raises(ConfigurationError, match=re.escape('for a tool: {"name": "add"}')):
        ScriptedModel(["x"]).respond("q", config={"tool_choice": "add"})


# -- the request ------------------------------------------------------------------------------


def test_a_named_tool_that_is_not_offered_is_refused_by_the_request() -> None:
    config = PredictionConfig(tool_choice={"name": "wheather"})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"'wheather'.*not among.*'add', 'weather'"):
        PredictionRequest(tools=(ADD, WEATHER), config=config)
    # Without tools offered (respond(), act()'s final round) tool_choice does not apply.
    assert PredictionRequest(config=config).tool_offer() == ToolOffer((), required=False)


def test_offer_tools_refuses_a_missing_name_given_apart_from_a_request() -> None:
    # plan_round and other engine code may take the config apart from the request.
    with pytest.raises(ConfigurationError, match="'lookup'"):
        offer_tools((ADD, WEATHER), NamedToolChoice(name="lookup"))
    assert offer_tools((), NamedToolChoice(name="lookup")) == ToolOffer((), required=False)


@pytest.mark.parametrize(
    ("choice", "tools", "required"),
    [
        ("auto", ("add", "weather"), False),
        ("none", (), False),
        ("required", ("add", "weather"), True),
        ({"name": "weather"}, ("weather",), True),
    ],
)
def test_what_each_choice_offers(choice: Any, tools: tuple[str, ...], required: bool) -> None:
    request = PredictionRequest(tools=(ADD, WEATHER), config=PredictionConfig(tool_choice=choice))
    offer = request.tool_offer()
    assert tuple(t.name for t in offer.tools) == tools and offer.required is required


# -- act() on the scripted engine ---------------------------------------------------------------


def test_act_refuses_an_unknown_named_tool_before_any_prediction() -> None:
    model = ScriptedModel(["never"])
    with pytest.raises(ConfigurationError, match="'multiply'"):
        model.act("q", [add], config={"tool_choice": {"name": "multiply"}})
    assert scripted_engine(model).requests == []


def test_act_records_the_choice_and_its_final_round_still_answers() -> None:
    calls = [ak.ToolCall("weather", {"city": "Oslo"}, "c1")]
    model = ScriptedModel([calls, calls, "It is sunny."])
    config = {"tool_choice": {"type": "function", "function": {"name": "weather"}}}
    result = model.act("q", [add, weather], config=config, max_prediction_rounds=3)
    requests = scripted_engine(model).requests
    # The choice applies to every round that offers tools; the final round offers none.
    assert [r.tool_choice for r in requests] == [NamedToolChoice(name="weather")] * 3
    assert [len(r.tools) for r in requests] == [2, 2, 0]
    assert [r.tool_offer().required for r in requests] == [True, True, False]
    assert result.stop_reason == "answered" and result.final is not None
    assert result.final.content == "It is sunny."


# -- OpenAI-compatible servers ------------------------------------------------------------------


@pytest.fixture
def openai_server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


def _openai_call(name: str, arguments: str) -> list[str]:
    function = {"name": name, "arguments": arguments}
    fragment = {"index": 0, "id": "c1", "type": "function", "function": function}
    return [chunk(tool_calls=[fragment]), chunk(finish="tool_calls"), "[DONE]"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ("auto", None),
        ("none", "none"),
        ("required", "required"),
        ({"name": "weather"}, {"type": "function", "function": {"name": "weather"}}),
    ],
)
async def test_openai_sends_tool_choice_in_its_own_format(
    openai_server: FaultServer, choice: Any, sent: Any
) -> None:
    openai_server.script(
        CHAT,
        sse(_openai_call("weather", '{"city": "Oslo"}')),
        sse(text_stream("Sunny.")),
    )
    engine = OpenAIEngine(openai_server.url, backoff=0.05)
    async with ak.AsyncClient(engine=engine) as client:
        model = await client.llm.model()
        await model.act(
            "q", [add, weather], config={"tool_choice": choice}, max_prediction_rounds=2
        )
    first, final = (request.body for request in openai_server.posts(CHAT))
    assert first.get("tool_choice") == sent
    assert [t["function"]["name"] for t in first["tools"]] == ["add", "weather"]
    # The final round offers no tools, so no tool_choice goes with it.
    assert "tools" not in final and "tool_choice" not in final


@pytest.mark.anyio
async def test_openai_unknown_named_tool_sends_nothing(openai_server: FaultServer) -> None:
    openai_server.script(CHAT, Canned(body={"never": "sent"}))
    async with ak.AsyncClient(engine=OpenAIEngine(openai_server.url)) as client:
        model = await client.llm.model()
        with pytest.raises(ConfigurationError, match="'multiply'"):
            await model.act("q", [add], config={"tool_choice": {"name": "multiply"}})
    assert openai_server.posts(CHAT) == []


# -- LM Studio ----------------------------------------------------------------------------------


def _offered(param: dict[str, Any]) -> dict[str, Any] | None:
    """The `llm.prediction.tools` value of a predict channel's config stack."""
    for layer in param["predictionConfigStack"]["layers"]:
        for field in layer["config"]["fields"]:
            if field["key"] == "llm.prediction.tools":
                return dict(field["value"])
    return None


def _weather_then_answer(param: dict[str, Any], index: int) -> list[Step]:
    if index == 0:
        return [ToolCallGen("weather", {"city": "Oslo"}, id="c1")]
    return [Fragment("Sunny.")]


@pytest.mark.parametrize(
    ("choice", "names", "force"),
    [
        ("auto", ["add", "weather"], None),
        ("none", None, None),
        ("required", ["add", "weather"], True),
        ({"name": "weather"}, ["weather"], True),  # emulated: that tool alone, forced
    ],
)
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the lmstudio SDK is asyncio-only
@pytest.mark.anyio
async def test_lmstudio_forces_by_its_protocol(
    choice: Any, names: list[str] | None, force: bool | None
) -> None:
    with LMStudioTestServer(_weather_then_answer) as server:
        async with ak.AsyncClient(engine=LMStudioEngine(server.host)) as client:
            model = await client.llm.model("qwen-test")
            result = await model.act(
                "q", [add, weather], config={"tool_choice": choice}, max_prediction_rounds=2
            )
        first, final = (_offered(p) for p in server.stats.predictions)
    assert result.final is not None and result.final.content == "Sunny."
    if names is None:
        assert first is None
    else:
        assert first is not None
        assert [t["function"]["name"] for t in first["tools"]] == names
        assert first.get("force") == force
    assert final is None  # act()'s final round offers no tools


@pytest.mark.anyio
async def test_scripted_responders_see_the_choice() -> None:
    seen: list[Any] = []

    def responder(chat: ak.Chat, index: int, request: PredictionRequest) -> str:
        seen.append(request.tool_choice)
        return "ok"

    model = AsyncScriptedModel(responder)
    await model.act("q", [add], config={"tool_choice": "none"})
    assert seen == ["none"]
