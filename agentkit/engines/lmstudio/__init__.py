"""LM Studio through the official `lmstudio` SDK."""

from agentkit.engines.lmstudio.engine import LMStudioEngine

__all__ = ["LMStudioEngine"]
