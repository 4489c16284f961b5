"""The DBOS workflows behind durable runs, registered when agentkit.durable is imported.

Each takes only data (names, ids, messages, options) so DBOS can record it and start it again
in another process; the agent or loop itself is looked up by name in that process's registry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dbos import DBOS

from agentkit.approval import Decision
from agentkit.chat import Chat
from agentkit.messages import Message, UserMessage
from agentkit.results import ActResult

from . import registry
from .steps import DBOSSteps

__all__ = ["agent_act", "agent_resume", "loop_act"]


@DBOS.workflow(name="agentkit.agent.act")
async def agent_act(
    name: str, session_id: str, message: UserMessage, options: Mapping[str, Any]
) -> ActResult:
    """Agent.act on a session, every store operation, prediction and tool call a step."""
    agent = registry.agent(name).async_agent
    return await agent.act(session_id, message, steps=DBOSSteps.for_this_run(), **options)


@DBOS.workflow(name="agentkit.agent.resume")
async def agent_resume(
    name: str, session_id: str, decisions: Sequence[Decision], options: Mapping[str, Any]
) -> ActResult:
    """Agent.resume of a paused session, as `agent_act`."""
    agent = registry.agent(name).async_agent
    return await agent.resume(session_id, decisions, steps=DBOSSteps.for_this_run(), **options)


@DBOS.workflow(name="agentkit.act")
async def loop_act(name: str, messages: Sequence[Message], options: Mapping[str, Any]) -> ActResult:
    """act() on a chat, every prediction and tool call a step."""
    loop = registry.loop(name)
    return await loop.model.act(
        Chat.from_history(list(messages)),
        loop.tools,
        steps=DBOSSteps.for_this_run(),
        **{**loop.act_options, **options},
    )
