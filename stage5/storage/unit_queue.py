"""Durable progress: the `crawl_units` queue of a run (pending -> leased -> done | failed).

Units are written, leased and completed inside the writer's batch transactions, so a unit is done
in the database exactly when the rows it produced are: a crash between the two is impossible.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg.types.json import Jsonb

from stage5.units import Outcome, Unit, UnitRow, UnitState, unit_from_payload, unit_kind, unit_payload

LEASE_S = 600  # a leased unit whose master is gone returns to the queue
# A running unit's lease, renewed by its master while the executor says who runs it (a local worker, a Celery
# node): it lapses this long after the master last saw the unit running.
RUNNING_LEASE_S = 30


@dataclass(frozen=True)
class Completion:
    uid: int
    state: UnitState  # done or failed
    result: Outcome


async def insert_units(conn: psycopg.AsyncConnection, run_id: int, units: list[Unit]) -> None:
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO crawl_units (run_id, uid, kind, district, payload) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            [(run_id, u.uid, unit_kind(u), u.district, Jsonb(unit_payload(u))) for u in units],
        )


async def lease_units(conn: psycopg.AsyncConnection, run_id: int, uids: list[int], owner: str) -> None:
    await conn.execute(
        "UPDATE crawl_units SET state = 'leased', lease_owner = %s, attempts = attempts + 1,"
        " lease_expires_at = now() + make_interval(secs => %s), updated_at = now()"
        " WHERE run_id = %s AND uid = ANY(%s) AND state IN ('pending', 'leased')",  # leased: sent again
        (owner, LEASE_S, run_id, uids),
    )


async def renew_leases(conn: psycopg.AsyncConnection, run_id: int, holders: dict[int, str]) -> None:
    """The units running now: who runs them, and until when their lease holds unless renewed again."""
    async with conn.cursor() as cur:
        await cur.executemany(
            "UPDATE crawl_units SET lease_owner = %s, lease_expires_at = now() + make_interval(secs => %s)"
            " WHERE run_id = %s AND uid = %s AND state = 'leased'",
            [(holder, RUNNING_LEASE_S, run_id, uid) for uid, holder in holders.items()],
        )


async def leased_uids(conn: psycopg.AsyncConnection, run_id: int) -> set[int]:
    """Units a master had sent and not seen answered: their tasks may still run somewhere."""
    cur = await conn.execute("SELECT uid FROM crawl_units WHERE run_id = %s AND state = 'leased'", (run_id,))
    return {uid for (uid,) in await cur.fetchall()}


async def complete_units(conn: psycopg.AsyncConnection, run_id: int, done: list[Completion]) -> None:
    async with conn.cursor() as cur:
        await cur.executemany(
            "UPDATE crawl_units SET state = %s, result = %s, lease_owner = NULL, lease_expires_at = NULL,"
            " updated_at = now() WHERE run_id = %s AND uid = %s",
            [(c.state, Jsonb(c.result.to_json()), run_id, c.uid) for c in done],
        )


async def release_leases(conn: psycopg.AsyncConnection, run_id: int) -> int:
    """Return every leased unit of the run to the queue (its master stopped or died)."""
    cur = await conn.execute(
        "UPDATE crawl_units SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL, updated_at = now()"
        " WHERE run_id = %s AND state = 'leased'",
        (run_id,),
    )
    return cur.rowcount


async def redo_unfinished_listings(conn: psycopg.AsyncConnection, run_id: int) -> list[str]:
    """Before a resume: the districts whose searches were not all finished are searched again from their
    planned queries (their entries were held in the master's memory until all were in, and are gone). Their
    parts are dropped (asked again if still needed); the cache answers what was asked already."""
    cur = await conn.execute(
        "SELECT DISTINCT district FROM crawl_units WHERE run_id = %s AND kind = 'search'"
        " AND state NOT IN ('done', 'failed')",
        (run_id,),
    )
    districts = [d for (d,) in await cur.fetchall()]
    if districts:
        await conn.execute(
            "DELETE FROM crawl_units WHERE run_id = %s AND kind = 'search' AND district = ANY(%s)"
            " AND coalesce((payload -> 'query' ->> 'depth')::int, 0) > 0",
            (run_id, districts),
        )
        await conn.execute(
            "UPDATE crawl_units SET state = 'pending', result = NULL, lease_owner = NULL, lease_expires_at = NULL,"
            " updated_at = now() WHERE run_id = %s AND kind = 'search' AND district = ANY(%s)",
            (run_id, districts),
        )
    return districts


async def open_units(conn: psycopg.AsyncConnection, run_id: int) -> list[Unit]:
    """Units still to do, search units first (they find the stores), each kind in uid order."""
    cur = await conn.execute(
        "SELECT uid, kind, district, payload FROM crawl_units WHERE run_id = %s AND state IN ('pending', 'leased')"
        " ORDER BY kind DESC, uid",
        (run_id,),
    )
    return [unit_from_payload(uid, kind, district, payload) for uid, kind, district, payload in await cur.fetchall()]


async def claimed_rids(conn: psycopg.AsyncConnection, run_id: int) -> set[str]:
    """Stores already handed to a detail unit of this run: never fetched again by it."""
    cur = await conn.execute(
        "SELECT s ->> 'rid' FROM crawl_units, jsonb_array_elements(payload -> 'stores') AS s"
        " WHERE run_id = %s AND kind = 'detail'",
        (run_id,),
    )
    return {rid for (rid,) in await cur.fetchall()}


async def unit_rows(conn: psycopg.AsyncConnection, run_id: int) -> list[UnitRow]:
    """(district, kind, state, result) of every unit: the run's counters are sums over these."""
    cur = await conn.execute("SELECT district, kind, state, result FROM crawl_units WHERE run_id = %s", (run_id,))
    return list(await cur.fetchall())


async def max_uid(conn: psycopg.AsyncConnection, run_id: int) -> int:
    cur = await conn.execute("SELECT coalesce(max(uid), 0) FROM crawl_units WHERE run_id = %s", (run_id,))
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def last_failed_districts(conn: psycopg.AsyncConnection) -> set[str]:
    """Districts with a failed unit in the newest finished run."""
    cur = await conn.execute(
        "SELECT DISTINCT u.district FROM crawl_units u WHERE u.state = 'failed' AND u.run_id ="
        " (SELECT max(id) FROM crawl_runs WHERE status IN ('succeeded', 'partial', 'failed'))"
    )
    return {d for (d,) in await cur.fetchall()}
