"""Evidence before write (issue 21): only an answer that is verifiably the store's own may change it.

Pure checks first (block pages, the ids a page gives for itself, the listing's facts, provenance, derived
fields, damaged text), then crawls: a healthy baseline through a loopback proxy, the proxy turned hostile
(block pages, redirects off the site or home, another store's page, no menu, a cut byte), and the proxy
healthy again with the cache on: no stored value changes, the run says why, and the truth comes back.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import replace
from typing import Any

import pytest
import redis as redis_client
from helpers import query

from stage5.crawl.run import run_crawl
from stage5.errors import BlockedAnswer, NotThisStore
from stage5.models import MenuItem, StoreDetail, StoreRecord, StoreSummary
from stage5.replica.hostile import BLOCK_PAGES, REWRITES, HostileProcess, is_target
from stage5.replica.process import ReplicaProcess
from stage5.replica.render import detail_page, layout_for
from stage5.replica.world import World
from stage5.site.detail import parse_detail
from stage5.site.evidence import block_kind, rid_in_url, verify_detail
from stage5.validate import build_record

DISTRICTS = "마포구,도봉구"
RID = "sJL6OuwQfW9a"


def listing(**kw: Any) -> StoreSummary:
    base: dict[str, Any] = dict(
        rid=RID,
        name="강남 조개폭격",
        branch="역삼점",
        address="서울특별시 강남구 역삼동 1-2",
        phone="02-555-1234",
        lat=37.5,
        lng=127.03,
        query="강남구 무한리필",
    )
    return StoreSummary(**{**base, **kw})


def page(**kw: Any) -> StoreDetail:
    base: dict[str, Any] = dict(rid=RID, name="강남 조개폭격", address="서울 강남구 역삼동 1-2", lat=37.5, lng=127.03)
    return StoreDetail(**{**base, **kw})


# --- block pages and identity (pure) -------------------------------------------------------------


@pytest.mark.parametrize(
    "text, kind",
    [
        (BLOCK_PAGES[0], "captcha"),
        (BLOCK_PAGES[1], "access denied"),
        (BLOCK_PAGES[2], "access denied"),
        ("<html><body>로그인이 필요한 서비스입니다</body></html>", "login"),
        ("<html><body><h1>429 Too Many Requests</h1></body></html>", "rate limit"),
        ("<html><body>요청하신 페이지를 찾을 수 없습니다</body></html>", "error page"),
        ("<html><body><p>오늘의 맛집</p></body></html>", "not a store page"),
    ],
)
def test_a_page_without_store_sections_is_blocked_with_its_kind(text: str, kind: str) -> None:
    assert block_kind(text) == kind
    with pytest.raises(BlockedAnswer, match=kind):
        parse_detail(text.encode(), RID)


def test_the_home_page_with_a_store_like_title_is_not_a_store() -> None:
    """What renamed 40 stores '다이닝코드': the home page's title has the '{name} - …' shape."""
    home = (
        '<html><head><title>다이닝코드 - 빅데이터 맛집검색</title><link rel="canonical"'
        ' href="https://www.diningcode.com/"></head><body><div class="tit-point"><p class="tit">맛집</p></div>'
        "</body></html>"
    )
    with pytest.raises(BlockedAnswer, match="home page"):
        parse_detail(home.encode(), RID)


def test_a_page_names_itself_by_canonical_og_url_json_ld_and_hidden_inputs(small_world: World) -> None:
    store = next(s for s in small_world.stores if s.expect == "store")
    for layout in ("jsonld", "classic", "no-jsonld"):
        assert store.rid in parse_detail(detail_page(store, layout), store.rid).claimed_ids
    hidden = (
        '<html><head><script type="application/ld+json">{"@type": "Restaurant", "name": "가게",'
        ' "url": "https://www.diningcode.com/profile.php?rid=OTHERrid0001"}</script></head><body>'
        '<input type="hidden" id="hdn_rid" value="OTHERrid0002"></body></html>'
    )
    assert set(parse_detail(hidden.encode(), RID).claimed_ids) == {"OTHERrid0001", "OTHERrid0002"}
    assert rid_in_url("/profile.php?rid=abcd1234&x=1") == "abcd1234"
    assert rid_in_url("https://www.diningcode.com/") is None


def test_another_stores_page_is_refused_by_its_id_or_by_its_facts() -> None:
    with pytest.raises(NotThisStore, match="names store OTHERrid0001"):
        verify_detail(page(claimed_ids=("OTHERrid0001",)), listing())
    stranger = page(name="종로 곱창", address="서울특별시 종로구 관철동 3", phone="02-111-2222")
    with pytest.raises(NotThisStore, match="none of the listing's facts"):
        verify_detail(stranger, listing())
    # its own id, or one matching fact, is enough: names are written with or without the branch or spaces
    assert verify_detail(page(claimed_ids=(RID,)), listing())
    assert verify_detail(page(name="강남조개폭격 역삼점"), listing())
    assert verify_detail(replace(stranger, phone="02 555 1234"), listing())
    assert verify_detail(replace(stranger, address="서울시 강남구 역삼동 1-2"), listing())


