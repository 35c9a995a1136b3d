"""Readers of the value notations real DiningCode pages use for hours and prices (shared/diningcode.md §3c).

Pure functions on text, read by meaning: a time is a time whether written `22:00`, `오후 10시` or `밤 10시`;
a line says open hours, break time, last order or a day off by its words, wherever it sits. Every output is
normalised to what the stored columns hold:

- a time is `HH:MM` (24-hour, zero-padded); a range is `HH:MM - HH:MM`;
- **past midnight**: the close is kept as the clock shows it, so a close earlier than the open means the next
  day (`오후 4시 30분 - 오전 2시` -> `16:30 - 02:00`);
- **midnight**: as a close it is `24:00` (`자정 12시`, `밤 12시`, `00:00`, `24:00` all close at `24:00`); as an
  open it is `00:00`;
- **open all day** (`24시간 영업`, `24시간`): `00:00 - 24:00`;
- a day off is a holiday text ending in 휴무 (`휴무일: 매주 월요일` -> `매주 월요일 휴무`); `연중무휴` is a note,
  not a holiday;
- days are the one-letter weekdays 월…일 (`평일` -> 월화수목금, `Mo-Fr` -> 월…금).

What looks like hours but cannot be read (`오픈 시간 미정`, `25:00 - 26:00`) is never guessed: it comes back in
`unread`, raw, for the caller to keep and count. Every text is capped before any pattern runs, and every
pattern here runs in linear time (the hostile-answer tests feed these readers too).
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from typing import Any

from stage5.site.markup import MAX_LINE, MAX_PRICE_DIGITS

WEEK = ("월", "화", "수", "목", "금", "토", "일")
_ENGLISH_DAYS = dict(zip(("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"), WEEK))
_DAY_GROUPS = {"매일": WEEK, "평일": WEEK[:5], "주중": WEEK[:5], "주말": WEEK[5:]}

# --- times ----------------------------------------------------------------------------------------

_MERIDIEM = "오전|오후|정오|자정|새벽|아침|낮|저녁|밤"
# One clock time: `22:00`, `9:30`, `오후 10시`, `11시 30분`, `4시 반`, `정오`, `자정 12시`. Groups: meridiem,
# hour, minute after a colon, minute before 분, 반, a bare 정오/자정.
_CLOCK = (
    rf"(?:({_MERIDIEM})\s*)?(?:(?<!\d)(\d{{1,2}})\s*(?::\s*(\d{{2}})|시(?![간작])(?:\s*(\d{{1,2}})\s*분|\s*(반))?))"
    r"|(정오|자정)"
)
_SEP = r"\s*(?:[-~∼〜–—]|부터)\s*"
_CLOCK_RE = re.compile(_CLOCK)
_RANGE_RE = re.compile(f"(?:{_CLOCK}){_SEP}(?:{_CLOCK})(?:\\s*까지)?")
_ALL_DAY_RE = re.compile(r"24\s*시간(?:\s*(?:영업|운영|오픈))?")
_DATE_RE = re.compile(r"\d{1,2}\s*월\s*\d{1,2}\s*일\s*(?:\(\s*[월화수목금토일]\s*\))?")
_NOTE_RE = re.compile(r"\(([^()]{0,80})\)")


@dataclass(frozen=True, slots=True)
class Clock:
    """One time of day as minutes after midnight (0…1440), and whether the text gave a meridiem."""

    minutes: int
    meridiem: str | None

    def text(self, closing: bool = False) -> str:
        minutes = 1440 if closing and self.minutes in (0, 1440) else self.minutes % 1440
        return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _clock(groups: tuple[str | None, ...]) -> Clock | None:
    """A Clock from the six groups of _CLOCK, or None when it is no time of day (25:00, 10시 75분)."""
    meridiem, hour_text, colon_min, korean_min, half, bare = groups
    if bare:
        return Clock(720 if bare == "정오" else 0, bare)
    if hour_text is None:
        return None
    hour = int(hour_text)
    minute = int(colon_min or korean_min or 0) + (30 if half else 0)
    if minute > 59 or hour > 24 or (hour == 24 and minute):
        return None
    said = _with_meridiem(meridiem, hour) if meridiem else hour
    return Clock(said * 60 + minute, meridiem) if said is not None else None


def _with_meridiem(meridiem: str, hour: int) -> int | None:
    """The 24-hour hour of `hour` said with a Korean meridiem word; None when they disagree (오후 15시)."""
    if hour > 12:
        return hour if meridiem in ("오후", "낮", "저녁", "밤") and hour < 24 else None
    if meridiem in ("오전", "새벽", "아침"):
        return 0 if hour == 12 else hour  # 오전 12시 is midnight
    if meridiem in ("오후", "저녁"):
        return 12 if hour == 12 else hour + 12
    if meridiem == "밤":
        return 24 if hour == 12 else (hour + 12 if hour >= 6 else hour)  # 밤 12시 = midnight, 밤 1시 = 01:00
    if meridiem == "낮":
        return hour + 12 if hour < 7 else hour  # 낮 2시 = 14:00, 낮 12시 = noon
    if meridiem == "정오":
        return 12
    return 0 if hour == 12 else hour  # 자정 12시


def read_time(text: str) -> str | None:
    """The first time of day in `text` as `HH:MM` (`오후 9시 30분` -> `21:30`), else None."""
    found = _CLOCK_RE.search(text[:MAX_LINE])
    clock = _clock(found.groups()) if found else None
    return clock.text() if clock else None


def _range(match: re.Match[str]) -> tuple[str, str] | None:
    start = _clock(match.groups()[:6])
    end = _clock(match.groups()[6:])
    if start is None or end is None:
        return None
    if end.meridiem is None and start.meridiem is not None and end.minutes <= 720:
        # `오후 5시 - 11시`, `오전 11시 - 10시`: an end without a meridiem that would fall before the start
        # is read in the afternoon when that puts it after the start (past midnight otherwise: `오후 4시 - 2시`)
        later = end.minutes + 720
        if end.minutes <= start.minutes < later <= 1440:
            end = Clock(later, None)
    return start.text(), end.text(closing=True)


def read_range(text: str) -> tuple[str, str] | None:
    """The first time range in `text` as (open, close), normalised as the module says; None if none reads."""
    text = text[:MAX_LINE]
    if _ALL_DAY_RE.search(text):
        return ("00:00", "24:00")
    found = _RANGE_RE.search(text)
    return _range(found) if found else None


# --- days -------------------------------------------------------------------------------------------

_DAY = r"[월화수목금토일](?:요일)?"
# A day word stands alone: not inside 휴무일, 23일, 매주, and `월 2회` is a frequency, not Monday.
_DAYS_RE = re.compile(
    rf"(?<![가-힣0-9])(?:(매일|평일|주중|주말)|({_DAY})(?:\s*[~\-–∼]\s*({_DAY}))?)(?![가-힣])(?!\s*\d+\s*회)"
)
_DAYS_ONLY_RE = re.compile(rf"\s*(?:(?:매일|평일|주중|주말|{_DAY})[\s,·/~\-–∼]*)+$")
_ENGLISH_RE = re.compile(r"\b(Mo|Tu|We|Th|Fr|Sa|Su)(?:\s*-\s*(Mo|Tu|We|Th|Fr|Sa|Su))?\b")


def _day_span(first: str, last: str | None) -> tuple[str, ...]:
    start = WEEK.index(first[0])
    if last is None:
        return (WEEK[start],)
    end = WEEK.index(last[0])
    return tuple(WEEK[(start + i) % 7] for i in range((end - start) % 7 + 1))  # 토~월 wraps the week


def read_days(text: str) -> tuple[str, ...]:
    """The weekdays a text names, in week order: `매일`, `평일`, `주말`, `월~금`, `토`, `일요일`, `월, 수, 금`,
    `Mo-Fr`, `Sa,Su`. Dates (`11월 23일 (월)`) name no day: they say which day today is."""
    text = _DATE_RE.sub(" ", text[:MAX_LINE])
    named: set[str] = set()
    for group, first, last in _DAYS_RE.findall(text):
        named.update(_DAY_GROUPS[group] if group else _day_span(first, last or None))
    for first, last in _ENGLISH_RE.findall(text):
        named.update(_day_span(_ENGLISH_DAYS[first], _ENGLISH_DAYS[last] if last else None))
    return tuple(d for d in WEEK if d in named)


# --- hours texts --------------------------------------------------------------------------------------

_KEYS = {
    "open": r"영업\s*시간|운영\s*시간|오픈\s*시간",
    "break": r"브레이크\s*타임|브레이크|휴게\s*시간|쉬는\s*시간",
    "last_order": r"라스트\s*오더|주문\s*마감|L\.\s*O\.?",
    "holiday": r"정기\s*휴무일?|휴무일|쉬는\s*날",
}
_KEY_RE = re.compile("|".join(f"(?P<{name}>{pattern})" for name, pattern in _KEYS.items()))
_DAY_OFF_RE = re.compile(r"휴무|휴업|쉽니다|정기\s*휴일")
_ALL_YEAR_RE = re.compile(r"연중\s*무휴|무휴")
_FILLER_RE = re.compile(r"^[\s:：,·/|\-]+|[\s:：,·/|\-]+$")


@dataclass(frozen=True, slots=True)
class Hours:
    """What a text of hours says: one line, several lines, or one JSON-LD `openingHours` entry."""

    days: tuple[str, ...] = ()  # the weekdays it is about; () when it names none (today's, or every day's)
    open: str | None = None
    close: str | None = None
    break_time: str | None = None  # "HH:MM - HH:MM"
    last_order: str | None = None  # "HH:MM"
    holiday: str | None = None  # "매주 월요일 휴무", "명절 당일 휴무"
    closed: bool = False  # the text says the day(s) are a day off
    notes: tuple[str, ...] = ()  # "연중무휴" and other notes in parentheses
    unread: tuple[str, ...] = field(default=())  # pieces that look like hours but do not read: kept raw

    @property
    def open_hours(self) -> str | None:
        return f"{self.open} - {self.close}" if self.open and self.close else None

    def day_entry(self) -> dict[str, Any]:
        """One day of the weekly table as the stored `weekly_hours` holds it."""
        closed = (self.closed or self.holiday is not None) and not self.open  # `휴무일`, `휴무`, `매주 … 휴무`
        return {
            "open": None if closed else self.open,
            "close": None if closed else self.close,
            "break": None if closed else self.break_time,
            "last_order": None if closed else self.last_order,
            "closed": closed,
        }


def _holiday_text(value: str) -> str | None:
    """`매주 월요일` (a 휴무일 value) or `매주 월요일 휴무` -> `매주 월요일 휴무`; None for nothing to say."""
    value = " ".join(_FILLER_RE.sub("", value).split())
    if not value or _ALL_YEAR_RE.search(value):
        return None
    return value if _DAY_OFF_RE.search(value) else f"{value} 휴무"


def _segments(text: str) -> list[tuple[str, str]]:
    """(key, value) pieces of one line: `영업시간: 11:30 - 22:00 라스트오더: 21:00` -> open, last_order.
    Text before the first key word is unkeyed (`매일 11:00-22:30`, `매주 일요일 휴무`)."""
    pieces: list[tuple[str, str]] = []
    key, start = "", 0
    for found in _KEY_RE.finditer(text):
        pieces.append((key, text[start : found.start()]))
        key, start = found.lastgroup or "", found.end()
    pieces.append((key, text[start:]))
    return [(k, v) for k, v in pieces if k or v.strip()]


class _Reading:
    """Hours as a text is read, segment by segment (mutable: one Hours is built at the end, cheaply)."""

    __slots__ = ("days", "open", "close", "break_time", "last_order", "holiday", "closed", "notes", "unread")

    def __init__(self) -> None:
        self.days: tuple[str, ...] = ()
        self.open: str | None = None
        self.close: str | None = None
        self.break_time: str | None = None
        self.last_order: str | None = None
        self.holiday: str | None = None
        self.closed = False
        self.notes: list[str] = []
        self.unread: list[str] = []

    def hours(self) -> Hours:
        return Hours(
            days=self.days,
            open=self.open,
            close=self.close,
            break_time=self.break_time,
            last_order=self.last_order,
            holiday=self.holiday,
            closed=self.closed,
            notes=tuple(self.notes),
            unread=tuple(self.unread),
        )


def _read_segment(key: str, value: str, reading: _Reading) -> bool:
    """Reads one (key, value) piece into `reading`; False when it looks like hours but does not read."""
    span = read_range(value)
    if key == "break":
        reading.break_time = reading.break_time or (f"{span[0]} - {span[1]}" if span else None)
        return span is not None
    if key == "last_order":
        time = read_time(value)
        reading.last_order = reading.last_order or time
        return time is not None
    if key == "holiday":
        holiday = _holiday_text(value)
        if holiday is None and not read_days(value):  # `휴무일` alone, as a weekly table's day says it
            reading.closed = True
        reading.holiday = reading.holiday or holiday
        return True
    if span:
        reading.days = reading.days or _leading_days(value, True)
        reading.open, reading.close = (reading.open, reading.close) if reading.open else span
        return True
    if _DAY_OFF_RE.search(value):  # `매주 일요일 휴무` is the store's holiday; `휴무` alone: this day is off
        reading.holiday = reading.holiday or _holiday_text(value)
        reading.closed = reading.closed or not read_days(value)
        return True
    if key == "open" or _CLOCK_RE.search(value):
        return False
    reading.days = reading.days or read_days(value)  # a label of days alone (`평일`)
    return True


def _leading_days(value: str, has_time: bool) -> tuple[str, ...]:
    """The days an hours line is for: the day words before its time (`월~금 11:00-22:00`)."""
    head = _ALL_DAY_RE.split(_RANGE_RE.split(value, maxsplit=1)[0], maxsplit=1)[0] if has_time else value
    return read_days(head)


def _read_notes(line: str, reading: _Reading) -> str:
    """Notes in parentheses: `(연중무휴)` is kept as a note, `(명절 당일 휴무)` is a holiday; a note of days only
    (`(평일) 11:00-22:00`) stays in the line, since it says which days. The line without the others."""
    for note in _NOTE_RE.findall(line):
        note = " ".join(note.split())
        if _ALL_YEAR_RE.search(note):
            reading.notes.append(note)
        elif _DAY_OFF_RE.search(note):
            reading.holiday = reading.holiday or _holiday_text(note)
        elif note and not _DAYS_ONLY_RE.match(note):
            reading.notes.append(note)
    return _NOTE_RE.sub(lambda m: m.group(0) if _DAYS_ONLY_RE.match(m.group(1)) else " ", line)


@functools.lru_cache(maxsize=8192)  # pure, and real pages repeat their lines (`라스트오더: 21:00`) store after store
def read_hours(text: str) -> Hours:
    """Everything one hours text says, in any notation of §3c, over one or several lines:

    `11월 23일 (월) 영업시간: 11:30 - 22:00 라스트오더: 21:00`, `브레이크타임 15:00-17:00`, `매주 일요일 휴무`,
    `오전 11시 30분 - 오후 10시 (연중무휴)`, `휴무일: 매주 월요일`, `월~금 11:00-22:00`, `24시간 영업`."""
    reading = _Reading()
    for line in text[: MAX_LINE * 4].splitlines():
        line = _DATE_RE.sub(" ", line[:MAX_LINE])
        raw = " ".join(line.split())
        if "(" in line:
            line = _read_notes(line, reading)
        read = [_read_segment(key, value, reading) for key, value in _segments(line)]
        if not all(read) and raw:  # kept as the page wrote it (the whole line, once), never guessed
            reading.unread.append(raw)
    return reading.hours()


def read_opening_hours(value: Any) -> list[Hours]:
    """JSON-LD `openingHours`: a list of strings or one string, each in the Korean form (`매일 11:00-22:30`)
    or schema.org's (`Mo-Fr 11:00-22:00`); a string may hold several entries on lines or after `;`."""
    entries = value if isinstance(value, list) else [value]
    texts = [t for e in entries[:50] if isinstance(e, str) for t in re.split(r"[\n;]", e[: MAX_LINE * 4])]
    return [read_hours(t) for t in texts if t.strip()]


