"""An MCP `CallToolResult` as what act() gives the model: text, structured content, or an error.

A model reads text, so content blocks become text: text blocks as they are, embedded text
resources by their text, and images, audio, binary resources and resource links as a short
bracketed note (what it is and how big), never as base64. Structured content, when the server
sends it, is the result (rendered as JSON), since by the spec the text blocks then only repeat
it. A result flagged `isError` raises `MCPToolError`, which act() reports to the model.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import mcp_types as types

from agentkit.errors import MCPToolError

__all__ = ["content_text", "tool_result"]


def tool_result(tool_name: str, server: str, result: types.CallToolResult) -> Any:
    """The value a tool call returns to act() (a str, or the structured content)."""
    if result.is_error:
        raise MCPToolError(tool_name, server, content_text(result.content) or "(no details)")
    if result.structured_content is not None:
        return result.structured_content
    return content_text(result.content)


def content_text(blocks: list[types.ContentBlock]) -> str:
    """The content blocks as one text, blocks separated by newlines."""
    return "\n".join(_block_text(block) for block in blocks)


def _block_text(block: types.ContentBlock) -> str:
    if isinstance(block, types.TextContent):
        return block.text
    if isinstance(block, types.ImageContent):
        return f"[image: {block.mime_type}, {_size(block.data)}, not shown]"
    if isinstance(block, types.AudioContent):
        return f"[audio: {block.mime_type}, {_size(block.data)}, not shown]"
    if isinstance(block, types.ResourceLink):
        return f"[resource link: {block.uri} ({block.name})]"
    if isinstance(block, types.EmbeddedResource):
        resource = block.resource
        if isinstance(resource, types.TextResourceContents):
            return resource.text
        mime = resource.mime_type or "binary"
        return f"[resource {resource.uri}: {mime}, {_size(resource.blob)}, not shown]"
    return f"[{getattr(block, 'type', type(block).__name__)} content, not shown]"


def _size(data: str) -> str:
    try:
        count = len(base64.b64decode(data, validate=False))
    except (binascii.Error, ValueError):
        count = len(data)
    return f"{count} bytes"
