"""A writer process for the concurrency tests: appends N messages to one session, retrying each
on SessionConflict, and prints how many conflicts it met."""

from __future__ import annotations

import sys

from agentkit import UserMessage
from agentkit.errors import SessionConflict
from agentkit.memory import PostgresStore, SessionStore, SQLiteStore


def main(kind: str, target: str, session_id: str, writer: str, count: int) -> None:
    store: SessionStore = SQLiteStore(target) if kind == "sqlite" else PostgresStore(target)
    conflicts = 0
    with store:
        for index in range(count):
            while True:
                revision = store.load(session_id, missing_ok=True).revision
                try:
                    store.append(
                        session_id,
                        [UserMessage(content=f"{writer}:{index}")],
                        expected_revision=revision,
                    )
                    break
                except SessionConflict:
                    conflicts += 1
    print(conflicts)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
