"""`PostgresStore`: sessions in Postgres, for web backends with many workers and machines.

psycopg 3 with an async connection pool. A commit is one transaction whose first statement
claims the session row with the revision the writer saw (`UPDATE ... WHERE revision = %s`, or an
`INSERT ... ON CONFLICT DO NOTHING` for a new session); Postgres' row lock lets exactly one of
two racing writers match, the other gets `SessionConflict`. Messages are kept in `json` columns,
which store the text agentkit wrote, so a session round-trips exactly.

The async API needs asyncio (psycopg's). Each event loop that uses the store gets its own pool;
the blocking API runs on a private event loop, driven by the
calling thread (agentkit's portal, as for the sync Client).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from agentkit.errors import (
    ConfigurationError,
    SessionConflict,
    SessionExistsError,
    SessionNotFoundError,
    SessionStoreError,
    StoreVersionError,
)
from agentkit.messages import Message
from agentkit.portal import Portal

from .codec import decode_messages, decode_metadata, encode_metadata, encode_round, merged
from .sessions import (
    DEFAULT_MAX_MESSAGE_BYTES,
    AsyncStore,
    Session,
    SessionInfo,
    check_fork_point,
    check_limit,
    check_session_id,
    now,
)

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

__all__ = ["SCHEMA_VERSION", "PostgresStore"]

T = TypeVar("T")

SCHEMA_VERSION = 1

_SCHEMA = (
    """CREATE TABLE agentkit_sessions (
        id text PRIMARY KEY,
        revision bigint NOT NULL,
        message_count bigint NOT NULL,
        created_at double precision NOT NULL,
        updated_at double precision NOT NULL,
        metadata json NOT NULL,
        forked_from text
    )""",
    "CREATE INDEX agentkit_sessions_updated ON agentkit_sessions (updated_at DESC, id)",
    """CREATE TABLE agentkit_messages (
        session_id text NOT NULL,
        position bigint NOT NULL,
        revision bigint NOT NULL,
        body json NOT NULL,
        PRIMARY KEY (session_id, position)
    )""",
)
_MIGRATIONS: dict[int, tuple[str, ...]] = {0: _SCHEMA}

_SCHEMA_LOCK = 0x6167656E746B6974  # "agentkit": serialises migrations of one database


class PostgresStore(AsyncStore):
    """Sessions in a Postgres database (`dsn`: a libpq connection string or URL).

    `min_size`/`max_size` bound each pool; `timeout` is how long a call waits for a free
    connection. The tables (`agentkit_sessions`, `agentkit_messages`, `agentkit_schema`) are
    created on first use.
    """

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 30.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        try:
            import psycopg_pool  # noqa: F401
        except ImportError:
            raise ConfigurationError(
                'PostgresStore needs psycopg 3: pip install "agentkit[postgres]"'
            ) from None
        self.dsn = dsn
        self.max_message_bytes = max_message_bytes
        self._sizes = (min_size, max_size)
        self._timeout = timeout
        self._pools: dict[asyncio.AbstractEventLoop, asyncio.Task[AsyncConnectionPool]] = {}
        self._portal: Portal | None = None
        self._closed = False

    # -- connections ---------------------------------------------------------------------------

    def _call(self, function: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        if self._portal is None:
            self._portal = Portal()
        return self._portal.call(functools.partial(function, *args, **kwargs))

    async def _pool(self) -> AsyncConnectionPool:
        if self._closed:
            raise SessionStoreError("the Postgres store is closed")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise ConfigurationError("PostgresStore's async API needs asyncio") from None
        opening = self._pools.get(loop)
        if opening is None:  # made before any await, so concurrent first calls share it
            opening = self._pools[loop] = loop.create_task(self._open_pool())
        try:
            return await asyncio.shield(opening)
        except BaseException:
            if opening.done() and opening.exception() is not None:
                self._pools.pop(loop, None)  # the next call tries again
            raise

    async def _open_pool(self) -> AsyncConnectionPool:
        from psycopg_pool import AsyncConnectionPool

        min_size, max_size = self._sizes
        pool = AsyncConnectionPool(
            self.dsn, min_size=min_size, max_size=max_size, timeout=self._timeout, open=False
        )
        try:
            with _errors():
                await pool.open(wait=True, timeout=self._timeout)
                async with pool.connection() as connection:
                    await _migrate(connection)
        except BaseException:
            await pool.close()
            raise
        return pool

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection[Any]]:
        pool = await self._pool()
        with _errors():
            async with pool.connection() as connection, connection.transaction():
                yield connection

    # -- the store -------------------------------------------------------------------------------

    async def aload(self, session_id: str, *, missing_ok: bool = False) -> Session:
        check_session_id(session_id)
        async with self._transaction() as db:
            cursor = await db.execute(
                "SELECT s.revision, s.metadata::text, m.position, m.body::text "
                "FROM agentkit_sessions s LEFT JOIN agentkit_messages m ON m.session_id = s.id "
                "WHERE s.id = %s ORDER BY m.position",
                (session_id,),
            )
            rows = await cursor.fetchall()
        if not rows:
            if missing_ok:
                return Session(session_id)
            raise SessionNotFoundError(session_id)
        revision, metadata = rows[0][0], rows[0][1]
        messages = decode_messages(
            session_id, ((position, body) for _, _, position, body in rows if position is not None)
        )
        return Session(session_id, messages, revision, decode_metadata(session_id, metadata))

    async def aappend(
        self,
        session_id: str,
        messages: Iterable[Message | Mapping[str, Any]],
        *,
        expected_revision: int,
    ) -> int:
        texts = encode_round(session_id, messages, expected_revision, self.max_message_bytes)
        stamp = now()
        async with self._transaction() as db:
            if expected_revision == 0:
                cursor = await db.execute(
                    "INSERT INTO agentkit_sessions (id, revision, message_count, created_at, "
                    "updated_at, metadata) VALUES (%s, 1, %s, %s, %s, '{}') "
                    "ON CONFLICT (id) DO NOTHING RETURNING 0",
                    (session_id, len(texts), stamp, stamp),
                )
            else:
                cursor = await db.execute(
                    "UPDATE agentkit_sessions SET revision = revision + 1, "
                    "message_count = message_count + %s, updated_at = %s "
                    "WHERE id = %s AND revision = %s RETURNING message_count - %s",
                    (len(texts), stamp, session_id, expected_revision, len(texts)),
                )
            claimed = await cursor.fetchone()
            if claimed is None:
                raise SessionConflict(
                    session_id, expected_revision, await _revision(db, session_id)
                )
            start = claimed[0]
            async with db.cursor() as insert:
                await insert.executemany(
                    "INSERT INTO agentkit_messages (session_id, position, revision, body) "
                    "VALUES (%s, %s, %s, %s::json)",
                    [
                        (session_id, start + i, expected_revision + 1, text)
                        for i, text in enumerate(texts)
                    ],
                )
        return expected_revision + 1

    async def alist_sessions(self, *, limit: int = 100, offset: int = 0) -> list[SessionInfo]:
        check_limit(limit, offset)
        async with self._transaction() as db:
            cursor = await db.execute(
                "SELECT id, revision, message_count, created_at, updated_at, metadata::text, "
                "forked_from FROM agentkit_sessions ORDER BY updated_at DESC, id "
                "LIMIT %s OFFSET %s",
                (limit, offset),
            )
            rows = await cursor.fetchall()
        return [
            SessionInfo(sid, rev, count, created, updated, decode_metadata(sid, meta), forked)
            for sid, rev, count, created, updated, meta, forked in rows
        ]

    async def adelete(self, session_id: str) -> bool:
        check_session_id(session_id)
        async with self._transaction() as db:
            await db.execute("DELETE FROM agentkit_messages WHERE session_id = %s", (session_id,))
            cursor = await db.execute("DELETE FROM agentkit_sessions WHERE id = %s", (session_id,))
            return cursor.rowcount > 0

    async def afork(
        self, session_id: str, new_session_id: str, *, upto: int | None = None
    ) -> Session:
        check_session_id(session_id)
        check_session_id(new_session_id)
        async with self._transaction() as db:
            source = await (
                await db.execute(
                    "SELECT metadata::text FROM agentkit_sessions WHERE id = %s FOR SHARE",
                    (session_id,),
                )
            ).fetchone()
            if source is None:
                raise SessionNotFoundError(session_id)
            rows = await (
                await db.execute(
                    "SELECT position, body::text FROM agentkit_messages WHERE session_id = %s "
                    "ORDER BY position",
                    (session_id,),
                )
            ).fetchall()
            messages = decode_messages(session_id, rows)
            kept = check_fork_point(messages, upto)
            stamp = now()
            created = await (
                await db.execute(
                    "INSERT INTO agentkit_sessions (id, revision, message_count, created_at, "
                    "updated_at, metadata, forked_from) VALUES (%s, 1, %s, %s, %s, %s::json, %s) "
                    "ON CONFLICT (id) DO NOTHING RETURNING 1",
                    (new_session_id, kept, stamp, stamp, source[0], session_id),
                )
            ).fetchone()
            if created is None:
                raise SessionExistsError(new_session_id)
            await db.execute(
                "INSERT INTO agentkit_messages (session_id, position, revision, body) "
                "SELECT %s, position, 1, body FROM agentkit_messages "
                "WHERE session_id = %s AND position < %s",
                (new_session_id, session_id, kept),
            )
        return Session(new_session_id, messages[:kept], 1, decode_metadata(session_id, source[0]))

    async def aupdate_metadata(self, session_id: str, values: Mapping[str, Any]) -> dict[str, Any]:
        check_session_id(session_id)
        async with self._transaction() as db:
            row = await (
                await db.execute(
                    "SELECT metadata::text FROM agentkit_sessions WHERE id = %s FOR UPDATE",
                    (session_id,),
                )
            ).fetchone()
            if row is None:
                raise SessionNotFoundError(session_id)
            metadata = merged(decode_metadata(session_id, row[0]), values)
            await db.execute(
                "UPDATE agentkit_sessions SET metadata = %s::json WHERE id = %s",
                (encode_metadata(session_id, metadata, self.max_message_bytes), session_id),
            )
        return metadata

    async def aclose(self) -> None:
        """Close this loop's pool (and the blocking API's); the store cannot be used again."""
        self._closed = True
        loop = asyncio.get_running_loop()
        opening = self._pools.pop(loop, None)
        if opening is not None:
            await _close_pool(opening)
        portal, self._portal = self._portal, None
        if portal is not None:
            await asyncio.to_thread(self._close_portal, portal)

    def close(self) -> None:
        """Close every pool: the blocking API's, and those of event loops that are idle or
        closed (a running loop's pool is closed on that loop, without waiting)."""
        self._closed = True
        portal, self._portal = self._portal, None
        if portal is not None:
            self._close_portal(portal)
        pools, self._pools = self._pools, {}
        for loop, opening in pools.items():
            if loop.is_closed():
                continue
            if loop.is_running():
                asyncio.run_coroutine_threadsafe(_close_pool(opening), loop)
                continue
            with contextlib.suppress(RuntimeError):  # another thread began to run it
                loop.run_until_complete(_close_pool(opening))

    def _close_portal(self, portal: Portal) -> None:
        async def close_own() -> None:
            opening = self._pools.pop(asyncio.get_running_loop(), None)
            if opening is not None:
                await _close_pool(opening)

        portal.call(close_own)
        portal.close()


async def _close_pool(opening: asyncio.Task[AsyncConnectionPool]) -> None:
    with contextlib.suppress(Exception):
        pool = await opening
        await pool.close()


async def _revision(db: AsyncConnection[Any], session_id: str) -> int:
    row = await (
        await db.execute("SELECT revision FROM agentkit_sessions WHERE id = %s", (session_id,))
    ).fetchone()
    return 0 if row is None else int(row[0])


async def _migrate(db: AsyncConnection[Any]) -> None:
    async with db.transaction():
        await db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        await db.execute("CREATE TABLE IF NOT EXISTS agentkit_schema (version integer NOT NULL)")
        row = await (await db.execute("SELECT max(version) FROM agentkit_schema")).fetchone()
        version = 0 if row is None or row[0] is None else int(row[0])
        if version > SCHEMA_VERSION:
            raise StoreVersionError(
                f"the database holds agentkit session schema {version}, written by a newer "
                f"agentkit; this one reads schema {SCHEMA_VERSION}: upgrade agentkit"
            )
        while version < SCHEMA_VERSION:
            for statement in _MIGRATIONS[version]:
                await db.execute(statement)
            version += 1
            await db.execute("DELETE FROM agentkit_schema")
            await db.execute("INSERT INTO agentkit_schema (version) VALUES (%s)", (version,))


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """psycopg's connection and pool errors as `SessionStoreError`."""
    import psycopg
    import psycopg_pool

    try:
        yield
    except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as error:
        raise SessionStoreError(f"Postgres store: {error}") from error
