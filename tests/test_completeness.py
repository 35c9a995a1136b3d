"""Complete listings (issue 21): a search that stops short of the site's own count is truncated, split by
coordinates until each part fits, and a district that stays short is `incomplete` — the run is partial and
none of its stores counts a missed run. Entries that are not a store are skipped and counted. Against a
healthy baseline in the same schema, thinned, capped and ad-laden searches change no stored value."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import redis as redis_client
from helpers import SEED, crawl_command, query

from stage5.crawl.completeness import district_listings
from stage5.crawl.master import Entries
from stage5.crawl.run import RunSummary, run_crawl
from stage5.models import StoreSummary
from stage5.replica.hostile import HostileProcess
from stage5.replica.process import ReplicaProcess
from stage5.replica.server import Faults
from stage5.replica.truth import score
from stage5.replica.world import build_world
from stage5.report import load_result, print_summary
from stage5.site.diningcode import queries_for, split_query
from stage5.site.parsers import distance_m, parse_search
from stage5.site.seoul import DISTRICT_BY_NAME, SEOUL_BOX
from stage5.site.seoul import distance_m as metres
from stage5.units import SearchUnit

DISTRICTS = "마포구,구로구,강남구"
DENSEST = "강남구,마포구,송파구,서초구"


# --- the site's answers, read -----------------------------------------------------------------------


def _answer(items: list[Any], total: int, rcount: int | None = None) -> bytes:
    section: dict[str, Any] = {"total_cnt": total, "list": items}
    if rcount is not None:
        section["params"] = {"rcount": rcount}
    return json.dumps({"result_code": "100", "result_data": {"poi_section": section}}, ensure_ascii=False).encode()


def test_an_entry_that_is_not_a_store_is_skipped_and_counted() -> None:
    store = {"v_rid": "sJL6OuwQfW9a", "nm": "강남 고기굽는집", "distance": "1.2km"}
    ad = {"nm": "", "ad_yn": "Y", "title": "[광고]"}
    page = parse_search(_answer([ad, store, "banner", {"v_rid": "x"}], 10000, rcount=23456))
    assert [s.rid for s in page.stores] == ["sJL6OuwQfW9a"]
    assert page.skipped == 3
    assert (page.total, page.count) == (10000, 23456)  # total_cnt capped, rcount the true count
    assert page.distances == (1150.0,)
    assert parse_search(_answer([store], 7)).count == 7  # no rcount: total_cnt


@pytest.mark.parametrize(
    ("text", "least"), [("451m", 450.5), ("1.2km", 1150.0), ("3km", 2500.0), ("", None), ("가까움", None), (None, None)]
)
def test_a_stated_distance_is_read_as_the_least_it_can_mean(text: Any, least: float | None) -> None:
    assert distance_m(text) == least


def test_a_query_splits_into_parts_that_cover_its_area_and_bottoms_out() -> None:
    root = queries_for(DISTRICT_BY_NAME["강남구"])[0]
    assert root.anchor and root.keyword == "강남구 무한리필"
    parts = split_query(root, 150)
    assert len(parts) == 4 and all(p.anchor and p.depth == 1 and p.keyword == root.keyword for p in parts)
    # Every corner and the centre of Seoul's box lies in some part's circle.
    min_lat, min_lng, max_lat, max_lng = SEOUL_BOX
    for lat, lng in itertools.product((min_lat, (min_lat + max_lat) / 2, max_lat), (min_lng, max_lng)):
        assert any(metres(p.lat, p.lng, lat, lng) <= p.radius_m for p in parts if p.radius_m)
    assert all(p.form(1, 20)["distance"] == f"{p.radius_m:.0f}" for p in parts)
    deeper = parts
    while deeper:
        smallest = deeper
        deeper = split_query(deeper[0], 2000)
    assert smallest[0].radius_m is not None and smallest[0].radius_m >= 2000  # no part below the minimum


def test_entries_that_disagree_are_settled_the_same_way_in_any_order() -> None:
    plan = queries_for(DISTRICT_BY_NAME["마포구"])
    address = "서울특별시 마포구 서교동 1"
    own = StoreSummary("r1", "마포 돼지상회", branch="홍대점", address=address, lat=37.55, lng=126.92)
    forged = replace(own, branch="위조점", lat=37.40, lng=127.10, categories=("뷔페",))
    units = [SearchUnit(1, plan[2]), SearchUnit(2, plan[0]), SearchUnit(3, split_query(plan[0], 150)[0])]
    offers = [(units[0], forged), (units[1], own), (units[2], replace(own, lat=37.551))]
    kept = set()
    for order in itertools.permutations(offers):
        entries = Entries("마포구")
        disagreements = sum(entries.offer(unit, [s]) for unit, s in order)
        (chosen,) = entries.chosen()
        kept.add(chosen)
        assert disagreements == 2
    assert kept == {own}  # the district's own query, not the one that happened to answer first


def _row(district: str, **result: Any) -> tuple[str, str, str, dict[str, Any]]:
    base = {"anchor": True, "depth": 0, "failed": [], "listed": [], "skipped": 0}
    return (district, "search", "done", {**base, **result})


def test_a_district_is_complete_when_its_query_and_parts_reach_the_sites_count() -> None:
    rows = [
        _row("강남구", count=5, listed=["a", "b"], truncated=True, split=4),
        _row("강남구", depth=1, count=3, listed=["a", "c", "d"]),
        _row("강남구", depth=1, count=2, listed=["e"], truncated=True),  # short, but the others make up for it
        _row("강남구", anchor=False, count=120, listed=["z"], skipped=2),  # not judged by
        _row("마포구", count=4, listed=["m"], truncated=True, split=4),
        _row("마포구", depth=1, count=3, listed=["m", "n"], truncated=True),
        _row("구로구", count=2, listed=["g", "h"], failed=[{"url": "u"}]),  # all listed: the failure costs nothing
        _row("관악구", count=3, listed=["k"], failed=[{"url": "u"}]),
        ("도봉구", "search", "pending", None),
    ]
    verdicts = district_listings(["강남구", "마포구", "구로구", "관악구", "도봉구"], rows)
    gangnam = verdicts["강남구"]
    assert (gangnam.status, gangnam.site_count, gangnam.found, gangnam.split, gangnam.skipped_entries) == (
        "complete",
        5,
        5,
        1,
        2,
    )
    assert verdicts["마포구"].status == "incomplete" and verdicts["마포구"].bottomed == 1
    assert "found 2 of the 4" in verdicts["마포구"].reason
    assert verdicts["구로구"].status == "complete"
    assert verdicts["관악구"].status == "incomplete" and "1 search pages failed" in verdicts["관악구"].reason
    assert verdicts["도봉구"].status == "incomplete" and "not finished" in verdicts["도봉구"].reason


# --- crawls against the replica -----------------------------------------------------------------------


def stored_state(settings: Any) -> dict[str, tuple[Any, ...]]:
    """rid -> the stored values a bad listing must not move (missed runs and status included)."""
    found = query(
        settings,
        "SELECT diningcode_place_id, name, address, district, position_lat, position_lng, menu_items::text,"
        " is_confirmed_refill, content_hash, status, missed_runs FROM stores",
    )
    return {r[0]: r[1:] for r in found}


def saved_listings(settings: Any, run_id: int) -> dict[str, Any]:
    ((completeness,),) = query(settings, "SELECT completeness FROM crawl_runs WHERE id = %s", run_id)
    return dict(completeness)


@pytest.fixture
def baseline(make_settings: Any, replica: ReplicaProcess) -> Iterator[tuple[Any, dict[str, tuple[Any, ...]]]]:
    """A healthy crawl first; one missed run would presume a store closed (vanish_after_runs=1)."""
    settings = make_settings(site=replica.url, districts=DISTRICTS, workers=2, vanish_after_runs=1)
    summary = asyncio.run(run_crawl(settings, settings.database_url))
    assert summary.status == "succeeded" and summary.incomplete_districts == []
    assert all(v["found"] >= v["site_count"] > 0 for v in summary.listings.values())
    yield settings, stored_state(settings)


async def _through(settings: Any, replica: ReplicaProcess, case: str, **overrides: Any) -> RunSummary:
    with HostileProcess(replica.url, case) as site:
        spoiled = settings.model_copy(update={"site": site.url, **overrides})
        return await run_crawl(spoiled, spoiled.database_url, overrides.get("redis_url"))


async def test_thinned_listings_are_incomplete_and_no_store_is_missed(
    baseline: Any, replica: ReplicaProcess, capsys: pytest.CaptureFixture[str], redis_url: str
) -> None:
    """Pages past page 5 answer empty while the count says more; with splitting held back (a minimum radius
    larger than Seoul) the districts stay short: partial, named, and nothing about their stores changes."""
    settings, before = baseline
    namespace = f"thinned-{settings.db_schema}"
    summary = await _through(
        settings,
        replica,
        "thinned",
        page_size=5,
        split_min_radius_m=100_000,
        redis_url=redis_url,
        cache_namespace=namespace,
    )
    assert summary.status == "partial"
    short = {d for d, v in summary.listings.items() if v["found"] < v["site_count"]}
    assert short and summary.incomplete_districts == sorted(short)
    assert {"강남구", "마포구"} <= short  # the two with more stores than 5 pages of 5
    client = redis_client.Redis.from_url(redis_url)
    try:
        kept = {k.decode().split(":")[4] for k in client.scan_iter(match=f"stage5:v1:{namespace}:search:*")}
        for key in client.scan_iter(match=f"stage5:v1:{namespace}:*"):
            client.delete(key)
    finally:
        client.close()
    assert kept and not kept & short  # the short listings were not cached for the next run
    assert stored_state(settings) == before  # no name, place, menu, status or missed run moved
    assert saved_listings(settings, summary.run_id) == summary.listings
    print_summary(summary)
    shown = [line for line in capsys.readouterr().out.splitlines() if "COMPLETENESS" in line]
    assert {line.split()[1] for line in shown} == short
    assert all("no store of it was counted missing" in line for line in shown)


async def test_thinned_listings_are_completed_by_splitting(baseline: Any, replica: ReplicaProcess) -> None:
    """The same thinned site with splitting allowed: the parts each fit in five pages, so every district
    is complete again, every store listed, and nothing changed."""
    settings, before = baseline
    summary = await _through(settings, replica, "thinned", page_size=5)
    assert summary.status == "succeeded" and summary.incomplete_districts == []
    assert sum(v["split"] for v in summary.listings.values()) > 0
    assert summary.stores == len(before) and stored_state(settings) == before


async def test_an_ad_slot_on_every_page_is_skipped_and_counted(baseline: Any, replica: ReplicaProcess) -> None:
    settings, before = baseline
    summary = await _through(settings, replica, "ad_entry")
    assert summary.status == "succeeded" and summary.units_failed == 0
    assert summary.skipped_entries == summary.pages > 0  # one per page read, every page still read
    assert summary.stores == len(before) and stored_state(settings) == before


async def test_a_listing_that_cannot_be_completed_is_reported_and_misses_nothing(
    baseline: Any, capsys: pytest.CaptureFixture[str], replica_with: Any
) -> None:
    """One store per query, and no part smaller than 3 km: splitting bottoms out, and the parts together
    (by coordinates, then by neighbourhood) still list fewer stores than the site counts."""
    settings, before = baseline
    with replica_with(result_cap=1) as capped:
        tight = settings.model_copy(update={"site": capped.url, "split_min_radius_m": 3000})
        summary = await run_crawl(tight, tight.database_url)
    assert summary.status == "partial"
    assert set(summary.incomplete_districts) == set(DISTRICTS.split(","))
    for v in summary.listings.values():
        assert v["bottomed"] > 0 and v["split"] > 0 and v["found"] < v["site_count"]
    state = stored_state(settings)
    assert state.keys() == before.keys()
    assert all(row[-2:] == before[rid][-2:] for rid, row in state.items())  # status, missed runs
    print_summary(summary)
    assert "still truncated" in capsys.readouterr().out


async def test_splitting_stops_at_its_query_budget(make_settings: Any, replica_with: Any) -> None:
    """A site that answers one store per query would be split down to 150 m circles around every store:
    split_max_queries bounds the parts, and the listing is reported incomplete instead."""
    with replica_with(result_cap=1) as capped:
        settings = make_settings(site=capped.url, districts="강남구", split_max_queries=8)
        summary = await run_crawl(settings, settings.database_url)
    listing = summary.listings["강남구"]
    assert summary.status == "partial" and summary.incomplete_districts == ["강남구"]
    assert listing["split"] == 2 and listing["bottomed"] > 0  # the root and one part: 8 parts in all
    assert listing["queries"] == 1 + 8 + listing["neighbourhoods"]  # no part past the budget


@pytest.mark.parametrize("via", ["replica", "proxy"])
async def test_a_capped_crawl_of_the_densest_districts_finds_every_store(
    make_settings: Any, via: str, replica_with: Any
) -> None:
    """A 1x world behind 100 stores per query (the replica's own cap, or a proxy's): every store found."""
    world = build_world(SEED, 1.0)
    faults = Faults(result_cap=100) if via == "replica" else Faults()
    with replica_with(faults, scale=1.0) as site:
        settings = make_settings(site=site.url, districts=DENSEST, workers=2)
        if via == "proxy":
            with HostileProcess(site.url, "cap100") as proxy:
                summary = await run_crawl(settings.model_copy(update={"site": proxy.url}), settings.database_url)
        else:
            summary = await run_crawl(settings, settings.database_url)
    stored, rejected = await load_result(settings)
    result = score(world, stored, rejected, settings.districts)
    assert result.missing == [] and result.stored == result.expected > 900  # recall 1.0
    assert summary.status == "succeeded" and summary.incomplete_districts == []
    for district, v in summary.listings.items():
        print(
            f"{district}: site counts {v['site_count']}, found {v['found']}, {v['queries']} queries"
            f" ({v['split']} split, {v['neighbourhoods']} neighbourhoods)"
        )
        assert v["site_count"] > 100 and v["found"] >= v["site_count"] and v["split"] > 0


async def test_a_crawl_delay_over_the_maximum_stops_before_any_request(make_settings: Any, replica_with: Any) -> None:
    with replica_with(robots="User-agent: *\\nCrawl-delay: 86400\\n") as site:
        settings = make_settings(site=site.url, districts="도봉구")
        out = subprocess.run(crawl_command(settings), capture_output=True, text=True, timeout=60)
        assert site.stats()["by_endpoint"] == {"/robots.txt": 1}  # nothing else was asked
    assert out.returncode == 2, out.stderr
    assert "Crawl-delay: 86400" in out.stderr and "crawl_delay_max_s (60 s)" in out.stderr
    assert "STAGE5_CRAWL_DELAY_MAX_S" in out.stderr
    assert query(settings, "SELECT count(*) FROM crawl_runs") == [(0,)]  # no run left behind


@pytest.mark.parametrize(
    "count, listed, truncated",
    [
        (125, 125, False),  # pages past the cap: this site does not cap, the listing is whole
        (125, 100, True),  # stopped at the cap
        (100, 100, True),  # exactly the cap: the site may have stopped there
        (99, 99, False),
        (40, 35, True),  # short of its own count (thinned)
    ],
)
def test_a_query_is_truncated_when_its_pages_stop_short_or_at_the_cap(count: int, listed: int, truncated: bool) -> None:
    from stage5.crawl.pipeline import is_truncated

    assert is_truncated(count, listed, cap=100) is truncated
