"""Units of work and their results: a search keyword paged to its end, or a batch of detail pages.

Plain picklable data with JSON codecs, so they travel between the master and worker processes,
through Celery task messages, and into the `crawl_units` table. How a unit is done is
`stage5.crawl.pipeline`; where units are stored is `stage5.storage.unit_queue`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Literal

from stage5.errors import Cause
from stage5.models import MenuItem, Rejection, StoreRecord, StoreSummary
from stage5.site.diningcode import SearchQuery
from stage5.tallies import DistrictTally, UnitTally

UnitKind = Literal["search", "detail"]
UnitState = Literal["pending", "leased", "done", "failed"]  # pending -> leased -> done | failed
FINISHED: tuple[UnitState, ...] = ("done", "failed")
# (district, kind, state, result) of one crawl_units row, its result as stored (JSON, read by outcome_from_json).
UnitRow = tuple[str, UnitKind, UnitState, dict[str, Any] | None]


@dataclass(frozen=True)
class FailedUnit:
    kind: str  # "search" or "detail" (a page of that kind), or "unit" (the whole unit)
    district: str
    url: str
    reason: str
    cause: Cause = ""  # for an answer that was no evidence: "blocked", "not_this_store" or "redirect"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FailedUnit:
        """A failure as stored in a unit's outcome; a field it lacks reads as empty."""
        return cls(**{f.name: data.get(f.name, "") for f in fields(cls)})


@dataclass(frozen=True)
class SearchUnit:
    uid: int
    query: SearchQuery

    @property
    def district(self) -> str:
        return self.query.district


@dataclass(frozen=True)
class DetailUnit:
    uid: int
    district: str
    stores: tuple[StoreSummary, ...]
    # Change-driven refresh: ask the site itself (never the cache), conditionally where an ETag is known.
    revalidate: bool = False
    etags: tuple[str | None, ...] = ()


Unit = SearchUnit | DetailUnit


@dataclass
class SearchResult:
    uid: int
    district: str
    tally: UnitTally = field(default_factory=UnitTally)
    found: list[StoreSummary] = field(default_factory=list)  # unique, with an address in the district
    out_of_area: list[str] = field(default_factory=list)  # rids listed here but elsewhere
    pages: int = 0
    failed: list[FailedUnit] = field(default_factory=list)
    coverage: dict[str, Any] = field(default_factory=dict)  # see stage5.coverage
    # Completeness (see stage5.crawl.completeness): the site's own count of the query's matches, the
    # distinct stores its pages gave (within the radius, for a part), and whether it stopped short.
    count: int | None = None  # None: no page was read
    listed: list[str] = field(default_factory=list)
    skipped: int = 0  # entries that were not a store (an ad slot)
    truncated: bool = False  # the count reached the cap, or the pages ended before the count
    fallback: bool = False  # a part with nothing inside its radius: the site answered wide instead


@dataclass
class DetailResult:
    uid: int
    district: str
    tally: UnitTally = field(default_factory=UnitTally)
    records: list[StoreRecord] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    failed: list[FailedUnit] = field(default_factory=list)
    coverage: dict[str, Any] = field(default_factory=dict)
    not_modified: list[str] = field(default_factory=list)  # answered 304: the stored detail is current


Result = SearchResult | DetailResult


# --- units as JSON, for the crawl_units table ----------------------------------------------------


def unit_payload(unit: Unit) -> dict[str, Any]:
    if isinstance(unit, SearchUnit):
        return {"query": asdict(unit.query)}
    stores = [{f: getattr(s, f) for f in _SUMMARY_FIELDS} for s in unit.stores]  # shallow: asdict deep-copies
    return {"stores": stores, "revalidate": unit.revalidate, "etags": list(unit.etags)}


_SUMMARY_FIELDS = tuple(f.name for f in fields(StoreSummary))


def unit_kind(unit: Unit) -> UnitKind:
    return "search" if isinstance(unit, SearchUnit) else "detail"


def _summary(data: dict[str, Any]) -> StoreSummary:
    return StoreSummary(**_tuples(data))


