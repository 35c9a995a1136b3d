"""Where one store's details come from: the profile API, the profile.php page, or the API with the page behind it.

The choice is `settings.detail_source`:
- `api`: `POST /API/profile/` (form `v_rid`) only; its failure is the store's failure.
- `html`: `GET /profile.php?rid=` only.
- `auto` (default): the API first; the page when the API fails for good: an HTTP error, or an answer
  that stays unreadable through the retries (a result_code other than "100", a shape the parser cannot
  read, another store's answer). A page that fails too is the store's failure, naming both reasons.

Either answer is checked to be this store's (stage5.site.evidence.verify_detail) inside the parse step,
so an answer that fails the check is retried, never cached, and never reaches a record.

Conditional requests: the page is a GET whose answers carry an ETag, so a refresh asks with
If-None-Match and a 304 means "stored is current". The API is a POST that sends no validators: it is
never asked conditionally, and what it answers is compared by the writer instead (a store whose content
hash is unchanged keeps its row; only its bookkeeping moves). A store read through the API therefore
keeps no ETag.
"""

from __future__ import annotations

import logging
from typing import Literal

from stage5.cache import Kind
from stage5.fetch import Fetcher, FetchFailed, Request
from stage5.logs import log_event
from stage5.models import StoreDetail, StoreSummary
from stage5.site.detail import parse_detail
from stage5.site.diningcode import profile_form
from stage5.site.profile import parse_profile
from stage5.units import DetailUnit

log = logging.getLogger("stage5.crawl")

Source = Literal["api", "html"]


def api_request(fetcher: Fetcher, rid: str) -> Request:
    return Request("POST", fetcher.endpoints.profile_url, profile_form(rid))


async def from_api(fetcher: Fetcher, summary: StoreSummary, unit: DetailUnit) -> StoreDetail:
    return await fetcher.fetch(
        api_request(fetcher, summary.rid),
        lambda body: parse_profile(body, summary.rid),
        Kind.DETAIL,
        read_cache=not unit.revalidate,
    )


async def from_page(fetcher: Fetcher, summary: StoreSummary, unit: DetailUnit, etag: str | None) -> StoreDetail:
    request = Request("GET", fetcher.endpoints.detail_url(summary.rid), etag=etag)
    return await fetcher.fetch(
        request, lambda body: parse_detail(body, summary.rid), Kind.DETAIL, read_cache=not unit.revalidate
    )


async def fetch_detail(
    fetcher: Fetcher, summary: StoreSummary, unit: DetailUnit, etag: str | None = None
) -> tuple[StoreDetail, Source, str]:
    """(the store's detail, the source that gave it, the store's page URL: what its record cites).
    Raises FetchFailed (with both reasons when auto tried both), or NotModified from a conditional page
    request."""
    page_url = fetcher.endpoints.detail_url(summary.rid)
    choice = fetcher.settings.detail_source
    if choice == "html":
        return await from_page(fetcher, summary, unit, etag), "html", page_url
    try:
        return await from_api(fetcher, summary, unit), "api", page_url
    except FetchFailed as exc:
        if choice == "api":
            raise
        api_failure = exc
    log_event(
        log,
        "detail_api_fallback",
        logging.INFO,
        district=unit.district,
        rid=summary.rid,
        reason=api_failure.reason,
    )
    try:
        return await from_page(fetcher, summary, unit, etag), "html", page_url
    except FetchFailed as exc:
        exc.reason = f"profile API: {api_failure.reason}; page: {exc.reason}"  # the store's failure names both
        raise
