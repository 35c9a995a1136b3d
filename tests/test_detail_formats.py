"""Detail pages whose values come in the notations of real pages (shared/diningcode.md §3, §3c): a page written
from §3's own example lines, a page shaped like the one saved in 2020, hours in the 12-hour Korean notation,
JSON-LD menus, coordinates outside JSON-LD, placeholder images, and headings that are not the store's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stage5.replica import render
from stage5.replica.world import World
from stage5.site.formats import WEEK
from stage5.site.parsers import parse_detail
from stage5.site.seoul import district_of_address

DATA = Path(__file__).parent / "data"


def _page(body: str, head: str = "") -> bytes:
    return (
        '<!DOCTYPE html><html lang="ko"><head><meta charset="utf-8">'
        "<title>망원 화로상회 - 망원 삼겹살, 무한리필 맛집 | 다이닝코드, 빅데이터 맛집검색</title>"
        f'{head}</head><body><div id="div_profile">{body}</div></body></html>'
    ).encode()


def test_a_page_written_from_section_3_with_its_example_lines() -> None:
    """Name and branch in `p.tit > span`; the hours as list items outside any busi-hours block."""
    detail = parse_detail((DATA / "profile_section3_Ab12Cd34Ef56.html").read_bytes(), "Ab12Cd34Ef56")
    assert (detail.name, detail.branch) == ("연남 고기창고", "신촌점")
    assert detail.open_hours == "11:30 - 22:00" and detail.last_order == "21:00"
    assert detail.break_time == "15:00 - 17:00" and detail.holiday == "매주 일요일 휴무"
    assert detail.weekly_hours is None and detail.unread == ()
    assert [(m.name, m.price) for m in detail.menu] == [("삼겹살 무한리필", 19900), ("사리 추가", 5000)]
    assert detail.address == "서울특별시 서대문구 창천동 31-12"


def test_a_page_shaped_like_the_one_saved_in_2020() -> None:
    """Menu, hours and cuisine only in JSON-LD; coordinates only in hidden inputs; a placeholder image; a
    recent-search box with a `.tit` heading (and a span) before the store's own."""
    detail = parse_detail((DATA / "profile_2020_Zx9Yw8Vu7Ts6.html").read_bytes(), "Zx9Yw8Vu7Ts6")
    assert (detail.name, detail.branch) == ("종로 돌솥밥집", "본점")  # not "전체삭제" from the recent-search box
    assert [(m.name, m.price, m.price_text) for m in detail.menu] == [
        ("돌솥비빔밥", 8000, "8,000원"),
        ("된장찌개", 7000, "7000"),
        ("공기밥", None, None),
        ("식혜", 2000, "2,000원"),  # from a hasMenuSection
    ]
    assert detail.categories == ("돌솥밥", "된장찌개")  # servesCuisine
    assert (detail.lat, detail.lng) == (37.5689123, 126.9851234)  # hdn_lat / hdn_lng
    assert detail.open_hours == "11:00 - 22:30"
    every_day = {"open": "11:00", "close": "22:30", "break": None, "last_order": None, "closed": False}
    assert detail.weekly_hours == dict.fromkeys(WEEK, every_day)
    assert detail.images == ()  # the noimage placeholder is no photo
    assert detail.phone == "02-733-5678" and (detail.rating, detail.rating_count) == (4.2, 31)
    assert "menu" not in detail.missing and "open_hours" not in detail.missing
    assert district_of_address(detail.address) == "종로구"  # '서울 종로구 …'


def test_the_2020_page_without_json_ld_still_skips_the_unrelated_headings() -> None:
    html = (DATA / "profile_2020_Zx9Yw8Vu7Ts6.html").read_text()
    start, end = html.index('<script type="application/ld+json">'), html.index("</script>") + len("</script>")
    detail = parse_detail((html[:start] + html[end:]).encode(), "Zx9Yw8Vu7Ts6")
    assert (detail.name, detail.branch) == ("종로 돌솥밥집", "본점")  # the title names the store; its heading splits it
    assert detail.open_hours is None and {"open_hours", "menu"} <= detail.missing  # nothing said: kept, not blanked


def test_hours_in_the_12_hour_korean_notation_with_day_parts() -> None:
    body = (
        '<div class="busi-hours"><ul class="list">'
        '<li><p class="l-txt">평일</p><p class="r-txt">오전 11시 30분 - 오후 10시</p></li>'
        '<li><p class="l-txt">주말</p><p class="r-txt">정오 12시 - 자정 12시 (연중무휴)</p></li>'
        '<li><p class="l-txt">휴무일</p><p class="r-txt">매주 월요일</p></li>'
        "</ul></div>"
    )
    detail = parse_detail(_page(body), "x")
    week = detail.weekly_hours or {}
    assert week["월"]["closed"] is True  # 휴무일: 매주 월요일
    assert (week["화"]["open"], week["화"]["close"]) == ("11:30", "22:00")
    assert (week["토"]["open"], week["일"]["close"]) == ("12:00", "24:00")
    assert detail.holiday == "매주 월요일 휴무"
    assert detail.open_hours is None  # weekdays and weekends differ, and no line is today's: not guessed


