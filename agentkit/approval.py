"""Human approval of tool calls: which calls wait, what is pending, and the decisions on them.

A call waits for approval when its tool says `requires_approval=True` or the run's approval
policy `(call) -> bool` says so. act() runs the round's other calls, commits the assistant
message with their results, and stops with `stop_reason="approval_required"`; the waiting calls
are the assistant message's calls that have no result yet. So a paused run is plain data in
the chat (or the session store): nothing else needs keeping, and any process can resume it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from agentkit.callbacks import logger
from agentkit.errors import ApprovalError, ToolArgumentsError
from agentkit.messages import AssistantMessage, Message, ToolCall, ToolResultMessage
from agentkit.tools.toolset import Toolset

__all__ = [
    "ApprovalPolicy",
    "Approve",
    "Decision",
    "Deny",
    "checked_decisions",
    "needs_approval",
    "pending_calls",
]

ApprovalPolicy: TypeAlias = Callable[[ToolCall], bool]
"""`(call) -> bool`: True when a person must approve the call before it runs."""


@dataclass(frozen=True, slots=True)
class Approve:
    """Run the pending call `call_id`, with `arguments` replacing the model's when given
    (validated against the tool's schema)."""

    call_id: str
    arguments: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Deny:
    """Do not run the pending call `call_id`; the model reads `reason` as the call's result."""

    call_id: str
    reason: str = field(default="The user denied this tool call.")


Decision: TypeAlias = Approve | Deny


def needs_approval(call: ToolCall, toolset: Toolset, policy: ApprovalPolicy | None) -> bool:
    """Whether `call` must wait for a person. A policy that raises counts as a yes."""
    tool = toolset.get(call.name)
    if tool is None:
        return False  # an unknown tool fails as usual; there is nothing to approve
    if tool.requires_approval:
        return True
    if policy is None:
        return False
    try:
        return bool(policy(call))
    except Exception:
        logger.exception("approval policy raised on %r; the call waits for approval", call.name)
        return True


def pending_calls(messages: Sequence[Message]) -> tuple[ToolCall, ...]:
    """The calls of the last assistant message that have no result after it (a paused run)."""
    answered: set[str] = set()
    for message in reversed(messages):
        if isinstance(message, ToolResultMessage):
            answered.add(message.tool_call_id)
        elif isinstance(message, AssistantMessage):
            return tuple(call for call in message.tool_calls if call.id not in answered)
        else:
            return ()
    return ()


def checked_decisions(
    pending: Sequence[ToolCall], decisions: Iterable[Decision], toolset: Toolset
) -> list[tuple[ToolCall, Decision]]:
    """Each pending call with its decision, edited arguments applied and validated.

    Every pending call needs exactly one decision, and a decision may only name a pending
    call: anything else is `ApprovalError`, and nothing runs.
    """
    by_id = {call.id: call for call in pending}
    if not by_id:
        raise ApprovalError("nothing is waiting for approval in this session")
    chosen: dict[str, Decision] = {}
    for decision in decisions:
        if not isinstance(decision, Approve | Deny):
            raise ApprovalError(f"a decision is Approve(...) or Deny(...), not {decision!r}")
        if decision.call_id not in by_id:
            raise ApprovalError(f"call {decision.call_id!r} is not waiting for approval")
        if decision.call_id in chosen:
            raise ApprovalError(f"call {decision.call_id!r} has two decisions")
        chosen[decision.call_id] = decision
    missing = [call_id for call_id in by_id if call_id not in chosen]
    if missing:
        raise ApprovalError(f"no decision for pending call(s) {', '.join(map(repr, missing))}")
    checked = []
    for call_id, call in by_id.items():
        decision = chosen[call_id]
        if isinstance(decision, Approve) and decision.arguments is not None:
            call = ToolCall(call.name, decision.arguments, id=call.id)
            tool = toolset.get(call.name)
            if tool is not None:
                if not isinstance(call.arguments, dict):
                    raise ApprovalError(f"edited arguments for {call_id!r} must be a JSON object")
                try:
                    tool.bind(call.arguments)
                except ToolArgumentsError as error:
                    raise ApprovalError(
                        f"edited arguments for {call_id!r} do not fit {call.name!r}: {error}"
                    ) from None
        checked.append((call, decision))
    return checked
