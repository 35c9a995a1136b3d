"""What the console reads: a job's history, a run's units per district, stores by filter, one store with
its changes. Plain values in, typed rows out (the API answers them as JSON objects, fields in this order).

These reads span tables the other modules own (`crawl_runs`, `schedule_slots`, `crawl_units`, `stores`,
`store_changes`); they only read, and only here does the console read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import class_row


@dataclass(frozen=True)
class JobRun:
    """A run a job started."""

    kind: Literal["run"]
    id: int
    status: str
    started_at: datetime
    finished_at: datetime | None
    stores_new: int
    stores_updated: int
    error: str | None


@dataclass(frozen=True)
class JobSlot:
    """A slot of a job, and what became of it (started, skipped, missed…)."""

    kind: Literal["slot"]
    slot_at: datetime
    status: str
    reason: str | None


async def job_history(conn: psycopg.AsyncConnection[Any], name: str, limit: int) -> list[JobRun | JobSlot]:
    """The runs the job `name` started (newest first), then its slots (newest first)."""
    async with conn.cursor(row_factory=class_row(JobRun)) as cur:
        await cur.execute(
            "SELECT 'run' AS kind, id, status, started_at, finished_at, stores_new, stores_updated, error"
            " FROM crawl_runs WHERE job = %s ORDER BY id DESC LIMIT %s",
            (name, limit),
        )
        runs = await cur.fetchall()
    async with conn.cursor(row_factory=class_row(JobSlot)) as cur:
        await cur.execute(
            "SELECT 'slot' AS kind, slot_at, status, reason FROM schedule_slots WHERE job = %s"
            " ORDER BY slot_at DESC LIMIT %s",
            (name, limit),
        )
        slots = await cur.fetchall()
    return [*runs, *slots]
