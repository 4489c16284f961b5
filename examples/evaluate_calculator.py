"""Evaluate the calculator agent on the local engine: four questions, two scorers, a report.

    python examples/evaluate_calculator.py [OUT_DIR]

Writes eval_report.html and eval_report.json into OUT_DIR (default: the current directory)
and prints the table. Each run is one OpenTelemetry trace; with an SDK configured (see
agentkit.tracing) the report's trace ids lead to the act() spans of each run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import agentkit as ak
from agentkit.tools import calculator
from agentkit.tracing.evaluation.evaluate import Case, evaluate
from agentkit.tracing.evaluation.scorers import contains, tool_called

INSTRUCTIONS = (
    "You are a careful assistant. Use the calculator tool for any arithmetic, "
    "then answer in one short sentence."
)
CASES = [
    Case(id="multiply", input="What is 12345 times 54321?", expected="670592745"),
    Case(id="add", input="What is 17 plus 25?", expected="42", tags=["easy"]),
    Case(id="divide", input="What is 1024 divided by 16?", expected="64"),
    Case(id="subtract", input="What is 1000 minus 1?", expected="999", tags=["easy"]),
]


def main() -> None:
    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()
    out_dir.mkdir(parents=True, exist_ok=True)
    # Greedy, short, and a tool call forced in the first round: what a 270M model needs.
    config = ak.PredictionConfig(temperature=0, seed=0, max_tokens=48, tool_choice="required")
    with ak.Client() as client:
        model = client.llm.model()

        def agent(case: Case) -> ak.ActResult:
            chat = case.chat()  # the question as a user message
            chat.insert(0, ak.SystemMessage(content=INSTRUCTIONS))
            return model.act(chat, [calculator], max_prediction_rounds=2, config=config)

        report = evaluate(
            CASES, agent, [contains(), tool_called("calculator")], name="calculator agent"
        )
    report.print_table()
    report.to_json(out_dir / "eval_report.json")
    report.to_html(out_dir / "eval_report.html")
    print(f"\nwrote {out_dir / 'eval_report.html'} and {out_dir / 'eval_report.json'}")


if __name__ == "__main__":
    main()
