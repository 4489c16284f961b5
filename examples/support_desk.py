"""Structured output together with tools, and many sessions on one model handle.

Fifty customer sessions run concurrently over one (scripted) model handle; each looks up its
own order with an async tool and answers with a typed `Resolution`.
"""

from __future__ import annotations

import anyio
from pydantic import BaseModel

import agentkit as ak
from agentkit.testing import AsyncScriptedModel, ToolCall

ORDERS = {n: ("shipped" if n % 3 else "delayed") for n in range(50)}


class Resolution(BaseModel):
    order_id: int
    status: str
    apologise: bool


async def order_status(order_id: int) -> str:
    """Look up the shipping status of an order.

    Args:
        order_id: the order number.
    """
    await anyio.sleep(0.05)  # a database or HTTP call
    return ORDERS[order_id]


def support_model(chat: ak.Chat, round_index: int) -> str | list[ToolCall]:
    order_id = int(chat[-1].content.split("#")[1]) if round_index == 0 else None
    if order_id is not None:
        return [ToolCall("order_status", {"order_id": order_id})]
    status = chat[-1].content
    asked = int(chat[1].content.split("#")[1])
    return Resolution(
        order_id=asked, status=status, apologise=status == "delayed"
    ).model_dump_json()


async def main() -> None:
    model = AsyncScriptedModel(support_model)
    resolutions: dict[int, Resolution] = {}

    async def session(order_id: int) -> None:
        chat = ak.Chat("You are a support agent. Answer as JSON.")
        chat.add_user_message(f"Where is my order #{order_id}")
        result = await model.act(chat, [order_status], response_format=Resolution)
        resolutions[order_id] = result.parsed

    async with anyio.create_task_group() as group:
        for order_id in ORDERS:
            group.start_soon(session, order_id)
    delayed = sorted(n for n, r in resolutions.items() if r.apologise)
    print(f"{len(resolutions)} sessions resolved; apologies owed for orders {delayed}")


if __name__ == "__main__":
    anyio.run(main)
