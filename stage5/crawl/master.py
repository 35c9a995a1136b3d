"""The master: turns districts into units, hands them to worker processes, and owns the writer.

One writer, in the master, is the deadlock answer: every upsert goes through one connection in
key order, so two workers finding the same store can never lock each other out. Workers only fetch
and parse; the master dedupes on v_rid (a store claimed by one district is never fetched again),
scales the worker count, follows the governor, and returns a dead worker's units to the queue.
"""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import math
import multiprocessing as mp
import os
import statistics
import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import psutil

from stage5.crawl.governor import Governor, MemoryDecision, effective_budget_mb, measure
from stage5.crawl.progress import Figures, Progress
from stage5.crawl.refresh import Stored, fetch_reason
from stage5.crawl.worker import worker_main
from stage5.errors import WorkerCrashLoop
from stage5.identity import process_identity
from stage5.logs import log_event
from stage5.models import StoreSummary
from stage5.settings import Settings
from stage5.site.diningcode import SearchQuery, neighbourhood_queries, queries_for, split_query
from stage5.site.seoul import DISTRICT_BY_NAME, district_of_address, neighbourhood_of_address
from stage5.storage.stores import StoreWriter, screen_rows
from stage5.storage.unit_queue import Completion
from stage5.tallies import DistrictTally, UnitRow, WorkerStats, district_tallies
from stage5.units import (
    DetailResult,
    DetailUnit,
    FailedUnit,
    Result,
    SearchResult,
    SearchUnit,
    Unit,
    result_summary,
    unit_kind,
)

log = logging.getLogger("stage5.crawl")
# Both start a clean process (no inherited event loop, threads or sockets). A forkserver imports the
# worker's modules once, so each worker is a fork of it (about 0.02 s) instead of a new interpreter
# importing aiohttp, lxml, redis and pydantic again (about 0.5 s here): see benchmarks/README.md.
WORKER_MODULE = "stage5.crawl.worker"


def _context(method: str) -> mp.context.BaseContext:
    ctx = mp.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload([WORKER_MODULE])
    return ctx


def prepare_workers(method: str) -> None:
    """Start the forkserver now, so it imports the worker's modules while the master migrates, locks and
    plans (its first workers then fork at once instead of waiting for those imports)."""
    if method == "forkserver":
        from multiprocessing import forkserver

        _context(method)
        forkserver.ensure_running()


def stop_forkserver() -> None:
    """End the forkserver with the run, and wait for it: no idle process outlives the crawl, and its
    workers' CPU time is accounted to this process (what `time` and the benchmarks read)."""
    from multiprocessing import forkserver

    stop = getattr(getattr(forkserver, "_forkserver", None), "_stop", None)  # CPython's; absent elsewhere
    if callable(stop):
        stop()


EST_WORKER_MB = 120.0
WORKER_RPS = 150.0  # requests/s one worker sustains here (CPU-bound); measured: ~400/s with 2 workers
SCALE_EVERY_S = 5.0
MAX_STALLS = 2
CRASH_LOOP_DEATHS, CRASH_WINDOW_S = 3, 60.0


@dataclass
class WorkerHandle:
    wid: int
    process: Any
    conn: Connection
    pid: int = 0
    inflight: dict[int, Unit] = field(default_factory=dict)
    units_done: int = 0
    draining: bool = False
    gone: bool = False
    ready: bool = False
    heard: float = field(default_factory=time.monotonic)  # when it last said anything
    started: float = field(default_factory=time.monotonic)
    stalled: bool = False


@dataclass
class Resume:
    """What the database says of an unfinished run: the master picks it up from here."""

    open_units: list[Unit]
    claimed: set[str]
    rows: list[UnitRow]  # every unit of the run
    max_uid: int


@dataclass
class MasterReport:
    """What only this session of the master knows; the run's counts are read from the database."""

    districts: dict[str, DistrictTally]
    worker_stats: WorkerStats
    peak_memory_mb: float
    budget_mb: float
    memory_note: str | None
    governor_actions: dict[str, int]
    workers_max: int
    worker_start_s: float  # median seconds from start to "ready"
    workers_recycled: int
    workers_died: int
    interrupted: bool


