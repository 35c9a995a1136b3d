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
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import psutil
import psycopg

from stage5.cache import Kind, make_cache
from stage5.coverage import drops as coverage_drops
from stage5.coverage import merge as merge_coverage
from stage5.coverage import moved as coverage_moved
from stage5.crawl.completeness import district_listings
from stage5.crawl.executor import Executor
from stage5.crawl.master import Master, MasterReport, Resume
from stage5.crawl.politeness import apply_robots
from stage5.crawl.pool import LocalPool, prepare_workers
from stage5.crawl.progress import Progress
from stage5.crawl.refresh import Stored
from stage5.errors import ConfigError, ExitCode, LockLost, RunBusy, RunConflict, RunSkipped, UnfinishedRun
from stage5.logs import bind, log_event
from stage5.notify import notify
from stage5.settings import Settings
from stage5.storage.changes import change_counts, mark_vanished
from stage5.storage.db import connect, db_retrying
from stage5.storage.lock import (
    LockSession,
    crawl_lock_holder,
    run_lock_holder,
    try_crawl_lock,
    try_run_lock,
    wait_crawl_lock,
)
from stage5.storage.runs import (
    EndStatus,
    abandon_run,
    coverage_history,
    district_sizes,
    finish_run,
    record_skip,
    refill_seen,
    reopen_run,
    run_baseline,
    run_counters,
    save_completeness,
    start_run,
    stored_listings,
    unfinished_run,
)
from stage5.storage.schema import migrate
from stage5.storage.stores import StoreWriter
from stage5.storage.unit_queue import (
    claimed_rids,
    last_failed_districts,
    leased_uids,
    max_uid,
    open_units,
    redo_unfinished_listings,
    release_leases,
    unit_rows,
)
from stage5.tallies import DistrictTally, UnitTally
from stage5.units import FailedUnit, Outcome, SearchOutcome, district_tallies, finished_outcomes

log = logging.getLogger("stage5.crawl")
T = TypeVar("T")
MIN_BASELINE = 5  # stored stores below which a district's count is too small to call a drop
# What a run records of the settings that shaped it.
RUN_PARAMS = (
    "page_size",
    "max_pages",
    "detail_refresh",
    "detail_max_age_runs",
    "request_delay_s",
    "host_concurrency",
    "workers",
    "memory_budget_mb",
    "cache",
    "result_cap",
    "split_min_radius_m",
    "split_max_queries",
)
# Settings that shape what a run stores: a resumed run keeps the values it started with, whatever is given.
SHAPING = ("page_size", "max_pages", "detail_refresh", "detail_max_age_runs")
# The rest of RUN_PARAMS: a resumed run keeps them too (a run started with --no-cache stays uncached) unless
# given again explicitly on the resuming command.


def crawl_command(settings: Settings) -> str:
    """The crawl command for this dataset, as a hint to print (the schema only when not the default; the
    engine when not local: a Celery run resumed without it would go on in local processes)."""
    schema = f" --db-schema {settings.db_schema}" if settings.db_schema != "public" else ""
    engine = f" --engine {settings.engine}" if settings.engine != "local" else ""
    return f"python -m stage5 crawl{schema}{engine}"


def bound_to_run(settings: Settings, run: dict[str, Any]) -> Settings:
    """The settings a resumed run goes on with: its own site, districts and shaping settings. A site or
    districts given explicitly (flag or environment) that differ are refused, not silently replaced."""
    given, run_id = settings.model_fields_set, run["id"]
    if "site" in given and settings.site.rstrip("/") != str(run["site"]).rstrip("/"):
        raise RunConflict(
            f"run {run_id} crawls {run['site']}; resuming it with --site {settings.site} would send the rest"
            f" of it elsewhere. Resume without --site (the run's is used): {crawl_command(settings)} --resume;"
            " or start a new run there: add --fresh"
        )
    if "districts" in given and set(settings.districts) != set(run["districts"]):
        raise RunConflict(
            f"run {run_id} covers {len(run['districts'])} districts ({', '.join(run['districts'][:5])}…);"
            f" --districts {','.join(settings.districts)} differs. Resume without --districts, or add --fresh"
        )
    params = run.get("params") or {}
    recorded = {k: params[k] for k in RUN_PARAMS if k in params and (k in SHAPING or k not in given)}
    return settings.model_copy(update={"site": run["site"], "districts": list(run["districts"]), **recorded})


