"""Bulk loading of stores: binary COPY of typed rows, straight into the table for stores not stored yet, into a
staging table then one INSERT … ON CONFLICT DO UPDATE for the others; a store whose content did not change is
not rewritten (only its bookkeeping moves).

A batch is one transaction: its stores and its rejections land together or not at all, and the
rows stay buffered until the commit succeeded, so a dropped connection loses nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, overload

import psycopg
from psycopg.types.json import Jsonb

from stage5.errors import DatabaseUnavailable, LockLost
from stage5.logs import log_event
from stage5.models import Rejection, StoreRecord
from stage5.storage.changes import detect_changes, insert_changes, rows_before
from stage5.storage.columns import (
    COPY_SQL,
    COPY_TYPES,
    NEW_COPY_SQL,
    NEW_COPY_TYPES,
    REFETCHED_SQL,
    UPSERT_SQL,
    StoreRow,
    refetched_params,
    staging_ddl,
    store_row,
)
from stage5.storage.db import db_retrying
from stage5.storage.lock import LockSession
from stage5.storage.runs import add_store_counts, write_live
from stage5.storage.unit_queue import Completion, complete_units, insert_units, lease_units, renew_leases
from stage5.units import Unit

log = logging.getLogger("stage5.storage")
FENCE_CHECK_S = 3.0

REJECT_SQL = """
INSERT INTO rejected_stores (run_id, diningcode_place_id, district, reason, source_url, payload)
VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (run_id, diningcode_place_id) DO NOTHING
"""


@dataclass
class WriteCounts:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    batches: int = 0
    batch_retries: int = 0
    changes: Counter[str] = field(default_factory=Counter)


Connect = Callable[[], Awaitable[psycopg.AsyncConnection]]


class StoreWriter:
    """Buffers records, rejections and unit progress; flushes by size (`batch_size`) or time
    (`flush_interval`). One flush is one transaction: new units, leases, rows, completed units and
    the run's counters commit together."""

    def __init__(
        self,
        connect: Connect,
        run_id: int,
        batch_size: int,
        flush_interval: float,
        owner: str = "",
        fence: LockSession | None = None,
    ) -> None:
        self.connect, self.run_id, self.owner = connect, run_id, owner
        self.fence = fence  # the master's lock session: every write checks it still holds the run
        self.lost: LockLost | None = None
        self._fence_checked = 0.0
        self.batch_size, self.flush_interval = batch_size, flush_interval
        self.records: dict[str, StoreRecord] = {}
        self.rejections: dict[str | None, Rejection] = {}
        self.new_units: list[Unit] = []
        self.leases: list[int] = []
        self.completions: list[Completion] = []
        self.seen: list[str] = []  # stores whose listing was seen unchanged: only their bookkeeping moves
        self.due: list[str] = []  # stores whose detail is to be fetched: due until a fetch succeeds
        self.confirmed: list[str] = []  # stores whose detail answered 304 (not modified)
        self.counts = WriteCounts()
        self.live: dict[str, Any] | None = None  # the master's figures for the console, written with a flush
        self.live_pending: dict[str, Any] | None = None
        self.holders: dict[int, str] | None = None  # units running now -> who runs them (lease renewal)
        self.holders_pending: dict[int, str] | None = None
        self.conn: psycopg.AsyncConnection | None = None
        self._lock = asyncio.Lock()
        self._ticker: asyncio.Task[None] | None = None

    async def __aenter__(self) -> StoreWriter:
        self._ticker = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self._ticker:
            # Cancel the ticker only while we hold the lock: cancelled in the middle of a flush it would
            # leave the connection half-way through a statement (psycopg: "COPY cannot be used in
            # pipeline mode" on the next batch).
            async with self._lock:
                self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        await self.flush()
        if self.conn is not None:
            await self.conn.close()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                await self.flush()
            except (psycopg.Error, DatabaseUnavailable) as exc:  # rows stay buffered; the next flush retries
                log_event(log, "db_flush_failed", logging.ERROR, reason=exc, buffered=len(self.records))
            except LockLost:
                return  # the master sees it at its next health check

    async def add(self, record: StoreRecord) -> None:
        self.records[record.rid] = record  # the same store twice in one batch: the last wins
        if len(self.records) >= self.batch_size:
            await self.flush()

    async def reject(self, rejection: Rejection) -> None:
        self.rejections[rejection.rid] = rejection
        if len(self.rejections) >= self.batch_size:
            await self.flush()

    def add_units(self, units: list[Unit]) -> None:
        self.new_units.extend(units)

    def lease(self, uid: int) -> None:
        self.leases.append(uid)

    def keep(self, rids: list[str]) -> None:
        """These stores were listed again and their detail stands: mark them seen by this run."""
        self.seen.extend(rids)

    def confirm(self, rids: list[str]) -> None:
        """These stores' detail pages answered 304: the stored detail is current as of this run."""
        self.confirmed.extend(rids)

    def mark_due(self, rids: list[str]) -> None:
        """These stores' details are to be fetched: they stay due (retried next run) until one succeeds."""
        self.due.extend(rids)

    def set_live(self, figures: dict[str, Any]) -> None:
        self.live = figures

    def renew(self, holders: dict[int, str]) -> None:
        """These units are running, each held by a worker: their leases are renewed with the next flush
        (like the live figures, ephemeral: a failed flush drops it, the next renewal comes soon)."""
        self.holders = holders or None

    def complete(self, completion: Completion) -> None:
        self.completions.append(completion)

    @property
    def pending(self) -> bool:
        return bool(
            self.records
            or self.rejections
            or self.new_units
            or self.leases
            or self.completions
            or self.seen
            or self.due
            or self.live is not None
            or self.holders is not None
        )

    async def flush(self) -> None:
        async with self._lock:
            if not self.pending:
                return
            records, rejections = list(self.records.values()), list(self.rejections.values())
            units, leases, completions = list(self.new_units), list(self.leases), list(self.completions)
            seen, due, confirmed = list(self.seen), list(self.due), list(self.confirmed)
            self.live_pending, self.live = self.live, None  # ephemeral: a failed flush drops it
            self.holders_pending, self.holders = self.holders, None
            async for attempt in db_retrying(attempts=5, on_retry=self._on_retry):
                with attempt:
                    await self._write(records, rejections, units, leases, completions, seen, due, confirmed)
            del self.seen[: len(seen)], self.due[: len(due)], self.confirmed[: len(confirmed)]
            for r in records:
                if self.records.get(r.rid) is r:
                    del self.records[r.rid]
            for j in rejections:
                if self.rejections.get(j.rid) is j:
                    del self.rejections[j.rid]
            del self.new_units[: len(units)], self.leases[: len(leases)], self.completions[: len(completions)]

    def _on_retry(self, exc: BaseException | None) -> None:
        self.counts.batch_retries += 1
        log_event(log, "db_batch_retry", logging.WARNING, reason=exc)
        self.conn = None  # reconnect: the old connection may be dead

    async def _write_units(self, conn: psycopg.AsyncConnection, units: list[Unit], leases: list[int]) -> None:
        """New units, units sent, and the leases of units running now renewed (before completions in the
        same transaction: a completed unit holds no lease)."""
        if units:
            await insert_units(conn, self.run_id, units)
        if leases:
            await lease_units(conn, self.run_id, leases, self.owner)
        if self.holders_pending:
            await renew_leases(conn, self.run_id, self.holders_pending)

    async def _write(
        self,
        records: list[StoreRecord],
        rejections: list[Rejection],
        units: list[Unit],
        leases: list[int],
        completions: list[Completion],
        seen: list[str],
        due: list[str],
        confirmed: list[str],
    ) -> None:
        if self.conn is None or self.conn.closed:
            self.conn = await self.connect()
        conn = self.conn
        async with conn.transaction():
            await self._check_fence(conn)
            if self.live_pending is not None:
                await write_live(conn, self.run_id, self.live_pending)
            await self._write_units(conn, units, leases)
            if due:
                await conn.execute("UPDATE stores SET detail_due = true WHERE diningcode_place_id = ANY(%b)", (due,))
            kept = await keep_seen(conn, self.run_id, seen) if seen else 0
            kept += await keep_seen(conn, self.run_id, confirmed, fetched=True) if confirmed else 0
            results, refused = await self._upsert_isolating(conn, records)
            rejections = rejections + refused
            if rejections:
                async with conn.cursor() as cur:
                    await cur.executemany(REJECT_SQL, [_rejection_row(self.run_id, j) for j in rejections])
            new = sum(1 for inserted, _ in results if inserted)
            updated = sum(1 for inserted, changed in results if changed and not inserted)
            if completions:
                await complete_units(conn, self.run_id, completions)
            unchanged = len(results) - new - updated + kept
            if results or rejections or kept:
                await add_store_counts(conn, self.run_id, new, updated, unchanged, len(rejections))
        self.counts.new += new
        self.counts.updated += updated
        self.counts.unchanged += unchanged
        self.counts.rejected += len(rejections)
        self.counts.batches += 1
        if records or rejections:
            log_event(log, "db_batch", rows=len(records), new=new, updated=updated, rejected=len(rejections))

    async def _upsert_isolating(
        self, conn: psycopg.AsyncConnection, records: list[StoreRecord]
    ) -> tuple[list[tuple[bool, bool]], list[Rejection]]:
        """Upsert the records in a savepoint; when PostgreSQL refuses the data, split the batch in halves
        until the refused rows are found: they become rejections, every other row is kept."""
        if not records:
            return [], []
        try:
            async with conn.transaction():  # a savepoint: a refused batch leaves the outer one usable
                return await self._upsert(conn, records), []
        except (psycopg.DataError, psycopg.IntegrityError) as exc:
            if len(records) == 1:
                record = records[0]
                reason = f"database refused the row: {str(exc).splitlines()[0]}"
                log_event(log, "row_refused", logging.WARNING, rid=record.rid, reason=reason, url=record.source_url)
                return [], [Rejection(record.rid, reason, record.source_url, record.district, {"name": record.name})]
        half = len(records) // 2
        first, refused_first = await self._upsert_isolating(conn, records[:half])
        second, refused_second = await self._upsert_isolating(conn, records[half:])
        return first + second, refused_first + refused_second

    async def _upsert(self, conn: psycopg.AsyncConnection, records: list[StoreRecord]) -> list[tuple[bool, bool]]:
        """Stores fetched again whose stored row holds the same answer: only their bookkeeping moves (not
        rewritten). New stores: COPYed straight into the table. The others: COPY into the staging table and
        upsert. Changes are read from the rows before, within the same transaction."""
        rows = [store_row(r) for r in records]
        kept = await keep_refetched(conn, self.run_id, rows)
        rest = [row for row in rows if row.rid not in kept]
        results: list[tuple[bool, bool]] = [(False, False)] * len(kept)
        if not rest:
            return results
        before = await rows_before(conn, [row.rid for row in rest])
        new = [row for row in rest if row.rid not in before]
        stored = [row for row in rest if row.rid in before]
        if new and not await copy_new(conn, new, self.run_id):
            # Another writer stored some of them meanwhile: upsert them all, against their rows as they are now.
            before.update(await rows_before(conn, [row.rid for row in new]))
            stored, new = stored + new, []
        results += [(True, True)] * len(new)
        if stored:
            results += await copy_upsert(conn, stored, self.run_id)
        by_rid = {r.rid: r for r in records}
        found = detect_changes(before, [(by_rid[row.rid], row.values) for row in rest])
        await insert_changes(conn, self.run_id, found)
        self.counts.changes.update(c.kind for c in found)
        return results

    async def _check_fence(self, conn: psycopg.AsyncConnection) -> None:
        """Write only while the master still holds its run lock (checked inside the transaction that
        writes): a master whose session was killed must not write beside the one that took over."""
        if self.lost is not None:
            raise self.lost
        if self.fence is None or await self.fence.held(conn):
            return
        if await self.fence.retake():  # the session had ended (a restart): nobody took the run meanwhile
            log_event(log, "lock_retaken", logging.WARNING, run_id=self.run_id)
            return
        self.lost = LockLost(
            f"lost the lock of run {self.run_id} (this master's database session ended and another process"
            " took the run): stopped without writing more. See: python -m stage5 runs"
        )
        log_event(log, "lock_lost", logging.ERROR, run_id=self.run_id)
        raise self.lost

    async def check_fence(self) -> None:
        """For the master's health check, at most every FENCE_CHECK_S: raises LockLost once it is gone."""
        if self.lost is not None:
            raise self.lost
        if self.fence is None or time.monotonic() - self._fence_checked < FENCE_CHECK_S:
            return
        self._fence_checked = time.monotonic()
        async with self._lock:
            async for attempt in db_retrying(attempts=3):
                with attempt:
                    if self.conn is None or self.conn.closed:
                        self.conn = await self.connect()
                    async with self.conn.transaction():
                        await self._check_fence(self.conn)


