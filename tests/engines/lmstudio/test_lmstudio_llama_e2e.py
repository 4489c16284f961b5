"""End to end: LMStudioEngine talking to the protocol test server, with real inference behind it.

The server's responder turns each `predict` creation parameter (LM Studio's history and tool
config) into an agentkit request, runs it on the local llama.cpp engine (SmolLM2-135M-Instruct,
greedy, seeded, short) and streams the result back as protocol steps, so the whole path runs:
agentkit act() -> lmstudio SDK -> WebSocket protocol -> real model -> tool call -> tool result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from lmstudio_server import Finish, Fragment, LMStudioTestServer, Step, ToolCallGen

import agentkit as ak
from agentkit.config import PredictionConfig
from agentkit.engines.base import (
    PredictionEvent,
    PredictionRequest,
    TextDelta,
    ToolCallRequested,
    ToolDefinition,
)
from agentkit.engines.lmstudio.engine import LMStudioEngine
from agentkit.messages import (
    AssistantMessage,
    Message,
    SystemMessage,
    ToolCall,
    ToolResultMessage,
    UserMessage,
)
from agentkit.tools import calculator


@pytest.fixture(scope="module")
def local() -> Iterator[ak.Client]:
    """The local llama.cpp engine with its default model (SmolLM2-135M-Instruct)."""
    with ak.Client() as client:
        yield client


def _text(parts: list[dict[str, Any]]) -> str:
    return "".join(p["text"] for p in parts if p.get("type") == "text")


def _messages(history: list[dict[str, Any]]) -> list[Message]:
    """LM Studio history messages as agentkit messages."""
    messages: list[Message] = []
    names: dict[str, str] = {}  # tool call id -> tool name, for the tool results
    for raw in history:
        role, parts = raw["role"], raw["content"]
        if role == "system":
            messages.append(SystemMessage(content=_text(parts)))
        elif role == "user":
            messages.append(UserMessage(content=_text(parts)))
        elif role == "assistant":
            calls = []
            for part in parts:
                if part.get("type") == "toolCallRequest":
                    request = part["toolCallRequest"]
                    calls.append(ToolCall(request["name"], request.get("arguments"), request["id"]))
                    names[request["id"]] = request["name"]
            messages.append(AssistantMessage(content=_text(parts), tool_calls=tuple(calls)))
        elif role == "tool":
            for part in parts:
                call_id = part["toolCallId"]
                messages.append(
                    ToolResultMessage(
                        tool_call_id=call_id, name=names.get(call_id, ""), content=part["content"]
                    )
                )
        else:  # pragma: no cover - the engine sends only these four roles
            raise AssertionError(f"unexpected role {role!r}")
    return messages


def _tools(param: dict[str, Any]) -> list[ToolDefinition]:
    """The tools of the prediction config stack (`llm.prediction.tools`)."""
    tools: list[ToolDefinition] = []
    for layer in param["predictionConfigStack"]["layers"]:
        for field in layer["config"]["fields"]:
            if field["key"] == "llm.prediction.tools":
                for tool in field["value"].get("tools", []):
                    function = tool["function"]
                    tools.append(
                        ToolDefinition(
                            function["name"],
                            function.get("description", ""),
                            function.get("parameters", {}),
                        )
                    )
    return tools


def _llama_responder(
    client: ak.Client, identifier: str, seen: list[PredictionRequest]
) -> Callable[[dict[str, Any], int], list[Step]]:
    """A responder running each prediction on the local engine (it blocks the server's loop
    while the model runs, so predictions must stay short of the WebSocket keepalive timeout)."""
    engine = client.async_client.engine

    async def predict(request: PredictionRequest) -> list[PredictionEvent]:
        return [event async for event in engine.predict(identifier, request)]

    def respond(param: dict[str, Any], index: int) -> list[Step]:
        tools = _tools(param)
        config = PredictionConfig(
            temperature=0,
            seed=0,
            max_tokens=48,
            # The tiny base model would rarely call a tool unprompted: constrain the first round.
            tool_choice="required" if tools and index == 0 else "auto",
        )
        request = PredictionRequest(
            messages=_messages(param["history"]["messages"]), tools=tools, config=config
        )
        seen.append(request)
        steps: list[Step] = []
        for event in client._portal.call(predict, request):
            if isinstance(event, TextDelta) and not event.reasoning and event.text:
                steps.append(Fragment(event.text))
            elif isinstance(event, ToolCallRequested):
                call = event.call
                arguments = (
                    call.arguments if isinstance(call.arguments, dict) else {"raw": call.arguments}
                )
                steps.append(ToolCallGen(call.name, arguments, id=call.id))
        steps.append(
            Finish("toolCalls" if any(isinstance(s, ToolCallGen) for s in steps) else "eosFound")
        )
        return steps

    return respond


def test_act_through_lmstudio_protocol_on_real_model(local: ak.Client) -> None:
    identifier = local.llm.model().identifier
    seen: list[PredictionRequest] = []
    responder = _llama_responder(local, identifier, seen)
    with (
        LMStudioTestServer(responder) as server,
        ak.Client(engine=LMStudioEngine(server.host)) as client,
    ):
        model = client.llm.model("qwen-test")
        chat = ak.Chat("Use the calculator.")
        chat.add_user_message("What is 12345 times 54321?")
        result = model.act(
            chat,
            [calculator],
            max_prediction_rounds=2,
            config={"temperature": 0, "max_tokens": 48},
            on_message=chat.append,
        )

    # The server saw the calculator tool offered in round 0 and the tool result in round 1.
    assert len(server.stats.predictions) == 2
    assert [t.name for t in seen[0].tools] == ["calculator"]
    assert seen[1].tools == () or list(seen[1].tools) == []

    first = result.round_records[0]
    assert len(first.tool_calls) >= 1
    call = first.tool_calls[0].call
    # Valid by construction: the grammar only allows an offered tool with schema-valid arguments.
    assert call.name == "calculator" and isinstance(call.arguments, dict)
    assert isinstance(call.arguments["expression"], str)
    assert first.tool_calls[0].error in (None, "tool_error")  # may not be arithmetic

    roles = [m.role for m in chat]
    assert roles[:4] == ["system", "user", "assistant", "tool"]
    assert roles[-1] == "assistant"
    tool_result = chat[3]
    assert isinstance(tool_result, ToolResultMessage) and tool_result.tool_call_id == call.id
    # The tool result travelled back over the protocol into the second real prediction.
    assert isinstance(seen[1].messages[-1], ToolResultMessage)
    assert seen[1].messages[-1].content == tool_result.content

    assert result.rounds == 2
    assert result.final is not None and result.final is chat[-1]
    assert not result.final.tool_calls
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0
