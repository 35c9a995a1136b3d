"""Counters, each defined once: what a unit cost, what a worker did, what a district yielded.

Their keys are the dataclass fields; code that sums or sends them iterates over `fields()`, never
over a hand-written list of names.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field, fields
from typing import Any

# (district, kind, state, result) of one crawl_units row; the run's figures are sums over these.
UnitRow = tuple[str, str, str, dict[str, Any] | None]


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
    def total(cls, results: Iterable[dict[str, Any]]) -> UnitTally:
        """The sum of the tallies recorded in units' results."""
        summed = cls()
        for result in results:
            for f in fields(cls):
                setattr(summed, f.name, getattr(summed, f.name) + result.get(f.name, 0))
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

    def add(self, kind: str, result: dict[str, Any]) -> None:
        """Count one finished unit from its crawl_units.result (live, or read back on resume)."""
        self.failed += len(result.get("failed", []))
        if kind == "search":
            self.pages += result.get("pages", 0)
            self.found += result.get("found", 0)
            self.out_of_area.update(result.get("out_of_area", []))
            self.kept += result.get("kept", 0)
        else:
            self.stored += result.get("stored", 0)
            self.refill += result.get("refill", 0)
            self.rejected += result.get("rejected", 0)


def finished_units(rows: Iterable[UnitRow]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(district, kind, result) of the crawl_units rows that are done or failed."""
    return (
        (district, kind, result)
        for district, kind, state, result in rows
        if state in ("done", "failed") and result is not None
    )


def district_tallies(districts: list[str], rows: Iterable[UnitRow]) -> dict[str, DistrictTally]:
    """Per-district counters rebuilt from a run's crawl_units rows."""
    tallies = {name: DistrictTally() for name in districts}
    rows = list(rows)
    for district, _, state, _ in rows:  # done: no unit of the district left pending or leased
        tally = tallies.setdefault(district, DistrictTally())
        tally.pending += state not in ("done", "failed")
        tally.units += 1
    for tally in tallies.values():
        tally.done = tally.pending == 0
    for district, kind, result in finished_units(rows):
        tallies.setdefault(district, DistrictTally()).add(kind, result)
    return tallies