@dataclass
class RunSummary:
    run_id: int
    status: EndStatus
    districts: int
    districts_failed: list[str]
    districts_done: int
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
    cache_corrupt: int
    bytes: int
    peak_memory_mb: float
    memory_budget_mb: float
    memory_note: str | None
    governor_actions: dict[str, int]
    workers_max: int
    worker_start_s: float
    workers_recycled: int
    workers_died: int
    resumed: int
    elapsed_s: float
    failed_units: list[dict[str, str]] = field(default_factory=list)
    suspect_districts: list[dict[str, Any]] = field(default_factory=list)
    coverage: dict[str, Any] = field(default_factory=dict)
    coverage_moved: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    coverage_drops: list[dict[str, Any]] = field(default_factory=list)
    resume_hint: str = "python -m stage5 crawl --resume"
    changes: dict[str, int] = field(default_factory=dict)  # new / changed / closed / vanished / reappeared
    details: dict[str, int] = field(default_factory=dict)  # why detail pages were fetched (or kept)
    # Per district: were its listings complete (stage5.crawl.completeness)? Only a complete district's
    # stores can miss a run.
    listings: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped_entries: int = 0  # search entries that were not a store (an ad slot), skipped
    # Answers that were no evidence about their store, by cause (blocked, not_this_store, redirect): they
    # changed nothing stored and were not cached.
    unverified: dict[str, int] = field(default_factory=dict)
    alerts: list[str] = field(default_factory=list)  # lines for the summary and the notification (BLOCKED)
    engine: str = "local"  # where the units ran: local worker processes or Celery workers
    workers_by_host: dict[str, int] = field(default_factory=dict)  # host -> worker processes
    units_resent: int = 0  # units sent again after their worker was lost
    broker_outages_s: list[float] = field(default_factory=list)  # the broker away, seconds each time

    @property
    def incomplete_districts(self) -> list[str]:
        return sorted(d for d, listing in self.listings.items() if listing["status"] != "complete")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def counts(self) -> dict[str, Any]:
        data = self.as_dict()
        for detailed in ("failed_units", "coverage", "coverage_moved", "listings"):
            data.pop(detailed)
        data["incomplete_districts"] = self.incomplete_districts
        data["suspect_districts"] = [s["district"] for s in self.suspect_districts]
        data["coverage_drops"] = [f"{d['kind']}.{d['field']}" for d in self.coverage_drops]
        return data


def _status(report: MasterReport, failed: list[FailedUnit], stored: int, doubts: int, answered: bool) -> EndStatus:
    """`doubts`: suspect districts and coverage drops, which make an otherwise good run partial.
    `answered`: whether any request got a usable answer; a run with none (the site down, the network
    gone) failed, whatever its doubts say."""
    if report.interrupted:
        return "interrupted"
    if failed and not answered:
        return "failed"
    if not failed:
        return "partial" if doubts else "succeeded"
    return "partial" if stored or doubts else "failed"


def suspect_districts(
    tallies: dict[str, DistrictTally], baseline: dict[str, int], ratio: float
) -> list[dict[str, Any]]:
    """Districts whose searches found far fewer stores than are stored for them: a soft block (empty
    or thinned answers) looks like this. Districts with under MIN_BASELINE stored stores are not judged."""
    return [
        {"district": d, "found": t.found, "stored_before": baseline[d]}
        for d, t in tallies.items()
        if baseline.get(d, 0) >= MIN_BASELINE and t.found < ratio * baseline[d]
    ]