def unit_from_payload(uid: int, kind: str, district: str, payload: dict[str, Any]) -> Unit:
    if kind == "search":
        q = payload["query"]
        return SearchUnit(uid, SearchQuery(**{**q, "rect": tuple(q["rect"])}))
    stores = tuple(_summary(s) for s in payload["stores"])
    return DetailUnit(uid, district, stores, payload.get("revalidate", False), tuple(payload.get("etags", ())))


def _tuples(data: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}


def _record(data: dict[str, Any]) -> StoreRecord:
    data = _tuples(data)
    return StoreRecord(**{**data, "menu": tuple(MenuItem(**m) for m in data["menu"])})


def result_to_json(result: Result) -> dict[str, Any]:
    """A result as plain JSON (Celery carries results as JSON, never pickle)."""
    return {"kind": "search" if isinstance(result, SearchResult) else "detail", **asdict(result)}


def result_from_json(data: dict[str, Any]) -> Result:
    common = {
        "uid": data["uid"],
        "district": data["district"],
        "tally": UnitTally(**data["tally"]),
        "failed": [FailedUnit(**f) for f in data["failed"]],
        "coverage": data.get("coverage", {}),
    }
    if data["kind"] == "search":
        return SearchResult(
            **common,
            found=[_summary(s) for s in data["found"]],
            out_of_area=data["out_of_area"],
            pages=data["pages"],
            count=data.get("count"),
            listed=data.get("listed", []),
            skipped=data.get("skipped", 0),
            truncated=data.get("truncated", False),
            fallback=data.get("fallback", False),
        )
    return DetailResult(
        **common,
        records=[_record(r) for r in data["records"]],
        rejections=[Rejection(**r) for r in data["rejections"]],
        not_modified=data.get("not_modified", []),
    )


# --- what a finished unit leaves in crawl_units.result --------------------------------------------


