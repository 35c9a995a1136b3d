"""Change tracking across daily runs: crawling replica days 0, 1, 2, 3 gives exactly the truth's diff each
day (new, changed with its fields, closed, vanished only after K complete runs, reappeared); a store misses
a run only where its district's listings were complete. And exports round-trip."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from typing import Any

from helpers import SCALE, SEED, query

from stage5.cli import main
from stage5.crawl.run import run_crawl
from stage5.replica.process import ReplicaProcess
from stage5.replica.render import layout_for
from stage5.replica.server import Faults
from stage5.replica.world import World, build_world
from stage5.site.seoul import DISTRICT_NAMES
from stage5.storage.changes import list_changes
from stage5.storage.db import connect

DISTRICTS = list(DISTRICT_NAMES)  # all of Seoul: at this scale every kind of change happens by day 3
K = 2
# truth key -> stored column, for the fields a change is reported on
TRACKED = {
    "name": "name",
    "branch": "branch",
    "address": "address",
    "road_address": "road_address",
    "phone": "phone_number",
    "open_hours": "open_hours",
    "break_time": "break_time",
    "last_order": "last_order",
    "holiday": "holiday",
    "weekly_hours": "weekly_hours",
    "menu": "menu_items",
    "price_min": "price_min",
    "price_max": "price_max",
    "refill": "is_confirmed_refill",
}


class Expected:
    """stage5's rules run over the replica's truth, day by day: what each run must record."""

    def __init__(self) -> None:
        self.status: dict[str, str] = {}  # rid -> open | vanished | closed
        self.fields: dict[str, dict[str, Any]] = {}
        self.missed: dict[str, int] = {}

    def day(self, world: World, complete: bool = True) -> set[tuple[str, str, frozenset[str]]]:
        seen = {s.rid: s for s in world.stores if s.district in DISTRICTS and s.expect == "store" and s.listed}
        found = set()
        for rid, store in seen.items():
            truth = store.truth(layout_for(rid))
            fields = {k: truth[k] for k in TRACKED}
            status = "closed" if store.closed_on is not None else "open"
            if rid not in self.status:
                found.add((rid, "new", frozenset()))
            else:
                diff = frozenset(TRACKED[k] for k in TRACKED if self.fields[rid][k] != fields[k])
                kind = _kind(self.status[rid], status, bool(diff))
                if kind:
                    found.add((rid, kind, diff))
            self.status[rid], self.fields[rid], self.missed[rid] = status, fields, 0
        if complete:
            for rid in set(self.status) - set(seen):
                if self.status[rid] == "open":
                    self.missed[rid] += 1
                    if self.missed[rid] >= K:
                        self.status[rid] = "vanished"
                        found.add((rid, "vanished", frozenset({"missed_runs"})))
        return found


def _kind(before: str, now: str, changed: bool) -> str | None:
    if now == "closed" and before != "closed":
        return "closed"
    if now == "open" and before in ("vanished", "closed"):
        return "reappeared"
    return "changed" if changed else None


def presence(settings: Any) -> dict[str, tuple[str, int, str]]:
    """rid -> (district, missed runs, status) of every stored store."""
    found = query(settings, "SELECT diningcode_place_id, district, missed_runs, status FROM stores")
    return {rid: (district, missed, status) for rid, district, missed, status in found}


async def recorded(settings: Any, run_id: int) -> set[tuple[str, str, frozenset[str]]]:
    conn = await connect(settings.database_url, settings.db_schema)
    try:
        found = await list_changes(conn, run_id, None, None)
    finally:
        await conn.close()
    return {(c["diningcode_place_id"], c["kind"], frozenset(c["fields"])) for c in found}


async def crawl_day(settings: Any, day: int, faults: Faults | None = None) -> Any:
    with ReplicaProcess(SEED, SCALE, faults, day=day) as site:
        return await run_crawl(settings.model_copy(update={"site": site.url}), settings.database_url)


async def test_four_days_give_exactly_the_truths_diff(make_settings: Any) -> None:
    settings = make_settings(districts=",".join(DISTRICTS), vanish_after_runs=K)
    expected = Expected()
    kinds_seen: set[str] = set()
    for day in range(4):
        summary = await crawl_day(settings, day)
        assert summary.status == "succeeded"
        want = expected.day(build_world(SEED, SCALE, day))
        got = await recorded(settings, summary.run_id)
        assert got == want, f"day {day}: missing {sorted(want - got)[:5]}, extra {sorted(got - want)[:5]}"
        assert summary.changes == {k: sum(1 for _, kind, _ in want if kind == k) for k in summary.changes}
        kinds_seen |= {kind for _, kind, _ in got}
    assert kinds_seen == {"new", "changed", "closed", "vanished", "reappeared"}


async def test_misses_count_only_where_the_listings_were_complete(make_settings: Any) -> None:
    """A run partial for failed pages: in the districts whose listings were still complete the stores it did
    not list miss a run (the day-1 closures vanish now, K = 2); in the others nothing about presence moves."""
    settings = make_settings(districts=",".join(DISTRICTS), vanish_after_runs=K, retry_attempts=1)
    expected = Expected()
    for day in (0, 1):
        await crawl_day(settings, day)
        expected.day(build_world(SEED, SCALE, day))
    missed_before = presence(settings)
    partial = await crawl_day(settings, 2, Faults(p5xx=0.2, fault_seed=3))
    assert partial.status == "partial"
    complete = {d for d, v in partial.listings.items() if v["status"] == "complete"}
    assert complete and set(partial.incomplete_districts) == set(DISTRICTS) - complete  # both kinds happen
    # Which pages fail depends on the order requests arrive in, so which districts end incomplete varies from
    # run to run; a store the run did list there was seen (one back from its day-1 closure starts over).
    seen = {
        rid
        for (rid,) in query(settings, "SELECT diningcode_place_id FROM stores WHERE last_run_id = %s", partial.run_id)
    }
    for rid, (district, missed, status) in presence(settings).items():
        if rid in seen:
            assert missed == 0, rid  # seen: no miss
        elif district not in complete and rid in missed_before:
            assert (missed, status) == missed_before[rid][1:], rid  # nothing about its presence moved
    closed_day1 = {
        s.rid: s.district
        for s in build_world(SEED, SCALE, 2).stores
        if s.district in DISTRICTS and s.expect == "store" and s.closed_on == 1 and not s.listed
    }
    vanished = {rid for rid, kind, _ in await recorded(settings, partial.run_id) if kind == "vanished"}
    assert vanished == {rid for rid, d in closed_day1.items() if d in complete}
    # The next complete run counts the rest's second miss: they vanish now, not earlier.
    after = await crawl_day(settings, 3)
    assert after.status == "succeeded"
    vanished |= {rid for rid, kind, _ in await recorded(settings, after.run_id) if kind == "vanished"}
    still_closed = {
        s.rid for s in build_world(SEED, SCALE, 3).stores if s.rid in closed_day1 and s.closed_on == 1 and not s.listed
    }
    assert still_closed and still_closed <= vanished


def test_exports_round_trip(make_settings: Any, replica: ReplicaProcess, tmp_path: Any) -> None:
    settings = make_settings(site=replica.url, districts="마포구,강남구")
    summary = asyncio.run(run_crawl(settings, settings.database_url))
    db = ["--database-url", settings.database_url, "--db-schema", settings.db_schema]
    out = tmp_path / "stores.csv"
    assert main(["export", "--format", "csv", "--bom", "--out", str(out), *db]) == 0
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert len(rows) == summary.stores and {r["district"] for r in rows} == {"마포구", "강남구"}
    # Booleans true/false, arrays and JSON columns as JSON (not t/f nor {a,b} array literals)
    assert {r["is_confirmed_refill"] for r in rows} <= {"true", "false"} and "true" in {
        r["is_confirmed_refill"] for r in rows
    }
    for r in rows:
        assert all(isinstance(json.loads(r[c]), list) for c in ("keywords", "refill_items", "menu_items"))
    refill = tmp_path / "refill.jsonl"
    assert (
        main(["export", "--format", "jsonl", "--refill-only", "--district", "마포구", "--out", str(refill), *db]) == 0
    )
    lines = [json.loads(line) for line in refill.read_text().splitlines()]
    assert lines and all(r["is_confirmed_refill"] and r["district"] == "마포구" for r in lines)
    view = query(settings, "SELECT count(*) FROM refill_stores WHERE district = '마포구'")
    assert view[0][0] == len(lines)
    geo = tmp_path / "stores.geojson"
    assert main(["export", "--format", "geojson", "--out", str(geo), *db]) == 0
    collection = json.loads(geo.read_text())
    assert collection["type"] == "FeatureCollection" and len(collection["features"]) == summary.stores
    for feature in collection["features"]:
        lng, lat = feature["geometry"]["coordinates"]
        assert feature["geometry"]["type"] == "Point" and 126.7 < lng < 127.3 and 37.4 < lat < 37.8  # lon, lat
