"""The profile API reader (`POST /API/profile/`, shared/diningcode.md §3b) against hand-written answers: every
section read by key, every quirk of the notes, errors that say what failed, another store's answer refused."""

from __future__ import annotations

import json
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from stage5.cli import main
from stage5.errors import NotThisStore, ParseError
from stage5.models import StoreRecord, StoreSummary
from stage5.site.parsers import guess_kind, parse_any, rid_from_name
from stage5.site.profile import clean_words, parse_profile, price_of, with_scheme
from stage5.validate import build_record

DATA = Path(__file__).parent / "data"
SAMPLE = DATA / "profile_api_sJL6OuwQfW9a.json"
RID = "sJL6OuwQfW9a"


def sample() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SAMPLE.read_text(encoding="utf-8"))
    return data


def section(data: dict[str, Any], key: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in data["result_data"] if s["key"] == key)
    return found


def parse(data: dict[str, Any], rid: str = RID) -> Any:
    return parse_profile(json.dumps(data, ensure_ascii=False).encode(), rid)


def test_the_hand_written_answer_reads_every_field() -> None:
    detail = parse_profile(SAMPLE.read_bytes(), RID)
    assert (detail.name, detail.branch, detail.title) == ("육미당", "강남점", "육미당 강남점")
    assert (detail.address, detail.road_address) == (
        "서울특별시 강남구 역삼동 825-12",
        "서울특별시 강남구 강남대로 396",
    )
    assert (detail.lat, detail.lng, detail.phone) == (37.4979, 127.0276, "02-123-4567")  # numbers sent as strings
    assert (detail.rating, detail.rating_count, detail.score) == (4.4, 1185, 82)  # "1,185": a count with a comma
    assert detail.categories == ("삼겹살", "고기무한리필")  # ", " prefix and the empty entry dropped
    assert detail.tags == ("무한리필", "가성비", "단체회식", "데이트")  # desc[] then detail.tag[], cleaned
    assert detail.facilities == ("주차", "예약", "단체석")
    assert detail.images == (  # scheme-less and // URLs made https; the noimage placeholder is no image
        "https://d12zq4w4guyljn.cloudfront.net/main.jpg",
        "https://d12zq4w4guyljn.cloudfront.net/second.jpg",
    )
    assert [(m.name, m.price, m.price_text, m.best) for m in detail.menu] == [
        ("삼겹살 무한리필", 19900, "19,900원", True),
        ("목살", 21900, "21,900원", False),
        ("음료", None, None, False),
        ("대게", None, "시가", False),
    ]  # the nameless item is skipped
    assert detail.menu[0].selection_rate == 62.5
    assert (detail.open_hours, detail.break_time, detail.last_order) == ("11:30 - 22:00", "15:00 - 17:00", "21:00")
    assert detail.holiday == "매주 월요일 휴무"
    assert detail.weekly_hours is not None and detail.weekly_hours["월"]["closed"] is True
    assert detail.weekly_hours["화"] == {
        "open": "11:30",
        "close": "22:00",
        "break": "15:00 - 17:00",
        "last_order": "21:00",
        "closed": False,
    }
    assert (detail.open_status, detail.closed) == ("영업 중", False)
    assert detail.reviews == ("고기가 맛있어요",)
    assert (detail.source, detail.layout, detail.claimed_ids) == ("api", "api", (RID,))
    assert detail.missing == {"keywords"}  # the API has no keyword links; everything else was shown


def test_sections_are_read_by_key_in_any_order_and_from_data() -> None:
    data = sample()
    random.Random(3).shuffle(data["result_data"])
    shuffled = parse(data)
    assert shuffled == parse_profile(SAMPLE.read_bytes(), RID)
    wrapped = sample()
    wrapped["result_data"] = [
        {"key": s["key"], "data": {k: v for k, v in s.items() if k != "key"}} for s in wrapped["result_data"]
    ]
    assert parse(wrapped) == shuffled


