"""What an AG-UI client sends back: resume entries as approval decisions, and the history.

A resume entry answers an approval interrupt (whose id is the waiting call's id): `status
"cancelled"` denies the call; `"resolved"` carries a payload `{"approved": bool, "arguments":
{...}?, "reason": str?}` (`APPROVAL_RESPONSE_SCHEMA`). Which calls are pending is not the
client's to say: `agent.resume` checks the decisions against the store.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from ag_ui.core import (
    AssistantMessage as AGUIAssistantMessage,
)
from ag_ui.core import (
    FunctionCall,
    ResumeEntry,
)
from ag_ui.core import (
    Message as AGUIMessage,
)
from ag_ui.core import (
    ToolCall as AGUIToolCall,
)
from ag_ui.core import (
    ToolMessage as AGUIToolMessage,
)
from ag_ui.core import (
    UserMessage as AGUIUserMessage,
)
from pydantic import BaseModel, ConfigDict, StrictBool, StrictStr, ValidationError

from agentkit.approval import Approve, Decision, Deny
from agentkit.errors import ApprovalError
from agentkit.messages import AssistantMessage, Message, ToolResultMessage, UserMessage

__all__ = ["history_messages", "resume_decisions"]


class _ApprovalPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    approved: StrictBool
    arguments: dict[str, Any] | None = None
    reason: StrictStr | None = None


def resume_decisions(entries: Iterable[ResumeEntry]) -> list[Decision]:
    """Approval decisions for AG-UI resume entries; `ApprovalError` for a malformed one."""
    decisions: list[Decision] = []
    for entry in entries:
        if entry.status == "cancelled":
            decisions.append(Deny(entry.interrupt_id))
            continue
        try:
            payload = _ApprovalPayload.model_validate(entry.payload)
        except ValidationError as error:
            raise ApprovalError(
                f"the answer to {entry.interrupt_id!r} is not an approval "
                f"({{'approved': bool, 'arguments'?: object, 'reason'?: str}}): "
                f"{error.errors()[0]['msg']}"
            ) from None
        if payload.approved:
            decisions.append(Approve(entry.interrupt_id, payload.arguments))
        elif payload.reason:
            decisions.append(Deny(entry.interrupt_id, payload.reason))
        else:
            decisions.append(Deny(entry.interrupt_id))
    return decisions


def history_messages(messages: Sequence[Message], *, id_prefix: str = "") -> list[AGUIMessage]:
    """A session's stored messages as AG-UI messages (as in MESSAGES_SNAPSHOT).

    Message ids are positions in the session (`{id_prefix}{index}`): stable, as sessions only
    grow. System messages are not stored by the Agent and are left out.
    """
    converted: list[AGUIMessage] = []
    for index, message in enumerate(messages):
        message_id = f"{id_prefix}{index}"
        if isinstance(message, UserMessage):
            converted.append(AGUIUserMessage(id=message_id, content=message.content))
        elif isinstance(message, AssistantMessage):
            calls = [
                AGUIToolCall(
                    id=call.id,
                    function=FunctionCall(
                        name=call.name,
                        arguments=call.arguments
                        if isinstance(call.arguments, str)
                        else json.dumps(call.arguments),
                    ),
                )
                for call in message.tool_calls
            ]
            converted.append(
                AGUIAssistantMessage(
                    id=message_id, content=message.content or None, tool_calls=calls or None
                )
            )
        elif isinstance(message, ToolResultMessage):
            converted.append(
                AGUIToolMessage(
                    id=message_id,
                    content=message.content,
                    tool_call_id=message.tool_call_id,
                    error=message.content if message.is_error else None,
                )
            )
    return converted
