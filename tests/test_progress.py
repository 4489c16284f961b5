"""agentkit.progress: a bar on terminals, start/end lines on logs, nothing when disabled."""

from __future__ import annotations

import io

import pytest

from agentkit.progress import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_pipe_gets_one_line_at_start_and_one_at_end() -> None:
    out = io.StringIO()
    with progress("assembling model.gguf", 100, enabled=True, stream=out) as bar:
        for _ in range(100):
            bar.advance()
    lines = out.getvalue().splitlines()
    assert lines[0] == "assembling model.gguf..."
    assert lines[1].startswith("assembling model.gguf: done in ")
    assert len(lines) == 2


def test_a_failure_is_reported_as_failed() -> None:
    out = io.StringIO()
    with pytest.raises(OSError, match="disk full"), progress("eval", 3, enabled=True, stream=out):
        raise OSError("disk full")
    assert "eval: failed in" in out.getvalue()


def test_default_shows_nothing_off_a_terminal() -> None:
    out = io.StringIO()
    with progress("eval", 3, stream=out) as bar:
        bar.advance(3)
        bar.note("failed 0")
    assert out.getvalue() == ""


def test_terminal_gets_a_bar_with_counts() -> None:
    out = Terminal()
    with progress("eval", 4, stream=out) as bar:
        bar.advance(4)
        bar.note("failed 1")
    drawn = out.getvalue()
    assert "eval" in drawn and "4/4" in drawn and "failed 1" in drawn