def test_a_sibling_branchs_answer_without_an_id_is_refused() -> None:
    """An answer that gives no store id, named like the listed store (a chain's branches share the name) but
    with another branch, phone or address: another branch's (an attacker's proxy stored 50 such answers
    whole, address, phone, menu and all)."""
    sibling = page(branch="신림점", address="서울특별시 관악구 신림동 9", phone="02-999-0000")
    with pytest.raises(NotThisStore, match="no store id, and its branch '신림점'"):
        verify_detail(sibling, listing())
    with pytest.raises(NotThisStore, match="no store id, and its phone"):
        verify_detail(replace(sibling, branch=None), listing())
    with pytest.raises(NotThisStore, match="no store id, and its address"):
        verify_detail(replace(sibling, branch=None, phone=None), listing())
    # its own id, a matching phone or address, or nothing to contradict the name: as before
    assert verify_detail(replace(sibling, claimed_ids=(RID,)), listing())
    assert verify_detail(replace(sibling, phone="02-555-1234"), listing())
    assert verify_detail(replace(sibling, address="서울 강남구 역삼동 1-2"), listing())
    assert verify_detail(page(address=None, phone=None), listing())


# --- provenance, derived fields, damage (pure) ---------------------------------------------------


def record(summary: StoreSummary, detail: StoreDetail) -> StoreRecord:
    built = build_record(summary, detail, "강남구", "http://127.0.0.1:1/profile.php?rid=" + RID)
    assert isinstance(built, StoreRecord), built
    return built


def test_a_search_entry_fills_what_the_page_did_not_show_and_says_so() -> None:
    shown = record(listing(branch="가짜점", phone="02-999-9999"), page(branch="역삼점", phone="02-555-1234"))
    assert (shown.branch, shown.phone) == ("역삼점", "02-555-1234")  # the page wins where it speaks
    assert shown.field_sources["branch"] == "detail:html" and "branch" not in shown.missing
    unshown = record(listing(branch="가짜점"), page(missing=frozenset({"branch"})))
    assert unshown.branch == "가짜점" and unshown.field_sources["branch"] == "search:강남구 무한리필"
    assert "branch" in unshown.missing  # a stored value from a page is kept (storage/columns.py)


def test_the_refill_flag_comes_from_the_stores_own_words_not_a_search_keyword() -> None:
    keyword_only = record(listing(keywords=("무한리필",), categories=("고기무한리필",)), page())
    assert not keyword_only.is_refill and keyword_only.refill_evidence == ()
    own = record(listing(), page(menu=(MenuItem("조개구이 무한리필", 29900),)))
    assert own.is_refill and own.refill_evidence == ("menu:조개구이 무한리필",)


def test_fields_derived_from_the_menu_are_kept_when_the_menu_is_not_shown() -> None:
    no_menu = record(listing(), page(missing=frozenset({"menu"})))
    assert {"menu", "refill"} <= set(no_menu.missing)
    shown_empty = record(listing(), page())  # a menu section without items: the page says there is none
    assert "menu" not in shown_empty.missing and "refill" not in shown_empty.missing


def test_damaged_text_never_replaces_a_clean_value() -> None:
    cut = record(listing(), page(name="강\ufffd남 조개폭격", holiday="매주 \ufffd요일 휴무"))
    assert cut.name == "강남 조개폭격"  # the listing's clean name of the same store
    assert "holiday" in cut.missing and cut.damaged == ("holiday",)


# --- crawls through a misbehaving proxy ----------------------------------------------------------


def stored(settings: Any) -> dict[str, tuple[Any, ...]]:
    """rid -> every data column a bad answer could spoil."""
    columns = (
        "name, branch, district, address, road_address, position_lat, position_lng, phone_number,"
        " raw_categories_diningcode, keywords, menu_items::text, open_hours, holiday, is_confirmed_refill,"
        " refill_type, refill_items, refill_evidence, price_min, price_max, status, missed_runs"
    )
    found = query(settings, f"SELECT diningcode_place_id, {columns} FROM stores")
    return {r[0]: r[1:] for r in found}


def switch(site: HostileProcess, on: bool) -> None:
    request = urllib.request.Request(f"{site.url}/__hostile/{'on' if on else 'off'}", method="POST")
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert json.loads(answer.read())["active"] is on


def targets(world: World, every: int, case: str) -> set[str]:
    names = DISTRICTS.split(",")
    chosen = {s.rid: s for s in world.stores if s.district in names and s.expect == "store" and is_target(s.rid, every)}
    if case in REWRITES:
        return {rid for rid, s in chosen.items() if REWRITES[case](p := detail_page(s, layout_for(rid))) != p}
    return set(chosen)


def forget(redis_url: str, namespace: str) -> None:
    client = redis_client.Redis.from_url(redis_url)
    try:
        for key in client.scan_iter(match=f"stage5:v1:{namespace}:*"):
            client.delete(key)
    finally:
        client.close()


