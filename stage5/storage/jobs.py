"""`scheduled_jobs` and `scheduler_state`: the jobs the console manages and the scheduler's pause switch."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from stage5.schedule.jobs import Job, job_params

_COLUMNS = "id, name, kind, cron, timezone, enabled, params, created_at, updated_at"


async def list_jobs(conn: psycopg.AsyncConnection) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM scheduled_jobs ORDER BY name")
        return await cur.fetchall()


async def get_job(conn: psycopg.AsyncConnection, job_id: int) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM scheduled_jobs WHERE id = %s", (job_id,))
        return await cur.fetchone()


async def save_job(
    conn: psycopg.AsyncConnection, job: Job, timezone: str, enabled: bool, job_id: int | None = None
) -> dict[str, Any] | None:
    """Insert (job_id None) or replace a job; None when job_id names no job. A taken name raises
    psycopg.errors.UniqueViolation."""
    values = {
        "id": job_id,
        "name": job.name,
        "kind": job.kind,
        "cron": job.cron,
        "tz": timezone,
        "enabled": enabled,
        "params": Jsonb(job_params(job)),
    }
    async with conn.cursor(row_factory=dict_row) as cur:
        if job_id is None:
            await cur.execute(
                "INSERT INTO scheduled_jobs (name, kind, cron, timezone, enabled, params)"
                f" VALUES (%(name)s, %(kind)s, %(cron)s, %(tz)s, %(enabled)s, %(params)s) RETURNING {_COLUMNS}",
                values,
            )
        else:
            await cur.execute(
                "UPDATE scheduled_jobs SET name = %(name)s, kind = %(kind)s, cron = %(cron)s, timezone = %(tz)s,"
                " enabled = %(enabled)s, params = %(params)s, updated_at = now()"
                f" WHERE id = %(id)s RETURNING {_COLUMNS}",
                values,
            )
        row = await cur.fetchone()
    await conn.commit()
    return row


async def delete_job(conn: psycopg.AsyncConnection, job_id: int) -> bool:
    cur = await conn.execute("DELETE FROM scheduled_jobs WHERE id = %s", (job_id,))
    await conn.commit()
    return cur.rowcount == 1


async def add_presets(conn: psycopg.AsyncConnection, jobs: tuple[Job, ...], timezone: str) -> list[str]:
    """Create these jobs unless one of the same name exists; returns the names created."""
    created = []
    for job in jobs:
        cur = await conn.execute(
            "INSERT INTO scheduled_jobs (name, kind, cron, timezone, params) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (name) DO NOTHING RETURNING name",
            (job.name, job.kind, job.cron, timezone, Jsonb(job_params(job))),
        )
        if await cur.fetchone():
            created.append(job.name)
    await conn.commit()
    return created


async def set_paused(conn: psycopg.AsyncConnection, paused: bool) -> None:
    await conn.execute("UPDATE scheduler_state SET paused = %s, changed_at = now() WHERE id = 1", (paused,))
    await conn.commit()


async def is_paused(conn: psycopg.AsyncConnection) -> bool:
    cur = await conn.execute("SELECT paused FROM scheduler_state WHERE id = 1")
    row = await cur.fetchone()
    return bool(row and row[0])


async def job_runs(conn: psycopg.AsyncConnection, name: str, limit: int) -> list[dict[str, Any]]:
    """The runs this job started (newest first), and its slots that did not start one."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, status, started_at, finished_at, stores_new, stores_updated, error FROM crawl_runs"
            " WHERE job = %s ORDER BY id DESC LIMIT %s",
            (name, limit),
        )
        runs = await cur.fetchall()
        await cur.execute(
            "SELECT slot_at, status, reason FROM schedule_slots WHERE job = %s ORDER BY slot_at DESC LIMIT %s",
            (name, limit),
        )
        return [{"kind": "run", **r} for r in runs] + [{"kind": "slot", **s} for s in await cur.fetchall()]