async def keep_refetched(conn: psycopg.AsyncConnection, run_id: int, rows: list[StoreRow]) -> set[str]:
    """Stores whose stored row already holds this answer: their bookkeeping moves, nothing else. Returns their
    ids; the other rows are not touched."""
    kept: set[str] = set()
    for missing, group in _by_missing(rows).items():
        cur = await conn.execute(REFETCHED_SQL, refetched_params(group, missing, run_id))
        kept.update(rid for (rid,) in await cur.fetchall())
    return kept


async def copy_new(conn: psycopg.AsyncConnection, rows: list[StoreRow], run_id: int, binary: bool = True) -> bool:
    """COPY stores not stored yet straight into the table (in a savepoint). False, with nothing written, when
    one of them was stored meanwhile (by another writer): the caller upserts them instead."""
    copy_sql = NEW_COPY_SQL if binary else NEW_COPY_SQL.replace(" (FORMAT BINARY)", "")
    try:
        async with conn.transaction(), conn.cursor() as cur, cur.copy(copy_sql) as copy:
            copy.set_types(NEW_COPY_TYPES)
            for row in rows:
                await copy.write_row(row.new_row(run_id))
    except psycopg.errors.UniqueViolation:
        return False
    return True


async def copy_upsert(
    conn: psycopg.AsyncConnection, rows: list[StoreRow], run_id: int, binary: bool = True
) -> list[tuple[bool, bool]]:
    """COPY rows into the staging table, then upsert them into stores: (inserted, changed) per row."""
    await conn.execute(staging_ddl())
    copy_sql = COPY_SQL if binary else COPY_SQL.replace(" (FORMAT BINARY)", "")
    async with conn.cursor() as cur:
        await cur.execute("DELETE FROM stores_staging")  # what a refused attempt left in this transaction
        async with cur.copy(copy_sql) as copy:
            copy.set_types(COPY_TYPES)
            for row in rows:
                await copy.write_row(row.staged(run_id))
        await cur.execute(UPSERT_SQL, {"run": run_id})
        return [(bool(a), bool(b)) for a, b in await cur.fetchall()]