CASES = [
    ("block_page", 3, "blocked"),
    ("redirect_offsite", 10, "redirect"),
    ("redirect_home", 10, "redirect"),
    ("other_store", 10, "not_this_store"),
    ("no_menu", 10, ""),
    ("cut_byte", 10, ""),
]


@pytest.mark.parametrize("case, every, cause", CASES)
async def test_bad_answers_change_nothing_and_the_next_healthy_run_restores_the_truth(
    case: str, every: int, cause: str, make_settings: Any, replica: ReplicaProcess, small_world: World, redis_url: str
) -> None:
    spoiled = targets(small_world, every, case)
    assert spoiled
    with HostileProcess(replica.url, case, every) as site:
        namespace = f"evidence-{make_settings().db_schema}"
        settings = make_settings(
            site=site.url, districts=DISTRICTS, workers=1, redis_url=redis_url, cache_namespace=namespace
        )
        try:
            switch(site, False)
            healthy = await run_crawl(settings, settings.database_url, redis_url)
            assert healthy.status == "succeeded"
            before = stored(settings)
            switch(site, True)
            # refresh: answers are fetched afresh, and written to the cache only when they are evidence
            bad = await run_crawl(settings.model_copy(update={"cache": "refresh"}), settings.database_url, redis_url)
            after = stored(settings)
            changed = {rid: [(a, b) for a, b in zip(before[rid], after[rid]) if a != b] for rid in before}
            assert after.keys() == before.keys() and not any(changed.values()), {k: v for k, v in changed.items() if v}
            if cause:
                assert bad.status == "partial"
                assert bad.unverified[cause] == len(spoiled), bad.unverified
                failed = {u["url"].split("rid=")[-1] for u in bad.failed_units if u["cause"] == cause}
                assert failed == spoiled
            with urllib.request.urlopen(f"{site.url}/__hostile/stats", timeout=5) as answer:
                served_spoiled = json.loads(answer.read())["spoiled"]
            switch(site, False)
            again = await run_crawl(settings, settings.database_url, redis_url)  # cache on: read it
            assert again.status == "succeeded" and stored(settings) == before
        finally:
            forget(redis_url, namespace)
    if case == "block_page":  # a captcha or a denial is not asked again at once: one request per store
        assert bad.alerts and bad.alerts[0].startswith("BLOCKED")
        assert served_spoiled == len(spoiled)


async def test_a_cached_answer_is_checked_like_a_fresh_one(
    make_settings: Any, replica: ReplicaProcess, small_world: World, redis_url: str
) -> None:
    """An entry holding another store's page (written by an older version, or by hand) is no evidence
    either: it is deleted and the page fetched again, and the row stays the store's own."""
    import zlib

    from stage5.cache import Kind, cache_key
    from stage5.site.diningcode import Endpoints

    namespace = f"checked-{make_settings().db_schema}"
    settings = make_settings(site=replica.url, districts="도봉구", redis_url=redis_url, cache_namespace=namespace)
    first = await run_crawl(settings, settings.database_url, redis_url)
    before = stored(settings)
    mine, other = [s for s in small_world.stores if s.district == "도봉구" and s.expect == "store"][:2]
    key = cache_key(namespace, Kind.DETAIL, "GET", Endpoints.for_site(replica.url).detail_url(mine.rid))
    client = redis_client.Redis.from_url(redis_url)
    try:
        assert client.exists(key)
        client.set(key, zlib.compress(detail_page(other, layout_for(other.rid))))
        again = await run_crawl(settings, settings.database_url, redis_url)
        assert zlib.decompress(client.get(key)) == detail_page(mine, layout_for(mine.rid))  # replaced
    finally:
        client.close()
        forget(redis_url, namespace)
    assert first.status == again.status == "succeeded" and again.cache_corrupt == 1
    assert stored(settings) == before


async def test_forged_search_entries_reach_no_stored_value(
    make_settings: Any, replica: ReplicaProcess, small_world: World
) -> None:
    """Entries of other queries that lie about a store (branch, categories, keywords saying all-you-can-eat,
    coordinates a kilometre off): the store's own district query and its own page decide, every run."""
    with HostileProcess(replica.url, "forged") as site:
        settings = make_settings(site=site.url, districts=DISTRICTS, workers=1)
        switch(site, False)
        healthy = await run_crawl(settings, settings.database_url)
        before = stored(settings)
        switch(site, True)
        forged = [await run_crawl(settings, settings.database_url) for _ in range(2)]
        with urllib.request.urlopen(f"{site.url}/__hostile/stats", timeout=5) as answer:
            spoiled = json.loads(answer.read())["spoiled"]
    assert healthy.status == "succeeded" and spoiled > 0
    assert [run.status for run in forged] == ["succeeded", "succeeded"]
    after = stored(settings)
    changed = {rid: [(a, b) for a, b in zip(before[rid], after[rid]) if a != b] for rid in before}
    assert after.keys() == before.keys() and not any(changed.values()), {k: v for k, v in changed.items() if v}
