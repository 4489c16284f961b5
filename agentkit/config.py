"""Load-time and prediction-time configuration.

Both accept snake_case or LM Studio's camelCase keys (`max_tokens` or `maxTokens`), so configs
written for lmstudio-python work unchanged. Unknown keys are errors, not silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeAlias, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from agentkit.errors import ConfigurationError, describe_validation_errors

__all__ = ["LoadConfig", "LoadConfigInput", "PredictionConfig", "PredictionConfigInput"]


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
    tool_choice: Literal["auto", "required"] = "auto"
    """"required": when tools are offered, the model must call at least one (OpenAI's
    tool_choice); the final round of act() offers no tools, so it still answers."""


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