@dataclass
class SearchOutcome:
    """A finished search unit: what its pages gave, and what the master made of it. Stored as JSON
    (to_json) and read back on resume and at the run's end (from_json); the JSON keys are the field
    names, the tally's fields at the top level."""

    kind: ClassVar[Literal["search"]] = "search"
    tally: UnitTally = field(default_factory=UnitTally)
    failed: list[FailedUnit] = field(default_factory=list)
    coverage: dict[str, Any] = field(default_factory=dict)  # see stage5.coverage
    pages: int = 0
    out_of_area: list[str] = field(default_factory=list)
    count: int | None = None  # the site's count of the query's matches (None: no page was read)
    listed: list[str] = field(default_factory=list)
    skipped: int = 0
    truncated: bool = False
    fallback: bool = False
    # The query asked (see SearchQuery).
    anchor: bool = False
    depth: int = 0
    area: str = ""
    query: str = ""
    # Set by the master.
    found: int = 0  # the district's stores not claimed yet, counted on its search that finished last
    disagreements: int = 0  # entries that disagreed with one another search gave (Entries.offer)
    split: int = 0  # parts this truncated query was split into
    neighbourhoods: int = 0  # neighbourhood parts asked when the district's listing came up short
    details: dict[str, int] = field(default_factory=dict)  # why detail pages were fetched (or kept)
    kept: int = 0  # stores kept as stored, their detail not fetched (change-driven refresh)

    def add_to(self, tally: DistrictTally) -> None:
        tally.failed += len(self.failed)
        tally.pages += self.pages
        tally.found += self.found
        tally.out_of_area.update(self.out_of_area)
        tally.kept += self.kept

    def to_json(self) -> dict[str, Any]:
        return _outcome_json(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SearchOutcome:
        return cls(**_outcome_fields(cls, data))


@dataclass
class DetailOutcome:
    """A finished detail unit: the stores it stored (or found unchanged) and rejected. JSON as SearchOutcome."""

    kind: ClassVar[Literal["detail"]] = "detail"
    tally: UnitTally = field(default_factory=UnitTally)
    failed: list[FailedUnit] = field(default_factory=list)
    coverage: dict[str, Any] = field(default_factory=dict)
    stored: int = 0  # records, and stores answered 304 (not modified)
    refill: int = 0
    rejected: int = 0
    not_modified: int = 0

    def add_to(self, tally: DistrictTally) -> None:
        tally.failed += len(self.failed)
        tally.stored += self.stored
        tally.refill += self.refill
        tally.rejected += self.rejected

    def to_json(self) -> dict[str, Any]:
        return _outcome_json(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DetailOutcome:
        return cls(**_outcome_fields(cls, data))


Outcome = SearchOutcome | DetailOutcome
_TALLY_FIELDS = tuple(f.name for f in fields(UnitTally))


def _outcome_json(outcome: Outcome) -> dict[str, Any]:
    data: dict[str, Any] = {name: getattr(outcome.tally, name) for name in _TALLY_FIELDS}
    data["failed"] = [asdict(f) for f in outcome.failed]
    data.update((f.name, getattr(outcome, f.name)) for f in fields(outcome) if f.name not in ("tally", "failed"))
    return data


def _outcome_fields(cls: type[Outcome], data: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments of an outcome stored as `data`. A key it lacks (a unit that failed as a
    whole, a run written before the key existed) takes the field's default; a key no field has is ignored."""
    named = {f.name for f in fields(cls)} - {"tally", "failed"}
    return {
        "tally": UnitTally(**{name: data.get(name, 0) for name in _TALLY_FIELDS}),
        "failed": [FailedUnit.from_json(f) for f in data.get("failed", [])],
        **{k: v for k, v in data.items() if k in named},
    }


def outcome_from_json(kind: UnitKind, data: dict[str, Any]) -> Outcome:
    return SearchOutcome.from_json(data) if kind == "search" else DetailOutcome.from_json(data)


def search_outcome(unit: SearchUnit, result: SearchResult) -> SearchOutcome:
    """A search unit's outcome as its worker gave it; the master adds what it decides."""
    query = unit.query
    return SearchOutcome(
        tally=result.tally,
        failed=list(result.failed),
        coverage=result.coverage,
        pages=result.pages,
        out_of_area=result.out_of_area,
        count=result.count,
        listed=result.listed,
        skipped=result.skipped,
        truncated=result.truncated,
        fallback=result.fallback,
        anchor=query.anchor,
        depth=query.depth,
        area=query.area,
        query=query.label,
    )


def detail_outcome(result: DetailResult) -> DetailOutcome:
    return DetailOutcome(
        tally=result.tally,
        failed=list(result.failed),
        coverage=result.coverage,
        stored=len(result.records) + len(result.not_modified),
        refill=sum(r.is_refill for r in result.records),
        rejected=len(result.rejections),
        not_modified=len(result.not_modified),
    )


def failure_outcome(unit: Unit, failure: FailedUnit) -> Outcome:
    """The outcome of a unit that failed as a whole (its worker crashed or stalled on it)."""
    return SearchOutcome(failed=[failure]) if isinstance(unit, SearchUnit) else DetailOutcome(failed=[failure])


# --- a run's counters, from its crawl_units rows ------------------------------------------------------


def finished_outcomes(rows: Iterable[UnitRow]) -> Iterator[tuple[str, Outcome]]:
    """(district, outcome) of the crawl_units rows that are done or failed."""
    return (
        (district, outcome_from_json(kind, result))
        for district, kind, state, result in rows
        if state in FINISHED and result is not None
    )


def district_tallies(districts: list[str], rows: Iterable[UnitRow]) -> dict[str, DistrictTally]:
    """Per-district counters rebuilt from a run's crawl_units rows."""
    tallies = {name: DistrictTally() for name in districts}
    rows = list(rows)
    for district, _, state, _ in rows:  # done: no unit of the district left pending or leased
        tally = tallies.setdefault(district, DistrictTally())
        tally.pending += state not in FINISHED
        tally.units += 1
    for tally in tallies.values():
        tally.done = tally.pending == 0
    for district, outcome in finished_outcomes(rows):
        outcome.add_to(tallies.setdefault(district, DistrictTally()))
    return tallies
