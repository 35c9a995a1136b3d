"""One crawl run: open a `crawl_runs` row, let the master crawl the districts, summarise, close the row."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from stage5.crawl.master import Master, MasterReport
from stage5.crawl.progress import Progress
from stage5.logs import log_event
from stage5.settings import Settings
from stage5.storage.db import connect
from stage5.storage.runs import finish_run, start_run
from stage5.storage.schema import migrate
from stage5.storage.stores import StoreWriter, WriteCounts

log = logging.getLogger("stage5.crawl")


@dataclass
class RunSummary:
    run_id: int
    status: str  # succeeded | partial | failed
    districts: int
    districts_failed: list[str]
    units: int
    units_failed: int
    stores: int
    refill_stores: int
    new: int
    updated: int
    unchanged: int
    rejected: int
    out_of_area: int
    pages: int
    requests: int
    retries: int
    cache_hits: int
    cache_misses: int
    cache_hit_rate: float
    cache_errors: int
    bytes: int
    peak_memory_mb: float
    memory_budget_mb: float
    memory_note: str | None
    governor_actions: dict[str, int]
    workers_max: int
    workers_recycled: int
    workers_died: int
    elapsed_s: float
    failed_units: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def counts(self) -> dict[str, Any]:
        data = self.as_dict()
        data.pop("failed_units")
        return data


def summarise(run_id: int, report: MasterReport, counts: WriteCounts, elapsed_s: float) -> RunSummary:
    tallies = report.districts
    failed_districts = sorted(name for name, t in tallies.items() if t.failed and not t.stored)
    stats = report.worker_stats
    looked = stats["cache_hits"] + stats["cache_misses"]
    failed = [asdict(u) for u in report.failed_units]
    status = "succeeded" if not failed else ("failed" if not any(t.stored for t in tallies.values()) else "partial")
    return RunSummary(
        run_id=run_id, status=status, districts=len(tallies), districts_failed=failed_districts,
        units=report.units, units_failed=len(failed), stores=sum(t.stored for t in tallies.values()),
        refill_stores=sum(t.refill for t in tallies.values()), new=counts.new, updated=counts.updated,
        unchanged=counts.unchanged, rejected=counts.rejected,
        out_of_area=sum(len(t.out_of_area) for t in tallies.values()), pages=sum(t.pages for t in tallies.values()),
        requests=stats["requests"], retries=stats["retries"], cache_hits=stats["cache_hits"],
        cache_misses=stats["cache_misses"], cache_hit_rate=round(stats["cache_hits"] / looked, 4) if looked else 0.0,
        cache_errors=stats["cache_errors"],
        bytes=stats["bytes"], peak_memory_mb=report.peak_memory_mb, memory_budget_mb=report.budget_mb, memory_note=report.memory_note,
        governor_actions=report.governor_actions, workers_max=report.workers_max,
        workers_recycled=report.workers_recycled, workers_died=report.workers_died,
        elapsed_s=round(elapsed_s, 2), failed_units=failed,
    )  # fmt: skip


async def _order_by_size(conn: psycopg.AsyncConnection, districts: list[str]) -> list[str]:
    """Largest first (by the last crawl's store count), so the long ones do not finish last alone."""
    cur = await conn.execute("SELECT district, count(*) FROM stores GROUP BY district")
    sizes = dict(await cur.fetchall())
    await conn.commit()
    return sorted(districts, key=lambda d: (-sizes.get(d, 0), districts.index(d)))


async def run_crawl(settings: Settings, db_url: str, redis_url: str | None = None, trigger: str = "manual",
                    show_progress: bool = False) -> RunSummary:  # fmt: skip
    started = time.monotonic()
    conn = await connect(db_url, settings.db_schema)
    try:
        await migrate(conn)
        districts = await _order_by_size(conn, settings.districts)
        params = {k: getattr(settings, k) for k in ("page_size", "request_delay_s", "host_concurrency", "workers",
                                                    "memory_budget_mb", "cache")}  # fmt: skip
        run_id = await start_run(conn, settings.site, districts, params, trigger)
        log_event(log, "run_started", run_id=run_id, site=settings.site, districts=len(districts))
        try:
            async with StoreWriter(
                lambda: connect(db_url, settings.db_schema), run_id, settings.batch_size, settings.flush_interval_s
            ) as writer:
                progress = Progress(settings.progress_interval_s, sys.stderr) if show_progress else None
                master = Master(settings, writer, redis_url, progress)
                report = await master.run(districts)
            summary = summarise(run_id, report, writer.counts, time.monotonic() - started)
        except BaseException as exc:
            await finish_run(conn, run_id, "failed", {}, [], error=f"{type(exc).__name__}: {exc}")
            log_event(log, "run_failed", logging.ERROR, run_id=run_id, error=repr(exc))
            raise
        await finish_run(conn, run_id, summary.status, summary.counts(), summary.failed_units)
        log_event(log, "run_finished", **summary.counts())
        return summary
    finally:
        await conn.close()
