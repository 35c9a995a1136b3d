"""How one unit is done: fetch, parse, validate. Needs only a Fetcher: no database, no shared state."""

from __future__ import annotations

import asyncio
import logging

from stage5.cache import Kind
from stage5.fetch import Fetcher, FetchFailed, Request
from stage5.logs import log_event
from stage5.models import Rejection, StoreSummary
from stage5.site.parsers import parse_detail, parse_search
from stage5.site.seoul import district_of_address
from stage5.tallies import UnitTally, current_tally
from stage5.units import DetailResult, DetailUnit, FailedUnit, Result, SearchResult, SearchUnit, Unit
from stage5.validate import build_record

log = logging.getLogger("stage5.crawl")

MAX_FAILED_PAGES_IN_A_ROW = 2


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
