"""One crawl run: open (or reopen) a `crawl_runs` row, let the master crawl, close the row.

The run's counters are read back from the database at the end (unit results and the counters
written with the rows), so a run resumed three times reports each store once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil
import psycopg
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from stage5.crawl.master import Master, MasterReport, Resume, district_tallies, finished_units
from stage5.crawl.progress import Progress
from stage5.fetch import UnitTally
from stage5.logs import log_event
from stage5.notify import notify
from stage5.settings import Settings
from stage5.storage.db import DatabaseUnavailable, connect
from stage5.storage.progress import claimed_rids, max_uid, open_units, release_leases, unit_rows
from stage5.storage.lock import crawl_lock_holder, run_lock_holder, try_crawl_lock, try_run_lock, wait_crawl_lock
from stage5.storage.runs import (abandon_run, finish_run, record_skip, reopen_run, run_counters, start_run,
                                 unfinished_run)
from stage5.storage.schema import migrate
from stage5.storage.stores import StoreWriter

log = logging.getLogger("stage5.crawl")


class RunBusy(Exception):
    """Another process is the master of that run right now."""


class RunSkipped(Exception):
    """Another run holds the crawl lock; this one was skipped and recorded as such."""

    def __init__(self, run_id: int, holder: dict[str, Any] | None) -> None:
        self.run_id, self.holder = run_id, holder
        who = f"{holder['application']} (backend {holder['pid']}, since {holder['since']})" if holder else "another run"
        super().__init__(f"skipped (run {run_id} recorded as skipped): the crawl lock is held by {who}")


class UnfinishedRun(Exception):
    """A run was left unfinished; the user chooses: resume it or start afresh."""

    def __init__(self, run: dict[str, Any]) -> None:
        self.run = run
        super().__init__(
            f"run {run['id']} is unfinished ({run['status']}, started {run['started_at']:%Y-%m-%d %H:%M} UTC,"
            f" {run['units_done']}/{run['units']} units done).\n"
            "  Resume it:         python -m stage5 crawl --resume\n"
            f"  Or start afresh:   python -m stage5 crawl --fresh   (run {run['id']} is then marked abandoned)"
        )


@dataclass
class RunSummary:
    run_id: int
    status: str  # succeeded | partial | failed | interrupted
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
    resumed: int
    elapsed_s: float
    failed_units: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def counts(self) -> dict[str, Any]:
        data = self.as_dict()
        data.pop("failed_units")
        return data


def _status(report: MasterReport, failed: list[dict[str, str]], stored: int) -> str:
    if report.interrupted:
        return "interrupted"
    if not failed:
        return "succeeded"
    return "partial" if stored else "failed"


async def summarise(conn: psycopg.AsyncConnection, run_id: int, report: MasterReport, elapsed_s: float) -> RunSummary:
    """The run's figures from the database (every session of a resumed run), the machine's from this one."""
    rows = await unit_rows(conn, run_id)
    units = len(rows)
    tallies = district_tallies(list(report.districts), rows)
    cost = asdict(UnitTally())  # what each unit's result says it cost, summed
    failed: list[dict[str, str]] = []
    for _, _, result in finished_units(rows):
        failed += result.get("failed", [])
        for key in cost:
            cost[key] += result.get(key, 0)
    counters = await run_counters(conn, run_id)
    await conn.commit()
    looked = cost["cache_hits"] + cost["cache_misses"]
    stored = sum(t.stored for t in tallies.values())
    return RunSummary(
        run_id=run_id, status=_status(report, failed, stored), districts=len(tallies),
        districts_failed=sorted(d for d, t in tallies.items() if t.failed and not t.stored), units=units,
        units_failed=len({(f["kind"], f["url"]) for f in failed}), stores=stored,
        refill_stores=sum(t.refill for t in tallies.values()), new=counters["new"], updated=counters["updated"],
        unchanged=counters["unchanged"], rejected=counters["rejected"],
        out_of_area=sum(len(t.out_of_area) for t in tallies.values()), pages=sum(t.pages for t in tallies.values()),
        requests=cost["requests"], retries=cost["retries"], cache_hits=cost["cache_hits"],
        cache_misses=cost["cache_misses"], cache_hit_rate=round(cost["cache_hits"] / looked, 4) if looked else 0.0,
        cache_errors=report.worker_stats["cache_errors"], bytes=cost["bytes"], peak_memory_mb=report.peak_memory_mb,
        memory_budget_mb=report.budget_mb, memory_note=report.memory_note, governor_actions=report.governor_actions,
        workers_max=report.workers_max, workers_recycled=report.workers_recycled, workers_died=report.workers_died,
        resumed=counters["resumed"], elapsed_s=round(elapsed_s, 2), failed_units=failed,
    )  # fmt: skip


async def _order(conn: psycopg.AsyncConnection, districts: list[str]) -> list[str]:
    """Districts whose units failed in the last finished run first (their URLs are retried first),
    then the largest (by stored stores), so the long ones do not finish last alone."""
    cur = await conn.execute("SELECT district, count(*) FROM stores GROUP BY district")
    sizes = dict(await cur.fetchall())
    cur = await conn.execute(
        "SELECT DISTINCT u.district FROM crawl_units u WHERE u.state = 'failed' AND u.run_id ="
        " (SELECT max(id) FROM crawl_runs WHERE status IN ('succeeded', 'partial', 'failed'))"
    )
    retry_first = {d for (d,) in await cur.fetchall()}
    await conn.commit()
    if retry_first:
        log_event(log, "retrying_failed_first", districts=",".join(sorted(retry_first & set(districts))))
    return sorted(districts, key=lambda d: (d not in retry_first, -sizes.get(d, 0), districts.index(d)))


async def _reconnecting(db_url: str, schema: str, action: Any) -> Any:
    """Run `action(conn)` on a fresh connection, retrying while PostgreSQL restarts."""
    retrying = AsyncRetrying(stop=stop_after_attempt(6), wait=wait_exponential(multiplier=0.5, max=10), reraise=True,
                             retry=retry_if_exception_type((psycopg.OperationalError, DatabaseUnavailable)))  # fmt: skip
    async for attempt in retrying:
        with attempt:
            conn = await connect(db_url, schema)
            try:
                return await action(conn)
            finally:
                await conn.close()


def _install_stop_handlers(master: Master) -> None:
    """First Ctrl-C / SIGTERM: a graceful stop. Second: out at once (the run stays resumable)."""
    loop = asyncio.get_running_loop()
    presses = [0]

    def on_signal(signum: int) -> None:
        presses[0] += 1
        if presses[0] == 1:
            print(f"\nstage5: stopping ({signal.Signals(signum).name}); again to quit at once", file=sys.stderr)
            master.request_stop()
            return
        for child in psutil.Process().children(recursive=True):
            child.kill()
        os._exit(130)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)


async def run_crawl(settings: Settings, db_url: str, redis_url: str | None = None, trigger: str = "manual",
                    show_progress: bool = False, resume: bool = False, fresh: bool = False,
                    progress: Progress | None = None, job: str | None = None) -> RunSummary:  # fmt: skip
    """A new run, or with `resume` the newest unfinished one. Without either flag an unfinished run
    raises UnfinishedRun; with `fresh` it is marked abandoned first."""
    started = time.monotonic()
    schema = settings.db_schema
    conn = await connect(db_url, schema, role="master")  # holds the locks for the run's life
    try:
        await migrate(conn)
        if settings.overlap == "wait":
            locked = await wait_crawl_lock(conn, schema, settings.lock_wait_s)
        else:
            locked = await try_crawl_lock(conn, schema)
        if not locked:
            holder = await crawl_lock_holder(conn, schema)
            run_id = await record_skip(conn, settings.site, settings.districts, trigger, holder)
            log_event(log, "run_skipped", logging.WARNING, run_id=run_id, holder=holder)
            notify(settings, {"run_id": run_id, "status": "skipped", "lock_holder": holder})
            raise RunSkipped(run_id, holder)
        pending = await unfinished_run(conn)
        if pending and not (resume or fresh):
            raise UnfinishedRun(pending)
        if pending and fresh:
            if not await try_run_lock(conn, schema, pending["id"]):
                raise RunBusy(f"run {pending['id']} is being crawled by another stage5 process right now")
            await abandon_run(conn, pending["id"])
            log_event(log, "run_abandoned", run_id=pending["id"])
        if resume and pending:
            run_id, districts = pending["id"], list(pending["districts"])
            if not await try_run_lock(conn, schema, run_id):
                raise RunBusy(f"run {run_id} is being crawled by another stage5 process right now"
                              f" ({await run_lock_holder(conn, schema, run_id)})")  # fmt: skip
            returned = await release_leases(conn, run_id)
            state = Resume(await open_units(conn, run_id), await claimed_rids(conn, run_id),
                           await unit_rows(conn, run_id), await max_uid(conn, run_id))  # fmt: skip
            if not state.rows:
                state = None  # killed before its plan was saved: plan it now, under the same run id
            await reopen_run(conn, run_id)
            log_event(log, "run_resuming", run_id=run_id, leases_returned=returned,
                      open_units=len(state.open_units) if state else "none, planning afresh")  # fmt: skip
        else:
            districts, state = await _order(conn, settings.districts), None
            params = {k: getattr(settings, k) for k in ("page_size", "request_delay_s", "host_concurrency", "workers",
                                                        "memory_budget_mb", "cache")}  # fmt: skip
            run_id = await start_run(conn, settings.site, districts, params, trigger, job)
            await try_run_lock(conn, schema, run_id)
            log_event(log, "run_started", run_id=run_id, site=settings.site, districts=len(districts))
        if progress is None and show_progress:
            progress = Progress(settings.progress_interval_s, sys.stderr)
        return await _crawl(settings, db_url, redis_url, run_id, districts, state, progress, started)
    finally:
        await conn.close()


async def _crawl(settings: Settings, db_url: str, redis_url: str | None, run_id: int, districts: list[str],
                 state: Resume | None, progress: Progress | None, started: float) -> RunSummary:  # fmt: skip
    schema = settings.db_schema
    try:
        async with StoreWriter(lambda: connect(db_url, schema), run_id, settings.batch_size,
                               settings.flush_interval_s, owner=f"master-{os.getpid()}") as writer:  # fmt: skip
            if settings.engine == "celery":
                from stage5.crawl.celery_engine import CeleryMaster  # Celery is imported only when used

                master: Master = CeleryMaster(settings, writer, redis_url, progress)
            else:
                master = Master(settings, writer, redis_url, progress)
            _install_stop_handlers(master)
            report = await master.run(districts, state)
    except BaseException as exc:
        log_event(log, "run_failed", logging.ERROR, run_id=run_id, error=repr(exc))
        error = f"{type(exc).__name__}: {exc}"

        async def fail(conn: psycopg.AsyncConnection) -> None:
            await release_leases(conn, run_id)
            await finish_run(conn, run_id, "interrupted", {}, [], error=error)

        await _reconnecting(db_url, schema, fail)  # resumable, whatever went wrong
        notify(settings, {"run_id": run_id, "status": "interrupted", "error": error})
        raise
    finally:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    async def close(conn: psycopg.AsyncConnection) -> RunSummary:
        if report.interrupted:
            await release_leases(conn, run_id)
        summary = await summarise(conn, run_id, report, time.monotonic() - started)
        await finish_run(conn, run_id, summary.status, summary.counts(), summary.failed_units)
        return summary

    summary: RunSummary = await _reconnecting(db_url, schema, close)
    log_event(log, "run_interrupted" if report.interrupted else "run_finished", **summary.counts())
    notify(settings, summary.as_dict())
    return summary

