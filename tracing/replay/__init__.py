"""Record predictions to JSONL and replay them without inference.

`engines` holds `RecordingEngine`, `ReplayEngine` and the replay model handles; `format` the
record format; `keys` the request keys and the diagnostics of a replay miss.
"""

from agentkit.tracing.replay.engines import (
    AsyncReplayModel,
    RecordingEngine,
    ReplayEngine,
    ReplayMissError,
    ReplayModel,
)

__all__ = ["AsyncReplayModel", "RecordingEngine", "ReplayEngine", "ReplayMissError", "ReplayModel"]
