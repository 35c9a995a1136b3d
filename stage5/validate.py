"""Pure validation: a search summary + a detail page -> a StoreRecord, or a Rejection with its reason.

Also the refill classification: search results for 무한리필 include stores that are not
all-you-can-eat, so a store is a refill store only when its own words say so; the words found are
kept as evidence.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, TypeVar

from stage5.models import Rejection, StoreDetail, StoreRecord, StoreSummary
from stage5.site.seoul import SEOUL_LAT, SEOUL_LNG, district_of_address, in_seoul

T = TypeVar("T")

# The most specific word found anywhere names the refill type (무한리필 before a bare 리필).
REFILL_WORDS: tuple[tuple[str, str], ...] = (
    ("무한리필", "무한리필"),
    ("무제한", "무한리필"),
    ("셀프바", "셀프바"),
    ("뷔페", "뷔페"),
    ("리필", "무한리필"),
)
_REFILL_STRIP = re.compile(r"\s*(무한리필|무제한|셀프바|리필|뷔페)\s*")
_EVIDENCE_MAX = 80


def normalize_phone(raw: str | None) -> str | None:
    """'02 123 4567', '0507.1234.5678', '+82-2-123-4567' -> '02-123-4567' / '0507-1234-5678'; junk -> None."""
    if not raw:
        return None
    digits = re.sub(r"\D", "", raw)
    if digits.startswith("82") and len(digits) >= 10:
        digits = "0" + digits[2:]
    if not digits.startswith("0") or not 9 <= len(digits) <= 12:
        return None
    if digits.startswith("02"):
        head, rest = "02", digits[2:]
    elif digits[:4] in ("0502", "0503", "0504", "0505", "0506", "0507", "0508"):
        head, rest = digits[:4], digits[4:]
    else:
        head, rest = digits[:3], digits[3:]
    if len(rest) not in (7, 8):
        return None
    return f"{head}-{rest[:-4]}-{rest[-4:]}"


def _fix_coordinates(lat: float | None, lng: float | None) -> tuple[float | None, float | None]:
    """Some sources swap lat and lng; Seoul's ranges do not overlap, so a swap is unambiguous."""
    swapped = lat is not None and lng is not None
    if swapped and SEOUL_LNG[0] <= lat <= SEOUL_LNG[1] and SEOUL_LAT[0] <= lng <= SEOUL_LAT[1]:  # type: ignore[operator]
        return lng, lat
    return lat, lng


def _texts_to_search(summary: StoreSummary, detail: StoreDetail) -> Iterable[tuple[str, str]]:
    """The store's own words: its detail answer's, never a search entry's categories or keywords (a store
    listed under a keyword is no evidence that it is what the keyword says); the listed name only stands in
    for an answer without one (the identity check matched the two)."""
    yield "name", detail.name or summary.name
    for c in detail.categories:
        yield "category", c
    for t in (*detail.tags, *detail.keywords):
        yield "tag", t
    for m in detail.menu:
        yield "menu", m.name


def classify_refill(
    summary: StoreSummary, detail: StoreDetail
) -> tuple[bool, str | None, tuple[str, ...], tuple[str, ...]]:
    """(is_refill, refill_type, refill_items, evidence) from the store's own words."""
    evidence: list[str] = []
    ranks: list[int] = []
    items: list[str] = []
    for source, text in _texts_to_search(summary, detail):
        for rank, (word, _) in enumerate(REFILL_WORDS):
            if word in text:
                ranks.append(rank)
                evidence.append(f"{source}:{text[:_EVIDENCE_MAX]}")
                if source in ("menu", "category"):
                    item = _REFILL_STRIP.sub(" ", text).strip()
                    if item and item not in items:
                        items.append(item)
                break
    refill_type = REFILL_WORDS[min(ranks)][1] if ranks else None
    return bool(evidence), refill_type, tuple(items), tuple(dict.fromkeys(evidence))


def _in_range(value: float | int | None, low: float, high: float) -> float | int | None:
    return value if value is not None and low <= value <= high else None


class Invalid(Exception):
    """Why a store cannot be kept (becomes a Rejection with this reason)."""


def _first(*values: T | None) -> T | None:
    """The first value that is not None: the detail page's, else the search's."""
    return next((v for v in values if v is not None), None)


