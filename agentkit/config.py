"""Load-time and prediction-time configuration.

Both accept snake_case or LM Studio's camelCase keys (`max_tokens` or `maxTokens`), so configs
written for lmstudio-python work unchanged. Unknown keys are errors, not silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeAlias, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from agentkit.errors import ConfigurationError, describe_validation_errors

__all__ = [
    "LoadConfig",
    "LoadConfigInput",
    "NamedToolChoice",
    "PredictionConfig",
    "PredictionConfigInput",
    "ToolChoice",
]


class _Config(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        defer_build=True,  # validators built on first use: `import agentkit` stays light
    )


class LoadConfig(_Config):
    """How a model is loaded: fixed for the life of a loaded instance."""

    context_length: int | None = Field(default=None, gt=0)
    gpu_offload: Literal["max", "off"] | float | None = Field(default=None)
    rope_frequency_base: float | None = Field(default=None, gt=0)
    threads: int | None = Field(default=None, gt=0)
    seed: int | None = None
    chat_format: str | None = None
    """A built-in prompt format (JSON-mode tools) instead of the model's own template."""
    chat_template: str | None = None
    """A Jinja chat template to use instead of the one in the model file."""
    tool_call_syntax: Literal["agentkit", "trained"] = "agentkit"
    """How the local engine's JSON mode teaches and writes tool calls: "agentkit", a
    `{"tool_calls": [...]}` object after short instructions, or "trained", the model family's
    own function-calling prompt and format where agentkit knows it (SmolLM2's
    `<tool_call>[...]`; other models keep agentkit's). "trained" picks the right tool more often
    among several but costs a longer prompt: see the README's Tool-call accuracy."""


class NamedToolChoice(_Config):
    """A call to this one tool is required (`{"name": "calculator"}`)."""

    name: str = Field(min_length=1)


ToolChoice: TypeAlias = Literal["none", "auto", "required"] | NamedToolChoice
"""What the model may do with the tools a round offers; see `PredictionConfig.tool_choice`."""

_TOOL_CHOICE_HELP = (
    'tool_choice is "none", "auto", "required", {"name": <tool>} or '
    '{"type": "function", "function": {"name": <tool>}}'
)


class PredictionConfig(_Config):
    """How one prediction samples; may differ per call."""

    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0, le=1)
    repeat_penalty: float | None = Field(default=None, gt=0)
    max_tokens: int | None = Field(default=None, gt=0)
    stop_strings: tuple[str, ...] = ()
    seed: int | None = None
    logit_bias: dict[int, float] | None = None
    tool_choice: ToolChoice = "auto"
    """What the model may do with the offered tools (OpenAI's tool_choice): "auto" (call or
    answer), "none" (answer; the local and LM Studio engines then offer no tools at all),
    "required" (call at least one), or `{"name": "calculator"}` (call that tool; OpenAI's
    `{"type": "function", "function": {"name": ...}}` is accepted too). A named tool that the
    round does not offer is a `ConfigurationError` before inference.

    It applies to every prediction that offers tools, as OpenAI applies it to every request;
    predictions without tools (respond(), act()'s final round) ignore it. So with "required" or
    a named tool, act() calls tools every round until `max_prediction_rounds`, whose final
    round offers no tools and answers: give such a run a round limit."""

    @field_validator("tool_choice", mode="before")
    @classmethod
    def _tool_choice(cls, value: Any) -> Any:
        """Normalise OpenAI's function form; refuse anything else with the accepted forms."""
        if isinstance(value, NamedToolChoice) or value in ("none", "auto", "required"):
            return value
        name: Any = None
        if isinstance(value, str):
            raise ValueError(
                f'{_TOOL_CHOICE_HELP}, got {value!r} (for a tool: {{"name": "{value}"}})'
            )
        if isinstance(value, Mapping):
            function = value.get("function")
            if set(value) == {"type", "function"} and value["type"] == "function":
                if isinstance(function, Mapping) and set(function) == {"name"}:
                    name = function["name"]
            elif set(value) == {"name"}:
                name = value["name"]
        if isinstance(name, str) and name:
            return NamedToolChoice(name=name)
        raise ValueError(f"{_TOOL_CHOICE_HELP}, got {value!r}")


LoadConfigInput: TypeAlias = LoadConfig | Mapping[str, Any] | None
PredictionConfigInput: TypeAlias = PredictionConfig | Mapping[str, Any] | None

_C = TypeVar("_C", bound=_Config)


def coerce_config(kind: type[_C], value: _C | Mapping[str, Any] | None) -> _C | None:
    """Validate a config given as a model or a dict; a clear error names the bad keys."""
    if value is None or isinstance(value, kind):
        return value
    try:
        return kind.model_validate(value)
    except ValidationError as error:
        problems = "; ".join(describe_validation_errors(error.errors(), subject="config"))
        raise ConfigurationError(f"invalid {kind.__name__}: {problems}") from error
