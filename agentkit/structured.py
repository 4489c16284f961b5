"""Structured output: a response format (pydantic class or JSON Schema) and its parser."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeAlias

from pydantic import BaseModel, ValidationError

from agentkit import untrusted
from agentkit.engines.base import ResponseFormatSpec
from agentkit.errors import ConfigurationError, describe_validation_errors
from agentkit.tools import json_schema

__all__ = ["OutputFormat", "OutputInvalid", "ResponseFormat", "strip_code_fence"]

ResponseFormat: TypeAlias = type[BaseModel] | Mapping[str, Any]

_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n?```\s*$", re.DOTALL)


def strip_code_fence(text: str) -> str:
    """The body of a text that is one Markdown code block (```json or bare ```), else the text.

    Models often wrap a JSON answer in a fence although they were asked for bare JSON.
    """
    fenced = _FENCE.match(text)
    return fenced.group(1) if fenced else text


class OutputInvalid(Exception):
    """The text did not parse or validate; `problems` says why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class OutputFormat:
    """A checked response format: the schema engines constrain to, and a parser for answers."""

    __slots__ = ("_model", "_validator", "spec")

    def __init__(self, response_format: ResponseFormat) -> None:
        self._model: type[BaseModel] | None = None
        self._validator: json_schema.SchemaValidator | None = None
        if isinstance(response_format, type) and issubclass(response_format, BaseModel):
            self._model = response_format
            self.spec = ResponseFormatSpec(
                response_format.__name__, response_format.model_json_schema()
            )
        elif isinstance(response_format, Mapping):
            schema = dict(response_format)
            try:
                self._validator = json_schema.SchemaValidator(schema)  # compiled once
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
        """The validated answer: a model instance, or the decoded JSON for a schema dict.

        The text is model output, read within `agentkit.untrusted`'s limits: nesting too deep,
        integers too long, numbers beyond a float and NaN/Infinity raise `OutputInvalid` (so
        the model is asked again), like any other answer that does not parse or validate;
        lone surrogates become U+FFFD.
        """
        body = untrusted.clean_text(strip_code_fence(text))
        try:
            value = untrusted.loads(body, what="the answer")
        except untrusted.UntrustedDataError as error:
            raise OutputInvalid([untrusted.clip(str(error))]) from None
        if self._model is not None:
            try:
                return self._model.model_validate(value)
            except ValidationError as error:
                raise OutputInvalid(describe_validation_errors(error.errors())) from error
        assert self._validator is not None
        problems = self._validator.errors(value)
        if problems:
            raise OutputInvalid(problems)
        return value
