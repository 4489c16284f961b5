"""BFCL's public function-calling data and AST checker, fetched at run time (never committed).

`fetch()` downloads the `bfcl-eval` wheel from PyPI with `pip download --no-deps` into a cache
dir and unpacks it; `load_cases()` reads the prompts, function docs and ground truth of a
category; `openai_tool()` turns a BFCL function doc into the name, description and JSON Schema
that BFCL's OpenAI function-calling handler sends; `load_checker()` imports BFCL's own
`ast_checker` module from the unpacked wheel without its heavy dependency tree.
"""

from __future__ import annotations

import copy
import json
import random
import re
import subprocess
import sys
import types
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BFCL_VERSION",
    "CATEGORIES",
    "CHECKER_MODEL_NAME",
    "Case",
    "Checker",
    "fetch",
    "load_cases",
    "load_checker",
    "openai_name",
    "openai_tool",
    "sample",
]

BFCL_VERSION = "2026.3.23"
CATEGORIES = ("simple_python", "multiple", "parallel")
DEFAULT_CACHE = Path.home() / ".cache" / "agentkit" / "bench" / "bfcl"
# The model name the checker is told; BFCL looks up whether that model's function names had
# "." replaced by "_", which is what its OpenAI handler does and what we do (see openai_name).
CHECKER_MODEL_NAME = "agentkit-bench"

# bfcl_eval/constants/type_mappings.py GORILLA_TO_OPENAPI (BFCL's OpenAI handler's mapping).
GORILLA_TO_OPENAPI = {
    "integer": "integer",
    "number": "number",
    "float": "number",
    "string": "string",
    "boolean": "boolean",
    "bool": "boolean",
    "array": "array",
    "list": "array",
    "dict": "object",
    "object": "object",
    "tuple": "array",
    "any": "string",
    "byte": "integer",
    "short": "integer",
    "long": "integer",
    "double": "number",
    "char": "string",
    "ArrayList": "array",
    "Array": "array",
    "HashMap": "object",
    "Hashtable": "object",
    "Queue": "array",
    "Stack": "array",
    "Any": "string",
    "String": "string",
    "Bigint": "integer",
}


@dataclass(frozen=True, slots=True)
class Case:
    """One BFCL test entry: the first turn's messages, the function docs, the ground truth."""

    id: str
    category: str
    messages: list[dict[str, str]]
    functions: list[dict[str, Any]]
    ground_truth: list[dict[str, Any]]


def fetch(cache: Path = DEFAULT_CACHE, version: str = BFCL_VERSION) -> Path:
    """The unpacked `bfcl-eval` wheel (the directory holding `bfcl_eval/`), fetched if absent."""
    root = cache / f"bfcl_eval-{version}"
    if (root / "bfcl_eval" / "data").is_dir():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    wheel = next(cache.glob(f"bfcl_eval-{version}-*.whl"), None)
    if wheel is None:
        print(f"fetching bfcl-eval=={version} from PyPI (no dependencies) ...", file=sys.stderr)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                "-d",
                str(cache),
                f"bfcl-eval=={version}",
            ],
            check=True,
        )
        wheel = next(cache.glob(f"bfcl_eval-{version}-*.whl"))
    partial = root.with_name(root.name + ".partial")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(partial)
    partial.rename(root)
    return root


def load_cases(root: Path, category: str) -> list[Case]:
    """Every entry of a category (`simple_python`, `multiple`, `parallel`, ...)."""
    data = root / "bfcl_eval" / "data"
    prompts = _jsonl(data / f"BFCL_v4_{category}.json")
    answers = {
        entry["id"]: entry["ground_truth"]
        for entry in _jsonl(data / "possible_answer" / f"BFCL_v4_{category}.json")
    }
    return [
        Case(
            id=entry["id"],
            category=category,
            messages=list(entry["question"][0]),
            functions=entry["function"],
            ground_truth=answers[entry["id"]],
        )
        for entry in prompts
    ]