def test_numbers_as_numbers_read_the_same() -> None:
    data = sample()
    restaurant = section(data, "restaurant")
    restaurant.update(lat=37.4979, lng=127.0276, score=82)
    section(data, "score")["score"].update(average=4.4, review_total=1185)
    section(data, "menu")["list"][0]["price"] = 19900
    detail = parse(data)
    assert (detail.lat, detail.score, detail.rating, detail.rating_count, detail.menu[0].price) == (
        37.4979,
        82,
        4.4,
        1185,
        19900,
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("blog.naver.com/abc/1", "https://blog.naver.com/abc/1"),
        ("//img.dc.com/a.jpg", "https://img.dc.com/a.jpg"),
        ("/img.dc.com/a.jpg", "https://img.dc.com/a.jpg"),
        ("http://img.dc.com/a.jpg", "http://img.dc.com/a.jpg"),
        ("https://www.diningcode.com/dcicons/new/images/web/common/noimage.png", None),
        ("", None),
        (None, None),
    ],
)
def test_urls_without_a_scheme_get_https(raw: Any, expected: str | None) -> None:
    assert with_scheme(raw) == expected


def test_tag_and_facility_strings_are_cleaned() -> None:
    assert clean_words([", 주차", "  예약 ", "", ",", "#가성비", "주차", None, 7]) == ("주차", "예약", "가성비", "7")
    assert clean_words("주차, 예약") is None  # not a list: the key says nothing readable


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (19900, (19900, "19,900원")),
        ("19900", (19900, "19,900원")),
        ("19,900", (19900, "19,900원")),
        ("19,900원", (19900, "19,900원")),
        ("+ 5,000원", (5000, "+ 5,000원")),
        ("1만5천원", (15000, "1만5천원")),
        ("12,000~15,000원", (12000, "12,000~15,000원")),
        ("시가", (None, "시가")),
        ("변동", (None, "변동")),
        ("", (None, None)),
        (None, (None, None)),
        (True, (None, None)),
        ("9" * 12, (None, "9" * 12)),
    ],
)
def test_prices_in_every_form(raw: Any, expected: tuple[int | None, str | None]) -> None:
    assert price_of(raw) == expected


def test_hours_in_the_12_hour_korean_notation_and_per_day_parts() -> None:
    data = sample()
    section(data, "detail")["bhour"] = [
        {"duration": "월~금", "time": "오전 11시 30분 - 오후 10시", "today": "0"},
        {"duration": "토~일", "time": "정오 12시 - 자정 12시", "today": "1"},
        {"duration": "라스트오더", "time": "오후 9시 30분", "today": ""},
    ]
    detail = parse(data)
    assert detail.open_hours == "12:00 - 24:00"  # today's line
    assert detail.last_order == "21:30" and detail.holiday is None and detail.break_time is None
    week = detail.weekly_hours
    assert week is not None and set(week) == set("월화수목금토일")
    assert (week["수"]["open"], week["수"]["close"], week["수"]["last_order"]) == ("11:30", "22:00", "21:30")
    assert (week["일"]["open"], week["일"]["close"]) == ("12:00", "24:00")


def test_hours_past_midnight_and_a_holiday_as_a_day_line() -> None:
    data = sample()
    section(data, "detail")["bhour"] = [
        {"duration": "매일", "time": "오후 4시 30분 - 오전 2시 (연중무휴)"},
        {"duration": "일요일", "time": "휴무"},
    ]
    detail = parse(data)
    assert detail.open_hours == "16:30 - 02:00"
    assert detail.weekly_hours is not None and detail.weekly_hours["일"]["closed"] is True
    assert detail.weekly_hours["토"]["close"] == "02:00"


def test_hours_text_no_notation_reads_is_kept_raw_not_guessed() -> None:
    data = sample()
    section(data, "detail")["bhour"] = [{"duration": "매일", "time": "오픈 시간 미정"}]
    detail = parse(data)
    assert detail.open_hours is None and detail.weekly_hours is None
    assert detail.unread == ("매일 오픈 시간 미정",)
    assert parse(sample()).unread == ()


