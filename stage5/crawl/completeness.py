"""Whether a run's listings of each district were complete: the site's own count against what its pages
gave. Pure: a run's crawl_units rows in, one verdict per district out.

What "the site's count for a district" means. A district is searched with several overlapping keywords
("강남구 무한리필", "강남구 고기무한리필", "강남 무한리필", "강남역 무한리필" …); one store is listed by several of
them, so their counts cannot be summed. The district's own query, "{구} 무한리필" (the *anchor*), is the
broadest: the others narrow it by food or by station. Its count is the district's count, and the
district is complete when the distinct stores that query gave, itself or through its parts (by
coordinates, then by neighbourhood), reach that count; a failed page matters only when they do not. The
other queries still add stores (and entries), but are not what completeness is judged by. A part counts
only the entries inside it (within its radius, or in its neighbourhood); a part with nothing inside (the
site's soft filter answering wide) counts as empty.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from stage5.units import FINISHED, SearchOutcome, UnitRow, UnitState

Listing = Literal["complete", "incomplete"]


@dataclass
class DistrictListing:
    status: Listing
    site_count: int | None  # the district query's count (None: it was never answered)
    found: int  # distinct stores the district query and its parts gave
    queries: int  # the district query and its parts
    split: int  # of those, truncated ones split into parts
    neighbourhoods: int  # parts by neighbourhood (동), asked when the coordinate parts left a gap
    bottomed: int  # truncated parts that could not be split further (split_min_radius_m)
    failed_pages: int
    skipped_entries: int  # entries that were not a store, in every search of the district
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def district_listings(districts: Iterable[str], rows: Iterable[UnitRow]) -> dict[str, DistrictListing]:
    """One verdict per district from a run's (district, kind, state, result) unit rows."""
    family: dict[str, list[tuple[UnitState, SearchOutcome | None]]] = {d: [] for d in districts}
    skipped: dict[str, int] = dict.fromkeys(family, 0)
    for district, kind, state, result in rows:
        if kind != "search":
            continue
        outcome = None if result is None else SearchOutcome.from_json(result)
        skipped[district] = skipped.get(district, 0) + (outcome.skipped if outcome else 0)
        if outcome is None or outcome.anchor or state not in FINISHED:
            family.setdefault(district, []).append((state, outcome))
    return {d: _verdict(units, skipped.get(d, 0)) for d, units in family.items()}


def _verdict(units: list[tuple[UnitState, SearchOutcome | None]], skipped: int) -> DistrictListing:
    results = [r for state, r in units if state in FINISHED and r is not None]
    unfinished = len(units) - len(results)
    root = [r for r in results if r.depth == 0 and not r.area]
    site_count = root[0].count if root else None
    found = len({rid for r in results for rid in r.listed})
    split = sum(1 for r in results if r.split)
    bottomed = sum(1 for r in results if r.truncated and not r.split)
    failed = sum(len(r.failed) for r in results)
    areas = sum(1 for r in results if r.area and r.depth == 1)
    listing = DistrictListing("complete", site_count, found, len(units), split, areas, bottomed, failed, skipped)
    reasons = []
    if unfinished:
        reasons.append(f"{unfinished} of its searches not finished")
    if site_count is None:
        reasons.append("the district query was never answered")
    elif found < site_count:
        reasons.append(f"found {found} of the {site_count} stores the site counts")
    if failed and (site_count is None or found < site_count):
        reasons.append(f"{failed} search pages failed")
    if bottomed and (site_count is None or found < site_count):
        reasons.append(f"{bottomed} parts still truncated at the smallest radius")
    if reasons:
        listing.status, listing.reason = "incomplete", "; ".join(reasons)
    return listing
