"""Where one store's details come from: the profile API, the profile.php page, or the API with the page behind it.

The choice is `settings.detail_source`:
- `api`: `POST /API/profile/` (form `v_rid`) only; its failure is the store's failure.
- `html`: `GET /profile.php?rid=` only.
- `auto` (default): the API first; the page when the API fails for good: an HTTP error, or an answer
  that stays unreadable through the retries (a result_code other than "100", a shape the parser cannot
  read, another store's answer). A page that fails too is the store's failure, naming both reasons.
  When the API failed for API_FAILURES_TO_PAUSE stores with no answer in between, the next
  API_PAUSE_STORES go to the page directly, then one store probes it again: an API that is down costs a
  few stores' retries, not every store's; one failing for some stores only (as in a mixed crawl, where its
  answers keep coming between the failures) is not paused.

Either answer is checked to be this store's (stage5.site.evidence.verify_detail) inside the parse step,
so an answer that fails the check is retried, never cached, and never reaches a record.

Conditional requests: the page is a GET whose answers carry an ETag, so a refresh asks with
If-None-Match and a 304 means "stored is current". The API is a POST that sends no validators: it is
never asked conditionally, and what it answers is compared by the writer instead (a store whose content
hash is unchanged keeps its row; only its bookkeeping moves). A store read through the API therefore
keeps no ETag.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Literal
from weakref import WeakKeyDictionary

from stage5.cache import Kind
from stage5.fetch import Fetcher, FetchFailed, Request
from stage5.logs import log_event
from stage5.models import StoreDetail, StoreSummary
from stage5.site.detail import parse_detail
from stage5.site.diningcode import profile_form
from stage5.site.evidence import verify_detail
from stage5.site.profile import parse_profile
from stage5.units import DetailUnit

log = logging.getLogger("stage5.crawl")

Source = Literal["api", "html"]
# auto: after this many stores the API failed for, each asked after its last answer and none answered since,
# the next stores go to the page directly (an API that is down would otherwise cost every store its retries
# first); then it is probed again. A store asked before the last answer does not count: its failure says
# nothing new (failures that waited for their retries behind other stores' requests arrive in a row).
API_FAILURES_TO_PAUSE = 10
API_PAUSE_STORES = 100


@dataclass
class ApiHealth:
    """How the profile API has been answering this fetcher (one per worker process)."""

    failures_in_a_row: int = 0
    paused_for: int = 0  # stores still to read from the page before the API is asked again
    # The first store, and the first after a pause, asks alone (the probe); the others wait for its outcome
    # (an API that is down then fails one store, not a whole batch at once).
    doubtful: bool = True
    probing: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_answer: float = -1.0  # monotonic time of the API's last answer

    def succeeded(self) -> None:
        self.failures_in_a_row, self.doubtful, self.last_answer = 0, False, time.monotonic()

    def failed(self, asked_at: float) -> bool:
        """A failure of a store asked at `asked_at`; True when it starts a pause."""
        self.doubtful = False
        if asked_at < self.last_answer:
            return False
        self.failures_in_a_row += 1
        if self.failures_in_a_row < API_FAILURES_TO_PAUSE:
            return False
        self.failures_in_a_row, self.paused_for, self.doubtful = 0, API_PAUSE_STORES, True
        return True

    def skip(self) -> bool:
        """Whether this store skips the API (a pause is running), counting it."""
        if self.paused_for <= 0:
            return False
        self.paused_for -= 1
        return True


_health: WeakKeyDictionary[Fetcher, ApiHealth] = WeakKeyDictionary()


def api_request(fetcher: Fetcher, rid: str) -> Request:
    return Request("POST", fetcher.endpoints.profile_url, profile_form(rid))


async def from_api(fetcher: Fetcher, summary: StoreSummary, unit: DetailUnit) -> StoreDetail:
    return await fetcher.fetch(
        api_request(fetcher, summary.rid),
        lambda body: verify_detail(parse_profile(body, summary.rid), summary),
        Kind.DETAIL,
        read_cache=not unit.revalidate,
    )


async def from_page(fetcher: Fetcher, summary: StoreSummary, unit: DetailUnit, etag: str | None) -> StoreDetail:
    request = Request("GET", fetcher.endpoints.detail_url(summary.rid), etag=etag)
    return await fetcher.fetch(
        request,
        lambda body: verify_detail(parse_detail(body, summary.rid), summary),
        Kind.DETAIL,
        read_cache=not unit.revalidate,
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
    if choice == "api":
        return await from_api(fetcher, summary, unit), "api", page_url
    answer = await _ask_api(fetcher, summary, unit, _health.setdefault(fetcher, ApiHealth()))
    if isinstance(answer, StoreDetail):
        return answer, "api", page_url
    if answer is None:  # a pause: the page directly
        return await from_page(fetcher, summary, unit, etag), "html", page_url
    api_failure = answer
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


async def _ask_api(
    fetcher: Fetcher, summary: StoreSummary, unit: DetailUnit, health: ApiHealth
) -> StoreDetail | FetchFailed | None:
    """auto's API step: its answer, why it failed, or None during a pause (the page directly)."""
    if health.doubtful:
        async with health.probing:
            if health.skip():
                return None
            if health.doubtful:  # this store is the probe
                return await _try_api(fetcher, summary, unit, health)
    return None if health.skip() else await _try_api(fetcher, summary, unit, health)


async def _try_api(
    fetcher: Fetcher, summary: StoreSummary, unit: DetailUnit, health: ApiHealth
) -> StoreDetail | FetchFailed:
    """The API's answer, or why it failed (counted in `health`: enough in a row start a pause)."""
    asked_at = time.monotonic()
    try:
        detail = await from_api(fetcher, summary, unit)
    except FetchFailed as exc:
        if health.failed(asked_at):
            log_event(
                log,
                "detail_api_paused",
                logging.WARNING,
                failures=API_FAILURES_TO_PAUSE,
                stores=API_PAUSE_STORES,
                reason=exc.reason,
            )
        return exc
    health.succeeded()
    return detail