def test_hours_it_cannot_read_leave_the_stored_hours_alone() -> None:
    """An hours text no notation reads, or bhour in a shape this reader does not know (a text, a list of
    texts), says nothing of the hours it left empty: they are missing, not gone (an attacker's proxy sending
    either had the stored hours, break and last order of 65 stores blanked)."""
    hours = {"open_hours", "break_time", "last_order", "holiday", "weekly_hours"}
    data = sample()
    section(data, "detail")["bhour"] = [{"duration": "매일", "time": "오픈 시간 미정"}]
    assert hours <= parse(data).missing
    for shape in ("매일 11:00 - 22:00", ["매일 11:00 - 22:00"]):
        section(data, "detail")["bhour"] = shape
        del section(data, "detail")["bhour_seo"]
        assert hours <= parse(data).missing, shape
        section(data, "detail")["bhour_seo"] = []  # an empty list beside it: the answer says no hours
        assert not hours & parse(data).missing, shape


def test_bhour_seo_when_bhour_is_empty_and_no_hours_at_all() -> None:
    data = sample()
    section(data, "detail")["bhour"] = []
    assert parse(data).open_hours == "11:30 - 22:00"  # from bhour_seo
    section(data, "detail")["bhour_seo"] = []
    gone = parse(data)
    assert gone.open_hours is None and gone.weekly_hours is None
    assert "open_hours" not in gone.missing  # the answer says: no hours (stored ones are cleared)
    del section(data, "detail")["bhour"], section(data, "detail")["bhour_seo"]
    assert {"open_hours", "break_time", "last_order", "holiday", "weekly_hours"} <= parse(data).missing


def test_a_section_that_is_not_there_is_missing_not_gone() -> None:
    data = sample()
    data["result_data"] = [s for s in data["result_data"] if s["key"] not in ("detail", "menu", "score")]
    detail = parse(data)
    assert detail.address is None and detail.menu == () and detail.rating is None
    assert {"road_address", "menu", "best_menu", "rating", "rating_count", "facilities", "open_status"} <= (
        detail.missing
    )
    assert "phone" not in detail.missing  # restaurant.phone still gave it
    assert detail.phone == "02-123-4567"


@pytest.mark.parametrize(
    ("status", "text", "closed"),
    [
        ({"is_open": "1", "color": "#2fb45a", "time": "영업 중"}, "영업 중", False),
        ({"is_open": 0, "color": "#999"}, "영업 종료", False),  # closed today: no time
        ("오늘 휴무", "오늘 휴무", False),  # a plain text on closed days
        ({"is_open": "0", "text": "폐업한 가게입니다"}, "폐업한 가게입니다", True),
        ([], None, False),
    ],
)
def test_status_in_each_shape(status: Any, text: str | None, closed: bool) -> None:
    data = sample()
    section(data, "detail")["status"] = status
    detail = parse(data)
    assert (detail.open_status, detail.closed) == (text, closed)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"result_code": "400", "result_msg": "no such store", "result_data": []}', "result_code='400'"),
        (b'{"result_msg": "?"}', "result_code=None"),
        (b"<html><body>\xec\xa0\x90\xea\xb2\x80</body></html>", "not JSON"),
        (b'["100"]', "not a JSON object"),
        (b'{"result_code": "100", "result_data": {"restaurant": {}}}', "not a list of sections"),
        (b'{"result_code": "100", "result_data": [{"key": "menu", "list": []}]}', "no 'restaurant' section"),
        (b'{"result_code": 100, "result_data": [{"key": "restaurant", "rn": ""}]}', "names no store"),
    ],
)
def test_an_answer_it_cannot_read_says_what(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message.replace("(", r"\(").replace("?", r"\?")):
        parse_profile(body, RID)


