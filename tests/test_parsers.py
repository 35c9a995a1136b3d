"""Parsers on bytes: hand-written pages in the site's markup, replica pages with every quirk, broken input."""

from __future__ import annotations

import json
import math
import re
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


def test_classic_layout_sample_field_by_field() -> None:
    """The l-txt / r-txt layout with no JSON-LD, hand-written from the shared notes (§3, layouts 2 and 3)."""
    detail = parse_detail((DATA / "profile_classic_Xq3LmN7pTz1a.html").read_bytes(), "Xq3LmN7pTz1a")
    assert (detail.name, detail.branch) == ("종로 고기창고", "종각점")  # the branch is not part of the name
    assert detail.address == "서울특별시 종로구 관철동 12-3"  # breadcrumb links + the lot number
    assert detail.phone == "02-732-1234"
    assert (detail.rating, detail.rating_count, detail.score) == (4.1, 1203, 77)
    assert detail.tags == ("무한리필", "가성비")  # '#' stripped, deduped, in page order
    assert detail.keywords == ("삼겹살", "무한리필")
    assert detail.categories == ("삼겹살",)
    assert detail.open_hours == "09:30 - 23:00" and detail.last_order == "22:10"
    assert detail.break_time == "15:30 - 17:00" and detail.holiday == "매주 월요일 휴무"
    assert detail.weekly_hours == {
        "월": {"open": None, "close": None, "break": None, "last_order": None, "closed": True},
        "화": {"open": "09:30", "close": "23:00", "break": None, "last_order": "22:10", "closed": False},
        "일": {"open": "11:00", "close": "21:00", "break": None, "last_order": None, "closed": False},
    }
    assert [(m.name, m.price, m.price_text) for m in detail.menu] == [
        ("삼겹살 무한리필", 16900, "16,900원"),
        ("사리 추가", 5000, "+ 5,000원"),
        ("한우 세트", 15000, "1만5천원"),
        ("모둠 해산물", None, "시가"),
        ("주류", None, "변동"),
        ("코스", 12000, "12,000~15,000원"),
    ]
    assert detail.images == ("https://d12zq4w4guyljn.cloudfront.net/classic.jpg",)  # og:image
    assert detail.lat is None and detail.layout == "no-jsonld"
    assert {"lat", "lng"} <= detail.missing and "menu" not in detail.missing


@pytest.mark.parametrize(
    ("text", "won"),
    [
        ("16,900원", 16900),
        ("16,900 원", 16900),
        ("+ 5,000원", 5000),
        ("1만5천원", 15000),
        ("1만8백원", 10800),
        ("2만 원", 20000),
        ("12,000~15,000원", 12000),
        ("시가", None),
        ("변동", None),
        ("1인 16,900원", 16900),
        ("3,000,000,000원", None),
    ],
)
def test_prices_in_every_form(text: str, won: int | None) -> None:
    from stage5.site.detail import won as parse_won

    assert parse_won(text) == won


@pytest.mark.parametrize("layout", ["jsonld", "classic", "no-jsonld"])
def test_every_layout_yields_every_field_of_the_truth(layout: str, small_world: World) -> None:
    """Every replica store in every layout: each field a correct parse yields, as the truth says."""
    from stage5.validate import build_record

    for store in small_world.stores:
        if store.expect != "store":
            continue
        summary = parse_search(render.search_json([render.search_item(store, "무한리필")], 1)).stores[0]
        detail = parse_detail(render.detail_page(store, layout), store.rid)
        assert detail.layout == layout
        record = build_record(summary, detail, store.district or "", "u")
        truth = store.truth(layout)
        got = {
            "name": record.name,
            "branch": record.branch,
            "address": record.address,
            "road_address": record.road_address,
            "phone": record.phone,
            "lat": record.lat,
            "lng": record.lng,
            "rating": record.rating,
            "review_count": record.review_count,
            "score": record.score,
            "keywords": list(record.keywords),
            "open_hours": record.open_hours,
            "break_time": record.break_time,
            "last_order": record.last_order,
            "holiday": record.holiday,
            "weekly_hours": record.weekly_hours,
            "menu": [[m.name, m.price] for m in record.menu],
            "price_min": record.price_min,
            "price_max": record.price_max,
            "image_urls": list(record.image_urls),
        }
        assert got == {k: truth[k] for k in got}, store.rid


def test_a_page_without_a_section_keeps_its_fields_missing_not_empty(small_world: World) -> None:
    """No hours block at all: a miss (keep what is stored); a hours block with nothing in it: a removal."""
    store = next(s for s in small_world.stores if s.open_hours and s.expect == "store")
    page = re.sub(r', "openingHours": \[[^\]]*\]', "", render.detail_page(store, "jsonld").decode())  # JSON-LD's too
    start = page.index('<div class="busi-hours">')
    end = page.index("</div>", start) + len("</div>")
    without = parse_detail((page[:start] + page[end:]).encode(), store.rid)
    emptied = parse_detail(
        (page[:start] + '<div class="busi-hours"><ul class="list"></ul></div>' + page[end:]).encode(), store.rid
    )
    assert without.open_hours is None and {"open_hours", "holiday", "weekly_hours"} <= without.missing
    assert emptied.open_hours is None and "open_hours" not in emptied.missing


def test_saved_page_names_give_the_store_id() -> None:
    from stage5.site.parsers import rid_from_name

    assert rid_from_name("https://www.diningcode.com/profile.php?rid=sJL6OuwQfW9a&x=1") == "sJL6OuwQfW9a"
    assert rid_from_name("pages/profile_classic_Xq3LmN7pTz1a.html") == "Xq3LmN7pTz1a"
    assert rid_from_name("profile.php?rid=abc.html") == "abc"


def test_parse_coverage_of_a_folder(small_world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from stage5.cli import main

    for store in small_world.stores[:6]:
        (tmp_path / f"profile_{store.rid}.html").write_bytes(render.detail_page(store, "classic"))
    (tmp_path / "broken_x.html").write_bytes(b"<html><body>maintenance</body></html>")
    assert main(["parse", str(tmp_path), "--coverage"]) == 0
    out = capsys.readouterr().out
    assert "detail: 6 pages" in out and "detail:classic: 6 pages" in out
    weekly = next(line for line in out.splitlines() if line.strip().startswith("weekly_hours"))
    assert weekly.split()[1] == str(sum(1 for s in small_world.stores[:6] if s.open_hours))
    assert "unreadable: broken_x.html" in out
