"""How one unit is done: fetch, parse, validate. Needs only a Fetcher: no database, no shared state."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import replace

from stage5.cache import Kind
from stage5.coverage import count_detail, count_search
from stage5.crawl.details import fetch_detail
from stage5.fetch import Fetcher, FetchFailed, NotModified, Request
from stage5.logs import log_event
from stage5.models import Rejection, SearchPage, StoreSummary
from stage5.site.diningcode import SearchQuery
from stage5.site.parsers import parse_search
from stage5.site.seoul import distance_m, district_of_address, neighbourhood_of_address
from stage5.tallies import UnitTally, current_tally
from stage5.units import DetailResult, DetailUnit, FailedUnit, Result, SearchResult, SearchUnit, Unit
from stage5.validate import build_record

log = logging.getLogger("stage5.crawl")

MAX_FAILED_PAGES_IN_A_ROW = 2


def belongs_to(summary: StoreSummary, district: str) -> bool:
    return district in (district_of_address(summary.address), district_of_address(summary.road_address))


def _failure(kind: str, district: str, exc: FetchFailed) -> FailedUnit:
    log_event(
        log,
        f"{kind}_failed",
        logging.WARNING,
        district=district,
        url=exc.request.label,
        reason=exc.reason,
        cause=exc.cause,
    )
    return FailedUnit(kind, district, exc.request.label, exc.reason, exc.cause)


async def run_search(
    unit: SearchUnit,
    fetcher: Fetcher,
    page_size: int,
    max_pages: int,
    result: SearchResult | None = None,
    cap: int = 0,
) -> SearchResult:
    """Page one keyword until an empty page, a page of repeats, the count, or max_pages (filling `result`),
    and say whether its pages gave what the site counts. A truncated district query is asked again in parts
    (stage5.site.diningcode.split_query); what its own pages gave counts towards the district too."""
    query = unit.query
    result = result or SearchResult(unit.uid, unit.district)
    seen: set[str] = set()
    listed: dict[str, None] = {}  # distinct stores within the query's radius, in the site's order
    failed_in_a_row = 0
    for page_no in range(1, max_pages + 1):
        request = Request("POST", fetcher.endpoints.search_url, query.form(page_no, page_size))
        try:
            page = await fetcher.fetch(request, parse_search, Kind.SEARCH, unit.district, _no_stores)
        except FetchFailed as exc:
            result.failed.append(_failure("search", unit.district, exc))
            failed_in_a_row += 1
            if failed_in_a_row >= MAX_FAILED_PAGES_IN_A_ROW:
                break
            continue
        failed_in_a_row = 0
        if _take_page(unit, page, seen, listed, result):
            break
        if page.count and page_no * page_size >= page.count:
            break
    result.listed = list(listed)
    if result.fallback:
        result.count = 0
    elif result.count is not None:
        result.truncated = is_truncated(result.count, len(listed), cap)
    return result


def is_truncated(count: int, listed: int, cap: int) -> bool:
    """A query whose pages gave fewer stores than its count, or exactly the cap of a count that reaches it
    (the site may have stopped there). Pages that gave more than the cap show this site does not cap."""
    return listed < count or (cap > 0 and count >= cap and listed <= cap)


def _take_page(
    unit: SearchUnit, page: SearchPage, seen: set[str], listed: dict[str, None], result: SearchResult
) -> bool:
    """Count one page into `result`; True when it ends the query (nothing new, or a part's wide answer)."""
    query = unit.query
    result.pages += 1
    result.skipped += page.skipped
    if result.count is None:
        result.count = page.count
    count_search(result.coverage, page.stores)
    new = [(s, d) for s, d in zip(page.stores, page.distances or (None,) * len(page.stores)) if s.rid not in seen]
    if not new:
        return True  # empty, or the site repeating itself past the last page
    seen.update(s.rid for s, _ in new)
    inside = [s for s, d in new if within(query, s, d)]
    if (query.radius_m is not None or query.area) and result.pages == 1 and not inside:
        result.fallback = True  # nothing in the part: the site's soft filter answered wide
        return True
    for s in inside:
        listed[s.rid] = None
        s = replace(s, query=query.label)  # the provenance of its listing fields (validate.py's field_sources)
        (result.found.append(s) if belongs_to(s, unit.district) else result.out_of_area.append(s.rid))
    return False


def within(query: SearchQuery, summary: StoreSummary, stated_m: float | None) -> bool:
    """Whether an entry is inside a coordinate query's radius: by the distance the entry states, else by
    its coordinates; an entry saying neither cannot be placed and is not counted as inside. A neighbourhood
    part: by its address."""
    if query.area and neighbourhood_of_address(summary.address) != query.area:
        return False
    if query.radius_m is None:
        return True
    if stated_m is not None:
        return stated_m <= query.radius_m
    if summary.lat is None or summary.lng is None:
        return False
    return distance_m(query.lat, query.lng, summary.lat, summary.lng) <= query.radius_m


def _no_stores(page: SearchPage) -> bool:
    return not page.stores


async def run_details(unit: DetailUnit, fetcher: Fetcher, result: DetailResult | None = None) -> DetailResult:
    """Fetch, parse and validate each store of the batch (filling `result`); one store failing does not
    stop the others."""
    result = result or DetailResult(unit.uid, unit.district)

    async def one(summary: StoreSummary, etag: str | None) -> None:
        url = fetcher.endpoints.detail_url(summary.rid)
        try:
            detail, _source, url = await fetch_detail(fetcher, summary, unit, etag)  # API or page: settings say
            count_detail(result.coverage, detail)
            outcome = build_record(summary, detail, unit.district, url)
        except NotModified:
            result.not_modified.append(summary.rid)
            return
        except FetchFailed as exc:
            result.failed.append(_failure("detail", unit.district, exc))
            return
        except Exception as exc:  # this store's answer broke something: it alone fails, with its URL
            log_event(log, "store_failed", logging.ERROR, district=unit.district, url=url, error=exc)
            result.failed.append(FailedUnit("detail", unit.district, url, f"store failed: {exc!r}"[:300]))
            return
        if isinstance(outcome, Rejection):
            log_event(log, "store_rejected", district=unit.district, rid=summary.rid, reason=outcome.reason, url=url)
            result.rejections.append(outcome)
        else:
            result.records.append(replace(outcome, etag=fetcher.etags.pop(url, None)))

    etags = unit.etags or (None,) * len(unit.stores)
    await asyncio.gather(*(one(s, e) for s, e in zip(unit.stores, etags)))
    return result


async def run_unit(unit: Unit, fetcher: Fetcher) -> Result:
    """Do one unit within the unit deadline; past it, what was done so far is kept and the rest fails."""
    settings = fetcher.settings
    tally = UnitTally()
    current_tally.set(tally)  # this task's context only: concurrent units count apart
    # The result is made here and filled in place, so what was done before the deadline is kept.
    result: Result
    work: Awaitable[Result]
    if isinstance(unit, SearchUnit):
        result = search = SearchResult(unit.uid, unit.district)
        work = run_search(unit, fetcher, settings.page_size, settings.max_pages, search, settings.result_cap)
    else:
        result = details = DetailResult(unit.uid, unit.district)
        work = run_details(unit, fetcher, details)
    try:
        async with asyncio.timeout(settings.unit_deadline_s):
            await work
    except TimeoutError:
        reason = f"unit deadline of {settings.unit_deadline_s:.0f}s passed (STAGE5_UNIT_DEADLINE_S)"
        log_event(log, "unit_deadline", logging.WARNING, unit=unit.uid, district=unit.district)
        result.failed.append(FailedUnit("unit", unit.district, f"unit {unit.uid}", reason))
    result.tally = tally
    return result
