"""The master: turns districts into units, hands them to an executor, and owns the writer.

One writer, in the master, is the deadlock answer: every upsert goes through one connection in
key order, so two workers finding the same store can never lock each other out. Workers only fetch
and parse; the master dedupes on v_rid (a store claimed by one district is never fetched again) and
puts units whose worker was lost back in the queue. Where units run (processes on this machine, or
workers elsewhere) is the executor's business: see stage5.crawl.executor.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any

from stage5.crawl.executor import (
    Executor,
    ExecutorEvent,
    ExecutorReport,
    UnitDone,
    UnitFailed,
    WorkerFigure,
)
from stage5.crawl.progress import Figures, Progress
from stage5.crawl.refresh import Stored, fetch_reason
from stage5.identity import process_identity
from stage5.logs import log_event
from stage5.models import StoreSummary
from stage5.settings import Settings
from stage5.site.diningcode import SearchQuery, neighbourhood_queries, queries_for, split_query
from stage5.site.seoul import DISTRICT_BY_NAME, district_of_address, neighbourhood_of_address
from stage5.storage.screening import screen_rows
from stage5.storage.stores import StoreWriter
from stage5.storage.unit_queue import Completion
from stage5.tallies import DistrictTally, WorkerStats
from stage5.units import (
    DetailUnit,
    FailedUnit,
    Outcome,
    Result,
    SearchOutcome,
    SearchResult,
    SearchUnit,
    Unit,
    UnitRow,
    UnitState,
    detail_outcome,
    district_tallies,
    failure_outcome,
    search_outcome,
)

log = logging.getLogger("stage5.crawl")
MAX_STALLS = 2
LEASE_RENEW_S = 5.0  # running units' leases in crawl_units (who runs them, until when) renewed this often


@dataclass
class Resume:
    """What the database says of an unfinished run: the master picks it up from here."""

    open_units: list[Unit]
    claimed: set[str]
    rows: list[UnitRow]  # every unit of the run
    max_uid: int
    leased: set[int] = field(default_factory=set)  # open units sent by the previous master: adopt them


@dataclass
class MasterReport:
    """What only this session of the master knows; the run's counts are read from the database."""

    districts: dict[str, DistrictTally]
    executor: ExecutorReport  # where the units ran: engine, workers, memory
    interrupted: bool

    # The executor's figures, by the names the summary has always used.
    @property
    def engine(self) -> str:
        return self.executor.engine

    @property
    def worker_stats(self) -> WorkerStats:
        return self.executor.worker_stats

    @property
    def peak_memory_mb(self) -> float:
        return self.executor.peak_memory_mb

    @property
    def budget_mb(self) -> float:
        return self.executor.budget_mb

    @property
    def memory_note(self) -> str | None:
        return self.executor.memory_note

    @property
    def governor_actions(self) -> dict[str, int]:
        return self.executor.governor_actions

    @property
    def workers_max(self) -> int:
        return self.executor.workers_max

    @property
    def worker_start_s(self) -> float:
        return self.executor.worker_start_s

    @property
    def workers_recycled(self) -> int:
        return self.executor.workers_recycled

    @property
    def workers_died(self) -> int:
        return self.executor.workers_died


