"""Structured output: a response format (pydantic class or JSON Schema) and its parser."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, TypeAlias

from pydantic import BaseModel, ValidationError

from agentkit.engines.base import ResponseFormatSpec
from agentkit.errors import ConfigurationError, describe_validation_errors
from agentkit.tools import json_schema

__all__ = ["OutputFormat", "OutputInvalid", "ResponseFormat"]

ResponseFormat: TypeAlias = type[BaseModel] | Mapping[str, Any]

_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n?```\s*$", re.DOTALL)


class OutputInvalid(Exception):
    """The text did not parse or validate; `problems` says why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class OutputFormat:
    """A checked response format: the schema engines constrain to, and a parser for answers."""

    __slots__ = ("_model", "spec")

    def __init__(self, response_format: ResponseFormat) -> None:
        self._model: type[BaseModel] | None = None
        if isinstance(response_format, type) and issubclass(response_format, BaseModel):
            self._model = response_format
            self.spec = ResponseFormatSpec(
                response_format.__name__, response_format.model_json_schema()
            )
        elif isinstance(response_format, Mapping):
            schema = dict(response_format)
            try:
                json_schema.check_schema(schema)
            except json_schema.SchemaError as error:
                raise ConfigurationError(
                    f"response_format is not a valid schema: {error}"
                ) from error
            self.spec = ResponseFormatSpec(str(schema.get("title", "response")), schema)
        else:
            raise ConfigurationError(
                "response_format must be a pydantic model class or a JSON Schema dict, "
                f"got {response_format!r}"
            )

    def parse(self, text: str) -> Any:
        """The validated answer: a model instance, or the decoded JSON for a schema dict."""
        fenced = _FENCE.match(text)
        body = fenced.group(1) if fenced else text
        try:
            value = json.loads(body)
        except json.JSONDecodeError as error:
            raise OutputInvalid(
                [f"the answer is not valid JSON ({error.msg} at {error.pos})"]
            ) from error
        if self._model is not None:
            try:
                return self._model.model_validate(value)
            except ValidationError as error:
                raise OutputInvalid(describe_validation_errors(error.errors())) from error
        problems = json_schema.validate(value, self.spec.schema)
        if problems:
            raise OutputInvalid(problems)
        return value
