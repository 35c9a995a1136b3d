"""How the replica writes hours, days and prices in the notations real pages use (shared/diningcode.md §3c).

Each store's page picks its notations by its id (so by the world's seed): `form(store, aspect, choices)`.
Written from the notes, independently of stage5's readers (stage5/site/formats.py), so that the readers are
tested against text they did not produce. The values written are the store's normalised ones (the truth):
`11:30 - 22:00`, `17:00 - 02:00` (past midnight), `24:00` (midnight as a close), `매주 월요일 휴무`.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import TypeVar

WEEK = ("월", "화", "수", "목", "금", "토", "일")
ENGLISH = ("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su")
NO_IMAGE = "https://www.diningcode.com/dcicons/new/images/web/common/noimage.png"  # the site's placeholder

T = TypeVar("T")


def form(rid: str, aspect: str, choices: Sequence[T]) -> T:
    """The notation one store's page uses for one aspect (hours, days, holiday, prices …)."""
    return choices[zlib.crc32(f"{rid}:{aspect}".encode()) % len(choices)]


# --- times --------------------------------------------------------------------------------------------------

SPAN_FORMS = ("dash", "tight", "tilde", "spaced-tilde", "korean")
ALL_DAY = "00:00 - 24:00"  # written `24시간 영업` in some notations


def korean_clock(hhmm: str) -> str:
    """`22:00` -> `오후 10시`, `11:30` -> `오전 11시 30분`, `12:00` -> `정오 12시`, `24:00` -> `자정 12시`."""
    hour, minute = (int(x) for x in hhmm.split(":"))
    if minute == 0 and hour in (0, 24):
        return "자정 12시"
    if minute == 0 and hour == 12:
        return "정오 12시"
    meridiem = "오전" if hour < 12 else "오후"
    twelve = hour - 12 if hour > 12 else (12 if hour == 0 else hour)
    return f"{meridiem} {twelve}시" + (f" {minute}분" if minute else "")


def clock(hhmm: str, korean: bool) -> str:
    return korean_clock(hhmm) if korean else hhmm


def span(text: str, how: str) -> str:
    """`11:30 - 22:00` in one notation: `11:30 - 22:00`, `11:30-22:00`, `11:30~22:00`, `11:30 ~ 22:00`,
    `오전 11시 30분 - 오후 10시`; a close at midnight is written `24:00` or `00:00`; all day `24시간 영업`."""
    if text == ALL_DAY and how in ("korean", "tilde"):
        return "24시간 영업"
    start, end = text.split(" - ")
    if how == "korean":
        return f"{korean_clock(start)} - {korean_clock(end)}"
    if how == "tight" and end == "24:00":
        end = "00:00"
    separator = {"dash": " - ", "tight": "-", "tilde": "~", "spaced-tilde": " ~ "}[how]
    return f"{start}{separator}{end}"


# --- days ---------------------------------------------------------------------------------------------------


def _runs(days: Sequence[str]) -> list[tuple[int, int]]:
    """Consecutive runs of weekdays (week order) as (first, last) indexes."""
    indexes = sorted(WEEK.index(d) for d in days)
    runs: list[tuple[int, int]] = []
    for i in indexes:
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def day_part(days: Sequence[str], how: str) -> str:
    """The days in one notation: `매일` / `평일` / `주말`, ranges `월~화, 목~일`, a list `월, 화, 목`, single days
    `토` or `토요일`, or schema.org's `Mo-Tu,Th-Su`."""
    if how == "english":
        return ",".join(ENGLISH[a] if a == b else f"{ENGLISH[a]}-{ENGLISH[b]}" for a, b in _runs(days))
    if len(days) == 7:
        return "매일"
    if tuple(days) == WEEK[:5] and how != "list":
        return "평일"
    if tuple(days) == WEEK[5:] and how != "list":
        return "주말"
    if how == "list":
        return ", ".join(f"{d}요일" if len(days) == 1 else d for d in days)
    return ", ".join(WEEK[a] if a == b else f"{WEEK[a]}~{WEEK[b]}" for a, b in _runs(days))


HOLIDAY_FORMS = ("plain", "key", "regular", "note")


def holiday_line(holiday: str, how: str) -> str:
    """`매주 월요일 휴무` as `매주 월요일 휴무`, `휴무일: 매주 월요일`, `정기휴무 매주 월요일`, `(매주 월요일 휴무)`."""
    when = holiday.removesuffix(" 휴무")
    return {"plain": holiday, "key": f"휴무일: {when}", "regular": f"정기휴무 {when}", "note": f"({holiday})"}[how]


# --- prices -------------------------------------------------------------------------------------------------


def offer_price(rid: str, index: int, price: int) -> str | int:
    """JSON-LD `offers.price` as pages write it: the text `"8,000원"` or a number."""
    return f"{price:,}원" if form(f"{rid}{index}", "offer", (0, 1)) else price
