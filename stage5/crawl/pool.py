"""The local executor: worker processes on this machine, governed by memory, scaled, recycled, watched.

Workers are started by a forkserver (or spawned), talk to the pool over a pipe in typed messages
(stage5.crawl.worker), and each takes a share of every host's politeness budget. The pool measures the
process tree once a second and follows the governor (throttle, lower concurrency, recycle the largest);
scales the worker count on memory, CPU and error rate; recycles a worker after `worker_max_units`;
kills a worker that holds units but has said nothing for `worker_stall_s`; and stops the run when
workers keep dying at start. Units of a dead worker go back to the master (UnitsReturned).
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import logging
import logging.handlers
import math
import multiprocessing as mp
import os
import socket
import statistics
import threading
import time
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from typing import Any, Literal

import psutil

from stage5.crawl.executor import (
    EventHandler,
    ExecutorEvent,
    ExecutorFigures,
    ExecutorReport,
    UnitDone,
    UnitFailed,
    UnitsReturned,
    WorkerFigure,
)
from stage5.crawl.governor import Governor, MemoryDecision, effective_budget_mb, measure
from stage5.crawl.worker import (
    Alive,
    Bye,
    Fatal,
    FromWorker,
    PipeClosed,
    RunUnit,
    SetLimits,
    StopWorker,
    ToWorker,
    UnitAnswered,
    UnitCrashed,
    WorkerReady,
    worker_main,
)
from stage5.errors import WorkerCrashLoop
from stage5.logs import log_event
from stage5.settings import Settings
from stage5.tallies import WorkerStats
from stage5.units import Unit

log = logging.getLogger("stage5.crawl")
# Both start a clean process (no inherited event loop, threads or sockets). A forkserver imports the
# worker's modules once, so each worker is a fork of it (about 0.02 s) instead of a new interpreter
# importing aiohttp, lxml, redis and pydantic again (about 0.5 s here): see benchmarks/README.md.
WORKER_MODULE = "stage5.crawl.worker_warm"  # the worker's modules and its user-agent pool


def _context(method: Literal["forkserver", "spawn"]) -> mp.context.ForkServerContext | mp.context.SpawnContext:
    if method == "spawn":
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([WORKER_MODULE])
    return ctx


def prepare_workers(method: str) -> None:
    """Start the forkserver now, so it imports the worker's modules while the master migrates, locks and
    plans (its first workers then fork at once instead of waiting for those imports)."""
    if method == "forkserver":
        from multiprocessing import forkserver

        _context("forkserver")
        _stop_forkserver_at_exit()
        forkserver.ensure_running()


@functools.cache
def _stop_forkserver_at_exit() -> None:
    """One forkserver for the process's life, ended (and waited for) when the process exits: a process that
    runs several crawls (perftest, the test suite) forks each run's workers from the one that already
    imported their modules, instead of paying a new one's start (1.0 s of CPU) per run."""
    atexit.register(stop_forkserver)


def stop_forkserver() -> None:
    """End the forkserver and wait for it: no idle process outlives the crawling process, and its workers'
    CPU time is accounted to this process (what `time` and the benchmarks read)."""
    from multiprocessing import forkserver

    stop = getattr(getattr(forkserver, "_forkserver", None), "_stop", None)  # CPython's; absent elsewhere
    if callable(stop):
        stop()


EST_WORKER_MB = 120.0
WORKER_RPS = 150.0  # requests/s one worker sustains here (CPU-bound); measured: ~400/s with 2 workers
SCALE_EVERY_S = 5.0
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


