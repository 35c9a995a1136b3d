"""The seam between the master and the place where units run.

The master owns the unit queue, the results and the loop; an `Executor` runs the units it is given and
answers with typed events. Two implementations: `stage5.crawl.pool.LocalPool` (worker processes on this
machine, with the memory governor, recycling and stall detection) and
`stage5.crawl.celery_engine.CeleryExecutor` (Celery workers on any number of machines).

The master's side of one session:

    await executor.start()
    while work remains:
        await executor.check(queued)                 # once a second: health, memory, scaling; may raise
        for unit in up to executor.slots() units:    # what it can take now
            executor.submit(units)
        for event in await executor.events(0.25):    # UnitDone | UnitFailed | UnitsReturned
            ...
    await executor.stop(grace_s, on_event)           # what arrives during the grace is still handled
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from stage5.tallies import WorkerStats
from stage5.units import FailedUnit, Result, Unit


@dataclass(frozen=True)
class UnitDone:
    """A unit's result, first answer only: a duplicate (after a presumed death) is dropped by the executor."""

    unit: Unit
    result: Result


@dataclass(frozen=True)
class UnitFailed:
    """A unit that crashed where it ran (a bug or an unforeseen answer): it fails alone."""

    unit: Unit
    failure: FailedUnit


@dataclass(frozen=True)
class UnitsReturned:
    """Units whose worker died or was lost: back to the queue. `stalled`: the worker hung holding them."""

    units: tuple[Unit, ...]
    stalled: bool = False


ExecutorEvent = UnitDone | UnitFailed | UnitsReturned
EventHandler = Callable[[ExecutorEvent], Awaitable[None]]


@dataclass(frozen=True)
class WorkerFigure:
    """One worker as the console and the summary show it."""

    name: str  # "3" for a local process, the Celery node name for a remote one
    host: str
    memory_mb: float
    units_done: int
    in_flight: int


@dataclass(frozen=True)
class ExecutorFigures:
    """The executor's part of the live figures (once a second)."""

    workers: int
    concurrency: int  # requests in flight per host per worker
    in_flight: int
    memory_mb: float
    budget_mb: float
    per_process_mb: dict[str, float]
    stats: WorkerStats  # requests, bytes, cache counters so far
    by_worker: tuple[WorkerFigure, ...] = ()


@dataclass(frozen=True)
class ExecutorReport:
    """What only this session of the executor knows, for the run's summary."""

    engine: str
    worker_stats: WorkerStats
    peak_memory_mb: float
    budget_mb: float
    memory_note: str | None
    governor_actions: dict[str, int]
    workers_max: int
    worker_start_s: float  # median seconds from start to "ready"
    workers_recycled: int
    workers_died: int
    workers_by_host: dict[str, int] = field(default_factory=dict)
    units_resent: int = 0  # units handed on after their worker was lost (a lapsed lease, a lost task)
    broker_outages_s: tuple[float, ...] = ()  # how long the broker was away, each time


class Executor(Protocol):
    """Where units run. Every method is called from the master's event loop."""

    async def start(self) -> None:
        """Get ready to take units (start processes, connect to the broker)."""

    def slots(self) -> int:
        """How many more units it takes now (0 while throttled and full)."""

    def submit(self, units: list[Unit]) -> list[Unit]:
        """Run these units; returns those it could not place (the master queues them again, first)."""

    async def events(self, timeout: float) -> list[ExecutorEvent]:
        """What happened to submitted units, waiting up to `timeout` for the first."""

    async def check(self, queued: int) -> list[ExecutorEvent]:
        """Once a second: dead or stalled workers, memory, scaling; returns the units of workers found
        dead. Raises when the run cannot go on."""

    def request_stop(self) -> None:
        """The run is stopping: take nothing more, and drop what has not started."""

    async def stop(self, grace_s: float, on_event: EventHandler) -> None:
        """End the session: units in flight may finish within `grace_s` (their events go to `on_event`)."""

    async def adopt(self, units: list[Unit]) -> list[Unit]:
        """A resumed run's units that its previous master had sent: wait for those whose work may still
        be running (or answered) where they were sent; returns the others, to be sent again."""

    def holders(self) -> dict[int, str]:
        """The units running now and who runs them (a worker on a host, a Celery node): their leases."""

    @property
    def in_flight(self) -> int:
        """Units submitted and not answered."""

    def figures(self) -> ExecutorFigures: ...

    def report(self) -> ExecutorReport: ...
