"""Inference engines and the choice of one from a client URL."""

from __future__ import annotations

import os

from agentkit.engines.base import Engine
from agentkit.errors import ConfigurationError, EngineUnavailableError

__all__ = ["Engine", "engine_for_url"]


def engine_for_url(base_url: str | None) -> Engine:
    """The engine a client URL names: None for the in-process llama.cpp engine,
    `lmstudio://host:port` for LM Studio, `http(s)://host:port/v1` for OpenAI-compatible servers.
    """
    if base_url is None:
        kind = "llama_cpp"
    elif base_url.startswith(("lmstudio://", "ws://", "wss://")):
        kind = "lmstudio"
    elif base_url.startswith(("http://", "https://")):
        kind = "openai"
    else:
        raise ConfigurationError(
            f"cannot tell which engine {base_url!r} names: use no URL for the local llama.cpp "
            "engine, lmstudio://host:port for LM Studio, or http://host:port/v1 for an "
            "OpenAI-compatible server"
        )
    if kind == "llama_cpp":
        from agentkit.engines.llama_cpp import LlamaCppEngine

        return LlamaCppEngine()
    if kind == "openai" and base_url is not None:
        from agentkit.engines.openai import OpenAIEngine

        # An API key is optional; OPENAI_API_KEY is used when set, as OpenAI's SDK does.
        return OpenAIEngine(base_url, api_key=os.environ.get("OPENAI_API_KEY"))
    raise EngineUnavailableError(
        f"the {kind} engine is not part of this agentkit build yet; use the local engine "
        "(no URL) or pass engine= to the client"
    )
