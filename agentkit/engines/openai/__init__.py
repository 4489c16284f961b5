"""OpenAI-compatible servers (`/v1/chat/completions`): the way past one machine for inference."""

from agentkit.engines.openai.engine import OpenAIEngine

__all__ = ["OpenAIEngine"]