async def summarise(
    conn: psycopg.AsyncConnection, run_id: int, report: MasterReport, elapsed_s: float, settings: Settings
) -> RunSummary:
    """The run's figures from the database (every session of a resumed run), the machine's from this one."""
    rows = await unit_rows(conn, run_id)
    tallies = district_tallies(list(report.districts), rows)
    # An interrupted run judges only the districts it finished: one it never reached found nothing, which
    # is no sign of a soft block, and a partial sample says nothing about field coverage.
    judged = {d: t for d, t in tallies.items() if t.done} if report.interrupted else tallies
    suspect = suspect_districts(judged, await run_baseline(conn, run_id), settings.soft_block_ratio)
    outcomes = [outcome for _, outcome in finished_outcomes(rows)]
    coverage = merge_coverage(outcome.coverage for outcome in outcomes)
    history = [] if report.interrupted else await coverage_history(conn, run_id)
    drops = coverage_drops(coverage, history, settings.coverage_drop_points)
    for drop in drops:
        log_event(log, "field_coverage_drop", logging.WARNING, run_id=run_id, **drop)
    cost = UnitTally.total(outcome.tally for outcome in outcomes)  # what each unit's outcome says it cost
    failed = [f for outcome in outcomes for f in outcome.failed]
    counters = await run_counters(conn, run_id)
    # A resumed run's time is the sum of its segments (each close records the sum so far): its speed is
    # the whole run's stores over the whole run's time, not over the last segment's.
    cur = await conn.execute("SELECT (counts ->> 'elapsed_s')::float FROM crawl_runs WHERE id = %s", (run_id,))
    before = await cur.fetchone()
    elapsed_s += float(before[0] or 0) if before and counters["resumed"] else 0.0
    await conn.commit()
    looked = cost.cache_hits + cost.cache_misses
    stored = sum(t.stored + t.kept for t in tallies.values())
    details = detail_reasons(outcomes)
    unverified: dict[str, int] = dict(Counter(f.cause for f in failed if f.cause))
    listings = {d: v.as_dict() for d, v in district_listings(list(report.districts), rows).items()}
    incomplete = [d for d, v in listings.items() if v["status"] != "complete" and d in judged]
    for district in incomplete:
        log_event(log, "listing_incomplete", logging.WARNING, run_id=run_id, district=district, **listings[district])
    return RunSummary(
        run_id=run_id,
        status=_status(
            report, failed, stored, len(suspect) + len(drops) + len(incomplete), answered(tallies, outcomes)
        ),
        districts=len(tallies),
        districts_failed=sorted(d for d, t in tallies.items() if t.failed and not t.stored),
        districts_done=sum(1 for t in tallies.values() if t.done),
        units=len(rows),
        units_failed=len({(f.kind, f.url) for f in failed}),
        stores=stored,
        refill_stores=await refill_seen(conn, run_id),
        new=counters["new"],
        updated=counters["updated"],
        unchanged=counters["unchanged"],
        rejected=counters["rejected"],
        out_of_area=sum(len(t.out_of_area) for t in tallies.values()),
        pages=sum(t.pages for t in tallies.values()),
        requests=cost.requests,
        retries=cost.retries,
        cache_hits=cost.cache_hits,
        cache_misses=cost.cache_misses,
        cache_hit_rate=round(cost.cache_hits / looked, 4) if looked else 0.0,
        cache_errors=report.worker_stats.cache_errors,
        cache_corrupt=report.worker_stats.cache_corrupt,
        bytes=cost.bytes,
        peak_memory_mb=report.peak_memory_mb,
        memory_budget_mb=report.budget_mb,
        memory_note=report.memory_note,
        governor_actions=report.governor_actions,
        workers_max=report.workers_max,
        worker_start_s=report.worker_start_s,
        workers_recycled=report.workers_recycled,
        workers_died=report.workers_died,
        engine=report.engine,
        workers_by_host=report.executor.workers_by_host,
        units_resent=report.executor.units_resent,
        broker_outages_s=list(report.executor.broker_outages_s),
        resumed=counters["resumed"],
        elapsed_s=round(elapsed_s, 2),
        resume_hint=f"{crawl_command(settings)} --resume",
        failed_units=[asdict(f) for f in failed],
        suspect_districts=suspect,
        coverage=coverage,
        coverage_moved={kind: coverage_moved(coverage, history, kind) for kind in ("search", "detail")}
        if history
        else {},
        coverage_drops=drops,
        details=details,
        listings=listings,
        skipped_entries=sum(v["skipped_entries"] for v in listings.values()),
        unverified=unverified,
        alerts=blocked_alert(unverified.get("blocked", 0), failed, settings),
    )


