"""Scoring a crawl against the replica's ground truth: what is missing, extra, misfiled, or wrong in any
field (name, branch, address, phone, position, rating, hours, weekly table, menu, prices, images …)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stage5.replica.profile_api import OPEN_STATUS, best_menu_of, facilities_of
from stage5.replica.render import layout_for
from stage5.replica.world import Store, World

# stored column -> truth key
FIELDS: dict[str, str] = {
    "name": "name",
    "branch": "branch",
    "address": "address",
    "road_address": "road_address",
    "phone_number": "phone",
    "position_lat": "lat",
    "position_lng": "lng",
    "diningcode_rating": "rating",
    "review_count": "review_count",
    "diningcode_score": "score",
    "keywords": "keywords",
    "open_hours": "open_hours",
    "break_time": "break_time",
    "last_order": "last_order",
    "holiday": "holiday",
    "weekly_hours": "weekly_hours",
    "menu_items": "menu",
    "price_min": "price_min",
    "price_max": "price_max",
    "image_urls": "image_urls",
    "facilities": "facilities",
    "best_menu": "best_menu",
    "open_status": "open_status",
}
API = "api"  # the "layout" of a store whose detail was read from the profile API


@dataclass
class Score:
    expected: int  # Seoul stores a correct crawl stores (refill or not)
    expected_refill: int
    stored: int
    stored_refill: int
    missing: list[str] = field(default_factory=list)  # expected, not stored
    extra: list[str] = field(default_factory=list)  # stored, not expected (outside Seoul, defective)
    wrong_district: list[str] = field(default_factory=list)
    wrong_refill_flag: list[str] = field(default_factory=list)
    wrong_fields: dict[str, list[str]] = field(default_factory=dict)  # column -> rids whose value differs
    fields_checked: int = 0
    rejected_expected: int = 0
    rejected_found: int = 0

    @property
    def perfect(self) -> bool:
        wrong = self.missing or self.extra or self.wrong_district or self.wrong_refill_flag or self.wrong_fields
        return not wrong and self.rejected_found == self.rejected_expected


def _comparable(column: str, value: Any) -> Any:
    """The stored value as the truth writes it (a real comes back as 4.800000190734863, menus as dicts)."""
    if value is None:
        return None
    if column == "diningcode_rating":
        return round(float(value), 1)
    if column == "menu_items":
        return [[m["name"], m["price"]] for m in value]
    if column in ("keywords", "image_urls", "facilities", "best_menu"):
        return list(value)
    return value


def field_errors(store: Store, row: dict[str, Any], layout: str) -> list[str]:
    """The columns of a stored row that differ from what a correct parse of `layout` yields."""
    truth = {**store.truth(layout), **api_truth(store, layout)}
    return [c for c, key in FIELDS.items() if c in row and _comparable(c, row[c]) != truth[key]]


def api_truth(store: Store, layout: str) -> dict[str, Any]:
    """The fields only the profile API gives (a crawl of pages alone stores none of them); the open status
    comes from the search answer otherwise."""
    from_api = layout == API
    closed = from_api and store.closed_on is not None
    return {
        "facilities": list(facilities_of(store)) if from_api else [],
        "best_menu": list(best_menu_of(store)) if from_api else [],
        "open_status": "폐업한 가게입니다" if closed else OPEN_STATUS,
    }


def score(
    world: World,
    stored: dict[str, dict[str, Any]],
    rejected: set[str],
    districts: list[str],
    layout_of: Callable[[str], str] = layout_for,
) -> Score:
    """`stored`: rid -> the stored row's fields; `rejected`: rids in rejected_stores; `layout_of`: the
    layout the replica served each store's page in (its default mix unless told otherwise). A store whose
    row says it was read from the profile API (detail_source) is scored as the API gives it."""
    wanted = [s for s in world.stores if s.district in districts]
    expected = {s.rid: s for s in wanted if s.expect == "store"}
    to_reject = {s.rid for s in wanted if s.expect == "reject"}
    result = Score(
        expected=len(expected),
        expected_refill=sum(s.is_refill for s in expected.values()),
        stored=len(stored),
        stored_refill=sum(bool(row["is_confirmed_refill"]) for row in stored.values()),
        rejected_expected=len(to_reject),
        rejected_found=len(to_reject & rejected),
    )
    result.missing = sorted(set(expected) - set(stored))
    result.extra = sorted(set(stored) - set(expected))
    for rid, row in stored.items():
        truth = expected.get(rid)
        if truth is None:
            continue
        if truth.district != row["district"]:
            result.wrong_district.append(rid)
        if truth.is_refill != row["is_confirmed_refill"]:
            result.wrong_refill_flag.append(rid)
        layout = API if row.get("detail_source") == "api" else layout_of(rid)  # as the store was read
        for column in field_errors(truth, row, layout):
            result.wrong_fields.setdefault(column, []).append(rid)
        result.fields_checked += len(FIELDS)
    return result