def _by_missing(rows: list[StoreRow]) -> dict[tuple[str, ...], list[StoreRow]]:
    """Rows grouped by the fields their page did not show (one bookkeeping UPDATE per group)."""
    groups: dict[tuple[str, ...], list[StoreRow]] = {}
    for row in rows:
        groups.setdefault(tuple(row.values["fields_missing"]), []).append(row)
    return groups


def _rejection_row(run_id: int, rejection: Rejection) -> tuple[object, ...]:
    """A rejection as a row; NUL characters (which PostgreSQL text cannot hold) are made visible."""
    clean = _without_nul
    return (
        run_id,
        clean(rejection.rid),
        clean(rejection.district),
        clean(rejection.reason),
        clean(rejection.source_url),
        Jsonb(json.loads(clean(json.dumps(rejection.payload, ensure_ascii=False, default=str)))),
    )


@overload
def _without_nul(text: str) -> str: ...
@overload
def _without_nul(text: str | None) -> str | None: ...
def _without_nul(text: str | None) -> str | None:
    return text.replace("\x00", "\\0").replace("\\u0000", "\\\\0") if text is not None else None


async def keep_seen(conn: psycopg.AsyncConnection, run_id: int, rids: list[str], fetched: bool = False) -> int:
    """Stores listed again whose stored detail stands: seen by this run, nothing else changes. `fetched`:
    the site confirmed the detail is current (304), so it counts as read by this run."""
    detail = ", detail_run_id = %(run)s, detail_due = false" if fetched else ""
    cur = await conn.execute(
        f"UPDATE stores SET last_run_id = %(run)s, last_seen_at = now(), missed_runs = 0{detail}"
        " WHERE diningcode_place_id = ANY(%(rids)b)",
        {"run": run_id, "rids": rids},
    )
    return cur.rowcount