def _place(summary: StoreSummary, detail: StoreDetail) -> tuple[str, str, str]:
    """(name, address, district) or Invalid: a store needs a name and a Seoul address."""
    name = detail.name or summary.name
    address = detail.address or summary.address
    if not name:
        raise Invalid("missing name")
    if not address:
        raise Invalid("missing address")
    district = district_of_address(address)
    if district is None:
        raise Invalid(f"address outside Seoul: {address}")
    return name, address, district


def _position(summary: StoreSummary, detail: StoreDetail) -> tuple[float, float]:
    """(lat, lng) inside Seoul, or Invalid."""
    lat, lng = _fix_coordinates(_first(detail.lat, summary.lat), _first(detail.lng, summary.lng))
    if lat is None or lng is None:
        raise Invalid("missing coordinates")
    if not in_seoul(lat, lng):
        raise Invalid(f"coordinates outside Seoul: {lat},{lng}")
    return round(lat, 7), round(lng, 7)


def _own(value: T | None) -> T | None:
    return None if value in (None, ()) else value


class Merge:
    """What the detail answer and the search entry say, field by field, with where each value came from:
    the detail answer wins; the search entry fills only what the answer did not show."""

    def __init__(self, summary: StoreSummary, detail: StoreDetail) -> None:
        self.own = f"detail:{detail.source}"
        self.listing = f"search:{summary.query}" if summary.query else "search"
        self.values: dict[str, Any] = {}
        self.sources: dict[str, str] = {}

    def take(self, name: str, from_detail: Any, from_search: Any = None, empty: Any = None) -> None:
        if _own(from_detail) is not None:
            self.values[name], self.sources[name] = from_detail, self.own
        elif _own(from_search) is not None:
            self.values[name], self.sources[name] = from_search, self.listing
        else:
            self.values[name] = empty

    def union(self, name: str, from_detail: tuple[Any, ...], from_search: tuple[Any, ...]) -> None:
        """Lists both may add to (categories, keywords, images): the answer's first, deduped."""
        self.values[name] = tuple(dict.fromkeys(v for v in (*from_detail, *from_search) if v))
        if from_detail or from_search:
            self.sources[name] = self.own if from_detail else self.listing


def _descriptive(summary: StoreSummary, detail: StoreDetail) -> Merge:
    """The fields that need no check to be kept: merged, deduped, ranges enforced, sources noted."""
    prices = [m.price for m in detail.menu if m.price]
    merge = Merge(summary, detail)
    merge.take("branch", detail.branch, summary.branch)
    merge.take("road_address", detail.road_address, summary.road_address)
    merge.take("phone", normalize_phone(detail.phone), normalize_phone(summary.phone))
    merge.union("categories", detail.categories, summary.categories)
    merge.union("keywords", (*detail.tags, *detail.keywords), summary.keywords)
    merge.take("rating", _in_range(detail.rating, 0, 5), _in_range(summary.user_score, 0, 5))
    merge.take("review_count", detail.rating_count, summary.review_count)
    merge.take("score", _in_range(detail.score, 0, 100), _in_range(summary.score, 0, 100))
    for name in ("open_hours", "break_time", "last_order", "holiday", "weekly_hours"):
        merge.take(name, getattr(detail, name))
    merge.take("menu", detail.menu, empty=())
    merge.take("price_min", min(prices) if prices else None)
    merge.take("price_max", max(prices) if prices else None)
    merge.union("image_urls", detail.images, (summary.image, *summary.images))
    merge.take("facilities", detail.facilities, empty=())
    merge.take("best_menu", tuple(dict.fromkeys(m.name for m in detail.menu if m.best)), empty=())
    merge.take("open_status", detail.open_status, summary.open_status)
    return merge


LISTING_FIELDS = ("name", "branch", "address", "road_address", "phone", "score", "user_score", "review_count")


def listing_fingerprint(summary: StoreSummary) -> str:
    """What the search answer says of a store that its detail page would say too: when this is unchanged
    since the last run, the detail page very likely is as well."""
    material = "\x1f".join(str(getattr(summary, f)) for f in LISTING_FIELDS)
    return hashlib.sha1(material.encode()).hexdigest()[:16]


