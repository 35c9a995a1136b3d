"""The `schedule_slots` table: every scheduled slot and what became of it (the schedule's history)."""

from __future__ import annotations

from datetime import datetime

import psycopg
from psycopg import sql


class SlotStore:
    """`schedule_slots`, the schedule's history: every slot and what became of it."""

    def __init__(self, url: str, schema: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))

    def claim(self, job: str, slot: datetime, scheduler: str) -> bool:
        cur = self.conn.execute(
            "INSERT INTO schedule_slots (job, slot_at, status, scheduler) VALUES (%s, %s, 'claimed', %s)"
            " ON CONFLICT DO NOTHING RETURNING 1",
            (job, slot, scheduler),
        )
        return cur.fetchone() is not None

    def decide(self, job: str, slot: datetime, status: str, reason: str = "", pid: int | None = None) -> None:
        self.conn.execute(
            "UPDATE schedule_slots SET status = %s, reason = %s, run_pid = %s, decided_at = now()"
            " WHERE job = %s AND slot_at = %s",
            (status, reason or None, pid, job, slot),
        )

    def last_slot(self, job: str) -> datetime | None:
        row = self.conn.execute("SELECT max(slot_at) FROM schedule_slots WHERE job = %s", (job,)).fetchone()
        return row[0] if row else None

    def history(self, job: str | None = None) -> list[tuple[str, datetime, str, str | None]]:
        return self.conn.execute(
            "SELECT job, slot_at, status, reason FROM schedule_slots WHERE %s::text IS NULL OR job = %s"
            " ORDER BY slot_at, job",
            (job, job),
        ).fetchall()

    def close(self) -> None:
        self.conn.close()
