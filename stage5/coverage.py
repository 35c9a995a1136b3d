"""Field coverage: on what share of pages each field was found, per page kind (and detail layout).

A real site changes its markup without notice; a parser that stops finding a field then says nothing.
Counting, per run, how many pages yielded each field, and comparing with the last successful runs,
turns that silence into a `field_coverage_drop`. Plain JSON all the way: counts add up across units,
workers and resumed sessions.

    {"detail": {"pages": 120, "fields": {"menu": 118, …}, "ld_fallbacks": 0},
     "detail:classic": {…}, "search": {"pages": 300, "fields": {…}}}
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

from stage5.models import StoreDetail, StoreSummary

Coverage = dict[str, dict[str, Any]]

DETAIL_FIELDS = (
    "name",
    "branch",
    "address",
    "road_address",
    "lat",
    "lng",
    "phone",
    "rating",
    "rating_count",
    "score",
    "categories",
    "tags",
    "keywords",
    "menu",
    "open_hours",
    "break_time",
    "last_order",
    "holiday",
    "weekly_hours",
    "images",
    "facilities",
    "open_status",
)
SEARCH_FIELDS = (
    "name",
    "branch",
    "address",
    "road_address",
    "phone",
    "lat",
    "lng",
    "score",
    "user_score",
    "review_count",
    "categories",
    "keywords",
    "images",
)


def _found(record: object, names: Iterable[str]) -> list[str]:
    return [n for n in names if getattr(record, n) not in (None, (), "", {})]


def _count(coverage: Coverage, kind: str, fields: list[str], fallbacks: int = 0) -> None:
    entry = coverage.setdefault(kind, {"pages": 0, "fields": {}})
    entry["pages"] += 1
    for name in fields:
        entry["fields"][name] = entry["fields"].get(name, 0) + 1
    if fallbacks:
        entry["ld_fallbacks"] = entry.get("ld_fallbacks", 0) + fallbacks


def count_detail(coverage: Coverage, detail: StoreDetail) -> None:
    """Counted three ways: all details, per source ("source:api", "source:html") and per layout
    ("detail:jsonld", "detail:classic", "detail:no-jsonld" for pages, "detail:api" for the API)."""
    found = _found(detail, DETAIL_FIELDS)
    _count(coverage, "detail", found, detail.fallbacks)
    _count(coverage, f"source:{detail.source}", found, detail.fallbacks)
    _count(coverage, f"detail:{detail.layout}", found, detail.fallbacks)
    if detail.unread:  # hours texts no notation of §3c reads: kept raw on the detail, counted here
        for kind in ("detail", f"detail:{detail.layout}"):
            coverage[kind]["unread_values"] = coverage[kind].get("unread_values", 0) + len(detail.unread)


def count_search(coverage: Coverage, stores: Iterable[StoreSummary]) -> None:
    """Each store of a search answer counts as one 'page' of kind search."""
    for summary in stores:
        _count(coverage, "search", _found(summary, SEARCH_FIELDS))


def merge(parts: Iterable[Coverage]) -> Coverage:
    total: Coverage = {}
    for part in parts:
        for kind, entry in part.items():
            into = total.setdefault(kind, {"pages": 0, "fields": {}})
            into["pages"] += entry.get("pages", 0)
            for name, n in entry.get("fields", {}).items():
                into["fields"][name] = into["fields"].get(name, 0) + n
            for counter in ("ld_fallbacks", "unread_values"):
                if entry.get(counter):
                    into[counter] = into.get(counter, 0) + entry[counter]
    return total


def shares(coverage: Coverage, kind: str) -> dict[str, float]:
    """field -> share of the kind's pages (0..1) that yielded it; every known field, found or not."""
    entry = coverage.get(kind) or {}
    pages = entry.get("pages", 0)
    names = SEARCH_FIELDS if kind == "search" else DETAIL_FIELDS
    return {n: entry.get("fields", {}).get(n, 0) / pages for n in names} if pages else {}


MIN_PAGES = 30  # fewer pages of a kind than this say too little to call a drop


SOURCES = ("html", "api")


def by_source(coverage: Coverage, source: str) -> dict[str, Any]:
    """The details one source gave in a run. Runs from before the API was a source counted only "detail":
    all of it came from the page."""
    if any(kind.startswith("source:") for kind in coverage):
        return coverage.get(f"source:{source}") or {}
    return (coverage.get("detail") or {}) if source == "html" else {}


def drops(now: Coverage, history: list[Coverage], points: float) -> list[dict[str, Any]]:
    """Fields whose share fell more than `points` below the median of earlier runs: in search answers, and
    in the details of each source compared with that source's own history (the API and the page give
    different fields, so a run that switches source is no drop), with the detail layout where it fell
    most. No history, or fewer than MIN_PAGES pages (a change-driven night fetches few details): nothing."""
    found = []
    views: list[tuple[str, str | None, dict[str, Any], list[dict[str, Any]]]]
    views = [("search", None, now.get("search") or {}, [h.get("search") or {} for h in history])]
    views += [("detail", src, by_source(now, src), [by_source(h, src) for h in history]) for src in SOURCES]
    for kind, source, current_entry, earlier_entries in views:
        if current_entry.get("pages", 0) < MIN_PAGES:
            continue
        current = shares({kind: current_entry}, kind)
        earlier = [s for s in (shares({kind: e}, kind) for e in earlier_entries) if s]
        if not current or not earlier:
            continue
        for field, share in current.items():
            median = statistics.median(s.get(field, 0.0) for s in earlier)
            if (median - share) * 100 > points:
                found.append(
                    {
                        "kind": kind,
                        "field": field,
                        "share": round(share, 3),
                        "median": round(median, 3),
                        "layout": _worst_layout(now, field) if kind == "detail" else None,
                        **({"source": source} if source else {}),
                    }
                )
    return found


def _worst_layout(coverage: Coverage, field: str) -> str | None:
    """The detail layout with the most pages missing `field`: where to look first."""
    misses = {
        kind.split(":", 1)[1]: entry["pages"] - entry.get("fields", {}).get(field, 0)
        for kind, entry in coverage.items()
        if kind.startswith("detail:")
    }
    return max(misses, key=lambda k: misses[k]) if misses and max(misses.values()) > 0 else None


def moved(now: Coverage, history: list[Coverage], kind: str, at_least: float = 0.05) -> dict[str, tuple[float, float]]:
    """field -> (median before, now) for the fields whose share moved by `at_least` or more."""
    current = shares(now, kind)
    earlier = [s for s in (shares(h, kind) for h in history) if s]
    if not current or not earlier:
        return {}
    medians = {f: statistics.median(s.get(f, 0.0) for s in earlier) for f in current}
    return {f: (medians[f], share) for f, share in current.items() if abs(share - medians[f]) >= at_least}