def test_a_hostile_answer_costs_bounded_time() -> None:
    data = sample()  # a few MB, as the fetcher's body cap (max_body_mb, 8) lets through
    detail = section(data, "detail")
    detail["bhour"] = [{"duration": "매일", "time": "11:00 - 22:00 라스트오더 21:00"}] * 40_000
    detail["facility"] = [", 주차"] * 100_000
    section(data, "menu")["list"] = [{"menu": f"m{i}", "price": "1,000원"} for i in range(40_000)]
    body = json.dumps(data, ensure_ascii=False).encode()
    assert len(body) < 8 * 2**20
    started = time.process_time()
    parsed = parse_profile(body, RID)
    assert time.process_time() - started < 1.5  # the lists are read up to MAX_ENTRIES, the rest skipped
    assert parsed.open_hours == "11:00 - 22:00" and parsed.facilities == ("주차",) and len(parsed.menu) == 200


def test_another_stores_answer_is_refused() -> None:
    data = sample()
    section(data, "restaurant")["v_rid"] = "Xq3LmN7pTz1a"
    with pytest.raises(NotThisStore, match="not this store's page.*Xq3LmN7pTz1a"):
        parse(data)
    data = sample()
    del section(data, "restaurant")["v_rid"]
    section(data, "restaurant")["share_url"] = "https://www.diningcode.com/profile.php?rid=Xq3LmN7pTz1a"
    with pytest.raises(NotThisStore):
        parse(data)
    section(data, "restaurant")["share_url"] = f"https://www.diningcode.com/profile.php?rid={RID}"
    assert parse(data).rid == RID
    anonymous = sample()
    del section(anonymous, "restaurant")["v_rid"]
    assert parse(anonymous).claimed_ids == ()  # no id of its own: nothing to contradict
    assert parse(sample(), "").rid == RID  # no id asked (a saved answer): its own


def test_a_record_from_the_api_keeps_the_new_fields_and_a_page_protects_them() -> None:
    detail = parse_profile(SAMPLE.read_bytes(), RID)
    summary = StoreSummary(rid=RID, name="육미당", address=detail.address, lat=37.4979, lng=127.0276)
    record = build_record(summary, detail, "강남구", "https://www.diningcode.com/profile.php?rid=" + RID)
    assert isinstance(record, StoreRecord)
    assert (record.facilities, record.best_menu, record.open_status) == (
        ("주차", "예약", "단체석"),
        ("삼겹살 무한리필",),
        "영업 중",
    )
    assert record.detail_source == "api" and record.missing == ()
    # the page shows no facilities, best marks nor status: a record from it keeps what is stored
    from_page = replace(detail, source="html", facilities=(), open_status=None, menu=(), missing=frozenset())
    kept = build_record(summary, from_page, "강남구", "u")
    assert isinstance(kept, StoreRecord)
    assert {"facilities", "best_menu", "open_status"} <= set(kept.missing) and kept.detail_source == "html"


def test_parse_reads_a_saved_answer_and_guesses_its_kind(capsys: pytest.CaptureFixture[str]) -> None:
    body = SAMPLE.read_bytes()
    assert guess_kind(body, SAMPLE.name) == "profile"
    assert guess_kind(body, "https://im.diningcode.com/API/profile/?v_rid=" + RID) == "profile"
    assert guess_kind((DATA / "isearch_gangnam.json").read_bytes(), "isearch_gangnam.json") == "search"
    assert rid_from_name(SAMPLE.name) == RID
    assert parse_any(body, "profile", RID)[0].facilities == ("주차", "예약", "단체석")
    for argv in (["parse", str(SAMPLE)], ["parse", str(SAMPLE), "--kind", "profile"]):
        assert main(argv) == 0
        printed = json.loads(capsys.readouterr().out)
        assert printed["name"] == "육미당" and printed["source"] == "api" and printed["rid"] == RID
    with pytest.raises(SystemExit):
        main(["parse", str(SAMPLE), "--kind", "nonsense"])
