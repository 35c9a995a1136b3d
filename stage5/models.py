"""Plain data passed between stages: what a search returns, what a detail page says, what is stored."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class StoreSummary:
    """One entry of a search result (API JSON or the list page's listData)."""

    rid: str
    name: str
    branch: str | None = None
    address: str | None = None
    road_address: str | None = None
    phone: str | None = None
    lat: float | None = None
    lng: float | None = None
    score: int | None = None
    user_score: float | None = None
    review_count: int | None = None
    categories: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    areas: tuple[str, ...] = ()
    image: str | None = None
    images: tuple[str, ...] = ()
    open_status: str | None = None
    query: str = ""  # the search (keyword) whose answer listed it: the provenance of its listing fields


@dataclass(frozen=True, slots=True)
class SearchPage:
    total: int  # total_cnt: the site's count of the query's matches (the site caps it at 10000)
    stores: tuple[StoreSummary, ...]
    rcount: int | None = None  # params.rcount: the true count where the site gives it
    skipped: int = 0  # entries that were not a store (no v_rid or nm: an ad slot): skipped, counted
    # Each store's `distance` from the query's point as the entry states it (the least metres its text can
    # mean: '1.2km' -> 1150), None where it states none; aligned with `stores`.
    distances: tuple[float | None, ...] = ()

    @property
    def count(self) -> int:
        """The site's own count of the query's matches: rcount when given, else total_cnt."""
        return self.rcount if self.rcount is not None else self.total


# Records and their menu items cross from worker to master in every detail unit's result: without slots they
# pickle through the C fast path (a 20-record unit's round trip 1.32 -> 0.50 ms), and they live only as long
# as a batch, so the memory slots save does not add up.
@dataclass(frozen=True)
class MenuItem:
    name: str
    price: int | None  # won; None when the page shows no number ("시가", "변동")
    price_text: str | None = None
    best: bool | None = None  # the site marks it a best (대표) item; None: the source does not say
    selection_rate: float | None = None  # share of reviewers who chose it (%), as the profile API gives it


@dataclass(frozen=True, slots=True)
class StoreDetail:
    """What a detail page (profile.php) says about one store."""

    rid: str
    name: str | None
    title: str | None = None
    branch: str | None = None
    address: str | None = None
    road_address: str | None = None
    lat: float | None = None
    lng: float | None = None
    phone: str | None = None
    rating: float | None = None
    rating_count: int | None = None
    score: int | None = None
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    menu: tuple[MenuItem, ...] = ()
    open_hours: str | None = None
    break_time: str | None = None
    last_order: str | None = None
    holiday: str | None = None
    images: tuple[str, ...] = ()
    reviews: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    weekly_hours: dict[str, dict[str, Any]] | None = None  # day (월…일) -> open, close, break, last_order, closed
    # Fields the page gave no sign of at all (no section that would hold them): a miss, not a removal.
    missing: frozenset[str] = frozenset()
    layout: str = ""  # which of the site's layouts the page looked like (for coverage figures)
    fallbacks: int = 0  # JSON-LD values of the wrong shape that were read from the markup instead
    closed: bool = False  # the page says the store has closed
    # Hours texts the page holds that no notation of §3c reads, as written: kept (for `parse`), counted, never guessed.
    unread: tuple[str, ...] = ()
    facilities: tuple[str, ...] = ()  # 주차, 예약, 단체석 … (the profile API's detail.facility)
    open_status: str | None = None  # e.g. 영업 중, as the source words it
    # The store ids the answer gives for itself (canonical link, og:url, JSON-LD @id/url, hidden inputs, the
    # API's own id): checked against the id asked for (stage5.site.evidence).
    claimed_ids: tuple[str, ...] = ()
    source: str = "html"  # which of the site's answers this is: "html" (profile.php) or "api" (/API/profile/)


@dataclass(frozen=True)  # no slots: see MenuItem
class StoreRecord:
    """A validated store, one row of `stores`."""

    rid: str
    name: str
    district: str
    address: str
    lat: float
    lng: float
    source_url: str
    branch: str | None = None
    road_address: str | None = None
    phone: str | None = None
    categories: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    rating: float | None = None
    review_count: int | None = None
    score: int | None = None
    open_hours: str | None = None
    break_time: str | None = None
    last_order: str | None = None
    holiday: str | None = None
    menu: tuple[MenuItem, ...] = ()
    price_min: int | None = None
    price_max: int | None = None
    image_urls: tuple[str, ...] = ()
    is_refill: bool = False
    refill_type: str | None = None
    refill_items: tuple[str, ...] = ()
    refill_evidence: tuple[str, ...] = ()
    weekly_hours: dict[str, dict[str, Any]] | None = None
    missing: tuple[str, ...] = ()  # record fields neither the page nor the search answer gave: keep what is stored
    closed: bool = False  # its page says it closed: stored with status 폐업 at once
    listing_hash: str | None = None  # fingerprint of the search answer's fields (the refresh policy's input)
    etag: str | None = None  # the detail page's ETag: the next refresh asks conditionally
    facilities: tuple[str, ...] = ()
    best_menu: tuple[str, ...] = ()  # names of the menu items the site marks best (대표)
    open_status: str | None = None
    detail_source: str = "html"  # where the detail came from: "html" or "api" (bookkeeping, not content)
    # Provenance: record field -> where its value came from ("detail:html", "detail:api", "search:<query>").
    field_sources: dict[str, str] = field(default_factory=dict)
    damaged: tuple[str, ...] = ()  # fields whose text came with decoding damage (U+FFFD): stored ones are kept

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A store that failed validation: kept with its reason, never dropped silently."""

    rid: str | None
    reason: str
    source_url: str
    district: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
