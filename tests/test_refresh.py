"""Change-driven refresh: a nightly run fetches a detail page only when the store is new, its listing
changed, its last fetch failed, or its detail is old (spread over the nights); the rest are kept."""

from __future__ import annotations

from typing import Any

from helpers import SCALE, SEED, query

from stage5.crawl.refresh import Stored, fetch_reason
from stage5.crawl.run import run_crawl
from stage5.models import StoreSummary
from stage5.replica.process import ReplicaProcess
from stage5.replica.render import layout_for
from stage5.replica.truth import field_errors
from stage5.replica.world import build_world
from stage5.report import load_result
from stage5.validate import listing_fingerprint


def test_the_reasons_in_order() -> None:
    summary = StoreSummary(rid="abc", name="x", phone="02-123-4567")
    same = listing_fingerprint(summary)
    assert fetch_reason(summary, None, 10, 7) == "new"
    assert fetch_reason(summary, Stored(same, 9, True), 10, 7) == "retry"
    assert fetch_reason(summary, Stored("other", 9, False), 10, 7) == "listing_changed"
    assert fetch_reason(summary, Stored(same, 3, False), 10, 7) == "age"  # 7 runs old
    due = [run for run in range(20, 34) if fetch_reason(summary, Stored(same, run - 1, False), run, 7)]
    assert len(due) == 2 and due[1] - due[0] == 7  # one night in seven, spread by the store id


async def crawl_day(settings: Any, day: int) -> Any:
    with ReplicaProcess(SEED, SCALE, day=day) as site:
        return await run_crawl(settings.model_copy(update={"site": site.url}), settings.database_url)


def detail_runs(settings: Any) -> dict[str, int]:
    return dict(query(settings, "SELECT diningcode_place_id, detail_run_id FROM stores"))


async def test_nights_fetch_only_what_may_have_changed(make_settings: Any) -> None:
    settings = make_settings(detail_refresh="changed", detail_max_age_runs=3)
    first = await crawl_day(settings, 0)
    assert first.details == {"new": first.stores}
    previous = build_world(SEED, SCALE, 0)
    for day in (1, 2, 3):
        night = await crawl_day(settings, day)
        world = build_world(SEED, SCALE, day)
        assert night.status == "succeeded" and night.requests < first.requests * 0.7  # a third age out nightly here
        reasons = {k: v for k, v in night.details.items() if k != "not_modified"}  # 304s are fetched pages
        assert sum(reasons.values()) == night.stores  # every store seen: fetched or kept
        fetched = {rid for rid, run in detail_runs(settings).items() if run == night.run_id}
        changed_listing = {
            s.rid
            for s in world.stores
            if s.listed and s.expect == "store" and s.rid in previous.by_rid and s.phone != previous.by_rid[s.rid].phone
        }
        assert changed_listing and changed_listing <= fetched
        stored, _ = await load_result(settings)
        for rid in fetched:  # what was fetched tonight is exactly tonight's truth
            assert field_errors(world.by_rid[rid], stored[rid], layout_for(rid)) == [], rid
        previous = world
    assert night.details.get("age", 0) > 0 and night.details.get("skipped_unchanged", 0) > night.stores / 2
    # Aged pages are asked conditionally: most did not change, and the site answered 304 without a body.
    assert 0 < night.details["not_modified"] <= night.details["age"] + night.details.get("listing_changed", 0)