def build_record(summary: StoreSummary, detail: StoreDetail, district: str, source_url: str) -> StoreRecord | Rejection:
    """Merge what the search and the detail answer say; the detail answer wins where both speak, and
    fields it did not show keep their stored values unless the stored value came from a search too."""
    detail = _undamaged(detail, summary)
    try:
        name, address, actual = _place(summary, detail)
        lat, lng = _position(summary, detail)
    except Invalid as exc:
        payload = {"name": summary.name, "address": detail.address or summary.address}
        return Rejection(summary.rid, str(exc), source_url, district, payload)
    is_refill, refill_type, refill_items, evidence = classify_refill(summary, detail)
    merge = _descriptive(summary, detail)
    own, listing = merge.own, merge.listing
    sources = {
        "name": own,
        "address": own if detail.address else listing,
        "position": own if detail.lat is not None and detail.lng is not None else listing,
        **merge.sources,
    }
    not_shown = detail.missing | NOT_SHOWN_BY.get(detail.source, frozenset())
    damaged = _damaged_fields(detail)
    return StoreRecord(
        rid=summary.rid,
        name=name,
        district=actual,
        address=address,
        lat=lat,
        lng=lng,
        source_url=source_url,
        is_refill=is_refill,
        refill_type=refill_type,
        refill_items=refill_items,
        refill_evidence=evidence,
        missing=_missing(not_shown | damaged),
        closed=detail.closed,
        listing_hash=listing_fingerprint(summary),
        detail_source=detail.source,
        field_sources=sources,
        damaged=tuple(sorted(damaged)),
        **merge.values,
    )


DAMAGE = "\ufffd"  # what a decoder leaves for bytes it could not read
_DAMAGE_CHECKED = ("name", "branch", "address", "road_address", "open_hours", "break_time", "last_order", "holiday")


def _is_damaged(value: Any) -> bool:
    if isinstance(value, str):
        return DAMAGE in value
    if isinstance(value, tuple):
        return any(_is_damaged(getattr(v, "name", v)) for v in value)
    return False


def _damaged_fields(detail: StoreDetail) -> frozenset[str]:
    """Detail fields whose text is damaged and had no clean substitute (see _undamaged)."""
    checked = (*_DAMAGE_CHECKED, "categories", "tags", "keywords", "menu")
    return frozenset(f for f in checked if _is_damaged(getattr(detail, f)))


def _undamaged(detail: StoreDetail, summary: StoreSummary) -> StoreDetail:
    """A damaged name, branch or address gives way to the search entry's clean one (the same store's,
    as the identity check made sure); a damaged text without one stays, and is kept out of the row."""
    clean = {
        f: getattr(summary, f)
        for f in ("name", "branch", "address", "road_address")
        if _is_damaged(getattr(detail, f)) and getattr(summary, f) and not _is_damaged(getattr(summary, f))
    }
    return replace(detail, **clean) if clean else detail


# Record fields a page may not show, and the detail fields whose absence they reflect.
PROTECTED: dict[str, tuple[str, ...]] = {
    "name": ("name",),
    "address": ("address",),
    "position": ("lat", "lng"),
    "categories": ("categories",),
    "branch": ("branch",),
    "road_address": ("road_address",),
    "phone": ("phone",),
    "rating": ("rating",),
    "review_count": ("rating_count",),
    "score": ("score",),
    "keywords": ("tags", "keywords"),
    "open_hours": ("open_hours",),
    "break_time": ("break_time",),
    "last_order": ("last_order",),
    "holiday": ("holiday",),
    "weekly_hours": ("weekly_hours",),
    "menu": ("menu",),
    "image_urls": ("images",),
    "facilities": ("facilities",),
    "best_menu": ("best_menu",),
    "open_status": ("open_status",),
}
# The refill classification and its evidence, which read the menu: kept with it.
DERIVED_FROM_MENU = "refill"
# Detail fields a source never shows (the detail page has no facilities and no best-menu marks): a
# store whose detail came from there keeps what another source stored.
NOT_SHOWN_BY: dict[str, frozenset[str]] = {"html": frozenset({"facilities", "best_menu", "open_status"})}


def _missing(not_shown: frozenset[str]) -> tuple[str, ...]:
    """Record fields the store's own answer did not show (a miss, not a removal), or showed damaged: a
    stored value of these stays (unless it came from a search entry and a search entry gives a new one:
    see storage/columns.py). Values derived from the menu follow it ("refill")."""
    missing = [name for name, sources in PROTECTED.items() if all(s in not_shown for s in sources)]
    if "menu" in missing:
        missing.append(DERIVED_FROM_MENU)
    return tuple(missing)
