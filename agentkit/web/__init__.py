"""Web backends for the Agent runtime: AG-UI events over Server-Sent Events, admission limits.

Needs the `web` extra (`pip install agentkit[web]`): the AG-UI protocol package.
"""

from agentkit.web.agui import (
    APPROVAL_RESPONSE_SCHEMA,
    AGUIMapper,
    agui_events,
    agui_sse,
    approval_interrupts,
)
from agentkit.web.agui_input import history_messages, resume_decisions
from agentkit.web.limits import LimitExceeded, ModelQueue, RunSlot, UserLimits
from agentkit.web.response import AgentRun, AGUIResponse

__all__ = [
    "APPROVAL_RESPONSE_SCHEMA",
    "AGUIMapper",
    "AGUIResponse",
    "AgentRun",
    "LimitExceeded",
    "ModelQueue",
    "RunSlot",
    "UserLimits",
    "agui_events",
    "agui_sse",
    "approval_interrupts",
    "history_messages",
    "resume_decisions",
]