def polite_rps(settings: Settings) -> float:
    """The most requests/s politeness allows per host (infinite without a delay)."""
    return 1 / settings.request_delay_s if settings.request_delay_s > 0 else float("inf")


def initial_workers(settings: Settings, budget_mb: float) -> tuple[int, int]:
    """(start, ceiling): from cores, free memory and the politeness rate, unless --workers fixes it.

    When politeness caps the rate below what one worker sustains, more workers add nothing but
    uncoordinated bursts at the site, so the ceiling is as many as that rate needs."""
    cores = psutil.cpu_count() or 1
    if settings.workers:
        return settings.workers, settings.workers
    free_mb = psutil.virtual_memory().available / 2**20
    by_memory = int(min(budget_mb * 0.5, free_mb * 0.5) // EST_WORKER_MB)
    by_politeness = math.ceil(polite_rps(settings) / WORKER_RPS) if settings.request_delay_s > 0 else cores * 2
    ceiling = max(1, min(settings.max_workers or 2 * cores, by_politeness))
    return max(1, min(cores, by_memory, ceiling)), ceiling


class Master:
    """Plans a run's units, runs them on worker processes and writes their results.

    `run(districts, resume)` is the whole life of one master session: plan (or restore a resumed
    run's queue), then loop — govern memory, scale workers, dispatch units, take results — until the
    queue is empty or a stop was requested. Subclassed by the Celery engine, which replaces only
    where units run.
    """

    def __init__(
        self,
        settings: Settings,
        writer: StoreWriter,
        redis_url: str | None,
        progress: Progress | None = None,
        refresh: dict[str, Stored] | None = None,
    ) -> None:
        self.settings, self.writer, self.redis_url = settings, writer, redis_url
        # Change-driven refresh: what is stored of each store (None: fetch every detail page).
        self.refresh, self.run_id, self.max_age = refresh, writer.run_id if writer else 0, settings.detail_max_age_runs
        self.progress = progress
        self.budget_mb, budget_source = effective_budget_mb(settings.memory_budget_mb)
        if budget_source != "budget":
            log_event(log, "budget_lowered", logging.WARNING, budget_mb=round(self.budget_mb), cause=budget_source)
        self.target, self.ceiling = initial_workers(settings, self.budget_mb)
        self.governor = Governor(
            self.budget_mb,
            settings.memory_soft_ratio,
            settings.memory_hard_ratio,
            max_concurrency=settings.host_concurrency,
        )
        self.workers: dict[int, WorkerHandle] = {}
        self.stats: dict[int, WorkerStats] = {}
        self.search_queue: deque[Unit] = deque()
        self.detail_queue: deque[Unit] = deque()
        self.claimed: set[str] = set()
        # A district's entries wait until all its searches are in, so that entries disagreeing about one
        # store are settled the same way every run (Entries.offer), whatever order the answers came in.
        self.entries: dict[str, Entries] = {}
        self.searching: Counter[str] = Counter()  # district -> its search units not finished
        self.families: dict[str, Family] = {}  # district -> its district query and parts, while asked
        self.tally: dict[str, DistrictTally] = {}
        self.next_uid = self.next_wid = 0
        self.workers_max = self.recycled = self.died = 0
        self.events: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self.ctx = _context(settings.worker_start)
        self.start_costs: list[float] = []  # seconds from start() to the worker's "ready"
        self.log_queue: Any = self.ctx.Queue()
        self.listener = logging.handlers.QueueListener(
            self.log_queue, *logging.getLogger("stage5").handlers, respect_handler_level=True
        )
        self._last_scale = self.started = time.monotonic()
        self.finishing = False
        self.stop_requested = False
        self._sizes: dict[int | str, float] = {}
        self.stalls: Counter[int] = Counter()  # uid -> workers that stalled holding it
        self.start_failures: list[float] = []
        self.fatal: dict[int, str] = {}  # wid -> what a worker that could not start said
        self.crash_cause: str | None = None

    # --- units --------------------------------------------------------------------------------
    def _uid(self) -> int:
        self.next_uid += 1
        return self.next_uid

    def plan(self, districts: list[str]) -> None:
        """Search units of every district, in the given order (largest first)."""
        units: list[Unit] = []
        for name in districts:
            self.tally[name] = DistrictTally()
            for query in queries_for(DISTRICT_BY_NAME[name]):
                units.append(SearchUnit(self._uid(), query))
                self._add_unit(units[-1])
        self.writer.add_units(units)

    def restore(self, districts: list[str], resume: Resume) -> None:
        """Counters from the finished units, the queue from the open ones, dedupe from the claimed stores."""
        self.tally = district_tallies(districts, resume.rows)
        for tally in self.tally.values():  # the open units are counted again as they are queued
            tally.units -= tally.pending
            tally.pending = 0
        for unit in resume.open_units:
            self._add_unit(unit)
        for tally in self.tally.values():
            tally.done = tally.pending == 0
        self.claimed = set(resume.claimed)
        self.next_uid = resume.max_uid
        log_event(
            log,
            "run_resumed",
            open_units=len(resume.open_units),
            claimed=len(self.claimed),
            districts_done=sum(t.done for t in self.tally.values()),
        )

    def request_stop(self) -> None:
        """First Ctrl-C or SIGTERM: take no more work; what is in flight may finish within the grace."""
        if not self.stop_requested:
            self.stop_requested = True
            log_event(log, "stop_requested", logging.WARNING, in_flight=self.in_flight, queued=self.queued)

    def _enqueue(self, unit: Unit, front: bool = False) -> None:
        queue = self.search_queue if isinstance(unit, SearchUnit) else self.detail_queue
        (queue.appendleft if front else queue.append)(unit)

    def _next_unit(self) -> Unit | None:
        # Details first: they turn found stores into rows, and keep the queue short.
        if self.detail_queue:
            return self.detail_queue.popleft()
        return self.search_queue.popleft() if self.search_queue else None

    @property
    def queued(self) -> int:
        return len(self.search_queue) + len(self.detail_queue)

    @property
    def in_flight(self) -> int:
        return sum(len(w.inflight) for w in self.workers.values())

    # --- workers ------------------------------------------------------------------------------
    def _limits(self) -> tuple[float, int]:
        """Each worker's share of the per-host politeness budget, capped by the governor."""
        active = max(1, len(self._active()))
        share = max(1, self.settings.host_concurrency // active)
        return self.settings.request_delay_s * active, max(1, min(share, self.governor.concurrency))

    def _active(self) -> list[WorkerHandle]:
        return [w for w in self.workers.values() if not w.draining and not w.gone]

    def _start_worker(self) -> None:
        self.next_wid += 1
        wid = self.next_wid
        ours, theirs = self.ctx.Pipe()
        delay, concurrency = self._limits()
        process = self.ctx.Process(
            target=worker_main,
            name=f"stage5-worker-{wid}",
            daemon=True,
            args=(wid, self.settings, self.redis_url, theirs, self.log_queue, delay, concurrency),
        )
        process.start()
        theirs.close()
        handle = WorkerHandle(wid, process, ours, pid=process.pid or 0)
        self.workers[wid] = handle
        self.workers_max = max(self.workers_max, len(self._active()))
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._read, args=(handle, loop), name=f"master-read-{wid}", daemon=True).start()
        log_event(log, "worker_started", worker=wid, pid=handle.pid, workers=len(self._active()))
        self._send_limits()

    def _read(self, handle: WorkerHandle, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            try:
                message = handle.conn.recv()
            except (EOFError, OSError):
                loop.call_soon_threadsafe(self.events.put_nowait, ("eof", handle.wid))
                return
            loop.call_soon_threadsafe(self.events.put_nowait, message)

    def _send(self, handle: WorkerHandle, message: tuple[Any, ...]) -> bool:
        try:
            handle.conn.send(message)
            return True
        except (OSError, ValueError):
            return False  # it died; its EOF event returns its units

    def _send_limits(self) -> None:
        delay, concurrency = self._limits()
        for w in self._active():
            self._send(w, ("limits", delay, concurrency))

    def _drain(self, handle: WorkerHandle, why: str) -> None:
        if handle.draining or handle.gone:
            return
        handle.draining = True
        log_event(log, "worker_recycle", worker=handle.wid, reason=why, units_done=handle.units_done)
        self._send(handle, ("stop",))

    def _worker_gone(self, wid: int) -> None:
        handle = self.workers.get(wid)
        if handle is None or handle.gone:
            return
        handle.gone = True
        handle.process.join(timeout=5)
        if not handle.ready and not self.finishing:
            self._note_start_failure(handle)
        if handle.inflight:  # it died holding units: they go back to the front of the queue
            self.died += not self.stop_requested  # stopped with the run (Ctrl-C reaches it too): no death
            log_event(  # a clean stop is not a death: said as such, not as a warning
                log,
                "worker_stopped" if self.stop_requested else "worker_died",
                logging.INFO if self.stop_requested else logging.WARNING,
                worker=wid,
                exitcode=handle.process.exitcode,
                units_returned=len(handle.inflight),
                stalled=handle.stalled,
            )
            for unit in handle.inflight.values():
                self._return_unit(unit, handle.stalled)
            handle.inflight.clear()
        elif handle.draining and not self.finishing:
            self.recycled += 1
        handle.conn.close()
        self._send_limits()

    def _return_unit(self, unit: Unit, stalled: bool) -> None:
        """Back to the front of the queue; a unit on which two workers stalled fails instead (a page that
        hangs the parser would otherwise hang every worker in turn)."""
        if stalled:
            self.stalls[unit.uid] += 1
        if self.stalls[unit.uid] >= MAX_STALLS:
            reason = f"worker stalled on this unit {MAX_STALLS} times (STAGE5_WORKER_STALL_S)"
            self._finish(unit, {"failed": [asdict(FailedUnit("unit", unit.district, f"unit {unit.uid}", reason))]})
            return
        self._enqueue(unit, front=True)

    def _note_start_failure(self, handle: WorkerHandle) -> None:
        """A worker that died before it was ready: several in a short while stop the run with the cause."""
        now = time.monotonic()
        self.start_failures = [t for t in self.start_failures if now - t < CRASH_WINDOW_S] + [now]
        if len(self.start_failures) >= CRASH_LOOP_DEATHS and self.crash_cause is None:
            cause = self.fatal.get(handle.wid) or f"exit code {handle.process.exitcode}"
            self.crash_cause = (
                f"{len(self.start_failures)} workers died at start within {CRASH_WINDOW_S:.0f}s; the last said: {cause}"
            )
            log_event(log, "worker_crash_loop", logging.ERROR, cause=cause, deaths=len(self.start_failures))

    def _check_stalls(self) -> None:
        """Kill a worker that holds units but has said nothing for `worker_stall_s`."""
        now = time.monotonic()
        for handle in self._active():
            if handle.inflight and now - handle.heard > self.settings.worker_stall_s:
                handle.stalled = True
                log_event(log, "worker_stalled", logging.WARNING, worker=handle.wid, silent_s=round(now - handle.heard))
                handle.process.kill()

    # --- results ------------------------------------------------------------------------------
    async def _on_result(self, wid: int, result: Result, stats: WorkerStats) -> None:
        handle = self.workers[wid]
        unit = handle.inflight.pop(result.uid, None)
        self.stats[wid] = stats
        if unit is None:
            return  # already returned to the queue after a presumed death; the duplicate is dropped
        handle.units_done += 1
        if isinstance(result, DetailResult):
            screen_rows(result)
        summary = result_summary(result)
        if isinstance(result, SearchResult):
            assert isinstance(unit, SearchUnit)
            query = unit.query
            summary.update(found=0, anchor=query.anchor, depth=query.depth, area=query.area, query=query.label)
            entries = self.entries.setdefault(unit.district, Entries(unit.district))
            summary["disagreements"] = entries.offer(unit, result.found)
            if result.truncated and unit.query.anchor:
                self._split(unit, summary)
        elif isinstance(result, DetailResult):
            self.writer.confirm(result.not_modified)
            for record in result.records:
                await self.writer.add(record)
            for rejection in result.rejections:
                await self.writer.reject(rejection)
        self._finish(unit, summary)
        if handle.units_done >= self.settings.worker_max_units:
            self._drain(handle, f"served {handle.units_done} units")

    def _split(self, unit: SearchUnit, summary: dict[str, Any]) -> None:
        """A truncated district query (or part): its parts are searched instead, until each fits (within
        split_min_radius_m and split_max_queries)."""
        family = self.families[unit.district]
        queries = split_query(unit.query, self.settings.split_min_radius_m)
        if family.parts + len(queries) > self.settings.split_max_queries:
            queries = []  # bottomed out: the listing stays incomplete rather than asking without end
        family.parts += len(queries)
        parts: list[Unit] = [SearchUnit(self._uid(), q) for q in queries]
        summary["split"] = len(parts)
        log_event(
            log,
            "search_truncated",
            logging.WARNING if not parts else logging.INFO,
            district=unit.district,
            query=unit.query.label,
            count=summary.get("count"),
            listed=len(summary.get("listed", [])),
            parts=len(parts),
        )
        for part in parts:
            self._add_unit(part)
        self.writer.add_units(parts)  # committed with this unit's completion

    def _family_answered(self, unit: SearchUnit, summary: dict[str, Any]) -> None:
        """Count a district query's (or part's) answer; when all are in and together they still list fewer
        stores than the site counts, ask the district's neighbourhoods too (once): a store whose coordinates
        are wrong is in no circle, but its address still names its 동."""
        family = self.families[unit.district]
        family.pending -= 1
        if unit.query.depth == 0:
            family.root, family.count = unit.query, summary.get("count")
        family.listed.update(summary.get("listed", []))
        family.failed = family.failed or bool(summary["failed"])
        if family.pending or family.widened or family.failed or family.root is None or family.count is None:
            return
        if len(family.listed) >= family.count:
            return
        family.widened = True
        held = self.entries[unit.district].best.values() if unit.district in self.entries else []
        areas = [a for _, entry, _ in held if (a := neighbourhood_of_address(entry.address))]
        parts: list[Unit] = [SearchUnit(self._uid(), q) for q in neighbourhood_queries(family.root, areas)]
        summary["neighbourhoods"] = len(parts)
        log_event(
            log,
            "listing_short",
            district=unit.district,
            count=family.count,
            listed=len(family.listed),
            neighbourhoods=len(parts),
        )
        for part in parts:
            self._add_unit(part)
        self.writer.add_units(parts)  # committed with this unit's completion

    def _release(self, district: str, summary: dict[str, Any]) -> None:
        """All of a district's searches are in: its stores (each with its preferred entry) not claimed by
        another district go to detail units. Counted on the search unit that finished last."""
        entries = self.entries.pop(district, None)
        fresh = [s for s in (entries.chosen() if entries else []) if s.rid not in self.claimed]
        self.claimed.update(s.rid for s in fresh)
        summary["found"] = len(fresh)  # stores this run had not claimed yet
        fetch = self._choose_details(fresh, summary)
        size = self.settings.detail_batch
        children: list[Unit] = [
            self._detail_unit(district, tuple(fetch[i : i + size])) for i in range(0, len(fetch), size)
        ]
        for child in children:
            self._add_unit(child)
        self.writer.add_units(children)  # committed with this unit's completion

    def _detail_unit(self, district: str, stores: tuple[StoreSummary, ...]) -> DetailUnit:
        if self.refresh is None:
            return DetailUnit(self._uid(), district, stores)
        etags = tuple(getattr(self.refresh.get(s.rid), "etag", None) for s in stores)
        return DetailUnit(self._uid(), district, stores, revalidate=True, etags=etags)

    def _choose_details(self, fresh: list[StoreSummary], summary: dict[str, Any]) -> list[StoreSummary]:
        """The stores whose detail page this run fetches (all, or by the change-driven policy); the
        others are kept as stored and only marked seen. Reasons go into the search unit's result."""
        if self.refresh is None:
            return fresh
        reasons = {s.rid: fetch_reason(s, self.refresh.get(s.rid), self.run_id, self.max_age) for s in fresh}
        fetch = [s for s in fresh if reasons[s.rid]]
        kept = [s.rid for s in fresh if not reasons[s.rid]]
        summary["details"] = dict(Counter(r or "skipped_unchanged" for r in reasons.values()))
        summary["kept"] = len(kept)
        self.writer.keep(kept)
        self.writer.mark_due([s.rid for s in fetch if s.rid in self.refresh])
        return fetch

    def _finish(self, unit: Unit, summary: dict[str, Any]) -> None:
        if isinstance(unit, SearchUnit):
            if unit.query.anchor:
                self._family_answered(unit, summary)
            self.searching[unit.district] -= 1
            if self.searching[unit.district] <= 0:
                self._release(unit.district, summary)
        state = "failed" if summary["failed"] else "done"
        self.writer.complete(Completion(unit.uid, state, summary))
        self.tally[unit.district].add(unit_kind(unit), summary)
        self._unit_done(unit.district)

    def _add_unit(self, unit: Unit) -> None:
        if isinstance(unit, SearchUnit):
            self.searching[unit.district] += 1
            if unit.query.anchor:
                self.families.setdefault(unit.district, Family()).pending += 1
        self.tally[unit.district].pending += 1
        self.tally[unit.district].units += 1
        self._enqueue(unit)

    def _unit_done(self, district: str) -> None:
        tally = self.tally[district]
        tally.pending -= 1
        if tally.pending == 0 and not tally.done:
            tally.done = True
            log_event(
                log,
                "district_finished",
                district=district,
                pages=tally.pages,
                stores=tally.found,
                stored=tally.stored,
                refill=tally.refill,
                rejected=tally.rejected,
                out_of_area=len(tally.out_of_area),
                failed=tally.failed,
                elapsed_s=round(time.monotonic() - tally.started, 2),
            )

    async def _on_event(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        handle = self.workers.get(event[1]) if kind != "eof" else None
        if handle is not None:
            handle.heard = time.monotonic()
        if kind == "result":
            await self._on_result(event[1], event[2], event[3])
        elif kind == "failed":
            _, wid, uid, failure, stats = event
            self.stats[wid] = stats
            unit = self.workers[wid].inflight.pop(uid, None)
            if unit is not None:
                self._finish(unit, {"failed": [asdict(failure)]})
        elif kind == "ready":
            handle = self.workers[event[1]]
            handle.pid, handle.ready = event[2], True
            self.start_costs.append(time.monotonic() - handle.started)
            log_event(log, "worker_ready", worker=handle.wid, start_s=round(self.start_costs[-1], 3))
        elif kind == "fatal":
            self.fatal[event[1]] = event[2]
        elif kind == "bye":
            self.stats[event[1]] = event[2]
        elif kind == "eof":
            self._worker_gone(event[1])

    # --- the loop -----------------------------------------------------------------------------
    def _dispatch(self, throttled: bool) -> None:
        # Throttled: one unit per worker, so a budget below the baseline slows the crawl, never stops it.
        _, concurrency = self._limits()
        per_worker = 1 if throttled else max(2, concurrency)
        for handle in self._active():
            while len(handle.inflight) < per_worker:
                unit = self._next_unit()
                if unit is None:
                    return
                if not self._send(handle, ("unit", unit)):
                    self._enqueue(unit, front=True)
                    break
                handle.inflight[unit.uid] = unit
                self.writer.lease(unit.uid)

    def _check_processes(self) -> None:
        for handle in list(self.workers.values()):
            if not handle.gone and not handle.process.is_alive():
                self._worker_gone(handle.wid)

    def _govern(self) -> MemoryDecision:
        self._sizes = measure(os.getpid(), {w.wid: w.pid for w in self.workers.values() if not w.gone and w.pid})
        before = self.governor.concurrency
        decision = self.governor.decide(self._sizes, {w.wid for w in self.workers.values() if w.draining})
        if decision.recycle is not None and decision.recycle in self.workers:
            self._drain(self.workers[decision.recycle], f"memory: {decision.reason}")
        if decision.concurrency != before:
            self._send_limits()
        return decision

    def _scale(self, decision: MemoryDecision) -> None:
        """Every few seconds: one worker more while memory, CPU and errors allow and work waits; fewer
        when memory is tight or the site pushes back."""
        now = time.monotonic()
        if self.settings.workers or now - self._last_scale < SCALE_EVERY_S:
            return
        self._last_scale = now
        totals = self.totals()
        error_rate = totals.retries / totals.requests if totals.requests else 0.0
        memory = sum(self._sizes.values())
        cpu = psutil.cpu_percent(interval=None)
        figures = dict(memory_mb=round(memory), cpu_pct=cpu, error_rate=round(error_rate, 3), queued=self.queued)
        active = len(self._active())
        if (decision.throttle or error_rate > 0.3) and self.target > 1:
            self.target -= 1
            log_event(log, "scale_down", workers=self.target, **figures)
            candidates = self._active()
            if len(candidates) > self.target:
                self._drain(min(candidates, key=lambda w: len(w.inflight)), "scale down")
        elif (
            not decision.throttle
            and memory + EST_WORKER_MB < self.budget_mb * self.settings.memory_soft_ratio * 0.7
            and cpu < 85
            and error_rate < 0.1
            and self.queued > 2 * active
            and self.target < self.ceiling
        ):
            self.target += 1
            log_event(log, "scale_up", workers=self.target, **figures)

    def _ensure_workers(self) -> None:
        if not (self.queued or self.in_flight):
            return
        while len(self._active()) < self.target:
            self._start_worker()

    def totals(self) -> WorkerStats:
        return WorkerStats.total(self.stats.values())

    def figures(self) -> Figures:
        t = self.totals()
        counts = self.writer.counts
        return Figures(
            districts_done=sum(1 for d in self.tally.values() if d.done),
            districts=len(self.tally),
            stores=sum(d.stored for d in self.tally.values()),
            pages=sum(d.pages for d in self.tally.values()),
            requests=t.requests,
            bytes=t.bytes,
            cache_hits=t.cache_hits,
            cache_misses=t.cache_misses,
            db_rows=counts.new + counts.updated + counts.unchanged,
            memory_mb=sum(self._sizes.values()),
            budget_mb=self.budget_mb,
            per_process_mb={str(k): v for k, v in self._sizes.items()},
            workers=len(self._active()),
            concurrency=self._limits()[1],
            queued=self.queued,
            in_flight=self.in_flight,
            district_units={d: (t.units - t.pending, t.units) for d, t in self.tally.items()},
        )

    def _live(self, f: Figures) -> dict[str, Any]:
        """What the console's live view shows (crawl_runs.live), with what it needs to stop the run."""
        return {
            **{k: v for k, v in asdict(f).items() if k != "per_process_mb"},
            "memory_mb": round(f.memory_mb),
            "elapsed_s": round(time.monotonic() - self.started, 1),
            **process_identity(),  # pid, host, start time and command line: a stop checks it is still us
            "at": time.time(),
        }

    async def run(self, districts: list[str], resume: Resume | None = None) -> MasterReport:
        self.listener.start()
        try:
            if resume is None:
                self.plan(districts)
            else:
                self.restore(districts, resume)
            await self.writer.flush()  # the plan is durable before the first request
            await self._loop()
        finally:
            await self._stop_all()
            self.listener.stop()
            if self.progress:
                self.progress.close()
        return self._report()

    async def _check_health(self) -> None:
        """Once a second: dead or stalled workers, a crash loop, and whether this master still owns its run."""
        self._check_processes()
        self._check_stalls()
        if self.crash_cause:
            raise WorkerCrashLoop(f"{self.crash_cause}\n  Fix the cause (often a setting), then: crawl --resume")
        await self.writer.check_fence()

    async def _loop(self) -> None:
        last_tick = 0.0
        decision = MemoryDecision(False, self.governor.concurrency)
        while (self.queued or self.in_flight) and not self.stop_requested:
            now = time.monotonic()
            if now - last_tick >= 1.0:
                last_tick = now
                await self._check_health()
                decision = self._govern()
                self._scale(decision)
                figures = self.figures()
                if self.progress:
                    self.progress.update(figures)
                self.writer.set_live(self._live(figures))
            self._ensure_workers()
            self._dispatch(decision.throttle)
            try:
                event = await asyncio.wait_for(self.events.get(), timeout=0.25)
            except TimeoutError:
                continue
            await self._on_event(event)
            while not self.events.empty():
                await self._on_event(self.events.get_nowait())
        figures = self.figures()
        if self.progress:
            self.progress.update(figures, force=True)
        self.writer.set_live(self._live(figures))  # the last figures, written with the last flush

    async def _stop_all(self) -> None:
        self.finishing = True
        for handle in self.workers.values():
            if not handle.gone:
                self._drain(handle, "run finished")
        deadline = time.monotonic() + self.settings.stop_grace_s
        while any(not w.gone for w in self.workers.values()) and time.monotonic() < deadline:
            try:
                await self._on_event(await asyncio.wait_for(self.events.get(), timeout=0.5))
            except TimeoutError:
                self._check_processes()
        for handle in self.workers.values():
            if not handle.gone:
                handle.process.kill()
                self._worker_gone(handle.wid)
        if self.settings.worker_start == "forkserver":
            stop_forkserver()

    def _report(self) -> MasterReport:
        return MasterReport(
            districts=self.tally,
            worker_stats=self.totals(),
            peak_memory_mb=round(self.governor.peak_mb, 1),
            budget_mb=round(self.budget_mb),
            memory_note=self.governor.explain(),
            governor_actions=dict(self.governor.actions),
            workers_max=self.workers_max,
            worker_start_s=round(statistics.median(self.start_costs), 3) if self.start_costs else 0.0,
            workers_recycled=self.recycled,
            workers_died=self.died,
            interrupted=bool(self.queued or self.in_flight),
        )


@dataclass
class Family:
    """A district query and its parts while the run asks them: what they listed against the site's count."""

    pending: int = 0
    root: SearchQuery | None = None
    count: int | None = None
    listed: set[str] = field(default_factory=set)
    failed: bool = False
    widened: bool = False  # its neighbourhoods were asked
    parts: int = 0  # coordinate parts planned so far


class Entries:
    """One district's search entries, one per store: where several searches list a store and their entries
    disagree (branch, coordinates, categories), the entry kept is the same every run — one whose address is
    in the district searched, then the district's own query before the others, planned queries before
    their parts (SearchQuery.order) — and the disagreement is logged."""

    COMPARED = ("branch", "lat", "lng", "categories", "address", "name")

    def __init__(self, district: str) -> None:
        self.district = district
        self.best: dict[str, tuple[tuple[Any, ...], StoreSummary, str]] = {}  # rid -> (key, entry, query)

    def offer(self, unit: SearchUnit, found: list[StoreSummary]) -> int:
        """Take one search's entries; returns how many disagreed with an entry already held."""
        disagreed = 0
        for summary in found:
            own = district_of_address(summary.address) == self.district
            offered = ((0 if own else 1, *unit.query.order), summary, unit.query.label)
            held = self.best.get(summary.rid)
            if held is None:
                self.best[summary.rid] = offered
                continue
            better, worse = (offered, held) if offered[0] < held[0] else (held, offered)
            differ = [f for f in self.COMPARED if getattr(held[1], f) != getattr(summary, f)]
            if differ:
                disagreed += 1
                log_event(
                    log,
                    "listing_disagreement",
                    logging.WARNING,
                    district=self.district,
                    rid=summary.rid,
                    fields=",".join(differ),
                    kept=better[2],
                    other=worse[2],
                )
            self.best[summary.rid] = better
        return disagreed

    def chosen(self) -> list[StoreSummary]:
        """The preferred entry of each store, in the order of their keys (the district query's first)."""
        return [entry for key, entry, _ in sorted(self.best.values(), key=lambda held: (held[0], held[1].rid))]
