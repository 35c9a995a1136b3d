"""Units of work and their results: a search keyword paged to its end, or a batch of detail pages.

Plain picklable data with JSON codecs, so they travel between the master and worker processes,
through Celery task messages, and into the `crawl_units` table. How a unit is done is
`stage5.crawl.pipeline`; where units are stored is `stage5.storage.unit_queue`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from stage5.errors import Cause
from stage5.models import MenuItem, Rejection, StoreRecord, StoreSummary
from stage5.site.diningcode import SearchQuery
from stage5.tallies import UnitTally


@dataclass(frozen=True)
class FailedUnit:
    kind: str  # "search" | "detail" | "district" | "worker"
    district: str
    url: str
    reason: str
    cause: Cause = ""  # for an answer that was no evidence: "blocked", "not_this_store" or "redirect"


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


def unit_kind(unit: Unit) -> str:
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


def result_summary(result: Result) -> dict[str, Any]:
    """What a finished unit leaves in crawl_units.result: enough to rebuild the run's counters."""
    data: dict[str, Any] = {
        **asdict(result.tally),
        "failed": [asdict(f) for f in result.failed],
        "coverage": result.coverage,
    }
    if isinstance(result, SearchResult):
        data.update(
            pages=result.pages,
            found=len(result.found),
            out_of_area=result.out_of_area,
            count=result.count,
            listed=result.listed,
            skipped=result.skipped,
            truncated=result.truncated,
            fallback=result.fallback,
        )
    else:
        data.update(
            stored=len(result.records) + len(result.not_modified),
            refill=sum(r.is_refill for r in result.records),
            rejected=len(result.rejections),
            not_modified=len(result.not_modified),
        )
    return data
