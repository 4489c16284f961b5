"""Durable runs on DBOS: act() and Agent runs that survive a crash and spread over workers.

    from agentkit.durable import Runtime

    runtime = Runtime("runs.sqlite")                 # or Runtime("postgresql://...")
    support = runtime.agent("support", agent)        # same name in every worker
    runtime.launch()                                 # resumes what a crash left
    result = support.act("session-42", "Refund order A-1")

Every prediction, tool call and store operation of a run is a DBOS step whose output is
recorded; after a crash the run continues from its last completed step, so no completed tool
call runs twice and no recorded prediction is recomputed. Needs `pip install agentkit[durable]`.
"""

from __future__ import annotations

from .agent import DurableAgent
from .evaluation import DurableEvaluation
from .loop import DurableLoop
from .runtime import Runtime

__all__ = ["DurableAgent", "DurableEvaluation", "DurableLoop", "Runtime"]
