"""Stop strings matched as generated text streams (no model needed)."""

from __future__ import annotations

from agentkit.engines.llama_cpp.stop_strings import StopMatcher


def test_stop_matcher_holds_back_a_stop_split_across_tokens() -> None:
    matcher = StopMatcher(("END",))
    assert matcher.feed("abc E") == ("abc", False)
    assert matcher.feed("N") == (" ", False)
    assert matcher.feed("D tail") == ("", True)
    unmatched = StopMatcher(("END",))
    assert unmatched.feed("xE") == ("", False) and unmatched.flush() == "xE"


def test_no_stop_strings_pass_text_through() -> None:
    matcher = StopMatcher(("",))
    assert matcher.feed("anything") == ("anything", False)
    assert matcher.flush() == ""