def sample(cases: list[Case], limit: int | None, seed: int) -> list[Case]:
    """A seeded sample of `limit` cases in file order (all of them when limit is None)."""
    if limit is None or limit >= len(cases):
        return list(cases)
    chosen = set(random.Random(seed).sample(range(len(cases)), limit))
    return [case for index, case in enumerate(cases) if index in chosen]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def openai_name(name: str) -> str:
    """OpenAI-style function names allow no ".": BFCL's handler replaces it with "_"."""
    return re.sub(r"\.", "_", name)


def openai_tool(function: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(name, description, JSON Schema) as BFCL's `convert_to_tool(..., GORILLA_TO_OPENAPI,
    ModelStyle.OPENAI_COMPLETIONS)` builds them: "." in names becomes "_", the parameters are
    an object, BFCL's types ("dict", "float", "tuple", "any") map to JSON Schema's, floats get
    `format: float` and a note in their description, and a property without a type is a string.
    """
    item = copy.deepcopy(function)
    parameters = item["parameters"]
    parameters["type"] = "object"
    parameters["properties"] = _cast_to_openai_type(parameters.get("properties", {}))
    return openai_name(item["name"]), item.get("description", ""), parameters


def _cast_to_openai_type(properties: dict[str, Any]) -> dict[str, Any]:
    """BFCL's `_cast_to_openai_type` with GORILLA_TO_OPENAPI; it changes `properties` in place."""
    for value in properties.values():
        if "type" not in value:
            value["type"] = "string"
        else:
            var_type = value["type"]
            if var_type == "float":
                value["format"] = "float"
                value["description"] = value.get("description", "") + " This is a float type value."
            value["type"] = GORILLA_TO_OPENAPI.get(var_type, "string")
        # BFCL converts: list of any, list of list of any, list of dict, list of list of dict,
        # dict of any. Deeper nesting is left as it is, as BFCL does.
        if value["type"] in ("array", "object"):
            if "properties" in value:
                value["properties"] = _cast_to_openai_type(value["properties"])
            elif "items" in value:
                items = value["items"]
                items["type"] = GORILLA_TO_OPENAPI[items["type"]]
                if items["type"] == "array" and "items" in items:
                    items["items"]["type"] = GORILLA_TO_OPENAPI[items["items"]["type"]]
                elif items["type"] == "object" and "properties" in items:
                    items["properties"] = _cast_to_openai_type(items["properties"])
    return properties


class Checker:
    """BFCL's AST checker from the unpacked wheel, for Python categories."""

    def __init__(self, module: types.ModuleType, python: Any) -> None:
        self._module = module
        self._python = python

    def check(self, case: Case, output: list[dict[str, Any]]) -> dict[str, Any]:
        """BFCL's verdict on decoded output `[{name: {param: value}}, ...]`: valid, error,
        error_type."""
        verdict: dict[str, Any] = self._module.ast_checker(
            case.functions,
            output,
            case.ground_truth,
            self._python,
            case.category,
            CHECKER_MODEL_NAME,
        )
        return verdict


def load_checker(root: Path) -> Checker:
    """Import `bfcl_eval.eval_checker.ast_eval.ast_checker` from the unpacked wheel.

    The checker imports `MODEL_CONFIG_MAPPING` only to ask whether a model's function names had
    "." replaced by "_"; the real module imports every provider SDK, so a stub answering "yes"
    for `CHECKER_MODEL_NAME` stands in for it. Everything else the checker uses is BFCL's.
    """
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    stub = types.ModuleType("bfcl_eval.constants.model_config")
    stub.MODEL_CONFIG_MAPPING = {  # type: ignore[attr-defined]
        CHECKER_MODEL_NAME: types.SimpleNamespace(underscore_to_dot=True)
    }
    sys.modules[stub.__name__] = stub
    from bfcl_eval.constants.enums import Language  # type: ignore[import-not-found]
    from bfcl_eval.eval_checker.ast_eval import (  # type: ignore[import-not-found]
        ast_checker,
    )

    return Checker(ast_checker, Language.PYTHON)
