"""`scheduled_jobs` and `scheduler_state`: the jobs the console manages and the scheduler's pause switch.

The one module that reads and writes these two tables, in plain values (the scheduler's `Job` is built
from a `JobRow` by stage5.schedule.jobs). The console writes through its async pool; the scheduler reads
through its own sync connection: both read the pause switch with the same statement and the same check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class JobValues:
    """A job as `scheduled_jobs` keeps it: the columns, and every other setting in `params`."""

    name: str
    kind: str
    cron: str
    params: dict[str, Any]


@dataclass(frozen=True)
class JobRow:
    """One row of `scheduled_jobs` (the console shows it as it is)."""

    id: int
    name: str
    kind: str
    cron: str
    timezone: str
    enabled: bool
    params: dict[str, Any]
    created_at: datetime
    updated_at: datetime


_COLUMNS = "id, name, kind, cron, timezone, enabled, params, created_at, updated_at"
_PAUSED_SQL = "SELECT paused FROM scheduler_state WHERE id = 1"


def _paused(row: tuple[Any, ...] | None) -> bool:
    """The pause switch's row read as a switch: a missing row (never migrated) is not paused."""
    return bool(row and row[0])


# --- the console (async) ------------------------------------------------------------------------


async def list_jobs(conn: psycopg.AsyncConnection[Any]) -> list[JobRow]:
    async with conn.cursor(row_factory=class_row(JobRow)) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM scheduled_jobs ORDER BY name")
        return await cur.fetchall()


async def get_job(conn: psycopg.AsyncConnection[Any], job_id: int) -> JobRow | None:
    async with conn.cursor(row_factory=class_row(JobRow)) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM scheduled_jobs WHERE id = %s", (job_id,))
        return await cur.fetchone()


async def save_job(
    conn: psycopg.AsyncConnection[Any], job: JobValues, timezone: str, enabled: bool, job_id: int | None = None
) -> JobRow | None:
    """Insert (job_id None) or replace a job; None when job_id names no job. A taken name raises
    psycopg.errors.UniqueViolation."""
    values = {
        "id": job_id,
        "name": job.name,
        "kind": job.kind,
        "cron": job.cron,
        "tz": timezone,
        "enabled": enabled,
        "params": Jsonb(job.params),
    }
    async with conn.cursor(row_factory=class_row(JobRow)) as cur:
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


async def delete_job(conn: psycopg.AsyncConnection[Any], job_id: int) -> bool:
    cur = await conn.execute("DELETE FROM scheduled_jobs WHERE id = %s", (job_id,))
    await conn.commit()
    return cur.rowcount == 1


async def add_presets(conn: psycopg.AsyncConnection[Any], jobs: Sequence[JobValues], timezone: str) -> list[str]:
    """Create these jobs unless one of the same name exists; returns the names created."""
    created = []
    for job in jobs:
        cur = await conn.execute(
            "INSERT INTO scheduled_jobs (name, kind, cron, timezone, params) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (name) DO NOTHING RETURNING name",
            (job.name, job.kind, job.cron, timezone, Jsonb(job.params)),
        )
        if await cur.fetchone():
            created.append(job.name)
    await conn.commit()
    return created


async def set_paused(conn: psycopg.AsyncConnection[Any], paused: bool) -> None:
    await conn.execute("UPDATE scheduler_state SET paused = %s, changed_at = now() WHERE id = 1", (paused,))
    await conn.commit()


async def is_paused(conn: psycopg.AsyncConnection[Any]) -> bool:
    cur = await conn.execute(_PAUSED_SQL)
    return _paused(await cur.fetchone())


# --- the scheduler (sync) -----------------------------------------------------------------------


def enabled_jobs(conn: psycopg.Connection[Any]) -> list[JobRow]:
    """The jobs the console stored and left enabled, by name."""
    with conn.cursor(row_factory=class_row(JobRow)) as cur:
        return cur.execute(f"SELECT {_COLUMNS} FROM scheduled_jobs WHERE enabled ORDER BY name").fetchall()


def any_jobs(conn: psycopg.Connection[Any]) -> bool:
    """Whether the console stored any job (enabled or not): then its jobs replace the schedule file's."""
    return conn.execute("SELECT EXISTS (SELECT 1 FROM scheduled_jobs)").fetchone() == (True,)


def job_created(conn: psycopg.Connection[Any], name: str) -> datetime | None:
    """When the console created the job `name` (None for a job of the schedule file or the defaults)."""
    row = conn.execute("SELECT created_at FROM scheduled_jobs WHERE name = %s", (name,)).fetchone()
    return row[0] if row else None


def paused(conn: psycopg.Connection[Any]) -> bool:
    """Whether the console has paused the scheduler (the same statement and check as is_paused)."""
    return _paused(conn.execute(_PAUSED_SQL).fetchone())
