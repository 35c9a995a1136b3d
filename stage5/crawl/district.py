"""Crawling one district: its searches paged to the end, then each of its stores' detail page once.

Stores are kept only when their own address is in the district (the site's location filter is
soft), deduped on v_rid, validated, and handed to a sink. A page that fails after its retries is a
failed unit: it is logged with its URL and listed, and the district goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from stage5.fetch import FetchFailed, Fetcher, Request
from stage5.logs import log_event
from stage5.models import Rejection, StoreRecord, StoreSummary
from stage5.settings import Settings
from stage5.site.diningcode import SearchQuery, queries_for
from stage5.site.parsers import parse_detail, parse_search
from stage5.site.seoul import District, district_of_address
from stage5.validate import build_record

log = logging.getLogger("stage5.crawl")

MAX_FAILED_PAGES_IN_A_ROW = 2


class Sink(Protocol):
    async def add(self, record: StoreRecord) -> None: ...
    async def reject(self, rejection: Rejection) -> None: ...


@dataclass(frozen=True)
class FailedUnit:
    kind: str  # "search" | "detail"
    district: str
    url: str
    reason: str


@dataclass
class DistrictResult:
    district: str
    pages: int = 0
    listed: int = 0  # search entries seen, repeats included
    in_district: int = 0  # unique stores whose address is in the district
    out_of_area: int = 0  # unique entries elsewhere (neighbours, other cities)
    stored: int = 0
    refill: int = 0
    rejected: int = 0
    failed: list[FailedUnit] = field(default_factory=list)
    elapsed_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def belongs_to(summary: StoreSummary, district: str) -> bool:
    return district in (district_of_address(summary.address), district_of_address(summary.road_address))


class DistrictCrawl:
    def __init__(self, district: District, fetcher: Fetcher, sink: Sink, settings: Settings,
                 claimed: set[str]) -> None:  # fmt: skip
        self.district, self.fetcher, self.sink, self.settings = district, fetcher, sink, settings
        self.claimed = claimed  # rids already taken by any district of this run
        self.result = DistrictResult(district.name)
        self.found: dict[str, StoreSummary] = {}
        self.elsewhere: set[str] = set()

    async def run(self) -> DistrictResult:
        started = time.monotonic()
        log_event(log, "district_started", district=self.district.name)
        await asyncio.gather(*(self.search(q) for q in queries_for(self.district)))
        mine = [s for rid, s in self.found.items() if rid not in self.claimed]
        self.claimed.update(s.rid for s in mine)
        await asyncio.gather(*(self.detail(s) for s in mine))
        self.result.elapsed_s = round(time.monotonic() - started, 2)
        r = self.result
        log_event(
            log, "district_finished", district=r.district, pages=r.pages, stores=r.in_district, stored=r.stored,
            refill=r.refill, rejected=r.rejected, out_of_area=r.out_of_area, failed=len(r.failed), elapsed_s=r.elapsed_s,
        )  # fmt: skip
        return r

    def _fail(self, kind: str, exc: FetchFailed) -> None:
        unit = FailedUnit(kind, self.district.name, exc.request.label, exc.reason)
        self.result.failed.append(unit)
        log_event(log, f"{kind}_failed", logging.WARNING, district=unit.district, url=unit.url, reason=unit.reason)

    async def search(self, query: SearchQuery) -> None:
        """Page one keyword until an empty page, a page of repeats, the total, or max_pages."""
        size, seen, failed_in_a_row = self.settings.page_size, set[str](), 0
        for page_no in range(1, self.settings.max_pages + 1):
            request = Request("POST", self.fetcher.endpoints.search_url, query.form(page_no, size))
            try:
                page = await self.fetcher.fetch(request, parse_search)
            except FetchFailed as exc:
                self._fail("search", exc)
                failed_in_a_row += 1
                if failed_in_a_row >= MAX_FAILED_PAGES_IN_A_ROW:
                    return
                continue
            failed_in_a_row = 0
            self.result.pages += 1
            new = [s for s in page.stores if s.rid not in seen]
            if not new:
                return  # empty, or the site repeating itself past the last page
            seen.update(s.rid for s in new)
            self.result.listed += len(page.stores)
            self._keep(new)
            if page.total and page_no * size >= page.total:
                return

    def _keep(self, summaries: list[StoreSummary]) -> None:
        for s in summaries:
            if s.rid in self.found or s.rid in self.elsewhere:
                continue
            if belongs_to(s, self.district.name):
                self.found[s.rid] = s
                self.result.in_district += 1
            else:
                self.elsewhere.add(s.rid)
                self.result.out_of_area += 1

    async def detail(self, summary: StoreSummary) -> None:
        url = self.fetcher.endpoints.detail_url(summary.rid)
        try:
            detail = await self.fetcher.fetch(Request("GET", url), lambda body: parse_detail(body, summary.rid))
        except FetchFailed as exc:
            self._fail("detail", exc)
            return
        outcome = build_record(summary, detail, self.district.name, url)
        if isinstance(outcome, Rejection):
            self.result.rejected += 1
            log_event(log, "store_rejected", district=self.district.name, rid=summary.rid, reason=outcome.reason, url=url)
            await self.sink.reject(outcome)
            return
        self.result.stored += 1
        self.result.refill += outcome.is_refill
        await self.sink.add(outcome)