def test_past_midnight_and_open_all_day() -> None:
    late = parse_detail(_page('<div class="busi-hours"><ul><li>오후 4시 30분 - 오전 2시</li></ul></div>'), "x")
    assert late.open_hours == "16:30 - 02:00"
    always = parse_detail(_page('<div class="busi-hours"><ul><li>24시간 영업</li></ul></div>'), "x")
    assert always.open_hours == "00:00 - 24:00"


def test_break_and_last_order_in_the_same_text_or_their_own_lines() -> None:
    one = parse_detail(
        _page(
            "<ul><li>영업시간: 11:30 - 22:00 브레이크타임 15:00-17:00 라스트오더: 21:00 휴무일: 매주 화요일</li></ul>"
        ),
        "x",
    )
    assert (one.open_hours, one.break_time, one.last_order, one.holiday) == (
        "11:30 - 22:00",
        "15:00 - 17:00",
        "21:00",
        "매주 화요일 휴무",
    )


def test_unreadable_hours_are_kept_raw_and_not_guessed() -> None:
    detail = parse_detail(_page('<div class="busi-hours"><ul><li>영업시간: 사장님 마음대로</li></ul></div>'), "x")
    assert detail.open_hours is None and detail.unread == ("영업시간: 사장님 마음대로",)
    assert "open_hours" not in detail.missing  # the section is there: the page says something, just not a time


@pytest.mark.parametrize(
    "position",
    [
        '<div id="map" data-lat="37.5563" data-lng="126.9236"></div>',
        '<div class="map" data-latitude="37.5563" data-longitude="126.9236"></div>',
        '<input type="hidden" name="hdn_lat" value="37.5563"><input type="hidden" name="hdn_lng" value="126.9236">',
    ],
)
def test_coordinates_outside_json_ld(position: str) -> None:
    detail = parse_detail(_page(position), "x")
    assert (detail.lat, detail.lng) == (37.5563, 126.9236)


def test_json_ld_geo_comes_first_and_junk_coordinates_are_none() -> None:
    ld = (
        '<script type="application/ld+json">{"@type":"FoodEstablishment","name":"망원 화로상회",'
        '"geo":{"latitude":37.1,"longitude":127.1}}</script>'
    )
    assert (
        parse_detail(_page('<input id="hdn_lat" value="37.9"><input id="hdn_lng" value="126.9">', ld), "x").lat == 37.1
    )
    junk = parse_detail(_page('<input id="hdn_lat" value="NaN"><input id="hdn_lng" value="abc">'), "x")
    assert (junk.lat, junk.lng) == (None, None)


def test_json_ld_menu_prices_as_strings_numbers_and_nothing() -> None:
    ld = (
        '<script type="application/ld+json">{"@type":"Restaurant","name":"망원 화로상회","hasMenu":['
        '{"hasMenuSection":{"hasMenuSection":[{"hasMenuItem":{"name":"목살","offers":{"price":"13,000원"}}}]}},'
        '{"hasMenuItem":[{"name":"항정살","offers":{"price":15000.0}},{"name":"대게","offers":{"price":"시가"}}]}]}'
        "</script>"
    )
    detail = parse_detail(_page("", ld), "x")
    assert [(m.name, m.price) for m in detail.menu] == [("목살", 13000), ("항정살", 15000), ("대게", None)]
    url_only = ld.replace('"hasMenu":[', '"hasMenu":"https://example.invalid/menu","x":[')
    other = parse_detail(_page("", url_only), "x")
    assert other.menu == () and "menu" in other.missing and other.fallbacks == 1


def test_a_markup_menu_wins_over_the_json_ld_one() -> None:
    ld = (
        '<script type="application/ld+json">{"@type":"Restaurant","name":"망원 화로상회",'
        '"hasMenu":{"hasMenuItem":[{"name":"옛 메뉴"}]}}</script>'
    )
    body = (
        '<ul class="Restaurant_MenuList"><li><span class="Restaurant_Menu">삼겹살</span>'
        '<p class="Restaurant_MenuPrice">1만2천원</p></li></ul>'
    )
    assert [(m.name, m.price) for m in parse_detail(_page(body, ld), "x").menu] == [("삼겹살", 12000)]


@pytest.mark.parametrize(
    "image",
    [
        "https://www.diningcode.com/dcicons/new/images/web/common/noimage.png",
        "https://example.invalid/img/no_image.jpg",
        "https://example.invalid/NoImg.gif",
    ],
)
def test_placeholder_images_are_no_images(image: str) -> None:
    real = "https://d12zq4w4guyljn.cloudfront.net/a.jpg"
    ld = f'<script type="application/ld+json">{{"@type":"Restaurant","name":"x","image":["{image}","{real}"]}}</script>'
    detail = parse_detail(_page("", ld + f'<meta property="og:image" content="{image}">'), "x")
    assert detail.images == (real,)


