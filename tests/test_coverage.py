"""Field coverage: counted per run and layout, compared with the last good runs; a field that really
stopped being found is a field_coverage_drop (run partial), a layout change that loses nothing is not.
And a page that stops showing a field never blanks its stored value."""

from __future__ import annotations

import asyncio
from typing import Any

from helpers import SCALE, SEED, query
from psycopg import sql

from stage5.coverage import drops
from stage5.crawl.run import run_crawl
from stage5.replica.process import ReplicaProcess
from stage5.replica.render import layout_for
from stage5.replica.server import Faults
from stage5.replica.truth import score
from stage5.replica.world import World
from stage5.report import load_result

DISTRICTS = "마포구,강남구,종로구"


def history(share: float) -> dict[str, Any]:
    return {"detail": {"pages": 100, "fields": {"menu": int(share * 100), "name": 100}}}


def test_a_drop_is_a_fall_below_the_median_by_more_than_the_points() -> None:
    past = [history(0.98), history(0.97), history(0.40), history(0.99), history(0.96)]  # median 0.97
    assert [d["field"] for d in drops(history(0.70), past, 20)] == ["menu"]
    assert drops(history(0.80), past, 20) == []  # 17 points: within the margin
    assert drops(history(0.10), [], 20) == []  # no history: the first runs only record


def columns(settings: Any, *names: str) -> dict[str, tuple[Any, ...]]:
    selected = sql.SQL("SELECT diningcode_place_id, {} FROM stores").format(
        sql.SQL(", ").join(map(sql.Identifier, names))
    )
    return {row[0]: row[1:] for row in query(settings, selected)}


async def crawl(settings: Any, faults: Faults) -> Any:
    with ReplicaProcess(SEED, SCALE, faults) as site:
        return await run_crawl(settings.model_copy(update={"site": site.url}), settings.database_url)


async def test_half_the_stores_in_another_layout_lose_nothing_and_raise_no_drop(
    make_settings: Any, small_world: World
) -> None:
    settings = make_settings(districts=DISTRICTS)
    first = await crawl(settings, Faults())
    before = columns(settings, "weekly_hours", "menu_items", "phone_number")
    second = await crawl(settings, Faults(layout_shift=1))  # half the stores move to the next layout
    assert first.status == second.status == "succeeded" and second.coverage_drops == []
    after = columns(settings, "weekly_hours", "menu_items", "phone_number", "field_seen_at")
    # Stores that moved to the 2023–25 layout have no weekly table on their page any more: the stored
    # table stays (a miss is not a removal), and field_seen_at shows it was last seen in the first run.
    moved = [r for r in after if layout_for(r, shift=1) == "jsonld" and layout_for(r) != "jsonld"]
    kept = [r for r in moved if before[r][0] is not None]
    assert kept, "some stores moved away from a layout with the weekly table"
    for rid in kept:
        assert after[rid][0] == before[rid][0]
        assert after[rid][3]["weekly_hours"] == first.run_id and after[rid][3]["menu"] == second.run_id
    lost = [r for r in before for i in range(3) if before[r][i] not in (None, []) and after[r][i] in (None, [])]
    assert lost == []
    stored, rejected = await load_result(settings)
    shifted = score(small_world, stored, rejected, settings.districts, lambda rid: layout_for(rid, shift=1))
    assert set(shifted.wrong_fields) == {"weekly_hours"}  # only the kept, older weekly tables differ
    assert set(shifted.wrong_fields["weekly_hours"]) <= set(kept)


async def test_a_layout_the_parser_reads_less_of_is_a_coverage_drop(make_settings: Any) -> None:
    settings = make_settings(districts=DISTRICTS)
    first = await crawl(settings, Faults())
    second = await crawl(settings, Faults(layout="no-jsonld"))  # coordinates were only in JSON-LD
    assert first.status == "succeeded" and first.coverage_drops == []
    dropped = {(d["kind"], d["field"]): d for d in second.coverage_drops}
    assert second.status == "partial"
    assert set(dropped) == {("detail", "lat"), ("detail", "lng")}
    assert dropped[("detail", "lat")]["layout"] == "no-jsonld" and dropped[("detail", "lat")]["share"] == 0
    stored = columns(settings, "position_lat")
    assert all(lat is not None for (lat,) in stored.values())  # the search answer still gave them
    (row,) = query(
        settings, "SELECT status, coverage -> 'detail' ->> 'pages' FROM crawl_runs WHERE id = %s", second.run_id
    )
    assert row[0] == "partial" and int(row[1]) == second.stores + second.rejected


def test_the_first_run_records_coverage(make_settings: Any) -> None:
    settings = make_settings(districts="도봉구")
    summary = asyncio.run(crawl(settings, Faults()))
    assert summary.coverage["detail"]["pages"] > 0 and summary.coverage_moved == {}
    assert {k for k in summary.coverage if k.startswith("detail:")} <= {
        f"detail:{x}" for x in ("jsonld", "classic", "no-jsonld")
    }