def weekly_table(entries: list[Hours]) -> dict[str, dict[str, Any]]:
    """Day -> the stored day entry, from entries that name their days (`매일`, `Mo-Fr`, `토`, `휴무일: 매주 월요일`).
    A later entry for a day overrides an earlier one (`매일 11:00-22:00` then `월 휴무`)."""
    week: dict[str, dict[str, Any]] = {}
    for entry in entries:
        days_off = read_days(entry.holiday or "") if entry.holiday else ()
        for day in entry.days:
            week[day] = entry.day_entry()
        for day in days_off:
            week[day] = Hours(closed=True).day_entry()
    return {day: week[day] for day in WEEK if day in week}


# --- prices -------------------------------------------------------------------------------------------

# Not after a '.' either: `15.900원` (a dot for thousands) is no 900 won, it is unreadable.
_WON_RE = re.compile(r"(?<![\d,.])(\d[\d,]*+)\s*원")
_NUMBER_RE = re.compile(r"(?<![\d,.])(\d[\d,]*+)")
_PLAIN_NUMBER_RE = re.compile(r"\s*\d[\d,]*(?:\.0+)?\s*")
# 만 with a decimal (`2.98만원` is 29,800) and digits after it (`2만8,800원` is 28,800), besides `1만5천원`.
_KOREAN_WON_RE = re.compile(
    r"(?<![\d.,])(?:(\d{1,4})(?:\.(\d{1,4}))?\s*만)?\s*(?:(\d)\s*천)?\s*(?:(\d)\s*백)?\s*(\d[\d,]*+)?\s*원"
)


