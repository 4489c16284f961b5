"""The in-process llama.cpp engine (llama-cpp-python), agentkit's default.

`engine` loads models and answers the Engine protocol; `worker` is the thread that serves one
loaded instance; `kv_cache` keeps saved KV states between chats; `stop_strings` finds stop
strings in streamed text; `sampling` is the grammar-aware sampler; `build` compiles
llama-cpp-python for this CPU; `models` assembles the default model, reads GGUF metadata and
finds model files; `prompting` renders chats; `json_mode`, `native_tools` and `tool_modes` turn
tool calls into grammars or parse a model's own tool-call format.

Importing this package does not import llama_cpp: the names below load their modules on first
use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentkit.engines.llama_cpp.engine import LlamaCppEngine
    from agentkit.engines.llama_cpp.models import GgufInfo, InvalidModelFileError, read_gguf_info
    from agentkit.engines.llama_cpp.worker import EngineBusyError, InstanceStats, PromptTooLongError

__all__ = [
    "EngineBusyError",
    "GgufInfo",
    "InstanceStats",
    "InvalidModelFileError",
    "LlamaCppEngine",
    "PromptTooLongError",
    "read_gguf_info",
]

_HOMES = {
    "LlamaCppEngine": "engine",
    "EngineBusyError": "worker",
    "InstanceStats": "worker",
    "PromptTooLongError": "worker",
    "GgufInfo": "models",
    "InvalidModelFileError": "models",
    "read_gguf_info": "models",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