class Master:
    """Plans a run's units, has an executor run them and writes their results.

    `run(districts, resume)` is the whole life of one master session: plan (or restore a resumed
    run's queue), then loop — check the executor, hand it units, take their results — until the
    queue is empty or a stop was requested.
    """

    def __init__(
        self,
        settings: Settings,
        writer: StoreWriter,
        executor: Executor,
        progress: Progress | None = None,
        refresh: dict[str, Stored] | None = None,
    ) -> None:
        self.settings, self.writer, self.executor = settings, writer, executor
        # Change-driven refresh: what is stored of each store (None: fetch every detail page).
        self.refresh, self.run_id, self.max_age = refresh, writer.run_id if writer else 0, settings.detail_max_age_runs
        self.progress = progress
        self.search_queue: deque[Unit] = deque()
        self.detail_queue: deque[Unit] = deque()
        self.claimed: set[str] = set()
        # A district's entries wait until all its searches are in, so that entries disagreeing about one
        # store are settled the same way every run (Entries.offer), whatever order the answers came in.
        self.entries: dict[str, Entries] = {}
        self.searching: Counter[str] = Counter()  # district -> its search units not finished
        self.families: dict[str, Family] = {}  # district -> its district query and parts, while asked
        self.tally: dict[str, DistrictTally] = {}
        self.next_uid = 0
        self.started = time.monotonic()
        self.stop_requested = False
        self.stalls: Counter[int] = Counter()  # uid -> workers that stalled holding it
        self.adoptable: list[Unit] = []  # a resumed run's units its previous master had sent
        self.leases_renewed = 0.0

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
            self._add_unit(unit, queue=unit.uid not in resume.leased)
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
            self.executor.request_stop()
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
        return self.executor.in_flight

    def _return_unit(self, unit: Unit, stalled: bool) -> None:
        """Back to the front of the queue; a unit on which two workers stalled fails instead (a page that
        hangs the parser would otherwise hang every worker in turn)."""
        if stalled:
            self.stalls[unit.uid] += 1
        if self.stalls[unit.uid] >= MAX_STALLS:
            reason = f"worker stalled on this unit {MAX_STALLS} times (STAGE5_WORKER_STALL_S)"
            self._finish(unit, failure_outcome(unit, FailedUnit("unit", unit.district, f"unit {unit.uid}", reason)))
            return
        self._enqueue(unit, front=True)

    # --- results ------------------------------------------------------------------------------
    async def _on_result(self, unit: Unit, result: Result) -> None:
        outcome: Outcome
        if isinstance(result, SearchResult):
            assert isinstance(unit, SearchUnit)
            outcome = search_outcome(unit, result)
            entries = self.entries.setdefault(unit.district, Entries(unit.district))
            outcome.disagreements = entries.offer(unit, result.found)
            if result.truncated and unit.query.anchor:
                self._split(unit, outcome)
        else:
            screen_rows(result)
            outcome = detail_outcome(result)
            self.writer.confirm(result.not_modified)
            for record in result.records:
                await self.writer.add(record)
            for rejection in result.rejections:
                await self.writer.reject(rejection)
        self._finish(unit, outcome)

    def _split(self, unit: SearchUnit, outcome: SearchOutcome) -> None:
        """A truncated district query (or part): its parts are searched instead, until each fits (within
        split_min_radius_m and split_max_queries)."""
        family = self.families[unit.district]
        queries = split_query(unit.query, self.settings.split_min_radius_m)
        if family.parts + len(queries) > self.settings.split_max_queries:
            queries = []  # bottomed out: the listing stays incomplete rather than asking without end
        family.parts += len(queries)
        parts: list[Unit] = [SearchUnit(self._uid(), q) for q in queries]
        outcome.split = len(parts)
        log_event(
            log,
            "search_truncated",
            logging.WARNING if not parts else logging.INFO,
            district=unit.district,
            query=unit.query.label,
            count=outcome.count,
            listed=len(outcome.listed),
            parts=len(parts),
        )
        for part in parts:
            self._add_unit(part)
        self.writer.add_units(parts)  # committed with this unit's completion

    def _family_answered(self, unit: SearchUnit, outcome: SearchOutcome) -> None:
        """Count a district query's (or part's) answer; when all are in and together they still list fewer
        stores than the site counts, ask the district's neighbourhoods too (once): a store whose coordinates
        are wrong is in no circle, but its address still names its 동."""
        family = self.families[unit.district]
        family.pending -= 1
        if unit.query.depth == 0:
            family.root, family.count = unit.query, outcome.count
        family.listed.update(outcome.listed)
        family.failed = family.failed or bool(outcome.failed)
        if family.pending or family.widened or family.failed or family.root is None or family.count is None:
            return
        if len(family.listed) >= family.count:
            return
        family.widened = True
        held = self.entries[unit.district].best.values() if unit.district in self.entries else []
        areas = [a for _, entry, _ in held if (a := neighbourhood_of_address(entry.address))]
        parts: list[Unit] = [SearchUnit(self._uid(), q) for q in neighbourhood_queries(family.root, areas)]
        outcome.neighbourhoods = len(parts)
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

    def _release(self, district: str, outcome: SearchOutcome) -> None:
        """All of a district's searches are in: its stores (each with its preferred entry) not claimed by
        another district go to detail units. Counted on the search unit that finished last."""
        entries = self.entries.pop(district, None)
        fresh = [s for s in (entries.chosen() if entries else []) if s.rid not in self.claimed]
        self.claimed.update(s.rid for s in fresh)
        outcome.found = len(fresh)  # stores this run had not claimed yet
        fetch = self._choose_details(fresh, outcome)
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

    def _choose_details(self, fresh: list[StoreSummary], outcome: SearchOutcome) -> list[StoreSummary]:
        """The stores whose detail page this run fetches (all, or by the change-driven policy); the
        others are kept as stored and only marked seen. Reasons go into the search unit's result."""
        if self.refresh is None:
            return fresh
        reasons = {s.rid: fetch_reason(s, self.refresh.get(s.rid), self.run_id, self.max_age) for s in fresh}
        fetch = [s for s in fresh if reasons[s.rid]]
        kept = [s.rid for s in fresh if not reasons[s.rid]]
        outcome.details = dict(Counter(r or "skipped_unchanged" for r in reasons.values()))
        outcome.kept = len(kept)
        self.writer.keep(kept)
        self.writer.mark_due([s.rid for s in fetch if s.rid in self.refresh])
        return fetch

    def _finish(self, unit: Unit, outcome: Outcome) -> None:
        if isinstance(unit, SearchUnit):
            assert isinstance(outcome, SearchOutcome)
            if unit.query.anchor:
                self._family_answered(unit, outcome)
            self.searching[unit.district] -= 1
            if self.searching[unit.district] <= 0:
                self._release(unit.district, outcome)
        state: UnitState = "failed" if outcome.failed else "done"
        self.writer.complete(Completion(unit.uid, state, outcome))
        outcome.add_to(self.tally[unit.district])
        self._unit_done(unit.district)

    def _add_unit(self, unit: Unit, queue: bool = True) -> None:
        if isinstance(unit, SearchUnit):
            self.searching[unit.district] += 1
            if unit.query.anchor:
                self.families.setdefault(unit.district, Family()).pending += 1
        self.tally[unit.district].pending += 1
        self.tally[unit.district].units += 1
        if queue:
            self._enqueue(unit)
        else:
            self.adoptable.append(unit)

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

    async def _on_event(self, event: ExecutorEvent) -> None:
        if isinstance(event, UnitDone):
            await self._on_result(event.unit, event.result)
        elif isinstance(event, UnitFailed):
            self._finish(event.unit, failure_outcome(event.unit, event.failure))
        else:
            for unit in event.units:
                self._return_unit(unit, event.stalled)

    # --- the loop -----------------------------------------------------------------------------
    def _dispatch(self) -> None:
        room = self.executor.slots()
        units: list[Unit] = []
        while len(units) < room and (unit := self._next_unit()) is not None:
            units.append(unit)
        if not units:
            return
        unplaced = self.executor.submit(units)
        for unit in reversed(unplaced):
            self._enqueue(unit, front=True)
        placed = {u.uid for u in unplaced}
        for unit in units:
            if unit.uid not in placed:
                self.writer.lease(unit.uid)

    def figures(self) -> Figures:
        e = self.executor.figures()
        t = e.stats
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
            memory_mb=e.memory_mb,
            budget_mb=e.budget_mb,
            per_process_mb=e.per_process_mb,
            workers=e.workers,
            concurrency=e.concurrency,
            queued=self.queued,
            in_flight=e.in_flight,
            district_units={d: (t.units - t.pending, t.units) for d, t in self.tally.items()},
        )

    def _live(self, f: Figures) -> LiveFigures:
        return LiveFigures(
            f,
            elapsed_s=round(time.monotonic() - self.started, 1),
            at=time.time(),
            engine=self.settings.engine,
            by_worker=self.executor.figures().by_worker,
        )

    async def run(self, districts: list[str], resume: Resume | None = None) -> MasterReport:
        await self.executor.start()
        try:
            if resume is None:
                self.plan(districts)
            else:
                self.restore(districts, resume)
            await self.writer.flush()  # the plan is durable before the first request
            for unit in reversed(await self.executor.adopt(self.adoptable)):
                self._enqueue(unit, front=True)
            await self._loop()
        finally:
            await self.executor.stop(self.settings.stop_grace_s, self._on_event)
            if self.progress:
                self.progress.close()
        return MasterReport(self.tally, self.executor.report(), interrupted=bool(self.queued or self.in_flight))

    async def _check_health(self) -> None:
        """Once a second: the executor's workers (lost ones give their units back; a crash loop raises),
        and whether this master still owns its run."""
        for event in await self.executor.check(self.queued):
            await self._on_event(event)
        await self.writer.check_fence()
        if time.monotonic() - self.leases_renewed >= LEASE_RENEW_S:
            self.leases_renewed = time.monotonic()
            self.writer.renew(self.executor.holders())

    async def _loop(self) -> None:
        last_tick = 0.0
        while (self.queued or self.in_flight) and not self.stop_requested:
            now = time.monotonic()
            if now - last_tick >= 1.0:
                last_tick = now
                await self._check_health()
                figures = self.figures()
                if self.progress:
                    self.progress.update(figures)
                self.writer.set_live(self._live(figures).to_json())
            self._dispatch()
            for event in await self.executor.events(0.25):
                await self._on_event(event)
        figures = self.figures()
        if self.progress:
            self.progress.update(figures, force=True)
        self.writer.set_live(self._live(figures).to_json())  # the last figures, written with the last flush


@dataclass(frozen=True)
class LiveFigures:
    """What the console's live view shows (crawl_runs.live, written with the writer's flush, read by
    stage5.web.api), with what it needs to stop the run. One JSON object: the figures' fields at the top
    level (but per_process_mb; memory_mb in whole MB), and the master's identity (pid, host, start time,
    command fingerprint: a stop checks the pid is still this process)."""

    figures: Figures
    elapsed_s: float
    at: float  # when, epoch seconds
    engine: str
    by_worker: tuple[WorkerFigure, ...]  # name, host, memory, units

    def to_json(self) -> dict[str, Any]:
        figures = {k: v for k, v in asdict(self.figures).items() if k != "per_process_mb"}
        return {
            **figures,
            "memory_mb": round(self.figures.memory_mb),
            "elapsed_s": self.elapsed_s,
            **process_identity(),
            "at": self.at,
            "engine": self.engine,
            "by_worker": [asdict(w) for w in self.by_worker],
        }


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