def test_a_heading_that_is_not_the_store_is_never_its_name() -> None:
    """The title names the store: a `.tit` heading naming something else (before the store's) is skipped."""
    body = (
        '<div class="tit-point"><p class="tit">최근검색기록 <span>전체삭제</span></p></div>'
        "<h1>망원 화로상회 <span>망원점</span></h1>"
    )
    detail = parse_detail(_page(body), "x")
    assert (detail.name, detail.branch) == ("망원 화로상회", "망원점")


@pytest.mark.parametrize(
    ("address", "district"),
    [
        ("서울특별시 마포구 망원동 1-2", "마포구"),
        ("서울시 마포구 망원동 1-2", "마포구"),
        ("서울 마포구 망원동 1-2", "마포구"),
        ("부산광역시 중구 중앙동 1", None),
        ("서울특별시 중랑구 면목동 1", "중랑구"),
    ],
)
def test_every_way_of_writing_seoul(address: str, district: str | None) -> None:
    assert district_of_address(address) == district


# --- the replica serves every notation, and its JSON-LD agrees with its markup --------------------------------


def _without(page: str, start_marker: str, end_marker: str) -> str:
    start = page.index(start_marker)
    return page[:start] + page[page.index(end_marker, start) + len(end_marker) :]


def test_the_replica_json_ld_alone_says_what_its_markup_says(small_world: World) -> None:
    """Each 2023–25 page with its markup hours and menu cut out: JSON-LD openingHours and hasMenu give the same
    hours, holiday, weekly days and menu as the truth (in whichever form the store's page writes them)."""
    checked = 0
    for store in small_world.stores:
        if store.expect != "store":
            continue
        page = render.detail_page(store, "jsonld").decode()
        page = _without(page, '<div class="busi-hours">', "</div>")
        page = _without(page, '<div class="menu-info">', "</div>")
        detail = parse_detail(page.encode(), store.rid)
        assert [(m.name, m.price) for m in detail.menu] == list(store.menu), store.rid
        assert detail.categories == store.categories
        if store.open_hours:
            # schema.org's form names the open days only; the Korean form says the day off too
            english = '"openingHours": ["Mo' in page or '"openingHours": ["Tu' in page
            truth = {d: e for d, e in (store.weekly_hours() or {}).items() if not (english and e["closed"])}
            assert detail.open_hours == store.open_hours, store.rid
            assert detail.holiday == (None if english else store.holiday), store.rid
            assert {d: (e["open"], e["close"], e["closed"]) for d, e in (detail.weekly_hours or {}).items()} == {
                d: (e["open"], e["close"], e["closed"]) for d, e in truth.items()
            }, store.rid
            checked += 1
    assert checked > 20


def test_the_replica_uses_every_notation(small_world: World) -> None:
    """Over a small world the pages use each notation of §3c at least once (so the fidelity crawl reads them all)."""
    pages = "".join(
        render.detail_page(s, layout).decode() for s in small_world.stores[:300] for layout in render.LAYOUTS
    )
    for sample in (
        "오전 ",
        "오후 ",
        "정오 12시",
        "자정 12시",
        "휴무일: 매주",
        "정기휴무 매주",
        "(연중무휴)",
        "휴무일</p>",
    ):
        assert sample in pages, sample
    for pattern in (r"\d{2}:\d{2}~\d{2}:\d{2}", r"\d{2}:\d{2}-\d{2}:\d{2}", r"\d{2}:\d{2} - \d{2}:\d{2}"):
        assert re.search(pattern, pages), pattern
    for sample in ('"openingHours": ["매일', '"openingHours": ["Mo-Su', "hasMenuSection", '"price": "', "hdn_lat"):
        assert sample in pages, sample
    assert re.search(r'"price": \d', pages) and "data-lat=" in pages and "noimage.png" in pages
    assert re.search(r">(평일|[월화수목금토일]~[월화수목금토일])<", pages) and "최근검색기록" in pages


def test_unreadable_hours_are_counted_in_the_coverage() -> None:
    from stage5.coverage import count_detail, merge

    part: dict[str, dict[str, object]] = {}
    unreadable = parse_detail(_page('<div class="busi-hours"><ul><li>영업시간: 사장님 마음대로</li></ul></div>'), "x")
    count_detail(part, unreadable)
    count_detail(
        part, parse_detail(_page('<div class="busi-hours"><ul><li>영업시간: 11:00 - 21:00</li></ul></div>'), "y")
    )
    assert part["detail"]["unread_values"] == 1 and part[f"detail:{unreadable.layout}"]["unread_values"] == 1
    assert merge([part, part])["detail"]["unread_values"] == 2
