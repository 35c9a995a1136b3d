"""Units of work and how to do one: a search keyword paged to its end, or a batch of detail pages.

Units and their results are plain picklable data, so they travel between the master and worker
processes (and, later, Celery tasks). Doing a unit needs only a Fetcher: no database, no shared state.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from stage5.cache import Kind
from stage5.fetch import FetchFailed, Fetcher, Request, UnitTally, current_tally
from stage5.logs import log_event
from stage5.models import MenuItem, Rejection, StoreRecord, StoreSummary
from stage5.site.diningcode import SearchQuery
from stage5.site.parsers import parse_detail, parse_search
from stage5.site.seoul import district_of_address
from stage5.validate import build_record

log = logging.getLogger("stage5.crawl")

MAX_FAILED_PAGES_IN_A_ROW = 2


@dataclass(frozen=True)
class FailedUnit:
    kind: str  # "search" | "detail" | "district" | "worker"
    district: str
    url: str
    reason: str


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


@dataclass
class DetailResult:
    uid: int
    district: str
    tally: UnitTally = field(default_factory=UnitTally)
    records: list[StoreRecord] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    failed: list[FailedUnit] = field(default_factory=list)


Result = SearchResult | DetailResult


def belongs_to(summary: StoreSummary, district: str) -> bool:
    return district in (district_of_address(summary.address), district_of_address(summary.road_address))


def _failure(kind: str, district: str, exc: FetchFailed) -> FailedUnit:
    log_event(log, f"{kind}_failed", logging.WARNING, district=district, url=exc.request.label, reason=exc.reason)
    return FailedUnit(kind, district, exc.request.label, exc.reason)


async def run_search(unit: SearchUnit, fetcher: Fetcher, page_size: int, max_pages: int) -> SearchResult:
    """Page one keyword until an empty page, a page of repeats, the total, or max_pages."""
    result = SearchResult(unit.uid, unit.district)
    seen: set[str] = set()
    failed_in_a_row = 0
    for page_no in range(1, max_pages + 1):
        request = Request("POST", fetcher.endpoints.search_url, unit.query.form(page_no, page_size))
        try:
            page = await fetcher.fetch(request, parse_search, Kind.SEARCH)
        except FetchFailed as exc:
            result.failed.append(_failure("search", unit.district, exc))
            failed_in_a_row += 1
            if failed_in_a_row >= MAX_FAILED_PAGES_IN_A_ROW:
                break
            continue
        failed_in_a_row = 0
        result.pages += 1
        new = [s for s in page.stores if s.rid not in seen]
        if not new:
            break  # empty, or the site repeating itself past the last page
        seen.update(s.rid for s in new)
        for s in new:
            (result.found.append(s) if belongs_to(s, unit.district) else result.out_of_area.append(s.rid))
        if page.total and page_no * page_size >= page.total:
            break
    return result


async def run_details(unit: DetailUnit, fetcher: Fetcher) -> DetailResult:
    """Fetch, parse and validate each store of the batch; one store failing does not stop the others."""
    result = DetailResult(unit.uid, unit.district)

    async def one(summary: StoreSummary) -> None:
        url = fetcher.endpoints.detail_url(summary.rid)
        try:
            detail = await fetcher.fetch(Request("GET", url), lambda b: parse_detail(b, summary.rid), Kind.DETAIL)
        except FetchFailed as exc:
            result.failed.append(_failure("detail", unit.district, exc))
            return
        outcome = build_record(summary, detail, unit.district, url)
        if isinstance(outcome, Rejection):
            log_event(log, "store_rejected", district=unit.district, rid=summary.rid, reason=outcome.reason, url=url)
            result.rejections.append(outcome)
        else:
            result.records.append(outcome)

    await asyncio.gather(*(one(s) for s in unit.stores))
    return result


async def run_unit(unit: Unit, fetcher: Fetcher, page_size: int, max_pages: int) -> Result:
    tally = UnitTally()
    current_tally.set(tally)  # this task's context only: concurrent units count apart
    if isinstance(unit, SearchUnit):
        result: Result = await run_search(unit, fetcher, page_size, max_pages)
    else:
        result = await run_details(unit, fetcher)
    result.tally = tally
    return result


# --- units as JSON, for the crawl_units table ----------------------------------------------------


def unit_payload(unit: Unit) -> dict[str, Any]:
    if isinstance(unit, SearchUnit):
        return {"query": asdict(unit.query)}
    return {"stores": [asdict(s) for s in unit.stores]}


def unit_kind(unit: Unit) -> str:
    return "search" if isinstance(unit, SearchUnit) else "detail"


def _summary(data: dict[str, Any]) -> StoreSummary:
    return StoreSummary(**_tuples(data))


def unit_from_payload(uid: int, kind: str, district: str, payload: dict[str, Any]) -> Unit:
    if kind == "search":
        q = payload["query"]
        return SearchUnit(uid, SearchQuery(q["district"], q["keyword"], q["lat"], q["lng"], tuple(q["rect"])))
    return DetailUnit(uid, district, tuple(_summary(s) for s in payload["stores"]))


def _tuples(data: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}


def _record(data: dict[str, Any]) -> StoreRecord:
    data = _tuples(data)
    return StoreRecord(**{**data, "menu": tuple(MenuItem(**m) for m in data["menu"])})


def result_to_json(result: Result) -> dict[str, Any]:
    """A result as plain JSON (Celery carries results as JSON, never pickle)."""
    return {"kind": "search" if isinstance(result, SearchResult) else "detail", **asdict(result)}


def result_from_json(data: dict[str, Any]) -> Result:
    common = {"uid": data["uid"], "district": data["district"], "tally": UnitTally(**data["tally"]),
              "failed": [FailedUnit(**f) for f in data["failed"]]}  # fmt: skip
    if data["kind"] == "search":
        return SearchResult(**common, found=[_summary(s) for s in data["found"]], out_of_area=data["out_of_area"],
                            pages=data["pages"])  # fmt: skip
    return DetailResult(**common, records=[_record(r) for r in data["records"]],
                        rejections=[Rejection(**r) for r in data["rejections"]])  # fmt: skip


def result_summary(result: Result) -> dict[str, Any]:
    """What a finished unit leaves in crawl_units.result: enough to rebuild the run's counters."""
    data: dict[str, Any] = {**asdict(result.tally), "failed": [asdict(f) for f in result.failed]}
    if isinstance(result, SearchResult):
        data.update(pages=result.pages, found=len(result.found), out_of_area=result.out_of_area)
    else:
        data.update(stored=len(result.records), refill=sum(r.is_refill for r in result.records),
                    rejected=len(result.rejections))  # fmt: skip
    return data
