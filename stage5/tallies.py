"""Counters, each defined once: what a unit cost, what a worker did, what a district yielded.

Their keys are the dataclass fields; code that sums or sends them iterates over `fields()`, never
over a hand-written list of names.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field, fields


@dataclass
class UnitTally:
    """What one unit of work cost; counted through a context variable, so concurrent units in one
    process keep separate counts and a resumed run can add them up exactly."""

    requests: int = 0
    retries: int = 0
    bytes: int = 0
    cache_hits: int = 0
    cache_misses: int = 0

    @classmethod
    def total(cls, tallies: Iterable[UnitTally]) -> UnitTally:
        """The sum of units' tallies (as their outcomes recorded them)."""
        summed = cls()
        for one in tallies:
            for f in fields(cls):
                setattr(summed, f.name, getattr(summed, f.name) + getattr(one, f.name))
        return summed


current_tally: ContextVar[UnitTally | None] = ContextVar("stage5_unit_tally", default=None)


def unit_tally() -> UnitTally:
    """The running unit's tally (outside a unit: a throw-away one, counted nowhere)."""
    return current_tally.get() or UnitTally()


@dataclass
class WorkerStats:
    """A worker's cumulative counters, sent to the master with every result."""

    requests: int = 0
    retries: int = 0
    failures: int = 0
    bytes: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    cache_bytes_read: int = 0
    cache_bytes_written: int = 0
    cache_errors: int = 0
    cache_corrupt: int = 0

    @classmethod
    def total(cls, stats: Iterable[WorkerStats]) -> WorkerStats:
        summed = cls()
        for one in stats:
            for f in fields(cls):
                setattr(summed, f.name, getattr(summed, f.name) + getattr(one, f.name))
        return summed

    def add(self, tally: UnitTally) -> None:
        """Count one unit's cost (the Celery engine knows its workers only through their results)."""
        for f in fields(tally):
            setattr(self, f.name, getattr(self, f.name) + getattr(tally, f.name))


@dataclass
class DistrictTally:
    """What a district yielded so far; each unit's outcome adds itself (stage5.units: SearchOutcome.add_to)."""

    pending: int = 0  # units not finished
    units: int = 0  # units planned or found so far
    pages: int = 0
    found: int = 0
    stored: int = 0
    refill: int = 0
    rejected: int = 0
    kept: int = 0  # listed again, detail not refetched (change-driven refresh)
    out_of_area: set[str] = field(default_factory=set)
    failed: int = 0
    started: float = field(default_factory=time.monotonic)
    done: bool = False
