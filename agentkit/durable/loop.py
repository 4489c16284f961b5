"""`DurableLoop`: act() whose predictions and tool calls survive a crash of the process."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from agentkit.chat import Chat
from agentkit.errors import ConfigurationError
from agentkit.handles import LLM, AsyncLLM
from agentkit.messages import Message
from agentkit.results import ActResult
from agentkit.tools.toolset import ToolLike, as_tool

from . import workflows
from .ids import act_run_id

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = ["DurableLoop"]

# act() options that are code or live objects, not data: a durable run cannot record them.
NOT_RECORDED = (
    "on_message",
    "on_round_end",
    "on_round_start",
    "on_prediction_fragment",
    "on_first_token",
    "on_prediction_completed",
    "on_prompt_processing_progress",
    "handle_invalid_tool_request",
    "cancel_token",
    "steps",
)


class DurableLoop:
    """act() as a DBOS workflow: each prediction and tool call a recorded step.

    Made by `Runtime.loop(name, model, tools, **act_options)`. `act(chat, run_id=...)` returns
    the same ActResult as `model.act(chat, tools, ...)`; after a crash the run continues from its
    last completed step. The run's id is `run_id`, or derives from the chat. Callbacks cannot be
    recorded and are refused; give `handle_invalid_tool_request` and the like to `Runtime.loop`,
    where they are code every worker has, not recorded data.
    """

    def __init__(
        self,
        runtime: Runtime,
        name: str,
        model: LLM | AsyncLLM,
        tools: Iterable[ToolLike] | None,
        act_options: dict[str, Any],
    ) -> None:
        self.runtime = runtime
        self.name = name
        self.model: AsyncLLM = model.async_handle if isinstance(model, LLM) else model
        self.tools = [as_tool(item) for item in tools or ()]
        self.act_options = act_options

    def act(self, chat: Chat | str, *, run_id: str | None = None, **options: Any) -> ActResult:
        """Run (or join, or resume) the durable act() on `chat`; blocks until it ends."""
        messages, key = self._args(chat, run_id, options)
        return self.runtime.start(self.name, key, workflows.loop_act, self.name, messages, options)

    async def aact(
        self, chat: Chat | str, *, run_id: str | None = None, **options: Any
    ) -> ActResult:
        """`act`, on the event loop."""
        messages, key = self._args(chat, run_id, options)
        return await self.runtime.astart(
            self.name, key, workflows.loop_act, self.name, messages, options
        )

    def _args(
        self, chat: Chat | str, run_id: str | None, options: dict[str, Any]
    ) -> tuple[list[Message], str]:
        refused = sorted(set(NOT_RECORDED) & options.keys())
        if refused:
            raise ConfigurationError(
                f"a durable run does not take {refused} per call: they cannot be recorded"
            )
        history = Chat.from_history(chat) if isinstance(chat, str) else chat
        messages = list(history)
        dumped = [message.model_dump(mode="json") for message in messages]
        return messages, act_run_id(self.name, dumped, run_id)
