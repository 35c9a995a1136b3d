"""The `crawl_runs` table: one row per run, opened at start and closed with its counts."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb


async def start_run(conn: psycopg.AsyncConnection, site: str, districts: list[str], params: dict[str, Any],
                    trigger: str = "manual") -> int:  # fmt: skip
    cur = await conn.execute(
        "INSERT INTO crawl_runs (status, trigger, site, districts, params) VALUES ('running', %s, %s, %s, %s)"
        " RETURNING id",
        (trigger, site, districts, Jsonb(params)),
    )
    row = await cur.fetchone()
    await conn.commit()
    assert row is not None
    return int(row[0])


async def finish_run(conn: psycopg.AsyncConnection, run_id: int, status: str, counts: dict[str, Any],
                     failed_units: list[dict[str, Any]], error: str | None = None) -> None:  # fmt: skip
    await conn.execute(
        "UPDATE crawl_runs SET finished_at = now(), status = %s, counts = %s, failed_units = %s, error = %s"
        " WHERE id = %s",
        (status, Jsonb(counts), Jsonb(failed_units), error, run_id),
    )
    await conn.commit()


async def list_runs(conn: psycopg.AsyncConnection, limit: int = 20) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT id, started_at, finished_at, status, trigger, site, districts, counts FROM crawl_runs"
        " ORDER BY id DESC LIMIT %s",
        (limit,),
    )
    names = [d.name for d in cur.description or []]
    return [dict(zip(names, row)) for row in await cur.fetchall()]