def _korean_won(
    man: str | None, tenths: str | None, cheon: str | None, baek: str | None, rest: str | None
) -> int | None:
    """`N[.d]만 N천 N백 N원` in won; None where the digits after the units overflow them (`2만12,000원`)."""
    tail = int(rest.replace(",", "")) if rest else 0
    if tail >= (1_000 if cheon or baek else 10_000):
        return None
    fraction = int(tenths.ljust(4, "0")) if tenths else 0  # a part of 만 (10^4): `.98` is 9,800
    return int(man or 0) * 10_000 + fraction + int(cheon or 0) * 1_000 + int(baek or 0) * 100 + tail


def won(value: Any) -> int | None:
    """Won from a price as pages and JSON-LD write it: `16,900원`, `+ 5,000원`, `1만5천원`, `12,000~15,000원`
    (the lower end), `"8,000원"` or 8000 (JSON-LD `offers.price`); None for `시가`, `변동`, empty, a negative
    or absurd number (the text is kept beside it by the caller)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value) if math.isfinite(value) and 0 <= value < 10**MAX_PRICE_DIGITS else None
    text = str(value)[:MAX_LINE]
    if _PLAIN_NUMBER_RE.fullmatch(text):
        text = text.split(".", 1)[0] + "원"
    head = text.split("~", 1)[0]
    korean = _KOREAN_WON_RE.search(text)
    if korean and any(korean.group(i) for i in (1, 3, 4)):
        return _korean_won(*korean.groups())
    found = _WON_RE.search(head) or (_NUMBER_RE.search(head) if "~" in text else None)
    digits = found.group(1).replace(",", "") if found else ""
    return int(digits) if digits and len(digits) <= MAX_PRICE_DIGITS else None
