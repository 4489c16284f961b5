"""agentkit: ReAct agents on local models.

    import agentkit as ak

    with ak.Client() as client:
        model = client.llm.model()
        result = model.act("What is 12345 times 54321?", [multiply])

Importing agentkit loads the runtime only; engines, the OpenTelemetry SDK and server libraries
are imported when first used.
"""

from typing import TYPE_CHECKING

from agentkit.cancel import CancelToken
from agentkit.chat import (
    AssistantMessage,
    Chat,
    Image,
    Message,
    SystemMessage,
    ToolCall,
    ToolResultMessage,
    UserMessage,
)
from agentkit.client import AsyncClient, Client, configure_default_client, get_default_client, llm
from agentkit.config import LoadConfig, PredictionConfig
from agentkit.errors import (
    ActCancelled,
    ActError,
    AgentkitError,
    ConfigurationError,
    InvalidToolRequest,
    StructuredOutputError,
    ToolDefinitionError,
    ToolRetriesExceededError,
)
from agentkit.handles import LLM, AsyncLLM, AsyncPredictionStream, PredictionStream
from agentkit.model_handle import AsyncEmbeddingModel, EmbeddingModel
from agentkit.results import (
    ActResult,
    PredictionFragment,
    PredictionResult,
    PredictionStats,
    RoundRecord,
    ToolCallRecord,
    Usage,
)
from agentkit.tools import Tool, define_tool, tool

if TYPE_CHECKING:
    from agentkit.agent import Agent, AsyncAgent
    from agentkit.approval import Approve, Deny

__version__ = "0.1.0"

__all__ = [
    "LLM",
    "ActCancelled",
    "ActError",
    "ActResult",
    "Agent",
    "AgentkitError",
    "Approve",
    "AssistantMessage",
    "AsyncAgent",
    "AsyncClient",
    "AsyncEmbeddingModel",
    "AsyncLLM",
    "AsyncPredictionStream",
    "CancelToken",
    "Chat",
    "Client",
    "ConfigurationError",
    "Deny",
    "EmbeddingModel",
    "Image",
    "InvalidToolRequest",
    "LoadConfig",
    "Message",
    "PredictionConfig",
    "PredictionFragment",
    "PredictionResult",
    "PredictionStats",
    "PredictionStream",
    "RoundRecord",
    "StructuredOutputError",
    "SystemMessage",
    "Tool",
    "ToolCall",
    "ToolCallRecord",
    "ToolDefinitionError",
    "ToolResultMessage",
    "ToolRetriesExceededError",
    "Usage",
    "UserMessage",
    "configure_default_client",
    "define_tool",
    "get_default_client",
    "llm",
    "tool",
]

_LAZY = {
    "Agent": "agentkit.agent",
    "AsyncAgent": "agentkit.agent",
    "Approve": "agentkit.approval",
    "Deny": "agentkit.approval",
}


def __getattr__(name: str) -> object:
    # The Agent runtime loads session stores: `import agentkit` stays light without it.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'agentkit' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