class LocalPool:
    """Worker processes on this machine (the default executor)."""

    def __init__(self, settings: Settings, redis_url: str | None) -> None:
        self.settings, self.redis_url = settings, redis_url
        # Starts `delay` apart across processes need one clock: Redis (without a delay, each worker's share
        # of the in-flight budget keeps the promise alone).
        self.shared_gate = bool(redis_url) and settings.request_delay_s > 0
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
        self.decision = MemoryDecision(False, self.governor.concurrency)
        self.workers: dict[int, WorkerHandle] = {}
        self.stats: dict[int, WorkerStats] = {}
        self.next_wid = 0
        self.workers_max = self.recycled = self.died = 0
        self.inbox: asyncio.Queue[FromWorker] = asyncio.Queue()
        self.ctx = _context(settings.worker_start)
        self.start_costs: list[float] = []  # seconds from start() to the worker's "ready"
        self.log_queue: Any = self.ctx.Queue()
        self.listener = logging.handlers.QueueListener(
            self.log_queue, *logging.getLogger("stage5").handlers, respect_handler_level=True
        )
        self._last_scale = time.monotonic()
        self.finishing = False
        self.stopping = False  # the run was asked to stop: workers ending with it did not die
        self._sizes: dict[int | str, float] = {}
        self.start_failures: list[float] = []
        self.fatal: dict[int, str] = {}  # wid -> what a worker that could not start said
        self.crash_cause: str | None = None
        self.queued = 0  # the master's queue length, as of the last check

    # --- the Executor protocol ----------------------------------------------------------------
    async def start(self) -> None:
        self.listener.start()

    def slots(self) -> int:
        self._ensure_workers()
        per_worker = self._per_worker()
        return sum(max(0, per_worker - len(w.inflight)) for w in self._active())

    def submit(self, units: list[Unit]) -> list[Unit]:
        """Fills the workers in order, each up to its share (one unit each while throttled)."""
        per_worker = self._per_worker()
        todo = list(units)
        for handle in self._active():
            while todo and len(handle.inflight) < per_worker:
                unit = todo[0]
                if not self._send(handle, RunUnit(unit)):
                    break  # it died; its PipeClosed returns what it held
                handle.inflight[unit.uid] = todo.pop(0)
        return todo

    async def events(self, timeout: float) -> list[ExecutorEvent]:
        try:
            first = await asyncio.wait_for(self.inbox.get(), timeout=timeout)
        except TimeoutError:
            return []
        out = self._on_message(first)
        while not self.inbox.empty():
            out += self._on_message(self.inbox.get_nowait())
        return out

    async def check(self, queued: int) -> list[ExecutorEvent]:
        """Once a second: dead or stalled workers, a crash loop, memory, and the worker count."""
        self.queued = queued
        returned = self._returned(self._check_processes())
        self._check_stalls()
        if self.crash_cause:
            raise WorkerCrashLoop(f"{self.crash_cause}\n  Fix the cause (often a setting), then: crawl --resume")
        self.decision = self._govern()
        self._scale(self.decision)
        return returned

    def request_stop(self) -> None:
        self.stopping = True  # Ctrl-C reaches the workers too: those that end now did not die

    async def stop(self, grace_s: float, on_event: EventHandler) -> None:
        self.finishing = True
        try:
            for handle in self.workers.values():
                if not handle.gone:
                    self._drain(handle, "run finished")
            deadline = time.monotonic() + grace_s
            while any(not w.gone for w in self.workers.values()) and time.monotonic() < deadline:
                events = await self.events(0.5)
                if not events:
                    events = self._returned(self._check_processes())
                for event in events:
                    await on_event(event)
            for handle in self.workers.values():
                if not handle.gone:
                    handle.process.kill()
                    for event in self._returned(self._worker_gone(handle.wid)):
                        await on_event(event)
        finally:
            self.listener.stop()

    async def adopt(self, units: list[Unit]) -> list[Unit]:
        return units  # local workers end with their master: a resumed run sends its units again

    def holders(self) -> dict[int, str]:
        host = socket.gethostname()
        return {uid: f"{host}/worker-{w.wid}" for w in self.workers.values() for uid in w.inflight}

    @property
    def in_flight(self) -> int:
        return sum(len(w.inflight) for w in self.workers.values())

    def figures(self) -> ExecutorFigures:
        host = socket.gethostname()
        return ExecutorFigures(
            workers=len(self._active()),
            concurrency=self._limits().concurrency,
            in_flight=self.in_flight,
            memory_mb=sum(self._sizes.values()),
            budget_mb=self.budget_mb,
            per_process_mb={str(k): v for k, v in self._sizes.items()},
            stats=self.totals(),
            by_worker=tuple(
                WorkerFigure(str(w.wid), host, round(self._sizes.get(w.wid, 0.0), 1), w.units_done, len(w.inflight))
                for w in self._active()
            ),
        )

    def report(self) -> ExecutorReport:
        return ExecutorReport(
            engine="local",
            worker_stats=self.totals(),
            peak_memory_mb=round(self.governor.peak_mb, 1),
            budget_mb=round(self.budget_mb),
            memory_note=self.governor.explain(),
            governor_actions=dict(self.governor.actions),
            workers_max=self.workers_max,
            worker_start_s=round(statistics.median(self.start_costs), 3) if self.start_costs else 0.0,
            workers_recycled=self.recycled,
            workers_died=self.died,
            workers_by_host={socket.gethostname(): self.workers_max},
        )

    def totals(self) -> WorkerStats:
        return WorkerStats.total(self.stats.values())

    # --- workers ------------------------------------------------------------------------------
    def _per_worker(self) -> int:
        # Throttled: one unit per worker, so a budget below the baseline slows the crawl, never stops it.
        return 1 if self.decision.throttle else max(2, self._limits().concurrency)

    def _limits(self) -> SetLimits:
        """The per-host politeness budget, capped by the governor: with a delay and Redis, the whole budget
        kept in Redis by every worker together (N workers' starts are still `delay` apart, not only on
        average); else each worker's share of it, kept by its own gate."""
        concurrency = min(self.settings.host_concurrency, self.governor.concurrency)
        active = max(1, len(self._active()))
        if self.shared_gate:
            return SetLimits(self.settings.request_delay_s, concurrency, shared=True, sharers=active)
        share = max(1, self.settings.host_concurrency // active)
        return SetLimits(self.settings.request_delay_s * active, max(1, min(share, self.governor.concurrency)))

    def _starting_limits(self) -> SetLimits:
        """The limits of a worker about to start: it is one more of the active workers sharing the budget."""
        limits = self._limits()
        return replace(limits, sharers=limits.sharers + 1) if limits.shared else limits

    def _active(self) -> list[WorkerHandle]:
        return [w for w in self.workers.values() if not w.draining and not w.gone]

    def _ensure_workers(self) -> None:
        while len(self._active()) < self.target:
            self._start_worker()

    def _start_worker(self) -> None:
        self.next_wid += 1
        wid = self.next_wid
        ours, theirs = self.ctx.Pipe()
        process = self.ctx.Process(
            target=worker_main,
            name=f"stage5-worker-{wid}",
            daemon=True,
            args=(wid, self.settings, self.redis_url, theirs, self.log_queue, self._starting_limits()),
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
                message: FromWorker = handle.conn.recv()
            # TypeError/ValueError: the master closed this end while a read was under way (a recycled worker)
            except (EOFError, OSError, TypeError, ValueError):
                loop.call_soon_threadsafe(self.inbox.put_nowait, PipeClosed(handle.wid))
                return
            loop.call_soon_threadsafe(self.inbox.put_nowait, message)

    def _send(self, handle: WorkerHandle, message: ToWorker) -> bool:
        try:
            handle.conn.send(message)
            return True
        except (OSError, ValueError):
            return False  # it died; its PipeClosed returns its units

    def _send_limits(self) -> None:
        limits = self._limits()
        for w in self._active():
            self._send(w, limits)

    def _drain(self, handle: WorkerHandle, why: str) -> None:
        if handle.draining or handle.gone:
            return
        handle.draining = True
        log_event(log, "worker_recycle", worker=handle.wid, reason=why, units_done=handle.units_done)
        self._send(handle, StopWorker())

    def _on_message(self, message: FromWorker) -> list[ExecutorEvent]:
        handle = self.workers.get(message.wid) if not isinstance(message, PipeClosed) else None
        if handle is not None:
            handle.heard = time.monotonic()
        if isinstance(message, UnitAnswered):
            return self._on_answer(message)
        if isinstance(message, UnitCrashed):
            self.stats[message.wid] = message.stats
            unit = self.workers[message.wid].inflight.pop(message.uid, None)
            return [UnitFailed(unit, message.failure)] if unit is not None else []
        if isinstance(message, WorkerReady):
            handle = self.workers[message.wid]
            handle.pid, handle.ready = message.pid, True
            self.start_costs.append(time.monotonic() - handle.started)
            log_event(log, "worker_ready", worker=handle.wid, start_s=round(self.start_costs[-1], 3))
        elif isinstance(message, Fatal):
            self.fatal[message.wid] = message.cause
        elif isinstance(message, Bye):
            self.stats[message.wid] = message.stats
        elif isinstance(message, PipeClosed):
            return self._returned(self._worker_gone(message.wid))
        elif not isinstance(message, Alive):
            raise TypeError(f"unknown message from a worker: {message!r}")
        return []

    def _on_answer(self, message: UnitAnswered) -> list[ExecutorEvent]:
        handle = self.workers[message.wid]
        unit = handle.inflight.pop(message.result.uid, None)
        self.stats[message.wid] = message.stats
        if unit is None:
            return []  # already returned to the queue after a presumed death; the duplicate is dropped
        handle.units_done += 1
        if handle.units_done >= self.settings.worker_max_units:
            self._drain(handle, f"served {handle.units_done} units")
        return [UnitDone(unit, message.result)]

    @staticmethod
    def _returned(events: list[UnitsReturned]) -> list[ExecutorEvent]:
        return list(events)

    def _worker_gone(self, wid: int) -> list[UnitsReturned]:
        handle = self.workers.get(wid)
        if handle is None or handle.gone:
            return []
        handle.gone = True
        handle.process.join(timeout=5)
        if not handle.ready and not self.finishing:
            self._note_start_failure(handle)
        returned: list[UnitsReturned] = []
        if handle.inflight:  # it died holding units: they go back to the front of the queue
            self.died += not self.stopping  # stopped with the run (Ctrl-C reaches it too): no death
            log_event(  # a clean stop is not a death: said as such, not as a warning
                log,
                "worker_stopped" if self.stopping else "worker_died",
                logging.INFO if self.stopping else logging.WARNING,
                worker=wid,
                exitcode=handle.process.exitcode,
                units_returned=len(handle.inflight),
                stalled=handle.stalled,
            )
            returned.append(UnitsReturned(tuple(handle.inflight.values()), handle.stalled))
            handle.inflight.clear()
        elif handle.draining and not self.finishing:
            self.recycled += 1
        handle.conn.close()
        self._send_limits()
        return returned

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

    def _check_processes(self) -> list[UnitsReturned]:
        returned: list[UnitsReturned] = []
        for handle in list(self.workers.values()):
            if not handle.gone and not handle.process.is_alive():
                returned += self._worker_gone(handle.wid)
        return returned

    def _check_stalls(self) -> None:
        """Kill a worker that holds units but has said nothing for `worker_stall_s`."""
        now = time.monotonic()
        for handle in self._active():
            if handle.inflight and now - handle.heard > self.settings.worker_stall_s:
                handle.stalled = True
                log_event(log, "worker_stalled", logging.WARNING, worker=handle.wid, silent_s=round(now - handle.heard))
                handle.process.kill()

    # --- memory and scaling -------------------------------------------------------------------
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
        figures: dict[str, Any] = dict(  # log fields (Any in log_event)
            memory_mb=round(memory), cpu_pct=cpu, error_rate=round(error_rate, 3), queued=self.queued
        )
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
