"""Details from the profile API, from the page, or both (STAGE5_DETAIL_SOURCE): whole crawls of a replica world
into the real PostgreSQL, each scored field by field against the replica's truth; a switch of source between
runs changes no stored value and is no coverage drop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from helpers import query

from stage5.crawl.details import API_FAILURES_TO_PAUSE
from stage5.crawl.run import run_crawl
from stage5.replica.profile_api import fails
from stage5.replica.render import layout_for
from stage5.replica.truth import API, score
from stage5.replica.world import World
from stage5.report import load_result
from stage5.storage.columns import DATA_COLUMNS

DISTRICTS = "마포구,강남구,종로구"


def sources(settings: Any) -> dict[str, str]:
    return dict(query(settings, "SELECT diningcode_place_id, detail_source FROM stores"))  # type: ignore[arg-type]


async def crawl_and_score(settings: Any, world: World, layout_of: Callable[[str], str]) -> tuple[Any, Any]:
    summary = await run_crawl(settings, settings.database_url)
    stored, rejected = await load_result(settings)
    return summary, score(world, stored, rejected, settings.districts, layout_of)


def assert_perfect(result: Any) -> None:
    assert result.perfect, {
        "missing": result.missing[:5],
        "extra": result.extra[:5],
        "wrong": {k: v[:3] for k, v in result.wrong_fields.items()},
    }
    assert result.stored == result.expected > 50


async def test_crawl_through_the_api_scores_every_truth_field(
    make_settings: Any, small_world: World, replica_with: Any
) -> None:
    with replica_with() as site:
        settings = make_settings(site=site.url, districts=DISTRICTS, detail_source="api")
        # scored as each row says it was read (detail_source: api), as the demo's score is
        summary, result = await crawl_and_score(settings, small_world, layout_for)
        served = site.stats()
    assert summary.status == "succeeded" and summary.failed_units == []
    assert_perfect(result)
    assert set(sources(settings).values()) == {"api"}
    assert served["by_endpoint"].get("/profile.php", 0) == 0  # the page was never asked
    assert served["by_endpoint"]["/API/profile/"] == summary.stores + summary.rejected
    assert summary.coverage["source:api"]["pages"] == summary.coverage["detail:api"]["pages"] > 0
    assert "source:html" not in summary.coverage
    # what only the API gives, stored: facilities, best menu items, open status
    rows = query(
        settings,
        "SELECT count(*) FILTER (WHERE facilities <> '{}'), count(*) FILTER (WHERE best_menu <> '{}')"
        ", count(*) FILTER (WHERE open_status = '영업 중'), count(*) FROM stores",
    )
    with_facilities, with_best, open_now, total = rows[0]
    assert 0 < with_facilities < total and 0 < with_best < total and open_now == total


async def test_crawl_through_the_page_scores_every_truth_field(
    make_settings: Any, small_world: World, replica_with: Any
) -> None:
    with replica_with() as site:
        settings = make_settings(site=site.url, districts=DISTRICTS, detail_source="html")
        summary, result = await crawl_and_score(settings, small_world, layout_for)
        served = site.stats()
    assert summary.status == "succeeded"
    assert_perfect(result)
    assert set(sources(settings).values()) == {"html"}
    assert served["by_endpoint"].get("/API/profile/", 0) == 0
    assert "source:html" in summary.coverage and "detail:api" not in summary.coverage


async def test_auto_reads_the_page_where_the_api_fails(
    make_settings: Any, small_world: World, replica_with: Any
) -> None:
    with replica_with(api_fail=0.3) as site:
        settings = make_settings(site=site.url, districts=DISTRICTS, detail_source="auto", retry_attempts=2)
        summary = await run_crawl(settings, settings.database_url)
    used = sources(settings)
    stored, rejected = await load_result(settings)
    result = score(
        small_world, stored, rejected, settings.districts, lambda r: API if used[r] == "api" else layout_for(r)
    )
    assert summary.status == "succeeded" and summary.failed_units == []
    assert_perfect(result)  # each store scored against the source that gave it
    failing = {rid for rid in used if fails(rid, 0.3)}
    assert {rid for rid, source in used.items() if source == "api"}.isdisjoint(failing)
    assert all(used[rid] == "html" for rid in failing)
    # every store the API failed for came from its page, the API gave the others: failing for 30% of the
    # stores is no reason to pause it (crawl/details.py)
    assert len(failing) > 10 and list(used.values()).count("api") == len(used) - len(failing)
    assert (
        summary.coverage["source:html"]["pages"] + summary.coverage["source:api"]["pages"]
        == (summary.coverage["detail"]["pages"])
    )


async def test_auto_with_the_api_down_reads_every_page_and_stops_asking_it(
    make_settings: Any, small_world: World, replica_with: Any
) -> None:
    with replica_with(api_fail=1.0) as site:
        settings = make_settings(
            site=site.url,
            districts=DISTRICTS,
            detail_source="auto",
            retry_attempts=2,
            workers=1,
            detail_batch=5,
            host_concurrency=4,
        )
        summary, result = await crawl_and_score(settings, small_world, layout_for)
        served = site.stats()
    assert summary.status == "succeeded" and summary.failed_units == []
    assert_perfect(result)
    assert set(sources(settings).values()) == {"html"}
    # After API_FAILURES_TO_PAUSE failures (and the stores already waiting for the API), the rest went to the
    # page without asking the API first (2 attempts each for the stores that did ask it).
    asked = served["faults"]["api_error"] // 2
    assert API_FAILURES_TO_PAUSE <= asked < summary.stores * 2 // 3


def _values(settings: Any) -> dict[str, tuple[Any, ...]]:
    """Every data column but fields_missing (which fields the last answer did not show: bookkeeping)."""
    names = [c.name for c in DATA_COLUMNS if c.name != "fields_missing"]
    rows = query(settings, f"SELECT {', '.join(names)} FROM stores")
    return {row[0]: row for row in rows}


async def test_switching_source_changes_no_stored_value_and_is_no_coverage_drop(
    make_settings: Any, replica_with: Any
) -> None:
    # Pages in the 2023–25 layout write prices as the API's texts do, so every column can be compared.
    with replica_with(layout="jsonld") as site:
        base = make_settings(site=site.url, districts=DISTRICTS, coverage_drop_points=5.0)
        runs = []
        values = []
        for source in ("api", "html", "api", "html"):
            runs.append(await run_crawl(base.model_copy(update={"detail_source": source}), base.database_url))
            values.append(_values(base))
    assert [r.status for r in runs] == ["succeeded"] * 4
    assert all(r.coverage_drops == [] for r in runs)
    assert values[0] == values[1] == values[2] == values[3]
    # (a switch may rewrite rows, as the answer's fingerprint differs: the values stay, and no change is recorded)
    assert all(r.new == 0 and r.stores == runs[0].stores for r in runs[1:])
    changes = query(base, "SELECT count(*) FROM store_changes WHERE kind <> 'new'")
    assert changes == [(0,)]
    # the page has no weekly table, facilities nor best marks: what the API stored stays
    kept = query(base, "SELECT count(*) FROM stores WHERE weekly_hours IS NOT NULL AND facilities <> '{}'")
    assert kept[0][0] > 0
    assert set(sources(base).values()) == {"html"}


async def test_robots_refusing_the_api_reads_pages_and_refusing_both_stops(
    make_settings: Any, replica_with: Any
) -> None:
    from stage5.crawl.politeness import apply_robots
    from stage5.errors import RobotsDisallowed

    api_refused = "User-agent: *\\nDisallow: /API/profile/\\n"
    with replica_with(robots=api_refused) as site:
        auto = make_settings(site=site.url, detail_source="auto")
        assert (await apply_robots(auto, None)).detail_source == "html"
        with pytest.raises(RobotsDisallowed, match="/API/profile/"):
            await apply_robots(make_settings(site=site.url, detail_source="api"), None)
        assert (await apply_robots(make_settings(site=site.url, detail_source="html"), None)).detail_source == "html"
    both = "User-agent: *\\nDisallow: /API/profile/\\nDisallow: /profile.php\\n"
    with replica_with(robots=both) as site, pytest.raises(RobotsDisallowed):
        await apply_robots(make_settings(site=site.url, detail_source="auto"), None)
