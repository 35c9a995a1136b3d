"""Validation and classification, pure: no network, no database."""

from __future__ import annotations

import pytest

from stage5.models import MenuItem, Rejection, StoreDetail, StoreRecord, StoreSummary
from stage5.site.seoul import district_of_address
from stage5.validate import build_record, classify_refill, normalize_phone

URL = "http://127.0.0.1:1/profile.php?rid=abc"


def summary(**kw: object) -> StoreSummary:
    base: dict[str, object] = dict(
        rid="abc", name="강남 고깃집", address="서울특별시 강남구 역삼동 1-2", lat=37.5, lng=127.03
    )
    base.update(kw)
    return StoreSummary(**base)  # type: ignore[arg-type]


def detail(**kw: object) -> StoreDetail:
    base: dict[str, object] = dict(rid="abc", name=None)
    base.update(kw)
    return StoreDetail(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("02-123-4567", "02-123-4567"),
        ("02 1234 5678", "02-1234-5678"),
        ("0507.1402.3381", "0507-1402-3381"),
        ("+82-2-123-4567", "02-123-4567"),
        ("031-123-4567", "031-123-4567"),
        ("010-1234-5678", "010-1234-5678"),
        ("1588-1234", None),
        ("없음", None),
        (None, None),
    ],
)
def test_normalize_phone(raw: str | None, expected: str | None) -> None:
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    "address, district",
    [
        ("서울특별시 강남구 역삼동 1", "강남구"),
        ("서울 중구 명동 1", "중구"),
        ("서울특별시 중랑구 면목동 1", "중랑구"),
        ("부산광역시 중구 중앙동 1", None),  # Busan's 중구 is not Seoul's
        ("경기도 성남시 분당구 정자동 1", None),
        ("", None),
        (None, None),
    ],
)
def test_district_of_address(address: str | None, district: str | None) -> None:
    assert district_of_address(address) == district


def test_record_merges_detail_over_summary() -> None:
    out = build_record(
        summary(phone="02 555 1234", user_score=3.0),
        detail(name="강남 고깃집 본점", rating=4.5, menu=(MenuItem("삼겹살", 15900), MenuItem("목살", 17900))),
        "강남구",
        URL,
    )
    assert isinstance(out, StoreRecord)
    assert out.name == "강남 고깃집 본점" and out.rating == 4.5 and out.phone == "02-555-1234"
    assert (out.price_min, out.price_max) == (15900, 17900)
    assert out.district == "강남구" and not out.is_refill and out.refill_evidence == ()


def test_swapped_coordinates_are_fixed() -> None:
    out = build_record(summary(lat=127.03, lng=37.5), detail(), "강남구", URL)
    assert isinstance(out, StoreRecord) and (out.lat, out.lng) == (37.5, 127.03)


@pytest.mark.parametrize(
    "kw, reason",
    [
        (dict(lat=0.0, lng=0.0), "coordinates outside Seoul"),
        (dict(lat=35.16, lng=129.16), "coordinates outside Seoul"),
        (dict(lat=None, lng=None), "missing coordinates"),
        (dict(address="부산광역시 해운대구 중동 1"), "address outside Seoul"),
        (dict(address=None), "missing address"),
    ],
)
def test_rejections_keep_reason_and_url(kw: dict[str, object], reason: str) -> None:
    out = build_record(summary(**kw), detail(), "강남구", URL)
    assert isinstance(out, Rejection)
    assert reason in out.reason and out.source_url == URL and out.rid == "abc" and out.district == "강남구"


def test_refill_classification_keeps_evidence() -> None:
    is_refill, kind, items, evidence = classify_refill(
        summary(categories=("삼겹살",)),
        detail(menu=(MenuItem("삼겹살 무한리필", 19900), MenuItem("된장찌개", 5000)), tags=("셀프바",)),
    )
    assert is_refill and kind == "무한리필"
    assert items == ("삼겹살",)
    assert evidence == ("tag:셀프바", "menu:삼겹살 무한리필")


@pytest.mark.parametrize(
    "word, kind", [("무제한", "무한리필"), ("셀프바", "셀프바"), ("뷔페", "뷔페"), ("리필", "무한리필")]
)
def test_each_refill_word_counts(word: str, kind: str) -> None:
    is_refill, refill_type, _, evidence = classify_refill(summary(name=f"마포 한식 {word}"), detail())
    assert is_refill and refill_type == kind and evidence == (f"name:마포 한식 {word}",)


def test_plain_store_is_not_refill() -> None:
    assert classify_refill(summary(categories=("라멘",)), detail(menu=(MenuItem("돈코츠라멘", 9000),)))[0] is False
