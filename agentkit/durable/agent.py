"""`DurableAgent`: an Agent whose act() and resume() survive a crash of the process."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from agentkit.agent import Agent, AsyncAgent, _user_message
from agentkit.approval import Decision
from agentkit.memory.sessions import check_session_id
from agentkit.messages import Message, UserMessage
from agentkit.results import ActResult

from . import workflows
from .ids import agent_run_id, resume_run_id
from .loop import NOT_RECORDED

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = ["DurableAgent"]


class DurableAgent:
    """An Agent's runs as DBOS workflows: every store operation, prediction and tool call is a
    recorded step, so a run resumed after a crash redoes none that completed.

    Made by `Runtime.agent(name, agent)`. A run's id derives from the session and the message
    (its `message_id` when given, else its text), so a retried request joins the first run
    instead of starting another; send a repeated text with a fresh `message_id`. Waiting for a
    result can be abandoned: the run goes on, recorded. Options are recorded with the run, so
    they must pickle; callbacks (`on_event`) and cancel tokens do not survive a crash and are
    refused.
    """

    def __init__(self, runtime: Runtime, name: str, agent: Agent | AsyncAgent) -> None:
        self.runtime = runtime
        self.name = name
        self.async_agent: AsyncAgent = agent.async_agent if isinstance(agent, Agent) else agent

    def act(
        self,
        session_id: str,
        message: str | UserMessage,
        *,
        message_id: str | None = None,
        **options: Any,
    ) -> ActResult:
        """`Agent.act`, durable; blocks until the run ends (see the class docstring)."""
        run_id, user = self._act_args(session_id, message, message_id, options)
        return self.runtime.start(
            self.name, run_id, workflows.agent_act, self.name, session_id, user, options
        )

    async def aact(
        self,
        session_id: str,
        message: str | UserMessage,
        *,
        message_id: str | None = None,
        **options: Any,
    ) -> ActResult:
        """`act`, on the event loop."""
        run_id, user = self._act_args(session_id, message, message_id, options)
        return await self.runtime.astart(
            self.name, run_id, workflows.agent_act, self.name, session_id, user, options
        )

    def resume(self, session_id: str, decisions: Iterable[Decision], **options: Any) -> ActResult:
        """`Agent.resume`, durable; a second resume of the same calls joins the first (its
        decisions are not applied again: the first ones stand)."""
        decided = list(decisions)
        run_id = self._resume_id(session_id, decided, options)
        return self.runtime.start(
            self.name, run_id, workflows.agent_resume, self.name, session_id, decided, options
        )

    async def aresume(
        self, session_id: str, decisions: Iterable[Decision], **options: Any
    ) -> ActResult:
        """`resume`, on the event loop."""
        decided = list(decisions)
        run_id = self._resume_id(session_id, decided, options)
        return await self.runtime.astart(
            self.name, run_id, workflows.agent_resume, self.name, session_id, decided, options
        )

    def history(self, session_id: str) -> tuple[Message, ...]:
        """The session's stored messages."""
        return self.async_agent.store.load(session_id, missing_ok=True).messages

    def _act_args(
        self,
        session_id: str,
        message: str | UserMessage,
        message_id: str | None,
        options: dict[str, Any],
    ) -> tuple[str, UserMessage]:
        check_session_id(session_id)
        _refuse_callbacks(options)
        user = _user_message(message)
        return agent_run_id(self.name, session_id, user.model_dump_json(), message_id), user

    def _resume_id(
        self, session_id: str, decisions: list[Decision], options: dict[str, Any]
    ) -> str:
        check_session_id(session_id)
        _refuse_callbacks(options)
        # Decisions name the calls of one pause (call ids are unique), so they key the resume.
        return resume_run_id(self.name, session_id, [decision.call_id for decision in decisions])


def _refuse_callbacks(options: dict[str, Any]) -> None:
    from agentkit.errors import ConfigurationError

    refused = sorted(({"on_event"} | set(NOT_RECORDED)) & options.keys())
    if refused:
        raise ConfigurationError(f"a durable run does not take {refused}: they cannot be recorded")