def detail_reasons(outcomes: list[Outcome]) -> dict[str, int]:
    """Why detail pages were fetched or kept (the search outcomes' reasons), and how many answered 304."""
    details: Counter[str] = Counter()
    for outcome in outcomes:
        if isinstance(outcome, SearchOutcome):
            details.update(outcome.details)
        elif outcome.not_modified:
            details["not_modified"] += outcome.not_modified
    return dict(details)


def answered(tallies: dict[str, DistrictTally], outcomes: list[Outcome]) -> bool:
    """Whether any request of the run got a usable answer: a search page read, a store stored or kept,
    or a unit that finished without a failure."""
    if any(t.pages or t.stored or t.kept for t in tallies.values()):
        return True
    return any(not outcome.failed for outcome in outcomes)


def blocked_alert(blocked: int, failed: list[FailedUnit], settings: Settings) -> list[str]:
    """The BLOCKED line, when the site served more block pages than `blocked_pages_max`."""
    if blocked <= settings.blocked_pages_max:
        return []
    first = next(f for f in failed if f.cause == "blocked")
    log_event(log, "site_blocking", logging.ERROR, pages=blocked, first_url=first.url, reason=first.reason)
    return [
        f"BLOCKED: the site answered {blocked} page(s) with a block page (first: {first.url}: {first.reason});"
        " those stores were left as stored and nothing was cached. The site may be limiting this crawler:"
        " run later, or slower (STAGE5_REQUEST_DELAY_S, STAGE5_HOST_CONCURRENCY)."
    ]


async def _order(conn: psycopg.AsyncConnection, districts: list[str], sizes: dict[str, int]) -> list[str]:
    """Districts whose units failed in the last finished run first (their URLs are retried first),
    then the largest (by stored stores), so the long ones do not finish last alone."""
    retry_first = await last_failed_districts(conn)
    await conn.commit()
    if retry_first:
        log_event(log, "retrying_failed_first", districts=",".join(sorted(retry_first & set(districts))))
    return sorted(districts, key=lambda d: (d not in retry_first, -sizes.get(d, 0), districts.index(d)))


async def _reconnecting(db_url: str, schema: str, action: Callable[[psycopg.AsyncConnection], Awaitable[T]]) -> T:
    """Run `action(conn)` on a fresh connection, retrying while PostgreSQL restarts."""
    async for attempt in db_retrying():
        with attempt:
            conn = await connect(db_url, schema)
            try:
                return await action(conn)
            finally:
                await conn.close()
    raise AssertionError("unreachable: tenacity either returns or raises")


def _executor(settings: Settings, redis_url: str | None, run_id: int) -> Executor:
    """Where this run's units run: worker processes here, or Celery workers anywhere."""
    if settings.engine == "celery":
        from stage5.crawl.celery_engine import CeleryExecutor  # Celery is imported only when used

        return CeleryExecutor(settings, redis_url, run_id)
    return LocalPool(settings, redis_url)


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
        os._exit(ExitCode.INTERRUPTED)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)


async def _forget_suspect_answers(settings: Settings, redis_url: str | None, suspect: list[dict[str, Any]]) -> None:
    """A suspect district's search answers are not kept: the next run asks the site again."""
    cache = make_cache(settings, redis_url)
    try:
        for s in suspect:
            purged = await cache.purge(Kind.SEARCH, s["district"])
            log_event(log, "suspect_district", logging.WARNING, **s, cache_entries_purged=purged)
    finally:
        await cache.close()


async def _forget_incomplete_answers(settings: Settings, redis_url: str | None, districts: list[str]) -> None:
    """An incomplete district's search answers (thinned, capped) are not kept either: the next run asks the
    site again rather than reading the same short listing from the cache."""
    cache = make_cache(settings, redis_url)
    try:
        for district in districts:
            purged = await cache.purge(Kind.SEARCH, district)
            log_event(log, "incomplete_listing_forgotten", district=district, cache_entries_purged=purged)
    finally:
        await cache.close()


async def _forget_short_answers(settings: Settings, redis_url: str | None, summary: RunSummary) -> None:
    """Suspect districts' and incomplete districts' search answers leave the cache."""
    if summary.suspect_districts:
        await _forget_suspect_answers(settings, redis_url, summary.suspect_districts)
    suspect = {s["district"] for s in summary.suspect_districts}
    if incomplete := [d for d in summary.incomplete_districts if d not in suspect]:
        await _forget_incomplete_answers(settings, redis_url, incomplete)


