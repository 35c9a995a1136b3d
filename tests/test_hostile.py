"""Hostile answers: a loopback site passes the replica through and spoils the target stores' pages (or
every search). Against a healthy baseline crawl in the same schema: no stored row is lost, blanked or
blocked, the spoiled stores are named, memory stays in budget, and the run says what went wrong."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import redis as redis_client
from helpers import query

from stage5.cache import Kind, cache_key
from stage5.crawl.run import RunSummary, run_crawl
from stage5.replica.hostile import REWRITES, HostileProcess, PeakMemory, is_target
from stage5.replica.process import ReplicaProcess
from stage5.replica.render import detail_page, layout_for
from stage5.replica.world import World
from stage5.report import load_result
from stage5.site.diningcode import Endpoints

DISTRICTS = "마포구,구로구,강남구"
EVERY = 10


def targets(world: World, case: str = "") -> set[str]:
    """The stores of DISTRICTS a correct crawl keeps and the hostile site spoils (for a rewrite: whose page,
    in the layout the replica serves it in, the rewrite really changes)."""
    names = DISTRICTS.split(",")
    chosen = {s.rid: s for s in world.stores if s.district in names and s.expect == "store" and is_target(s.rid, EVERY)}
    if case in REWRITES:
        return {rid for rid, s in chosen.items() if REWRITES[case](page := detail_page(s, layout_for(rid))) != page}
    return set(chosen)


def rows(settings: Any) -> dict[str, tuple[Any, ...]]:
    """rid -> every data column of the stored row (what must not change when a run meets garbage)."""
    found = query(
        settings,
        "SELECT diningcode_place_id, name, address, review_count, menu_items::text, open_hours, content_hash"
        " FROM stores",
    )
    return {r[0]: r[1:] for r in found}


def rejections(settings: Any) -> dict[str, str]:
    return dict(query(settings, "SELECT diningcode_place_id, reason FROM rejected_stores"))


@pytest.fixture
def baseline(make_settings: Any, replica: ReplicaProcess) -> Iterator[tuple[Any, dict[str, tuple[Any, ...]]]]:
    """A healthy crawl of DISTRICTS first: the rows a hostile run must leave as they are."""
    settings = make_settings(site=replica.url, districts=DISTRICTS, workers=2)
    summary = asyncio.run(run_crawl(settings, settings.database_url))
    assert summary.status == "succeeded"
    yield settings, rows(settings)


async def hostile_run(settings: Any, replica: ReplicaProcess, case: str, **overrides: Any) -> RunSummary:
    with HostileProcess(replica.url, case, EVERY) as site:
        spoiled = settings.model_copy(update={"site": site.url, **overrides})
        return await run_crawl(spoiled, spoiled.database_url, overrides.get("redis_url"))


@pytest.mark.parametrize("case", ["poison_number", "nul_name"])
async def test_a_poison_value_rejects_its_store_only(
    case: str, baseline: Any, replica: ReplicaProcess, small_world: World
) -> None:
    settings, before = baseline
    spoiled = targets(small_world, case)
    assert spoiled
    summary = await hostile_run(settings, replica, case)
    assert summary.status == "succeeded" and summary.rejected >= len(spoiled)
    reasons = rejections(settings)
    assert all("unstorable value" in reasons[rid] for rid in spoiled), reasons
    assert rows(settings) == before  # every row kept, the spoiled ones as they were
    again = await run_crawl(settings, settings.database_url)  # and the next run is not blocked
    assert again.status == "succeeded" and again.rejected == 0


@pytest.mark.parametrize("case", ["rating_string", "geo_list", "nan_numbers", "huge_price"])
async def test_wrongly_shaped_values_fall_back_and_lose_nothing(
    case: str, baseline: Any, replica: ReplicaProcess, small_world: World
) -> None:
    settings, before = baseline
    summary = await hostile_run(settings, replica, case)
    assert summary.status == "succeeded" and summary.units_failed == 0 and summary.rejected == 0
    if case in ("rating_string", "geo_list", "nan_numbers"):  # read from the markup instead, and counted
        assert summary.coverage["detail"].get("ld_fallbacks", 0) >= len(targets(small_world, case)) > 0
    after = rows(settings)
    assert after.keys() == before.keys()
    for rid, row in after.items():
        if rid not in targets(small_world, case) or case != "huge_price":
            assert row[:3] == before[rid][:3]  # name, address, review count stand
    stored, _ = await load_result(settings)
    assert stored.keys() == before.keys()


@pytest.mark.parametrize("case", ["gzip_bomb", "huge_body", "endless"])
async def test_huge_answers_are_cut_and_memory_stays_in_budget(
    case: str, baseline: Any, replica: ReplicaProcess, small_world: World
) -> None:
    settings, before = baseline
    with PeakMemory() as memory:
        summary = await hostile_run(settings, replica, case, memory_budget_mb=1024)
    assert memory.peak_mb < 1024, f"peak {memory.peak_mb:.0f} MB"
    assert summary.status == "partial"
    failed = {u["url"].split("rid=")[-1]: u["reason"] for u in summary.failed_units}
    assert failed.keys() == targets(small_world)
    assert all("answer too large" in reason for reason in failed.values()), failed
    assert rows(settings) == before


async def test_a_page_nested_too_deep_is_incomplete_not_empty(
    baseline: Any, replica: ReplicaProcess, small_world: World
) -> None:
    settings, before = baseline
    summary = await hostile_run(settings, replica, "deep_nesting")
    assert summary.status == "partial"
    failed = {u["url"].split("rid=")[-1]: u["reason"] for u in summary.failed_units}
    assert failed.keys() == targets(small_world)
    assert all("partly read" in reason for reason in failed.values())
    assert rows(settings) == before  # their menus and hours were not blanked


async def test_texts_that_stall_naive_patterns_parse_within_the_deadline(
    baseline: Any, replica: ReplicaProcess, small_world: World
) -> None:
    """60,000-digit prices and hour lines: quadratic patterns took ~50 s a page; the deadline makes any
    such stall a failed unit, so a clean run shows the patterns are not quadratic any more."""
    settings, before = baseline
    summary = await hostile_run(settings, replica, "long_digits", unit_deadline_s=20, worker_stall_s=30)
    assert summary.status == "succeeded" and summary.units_failed == 0
    after = rows(settings)
    assert after.keys() == before.keys()


async def test_a_site_that_turns_empty_is_suspect_and_changes_nothing(
    baseline: Any, replica: ReplicaProcess, redis_url: str
) -> None:
    settings, before = baseline
    namespace = f"hostile-{settings.db_schema}"
    summary = await hostile_run(settings, replica, "empty_search", redis_url=redis_url, cache_namespace=namespace)
    assert summary.status == "partial" and summary.stores == 0
    assert {s["district"] for s in summary.suspect_districts} == set(DISTRICTS.split(","))
    assert rows(settings) == before
    client = redis_client.Redis.from_url(redis_url)
    try:
        left = list(client.scan_iter(match=f"stage5:v1:{namespace}:search:*"))
    finally:
        client.close()
    assert left == []  # a suspect district's answers are not kept for the next run


async def test_an_empty_search_answer_is_cached_briefly(
    make_settings: Any, replica: ReplicaProcess, redis_url: str
) -> None:
    """A first run (no baseline, so not suspect) against a site answering every search with nothing:
    those answers live `cache_ttl_empty_s`, not the 6 hours of a real answer."""
    namespace = f"empty-{make_settings().db_schema}"
    settings = make_settings(districts="도봉구", cache_namespace=namespace, cache_ttl_empty_s=77)
    summary = await hostile_run(settings, replica, "empty_search", redis_url=redis_url)
    client = redis_client.Redis.from_url(redis_url)
    try:
        ttls = [client.ttl(k) for k in client.scan_iter(match=f"stage5:v1:{namespace}:search:*")]
        for key in client.scan_iter(match=f"stage5:v1:{namespace}:*"):
            client.delete(key)
    finally:
        client.close()
    assert summary.stores == 0 and summary.suspect_districts == []
    assert ttls and all(0 < t <= 77 for t in ttls), ttls


async def test_a_damaged_cache_entry_is_deleted_and_fetched_again(
    make_settings: Any, replica: ReplicaProcess, small_world: World, redis_url: str
) -> None:
    namespace = f"damaged-{make_settings().db_schema}"
    settings = make_settings(site=replica.url, districts="도봉구", redis_url=redis_url, cache_namespace=namespace)
    first = await run_crawl(settings, settings.database_url, redis_url)
    rid = next(s.rid for s in small_world.stores if s.district == "도봉구" and s.expect == "store")
    key = cache_key(namespace, Kind.DETAIL, "GET", Endpoints.for_site(replica.url).detail_url(rid))
    client = redis_client.Redis.from_url(redis_url)
    try:
        assert client.exists(key)
        client.set(key, b"not zlib at all")
        again = await run_crawl(settings, settings.database_url, redis_url)
        assert client.get(key) != b"not zlib at all"  # replaced by a fresh answer
        for k in client.scan_iter(match=f"stage5:v1:{namespace}:*"):
            client.delete(k)
    finally:
        client.close()
    assert again.cache_corrupt == 1 and again.status == "succeeded" and again.stores == first.stores
