"""Progress of long work (model assembly, evaluation runs) on stderr, drawn by rich.

One place for it, so every bar in agentkit looks and behaves the same: redrawn in place on a
terminal; on pipes and logs a line when the work starts and one when it ends (with the last
`note`, e.g. the failures counted), never a line per update.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

__all__ = ["ProgressReporter", "progress"]


class ProgressReporter:
    """Advance with `advance(n)`; `note(text)` replaces the text after the bar."""

    def __init__(self, bar: Progress | None, task: TaskID | None) -> None:
        self._bar = bar
        self._task = task
        self.last_note = ""
        """The latest `note`; on pipes and logs it ends the closing line."""

    def advance(self, amount: float = 1) -> None:
        """Count `amount` more units of work as done."""
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, amount)

    def note(self, text: str) -> None:
        """Show `text` beside the bar (counts of failures, the current item...)."""
        self.last_note = text
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, note=text)


@contextmanager
def progress(
    label: str,
    total: float,
    *,
    enabled: bool | None = None,
    unit: str = "items",
    stream: TextIO | None = None,
) -> Iterator[ProgressReporter]:
    """Report progress of `total` units of work while the block runs.

    Args:
        label: what is being done, shown before the bar.
        total: units of work in all.
        enabled: False shows nothing; None (default) shows a bar only on a terminal.
        unit: "bytes" shows sizes (MB); anything else shows done/total counts.
        stream: where to draw (default: stderr).
    """
    out = stream if stream is not None else sys.stderr
    if out is None or enabled is False:
        yield ProgressReporter(None, None)
        return
    live = bool(getattr(out, "isatty", lambda: False)())
    if not live:
        if not enabled:
            yield ProgressReporter(None, None)
            return
        yield from _logged(label, out)
        return
    counter = DownloadColumn() if unit == "bytes" else MofNCompleteColumn()
    console = Console(file=out)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        counter,
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(label, total=total, note="")
        yield ProgressReporter(bar, task)


def _logged(label: str, out: TextIO) -> Iterator[ProgressReporter]:
    print(f"{label}...", file=out, flush=True)
    started = time.monotonic()
    outcome = "failed"
    reporter = ProgressReporter(None, None)
    try:
        yield reporter
        outcome = "done"
    finally:
        note = f"; {reporter.last_note}" if reporter.last_note else ""
        elapsed = time.monotonic() - started
        print(f"{label}: {outcome} in {elapsed:.1f} s{note}", file=out, flush=True)