def changed_only(settings: Settings, trigger: str) -> bool:
    """Whether this run fetches only the details that may have changed (see stage5.crawl.refresh)."""
    if settings.cache == "refresh" or settings.detail_refresh == "all":
        return False
    return settings.detail_refresh == "changed" or trigger == "schedule"


@dataclass
class RunStart:
    """What the master needs to begin: the run, its districts, and a resumed run's saved state."""

    run_id: int
    districts: list[str]
    state: Resume | None = None
    refresh: dict[str, Stored] | None = None  # change-driven: what is stored of each store; None: fetch all


async def run_crawl(
    settings: Settings,
    db_url: str,
    redis_url: str | None = None,
    trigger: str = "manual",
    show_progress: bool = False,
    resume: bool = False,
    fresh: bool = False,
    progress: Progress | None = None,
    job: str | None = None,
    start_if_none: bool = False,
) -> RunSummary:
    """A new run, or with `resume` the newest unfinished one (none: ConfigError, unless `start_if_none`,
    as the scheduler asks, starts a new one). Without either flag an unfinished run raises
    UnfinishedRun; with `fresh` it is marked abandoned first."""
    started = time.monotonic()
    if settings.engine == "local":
        prepare_workers(settings.worker_start)
    else:
        from stage5.crawl.celery_engine import check_broker  # Celery is imported only when used

        await check_broker(redis_url)
    conn = await connect(db_url, settings.db_schema, role="master")  # holds the locks for the run's life
    session = LockSession(conn, lambda: connect(db_url, settings.db_schema, role="master"), settings.db_schema)
    try:
        await migrate(conn)
        await _take_crawl_lock(conn, settings, trigger)
        pending = await unfinished_run(conn)
        if pending and not (resume or fresh):
            raise UnfinishedRun(pending, crawl_command(settings))
        if resume and not pending and not start_if_none:
            raise ConfigError(
                f"--resume: no unfinished run to resume in schema {settings.db_schema} (the last one ended);"
                f" start a new run: {crawl_command(settings)}"
            )
        if pending and fresh:
            await _abandon(conn, settings.db_schema, pending["id"])
        if resume and pending:
            settings = bound_to_run(settings, pending)
        settings = await apply_robots(settings, redis_url)  # before a run is opened: a refusal leaves none
        if resume and pending:
            start = await _reopen(conn, settings.db_schema, pending, adopt=settings.engine != "local")
        else:
            start = await _open(conn, settings, trigger, job)
        session.run_id = start.run_id
        # On every log line of this process (and of its workers) from now on; run ids are per schema, so
        # the schema goes with it (two datasets logging to one folder stay apart).
        bind(run_id=start.run_id, schema=settings.db_schema)
        if changed_only(settings, trigger):
            start.refresh = {rid: Stored(*row) for rid, row in (await stored_listings(conn)).items()}
            await conn.commit()
        if progress is None and show_progress:
            progress = Progress(settings.progress_interval_s, sys.stderr)
        return await _crawl(settings, db_url, redis_url, start, session, progress, started)
    finally:
        bind(run_id=None, schema=None)
        await session.close()


async def _take_crawl_lock(conn: psycopg.AsyncConnection, settings: Settings, trigger: str) -> None:
    """One crawl per dataset: wait for the lock or skip (recorded, notified) as `overlap` says."""
    schema = settings.db_schema
    if settings.overlap == "wait":
        locked = await wait_crawl_lock(conn, schema, settings.lock_wait_s)
    else:
        locked = await try_crawl_lock(conn, schema)
    if locked:
        return
    holder = await crawl_lock_holder(conn, schema)
    run_id = await record_skip(conn, settings.site, settings.districts, trigger, holder)
    log_event(log, "run_skipped", logging.WARNING, run_id=run_id, holder=holder)
    notify(settings, {"run_id": run_id, "status": "skipped", "lock_holder": holder})
    raise RunSkipped(run_id, holder)


async def _lock_run(conn: psycopg.AsyncConnection, schema: str, run_id: int) -> None:
    if not await try_run_lock(conn, schema, run_id):
        holder = await run_lock_holder(conn, schema, run_id)
        raise RunBusy(f"run {run_id} is being crawled by another stage5 process right now ({holder})")


