"""Pure validation: a search summary + a detail page -> a StoreRecord, or a Rejection with its reason.

Also the refill classification: search results for 무한리필 include stores that are not
all-you-can-eat, so a store is a refill store only when its own words say so; the words found are
kept as evidence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from stage5.models import Rejection, StoreDetail, StoreRecord, StoreSummary
from stage5.site.seoul import SEOUL_LAT, SEOUL_LNG, district_of_address, in_seoul

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
    yield "name", detail.name or summary.name
    for c in (*summary.categories, *detail.categories):
        yield "category", c
    for k in summary.keywords:
        yield "keyword", k
    for t in detail.tags:
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


def build_record(summary: StoreSummary, detail: StoreDetail, district: str, source_url: str) -> StoreRecord | Rejection:
    """Merge what the search and the detail page say; the detail page wins where both speak."""

    def reject(reason: str) -> Rejection:
        return Rejection(summary.rid, reason, source_url, district, {"name": summary.name, "address": address})

    address = detail.address or summary.address
    name = detail.name or summary.name
    if not name:
        return reject("missing name")
    if not address:
        return reject("missing address")
    actual = district_of_address(address)
    if actual is None:
        return reject(f"address outside Seoul: {address}")
    lat, lng = _fix_coordinates(
        detail.lat if detail.lat is not None else summary.lat,
        detail.lng if detail.lng is not None else summary.lng,
    )
    if lat is None or lng is None:
        return reject("missing coordinates")
    if not in_seoul(lat, lng):
        return reject(f"coordinates outside Seoul: {lat},{lng}")
    is_refill, refill_type, refill_items, evidence = classify_refill(summary, detail)
    prices = [m.price for m in detail.menu if m.price]
    images = tuple(dict.fromkeys(i for i in (*detail.images, summary.image, *summary.images) if i))
    return StoreRecord(
        rid=summary.rid,
        name=name,
        district=actual,
        address=address,
        lat=round(lat, 7),
        lng=round(lng, 7),
        source_url=source_url,
        branch=detail.branch or summary.branch,
        road_address=detail.road_address or summary.road_address,
        phone=normalize_phone(detail.phone or summary.phone),
        categories=tuple(dict.fromkeys((*summary.categories, *detail.categories))),
        keywords=tuple(dict.fromkeys((*summary.keywords, *detail.tags))),
        rating=_in_range(detail.rating if detail.rating is not None else summary.user_score, 0, 5),
        review_count=detail.rating_count if detail.rating_count is not None else summary.review_count,
        score=_in_range(detail.score if detail.score is not None else summary.score, 0, 100),
        open_hours=detail.open_hours,
        break_time=detail.break_time,
        last_order=detail.last_order,
        holiday=detail.holiday,
        menu=detail.menu,
        price_min=min(prices) if prices else None,
        price_max=max(prices) if prices else None,
        image_urls=images,
        is_refill=is_refill,
        refill_type=refill_type,
        refill_items=refill_items,
        refill_evidence=evidence,
    )
