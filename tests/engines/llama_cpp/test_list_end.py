"""Whether another call follows: the model's choice weighed against the calibration prompt
(llama_cpp/list_end.py)."""

from __future__ import annotations

from typing import Any

import agentkit as ak


def _integers(what: str, choice: str, values: list[str], default: str) -> dict[str, Any]:
    number = {"type": "integer"}
    method: dict[str, Any] = {
        "type": "string",
        "description": f"The specific {choice} to use in the calculation. Supported values: "
        + ", ".join(f"'{value}'" for value in values)
        + f". Default '{default}'",
    }
    if choice == "algorithm":
        method["enum"] = values
    return {
        "type": "object",
        "properties": {
            "num1": {**number, "description": f"First number to calculate {what} for."},
            "num2": {**number, "description": f"Second number to calculate {what} for."},
            choice: method,
        },
        "required": ["num1", "num2"],
    }


def _gcd_tools() -> list[ak.Tool[..., Any]]:
    # BFCL's multiple_35, its wording.
    def done(**_: Any) -> str:
        return "ok"

    lcm = _integers("lcm", "method", ["standard", "reduced"], "standard")
    gcd = _integers("gcd", "algorithm", ["euclidean", "binary"], "euclidean")
    return [
        ak.define_tool(
            "calculate_lcm",
            "Calculate the least common multiple (lcm) between two integers.",
            lcm,
            done,
        ),
        ak.define_tool(
            "calculate_gcd",
            "Calculate the greatest common divisor (gcd) between two integers.",
            gcd,
            done,
        ),
    ]


def test_a_call_nobody_asked_for_does_not_follow_the_right_one(model: ak.LLM) -> None:
    # Greedy, the default model follows its gcd call with an lcm call on the same numbers (as
    # on BFCL's multiple_35); against the calibration prompt the request makes the list's end
    # likelier than that habit.
    result = model.act(
        "Calculate the greatest common divisor between 128 and 256.",
        _gcd_tools(),
        config={"temperature": 0, "max_tokens": 128, "tool_choice": "required"},
        max_prediction_rounds=2,
    )
    calls = result.round_records[0].tool_calls
    assert [call.call.name for call in calls] == ["calculate_gcd"]
