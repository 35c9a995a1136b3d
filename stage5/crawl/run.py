"""One crawl run: open a `crawl_runs` row, crawl the districts (largest first), load, summarise."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from stage5.crawl.district import DistrictCrawl, DistrictResult, FailedUnit
from stage5.fetch import Fetcher
from stage5.logs import log_event
from stage5.settings import Settings
from stage5.site.seoul import DISTRICT_BY_NAME
from stage5.storage.db import connect
from stage5.storage.runs import finish_run, start_run
from stage5.storage.schema import migrate
from stage5.storage.stores import StoreWriter

log = logging.getLogger("stage5.crawl")


@dataclass
class RunSummary:
    run_id: int
    status: str
    districts: int
    districts_failed: list[str]
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
    failed_units: list[dict[str, str]] = field(default_factory=list)
    bytes: int = 0
    elapsed_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def counts(self) -> dict[str, Any]:
        data = self.as_dict()
        data.pop("failed_units")
        return data


async def _order_by_size(conn: psycopg.AsyncConnection, districts: list[str]) -> list[str]:
    """Largest first (by the last crawl's store count), so the long ones do not finish last alone."""
    cur = await conn.execute("SELECT district, count(*) FROM stores GROUP BY district")
    sizes = dict(await cur.fetchall())
    await conn.commit()
    return sorted(districts, key=lambda d: (-sizes.get(d, 0), districts.index(d)))


async def run_crawl(settings: Settings, db_url: str, trigger: str = "manual") -> RunSummary:
    started = time.monotonic()
    conn = await connect(db_url, settings.db_schema)
    try:
        await migrate(conn)
        districts = await _order_by_size(conn, settings.districts)
        params = {"page_size": settings.page_size, "request_delay_s": settings.request_delay_s,
                  "host_concurrency": settings.host_concurrency}  # fmt: skip
        run_id = await start_run(conn, settings.site, districts, params, trigger)
        log_event(log, "run_started", run_id=run_id, site=settings.site, districts=len(districts))
        try:
            summary = await _crawl(settings, db_url, run_id, districts, started)
        except BaseException as exc:
            await finish_run(conn, run_id, "failed", {}, [], error=f"{type(exc).__name__}: {exc}")
            log_event(log, "run_failed", logging.ERROR, run_id=run_id, error=exc)
            raise
        await finish_run(conn, run_id, summary.status, summary.counts(), summary.failed_units)
        log_event(log, "run_finished", **summary.counts())
        return summary
    finally:
        await conn.close()


async def _crawl(settings: Settings, db_url: str, run_id: int, districts: list[str], started: float) -> RunSummary:
    claimed: set[str] = set()
    gate = asyncio.Semaphore(settings.district_concurrency)
    async with Fetcher(settings) as fetcher, StoreWriter(
        lambda: connect(db_url, settings.db_schema), run_id, settings.batch_size, settings.flush_interval_s
    ) as writer:

        async def one(name: str) -> DistrictResult:
            async with gate:
                return await DistrictCrawl(DISTRICT_BY_NAME[name], fetcher, writer, settings, claimed).run()

        outcomes = await asyncio.gather(*(one(d) for d in districts), return_exceptions=True)
    results: list[DistrictResult] = []
    failed_districts: list[str] = []
    failed_units: list[FailedUnit] = []
    for name, outcome in zip(districts, outcomes):
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, Exception):
                raise outcome
            log_event(log, "district_failed", logging.ERROR, district=name, error=repr(outcome))
            failed_districts.append(name)
            failed_units.append(FailedUnit("district", name, "", repr(outcome)))
        else:
            results.append(outcome)
            failed_units.extend(outcome.failed)
    counts = writer.counts
    status = "succeeded" if not failed_units else ("failed" if not results else "partial")
    return RunSummary(
        run_id=run_id, status=status, districts=len(districts), districts_failed=failed_districts,
        stores=sum(r.stored for r in results), refill_stores=sum(r.refill for r in results),
        new=counts.new, updated=counts.updated, unchanged=counts.unchanged, rejected=counts.rejected,
        out_of_area=sum(r.out_of_area for r in results), pages=sum(r.pages for r in results),
        requests=fetcher.stats.requests, retries=fetcher.stats.retries,
        failed_units=[asdict(u) for u in failed_units], bytes=fetcher.stats.bytes,
        elapsed_s=round(time.monotonic() - started, 2),
    )  # fmt: skip
