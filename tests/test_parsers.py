"""Parsers on bytes: hand-written pages in the site's markup, replica pages with every quirk, broken input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from stage5.replica import render
from stage5.replica.world import World
from stage5.site.parsers import ParseError, guess_kind, parse_detail, parse_list, parse_search

DATA = Path(__file__).parent / "data"


def test_search_sample_with_quirks() -> None:
    page = parse_search((DATA / "isearch_gangnam.json").read_bytes())
    assert page.total == 2
    first, second = page.stores
    assert first.rid == "sJL6OuwQfW9a"
    assert first.name == "강남 돼지상회 무한리필"  # rank prefix "1. " removed
    assert (first.lat, first.lng) == (37.500792, 127.0275564)  # strings -> floats
    assert first.review_count == 25  # "25" -> 25
    assert first.categories == ("삼겹살", "무한리필")  # <em> highlight removed
    assert first.keywords == ("무한리필", "가성비")
    assert second.branch is None and second.phone is None and second.score is None  # missing / empty fields


def test_detail_sample_from_the_real_markup() -> None:
    detail = parse_detail((DATA / "profile_sJL6OuwQfW9a.html").read_bytes(), "sJL6OuwQfW9a")
    assert detail.name == "강남 돼지상회 무한리필"
    assert detail.branch == "강남역점"
    assert detail.address == "서울특별시 강남구 역삼동 826-21"
    assert detail.road_address == "서울특별시 강남구 테헤란로5길 11"
    assert (detail.lat, detail.lng) == (37.500792, 127.0275564)
    assert (detail.rating, detail.rating_count, detail.score) == (4.4, 25, 82)
    assert detail.phone == "0507-1402-3381"
    assert detail.open_hours == "11:30 - 22:00"
    assert detail.last_order == "21:00"
    assert detail.break_time == "15:00 - 17:00"  # ranges normalised: HH:MM - HH:MM
    assert detail.holiday == "매주 일요일 휴무"
    assert [(m.name, m.price) for m in detail.menu] == [
        ("삼겹살 무한리필", 19900),
        ("소고기 무한리필", 29900),
        ("음료", None),
    ]
    assert detail.tags == ("무한리필", "가성비")
    assert detail.categories == ("삼겹살",)  # from the title "… - 강남역 삼겹살, 무한리필 맛집"
    assert detail.images == ("https://d12zq4w4guyljn.cloudfront.net/sample.jpg",)


def test_detail_without_json_ld_falls_back_to_markup() -> None:
    html = (DATA / "profile_sJL6OuwQfW9a.html").read_text()
    start, end = html.index('<script type="application/ld+json">'), html.index("</script>") + len("</script>")
    detail = parse_detail((html[:start] + html[end:]).encode(), "sJL6OuwQfW9a")
    assert detail.name == "강남 돼지상회 무한리필"  # from the title
    assert detail.address == "서울특별시 강남구 역삼동 826-21"  # from span.addr
    assert (detail.rating, detail.rating_count) == (4.4, 25)  # from "4.4(25명의 평가)"
    assert detail.lat is None  # coordinates only come from JSON-LD; the search result supplies them


def test_detail_in_cp949_is_decoded() -> None:
    html = (DATA / "profile_sJL6OuwQfW9a.html").read_text().replace('charset="utf-8"', 'charset="euc-kr"')
    detail = parse_detail(html.encode("cp949"), "sJL6OuwQfW9a")
    assert detail.name == "강남 돼지상회 무한리필"


def test_every_replica_store_parses_back(small_world: World) -> None:
    """The replica writes from the shared notes, the parsers read from them: every store round-trips."""
    for store in small_world.stores:
        item = render.search_item(store, "무한리필")
        summary = parse_search(render.search_json([item], 1)).stores[0]
        assert (summary.rid, summary.name, summary.address) == (store.rid, store.name, store.address)
        assert summary.lat == pytest.approx(store.lat) and summary.review_count == store.review_cnt
        assert summary.phone == store.phone and summary.branch == store.branch
        detail = parse_detail(render.detail_page(store), store.rid)
        assert detail.name == store.name and detail.address == store.address
        assert [(m.name, m.price) for m in detail.menu] == list(store.menu)
        assert (detail.open_hours, detail.break_time, detail.holiday) == (
            store.open_hours,
            store.break_time,
            store.holiday,
        )


def test_list_page_from_list_data_and_from_cards(small_world: World) -> None:
    stores = small_world.by_district["마포구"][:5]
    body = render.list_page("마포구 무한리필", stores, 42)
    page = parse_list(body)
    assert page.total == 42
    assert [s.rid for s in page.stores] == [s.rid for s in stores]
    assert page.stores[0].address == stores[0].address
    # Without the embedded JSON the cards still give ids, names and scores.
    html = body.decode()
    start = html.index("<script>")
    cards_only = (html[:start] + html[html.index("</script>") + 9 :]).encode()
    from_cards = parse_list(cards_only).stores
    assert [(s.rid, s.name, s.score) for s in from_cards] == [(s.rid, s.name, s.score) for s in stores]


@pytest.mark.parametrize(
    "body, message",
    [
        (b'{"result_code": "100", "result_da', "not JSON"),
        (b'{"result_code": "900", "result_msg": "blocked"}', "result_code=900"),
        (b'{"result_code": "100", "result_data": {}}', "poi_section"),
        (b'{"result_code":"100","result_data":{"poi_section":{"list":[{"nm":"x"}]}}}', "without v_rid"),
    ],
)
def test_bad_search_answers_say_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_search(body)


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body><h1>\xec\x84\x9c\xeb\xb9\x84\xec\x8a\xa4 \xec\xa0\x90\xea\xb2\x80</h1></body></html>",
        b"",
        b"\x89PNG\r\n\x1a\n\x00\x00",
    ],
)
def test_pages_that_are_not_store_pages_raise(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_detail(body, "x")


def test_list_page_without_cards_raises() -> None:
    with pytest.raises(ParseError, match="PoiBlock"):
        parse_list(b"<html><body><div>no results</div></body></html>")


def test_cut_short_page_raises_instead_of_parsing_half(small_world: World) -> None:
    body = render.detail_page(small_world.stores[0])
    parse_detail(body, "x")  # whole: fine
    with pytest.raises(ParseError, match="cut short"):
        parse_detail(body[: len(body) // 3], "x")  # title and JSON-LD intact, menu and hours gone


def test_guess_kind() -> None:
    assert guess_kind(b'{"result_code":"100"}', "saved.json") == "search"
    assert guess_kind(b"<html>", "profile.php?rid=abc") == "detail"
    assert guess_kind(b"<html>", "list.dc?query=x") == "list"


@pytest.mark.parametrize(
    "body",
    [
        b'{"result_data": {"poi_section": {"total_cnt": 1, "list": [{"v_rid": "a", "nm": "x", "keyword": 5}]}}}',
        b'{"result_data": {"poi_section": {"list": [{"v_rid": "a", "nm": "x", "lat": NaN, "lng": 1e400}]}}}',
        b'{"result_data": [], "poi_section": {"list": [{"v_rid": "a", "nm": "x", "area": "gangnam"}]}}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_parse_never_prints_a_traceback(body: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from stage5.cli import main

    saved = tmp_path / "answer.json"
    saved.write_bytes(body)
    code = main(["parse", str(saved), "--kind", "search"])
    out = capsys.readouterr()
    assert code in (0, 2) and "Traceback" not in out.err
    for line in out.out.splitlines():
        record = json.loads(line)
        assert record["lat"] is None or math.isfinite(record["lat"])
        assert record["keywords"] == [] and record["lng"] is None


def test_wrongly_shaped_json_ld_falls_back_to_the_markup(small_world: World) -> None:
    store = next(s for s in small_world.stores if s.expect == "store")
    page = render.detail_page(store).decode()
    start = page.index('"aggregateRating"')
    end = page.index("}", start) + 1
    spoiled = page[:start] + '"aggregateRating": "4.5"' + page[end:]
    spoiled = spoiled.replace('"geo": {', '"geo": [1, 2], "_geo": {')
    detail = parse_detail(spoiled.encode(), store.rid)
    assert detail.rating == store.user_score and detail.rating_count == store.review_cnt  # from the markup
    assert detail.lat is None  # a geo of the wrong shape is no position; the search answer's is used