async def _abandon(conn: psycopg.AsyncConnection, schema: str, run_id: int) -> None:
    await _lock_run(conn, schema, run_id)
    await abandon_run(conn, run_id)
    log_event(log, "run_abandoned", run_id=run_id)


async def _reopen(conn: psycopg.AsyncConnection, schema: str, pending: dict[str, Any], adopt: bool) -> RunStart:
    """Resume an unfinished run from what the database holds of it. `adopt`: the units its previous master
    had sent may still run where they were sent (Celery workers outlive their master), so they stay leased
    for the executor to follow; else (local workers ended with it) they return to the queue."""
    run_id = pending["id"]
    await _lock_run(conn, schema, run_id)
    leased = await leased_uids(conn, run_id) if adopt else set()
    returned = 0 if adopt else await release_leases(conn, run_id)
    redone = await redo_unfinished_listings(conn, run_id)
    if redone:
        log_event(log, "listings_searched_again", run_id=run_id, districts=",".join(redone))
    state: Resume | None = Resume(
        await open_units(conn, run_id),
        await claimed_rids(conn, run_id),
        await unit_rows(conn, run_id),
        await max_uid(conn, run_id),
        leased,
    )
    if state is not None and not state.rows:
        state = None  # killed before its plan was saved: plan it now, under the same run id
    await reopen_run(conn, run_id)
    planned = len(state.open_units) if state else "none, planning afresh"
    log_event(log, "run_resuming", run_id=run_id, leases_returned=returned, leases_kept=len(leased), open_units=planned)
    return RunStart(run_id, list(pending["districts"]), state)


async def _open(conn: psycopg.AsyncConnection, settings: Settings, trigger: str, job: str | None) -> RunStart:
    """A new run: its districts ordered, its row in crawl_runs, its lock."""
    sizes = await district_sizes(conn)  # also the soft-block baseline: what is stored before this run
    districts = await _order(conn, settings.districts, sizes)
    params = {k: getattr(settings, k) for k in RUN_PARAMS}
    params["baseline"] = {d: sizes.get(d, 0) for d in districts}
    run_id = await start_run(conn, settings.site, districts, params, trigger, job)
    await try_run_lock(conn, settings.db_schema, run_id)
    log_event(log, "run_started", run_id=run_id, site=settings.site, districts=len(districts))
    return RunStart(run_id, districts)


async def _crawl(
    settings: Settings,
    db_url: str,
    redis_url: str | None,
    start: RunStart,
    session: LockSession,
    progress: Progress | None,
    started: float,
) -> RunSummary:
    schema, run_id = settings.db_schema, start.run_id
    try:
        async with StoreWriter(
            lambda: connect(db_url, schema),
            run_id,
            settings.batch_size,
            settings.flush_interval_s,
            owner=f"master-{os.getpid()}",
            fence=session,
        ) as writer:
            master = Master(settings, writer, _executor(settings, redis_url, run_id), progress, start.refresh)
            _install_stop_handlers(master)
            report = await master.run(start.districts, start.state)
    except LockLost:
        raise  # the run may be another master's now: leave its row and its units alone
    except BaseException as exc:
        log_event(log, "run_failed", logging.ERROR, run_id=run_id, error=exc)
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
        summary = await summarise(conn, run_id, report, time.monotonic() - started, settings)
        await save_completeness(conn, run_id, summary.listings)
        # Only where the listings were complete (and not suspect) do the stores not seen miss one more run.
        suspect = {s["district"] for s in summary.suspect_districts}
        complete = sorted(d for d, v in summary.listings.items() if v["status"] == "complete" and d not in suspect)
        if complete and not report.interrupted:
            await mark_vanished(conn, run_id, complete, settings.vanish_after_runs)
        summary.changes = await change_counts(conn, run_id)
        await finish_run(
            conn, run_id, summary.status, summary.counts(), summary.failed_units, coverage=summary.coverage
        )
        return summary

    summary: RunSummary = await _reconnecting(db_url, schema, close)
    await _forget_short_answers(settings, redis_url, summary)
    log_event(log, "run_interrupted" if report.interrupted else "run_finished", **summary.counts())
    notify(settings, summary.as_dict())
    return summary
