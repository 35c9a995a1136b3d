"""A unit past its deadline (stage5.crawl.pipeline.run_unit): what it did before the deadline is kept, and the
rest fails once, naming the setting. Requests are spaced by the politeness delay, so each unit needs several
seconds and gets about one."""

from __future__ import annotations

from typing import Any

from stage5.crawl.pipeline import run_unit
from stage5.fetch import Fetcher
from stage5.models import StoreSummary
from stage5.replica.process import ReplicaProcess
from stage5.replica.world import World
from stage5.site.diningcode import queries_for
from stage5.site.seoul import DISTRICT_BY_NAME
from stage5.units import DetailResult, DetailUnit, SearchResult, SearchUnit

DELAY_S, DEADLINE_S = 0.5, 1.2  # about three requests before the deadline


def _slow(make_settings: Any, replica: ReplicaProcess) -> Any:
    return make_settings(
        site=replica.url, request_delay_s=DELAY_S, host_concurrency=1, unit_deadline_s=DEADLINE_S, page_size=1
    )


def _only_deadline_failure(result: SearchResult | DetailResult) -> None:
    assert [f.kind for f in result.failed] == ["unit"]
    assert "STAGE5_UNIT_DEADLINE_S" in result.failed[0].reason


async def test_a_search_past_its_deadline_keeps_the_pages_it_read(
    make_settings: Any, replica: ReplicaProcess, small_world: World
) -> None:
    district = max(DISTRICT_BY_NAME, key=lambda name: sum(s.district == name for s in small_world.stores))
    unit = SearchUnit(1, queries_for(DISTRICT_BY_NAME[district])[0])
    async with Fetcher(_slow(make_settings, replica)) as fetcher:
        result = await run_unit(unit, fetcher)
    assert isinstance(result, SearchResult)
    assert result.count is not None and 1 <= result.pages < result.count  # one store a page: unfinished
    assert result.found or result.out_of_area  # the pages it read are in the result
    _only_deadline_failure(result)


async def test_a_detail_batch_past_its_deadline_keeps_the_stores_it_read(
    make_settings: Any, replica: ReplicaProcess, small_world: World
) -> None:
    stores = [s for s in small_world.stores if s.district == "강남구"][:8]
    assert len(stores) == 8
    summaries = tuple(StoreSummary(s.rid, s.name, address=s.address, lat=s.lat, lng=s.lng) for s in stores)
    async with Fetcher(_slow(make_settings, replica)) as fetcher:
        result = await run_unit(DetailUnit(2, "강남구", summaries), fetcher)
    assert isinstance(result, DetailResult)
    done = len(result.records) + len(result.rejections)
    assert 1 <= done < len(summaries)
    _only_deadline_failure(result)
