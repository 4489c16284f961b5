"""Inference engines and the choice of one from a client URL."""

from __future__ import annotations

import os

from agentkit.engines.base import Engine
from agentkit.errors import ConfigurationError

__all__ = ["Engine", "engine_for_url"]


def engine_for_url(base_url: str | None) -> Engine:
    """The engine a client URL names: None for the in-process llama.cpp engine,
    `lmstudio://host:port` for LM Studio, `http(s)://host:port/v1` for OpenAI-compatible servers.
    """
    if base_url is None:
        from agentkit.engines.llama_cpp.engine import LlamaCppEngine

        return LlamaCppEngine()
    if base_url.startswith(("lmstudio://", "ws://", "wss://")):
        from agentkit.engines.lmstudio import LMStudioEngine

        return LMStudioEngine(base_url, api_token=os.environ.get("LM_API_TOKEN"))
    if base_url.startswith(("http://", "https://")):
        from agentkit.engines.openai import OpenAIEngine

        # An API key is optional; OPENAI_API_KEY is used when set, as OpenAI's SDK does.
        return OpenAIEngine(base_url, api_key=os.environ.get("OPENAI_API_KEY"))
    raise ConfigurationError(
        f"cannot tell which engine {base_url!r} names: use no URL for the local llama.cpp "
        "engine, lmstudio://host:port for LM Studio, or http://host:port/v1 for an "
        "OpenAI-compatible server"
    )
