"""Advisory locks: one crawl at a time per dataset, and one master per run.

PostgreSQL session advisory locks: held by the master's connection for the run's whole life,
owner-checked by PostgreSQL, and released by PostgreSQL when the holder dies (its connection
closes), so a dead holder's lock expires by itself. Keys are (dataset, 0) for the crawl lock and
(dataset, run id) for a run, the dataset being the schema: two schemas of one database (production
and a perftest scratch schema, say) never block each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

CRAWL_LOCK_ID = 0


def dataset_key(schema: str) -> int:
    """A stable positive int4 for a schema name."""
    return zlib.crc32(f"stage5:{schema}".encode()) & 0x7FFFFFFF


async def _try(conn: psycopg.AsyncConnection, schema: str, second: int) -> bool:
    cur = await conn.execute("SELECT pg_try_advisory_lock(%s::int, %s::int)", (dataset_key(schema), second))
    row = await cur.fetchone()
    await conn.commit()
    return bool(row and row[0])


async def try_crawl_lock(conn: psycopg.AsyncConnection, schema: str) -> bool:
    return await _try(conn, schema, CRAWL_LOCK_ID)


async def try_run_lock(conn: psycopg.AsyncConnection, schema: str, run_id: int) -> bool:
    return await _try(conn, schema, run_id)


async def wait_crawl_lock(conn: psycopg.AsyncConnection, schema: str, timeout_s: float, poll_s: float = 1.0) -> bool:
    """Try until `timeout_s` has passed; True once held."""
    deadline = time.monotonic() + timeout_s
    while True:
        if await try_crawl_lock(conn, schema):
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))


async def release_and_close(conn: psycopg.AsyncConnection) -> None:
    """Release this session's advisory locks, then close it.

    Closing alone frees them only once the server's backend has exited, a moment after close()
    returns: a crawl started right after on the same dataset (perftest runs several in a row) could
    find the lock still held and skip. A session already broken just closes (PostgreSQL frees its
    locks when it notices)."""
    if not conn.closed:
        # bounded: a server gone mid-answer must not hold up the end of a run
        with contextlib.suppress(psycopg.Error, TimeoutError):
            await asyncio.wait_for(_unlock_all(conn), 5)
    await conn.close()


async def _unlock_all(conn: psycopg.AsyncConnection) -> None:
    await conn.rollback()  # a failed transaction would refuse the unlock; session locks outlive it
    await conn.execute("SELECT pg_advisory_unlock_all()")
    await conn.commit()


async def crawl_lock_holder(conn: psycopg.AsyncConnection, schema: str) -> dict[str, Any] | None:
    """Who holds the crawl lock: backend pid, application name (stage5 puts its role and pid there), since."""
    return await _holder(conn, schema, CRAWL_LOCK_ID)


async def run_lock_holder(conn: psycopg.AsyncConnection, schema: str, run_id: int) -> dict[str, Any] | None:
    return await _holder(conn, schema, run_id)


async def _holder(conn: psycopg.AsyncConnection, schema: str, second: int) -> dict[str, Any] | None:
    cur = await conn.execute(
        "SELECT a.pid, a.application_name, a.client_addr::text, a.backend_start FROM pg_locks l"
        " JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted"
        " AND l.objsubid = 2 AND l.classid = %s::int::oid AND l.objid = %s::int::oid"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (dataset_key(schema), second),
    )
    row = await cur.fetchone()
    await conn.commit()
    if row is None:
        return None
    return {"pid": row[0], "application": row[1], "client": row[2], "since": row[3].isoformat()}


async def holds_run_lock(conn: psycopg.AsyncConnection, backend_pid: int, schema: str, run_id: int) -> bool:
    """Whether the session `backend_pid` still holds the lock of `run_id` (asked from another session)."""
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = %s"
        " AND objsubid = 2 AND classid = %s::int::oid AND objid = %s::int::oid"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
        (backend_pid, dataset_key(schema), run_id),
    )
    row = await cur.fetchone()
    return bool(row and row[0])


class LockSession:
    """The master's database session, holding the crawl lock and its run's lock for the run's life.

    Writers ask `held(conn)` inside each write transaction. When the session ended (PostgreSQL
    restarted, or someone killed it) the locks are gone: `retake()` opens a new session and takes both
    again, which succeeds only if no other process took them meanwhile; if one did, this master has
    lost the run."""

    def __init__(
        self, conn: psycopg.AsyncConnection, connect: Callable[[], Awaitable[psycopg.AsyncConnection]], schema: str
    ) -> None:
        self.conn, self.connect, self.schema = conn, connect, schema
        self.run_id = 0
        self.backend_pid = conn.info.backend_pid

    async def held(self, conn: psycopg.AsyncConnection) -> bool:
        return await holds_run_lock(conn, self.backend_pid, self.schema, self.run_id)

    async def retake(self) -> bool:
        fresh = await self.connect()
        if await try_crawl_lock(fresh, self.schema) and await try_run_lock(fresh, self.schema, self.run_id):
            old, self.conn, self.backend_pid = self.conn, fresh, fresh.info.backend_pid
            await old.close()  # its session ended: it holds nothing (or fresh could not have taken them)
            return True
        await release_and_close(fresh)  # whatever it took
        return False

    async def close(self) -> None:
        await release_and_close(self.conn)
