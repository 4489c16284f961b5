"""Stop strings found in generated text as it streams, across token boundaries."""

from __future__ import annotations

__all__ = ["StopMatcher"]


class StopMatcher:
    """Finds stop strings across token boundaries, looking only at the recent tail."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = tuple(stop for stop in stops if stop)
        self._keep = max((len(stop) for stop in self._stops), default=1) - 1
        self._tail = ""

    def feed(self, piece: str) -> tuple[str, bool]:
        """Text safe to emit now, and whether a stop string was found.

        Up to (longest stop - 1) characters are held back, since they may start a stop string
        that the next token completes; `flush` returns them when generation ends.
        """
        if not self._stops:
            return piece, False
        window = self._tail + piece
        found = [window.find(stop) for stop in self._stops if stop in window]
        if found:
            self._tail = ""
            return window[: min(found)], True
        split = max(len(window) - self._keep, 0)
        self._tail = window[split:]
        return window[:split], False

    def flush(self) -> str:
        """Held-back text once generation has ended without a stop string."""
        held, self._tail = self._tail, ""
        return held
