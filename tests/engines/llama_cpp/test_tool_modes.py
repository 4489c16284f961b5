"""Choosing JSON mode or native mode for a round."""

from __future__ import annotations

import agentkit as ak
from agentkit.config import PredictionConfig
from agentkit.engines.base import PredictionRequest, ResponseFormatSpec, ToolDefinition
from agentkit.engines.llama_cpp.json_mode import OutputSplitter
from agentkit.engines.llama_cpp.native_tools import HERMES, LLAMA3, NativeSplitter
from agentkit.engines.llama_cpp.prompting.formats import GemmaFormat, Segment
from agentkit.engines.llama_cpp.prompting.jinja import JinjaPromptFormat
from agentkit.engines.llama_cpp.tool_modes import NativeTemplate, plan_round

TEMPLATE = (
    "{% if tools %}TOOLS:{% for t in tools %}{{ t.function.name }} {% endfor %}"
    "<tool_call>\n{% endif %}"
    "{% for m in messages %}[{{ m.role }}]{{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant]{% endif %}"
)
NATIVE = NativeTemplate(JinjaPromptFormat(TEMPLATE), HERMES)
TOOL = ToolDefinition("lookup", "Look up.", {"type": "object", "properties": {}})
ANSWER = ResponseFormatSpec("A", {"type": "object", "properties": {"n": {"type": "integer"}}})
MESSAGES = ak.Chat.from_history("hi").messages


def text(segments: list[Segment]) -> str:
    return "".join(s.text for s in segments)


def test_json_mode_without_a_native_template() -> None:
    plan = plan_round(PredictionRequest(MESSAGES, (TOOL,)), PredictionConfig(), GemmaFormat(), None)
    assert plan.grammar is not None and "calls-root" in plan.grammar
    assert isinstance(plan.router(), OutputSplitter) and "You can call these tools" in text(
        plan.segments
    )


def test_native_mode_renders_tools_and_leaves_output_free() -> None:
    plan = plan_round(
        PredictionRequest(MESSAGES, (TOOL,)), PredictionConfig(), GemmaFormat(), NATIVE
    )
    assert plan.grammar is None and isinstance(plan.router(), NativeSplitter)
    assert text(plan.segments).startswith("TOOLS:lookup ") and "You can call" not in text(
        plan.segments
    )
    assert not plan.special_output


def test_native_mode_falls_back_to_json_mode_when_a_call_is_required() -> None:
    config = PredictionConfig(tool_choice="required")
    plan = plan_round(PredictionRequest(MESSAGES, (TOOL,)), config, GemmaFormat(), NATIVE)
    assert plan.grammar is not None and plan.grammar.startswith("root ::= calls-root\n")
    rendered = text(plan.segments)
    assert "TOOLS:" not in rendered and "You can call these tools" in rendered


def test_native_mode_without_tools_still_constrains_a_response_format() -> None:
    plan = plan_round(
        PredictionRequest(MESSAGES, (), response_format=ANSWER),
        PredictionConfig(),
        GemmaFormat(),
        NATIVE,
    )
    assert plan.grammar is not None and "calls-root" not in plan.grammar


def test_llama3_output_keeps_special_tokens() -> None:
    native = NativeTemplate(JinjaPromptFormat(TEMPLATE), LLAMA3)
    plan = plan_round(
        PredictionRequest(MESSAGES, (TOOL,)), PredictionConfig(), GemmaFormat(), native
    )
    assert plan.special_output


def test_raw_completion_ignores_formats() -> None:
    plan = plan_round(PredictionRequest(prompt="Once"), PredictionConfig(), GemmaFormat(), NATIVE)
    assert text(plan.segments) == "Once" and plan.grammar is None


def test_a_choice_of_tools_gets_a_calibration_prompt_without_the_conversation() -> None:
    other = ToolDefinition("define", "Define a word.", {"type": "object", "properties": {}})
    chat = ak.Chat("Be brief.")
    chat.add_user_message("What does 'apple' mean?")
    request = PredictionRequest(chat.messages, (TOOL, other))
    plan = plan_round(request, PredictionConfig(), GemmaFormat(), None)
    assert plan.calibration is not None
    calibration = text(plan.calibration())
    prompt = text(plan.segments)
    # The same instructions and tools, the system prompt kept, the user's words left out.
    assert "Be brief." in calibration and "- define: Define a word." in calibration
    assert "apple" in prompt and "apple" not in calibration
    assert calibration.endswith("<start_of_turn>model\n")


def test_a_single_tool_is_calibrated_too_and_no_tools_are_not() -> None:
    # Whether another call follows is weighed against it whatever the number of tools.
    plan = plan_round(PredictionRequest(MESSAGES, (TOOL,)), PredictionConfig(), GemmaFormat(), None)
    assert plan.calibration is not None
    plan = plan_round(PredictionRequest(MESSAGES, ()), PredictionConfig(), GemmaFormat(), None)
    assert plan.calibration is None
