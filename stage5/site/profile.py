"""The profile API (`POST /API/profile/`, form `v_rid`): one store's details as JSON (`shared/diningcode.md` §3b).

`result_data` is a list of sections, each an object with a `key` (restaurant, detail, menu, photo,
review, blog, score, tag, …); they are read by key, never by position. The site's quirks are read
as they come: numbers as strings, counts with commas (`"1,185"`), URLs without a scheme, tag and
facility strings with a stray `", "` in front, empty entries, a `status` whose shape changes on
closed days.

As in `stage5.site.detail`, a field the answer shows no sign of (its section or key is not there) is
*missing*, so the stored value is kept; a key that is there but empty says the value is gone.
"""

from __future__ import annotations

import re
from typing import Any

from stage5.errors import NotThisStore, ParseError
from stage5.models import MenuItem, StoreDetail
from stage5.site.detail import PHONE_RE
from stage5.site.formats import Hours, read_hours, weekly_table, won
from stage5.site.markup import (
    MAX_LINE,
    MAX_PRICE_DIGITS,
    integer,
    items,
    json_answer,
    number,
    split_categories,
    text_of,
)

OK = "100"
LAYOUT = "api"  # the coverage key of answers from this source: "detail:api"
_ID_KEYS = ("v_rid", "rid")
_URL_KEYS = ("share_url", "url", "link", "profile_url")
_RID_IN_URL_RE = re.compile(r"[?&](?:v_)?rid=([A-Za-z0-9_-]+)")
_DIGITS_RE = re.compile(r"\d[\d,]*")
HOURS_FIELDS = ("open_hours", "break_time", "last_order", "holiday", "weekly_hours")
# Entries read of one list (a real answer has a handful of hour lines, tens of menu items and images): a
# hostile answer of a million entries costs no more than this.
MAX_ENTRIES = 200


# --- the answer and its sections -----------------------------------------------------------------


def _answer(body: bytes) -> dict[str, Any]:
    data = json_answer(body, "profile answer")
    if not isinstance(data, dict):
        raise ParseError("profile answer is not a JSON object")
    code = text_of(data.get("result_code"))
    if code != OK:
        raise ParseError(f"profile API error result_code={code!r} msg={text_of(data.get('result_msg'))!r}")
    return data


def sections(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """key -> section. `result_data` is a list of objects with a `key`; a section's fields may sit in
    the object itself or under its `data`."""
    listed = data.get("result_data")
    if not isinstance(listed, list):
        raise ParseError(f"profile answer's result_data is not a list of sections (got {type(listed).__name__})")
    found: dict[str, dict[str, Any]] = {}
    for section in listed:
        key = text_of(section.get("key")) if isinstance(section, dict) else None
        if key and key not in found:
            inner = section.get("data")
            found[key] = {**inner, "key": key} if isinstance(inner, dict) else section
    if "restaurant" not in found:
        keys = ", ".join(found) or "none"
        raise ParseError(f"profile answer has no 'restaurant' section (sections: {keys})")
    return found


def _check_identity(found: dict[str, dict[str, Any]], rid: str) -> tuple[str, tuple[str, ...]]:
    """The store ids the answer names for itself (restaurant or detail: v_rid, rid, a share URL); one
    that differs from `rid` is another store's answer. Returns the id to use and the ids named."""
    named: list[str] = []
    for section in (found.get("restaurant", {}), found.get("detail", {})):
        named += [t for t in (text_of(section.get(k)) for k in _ID_KEYS) if t]
        for key in _URL_KEYS:
            url = _RID_IN_URL_RE.search(text_of(section.get(key)) or "")
            if url:
                named.append(url.group(1))
    other = next((n for n in named if n != rid), None)
    if rid and other:
        raise NotThisStore(f"not this store's page: the profile API answered for {other!r}, asked for {rid!r}")
    return rid or (named[0] if named else ""), tuple(dict.fromkeys(named))


# --- small readers ---------------------------------------------------------------------------------


def clean_words(value: Any) -> tuple[str, ...] | None:
    """Tag or facility strings as the API sends them (`", 주차"`, `"  예약 "`, `""`, `"#가성비"`), deduped
    in order; None when the key is absent or not a list."""
    if not isinstance(value, list):
        return None
    words = []
    for entry in value[:MAX_ENTRIES]:
        raw = text_of(entry.get("name") or entry.get("word")) if isinstance(entry, dict) else text_of(entry)
        word = (raw or "").strip().lstrip(",").strip().lstrip("#").strip()
        if word:
            words.append(word)
    return tuple(dict.fromkeys(words))


def with_scheme(url: Any) -> str | None:
    """`//host/x`, `host/x` -> `https://host/x`; a placeholder (`noimage`) is no image."""
    text = text_of(url)
    if not text or "noimage" in text.lower():
        return None
    if text.startswith("//"):
        return "https:" + text
    if not text.startswith(("http://", "https://")):
        return "https://" + text.lstrip("/")
    return text


def _flag(value: Any) -> bool:
    """A JSON flag: true, 1, "1", "Y", "true"."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "y", "yes", "true")
    return bool(value) if isinstance(value, (bool, int, float)) else False


def price_of(value: Any) -> tuple[int | None, str | None]:
    """(won, text) from a number (19900), a string of digits ("19,900") or a price text ("19,900원",
    "1만5천원", "시가", "변동", "")."""
    if isinstance(value, bool):
        return None, None
    if isinstance(value, (int, float)):
        won_value = int(value) if value >= 0 and len(str(int(value))) <= MAX_PRICE_DIGITS else None
        return won_value, f"{won_value:,}원" if won_value is not None else None
    text = (text_of(value) or "")[:MAX_LINE]
    if not text:
        return None, None
    if _DIGITS_RE.fullmatch(text):
        digits = text.replace(",", "")
        found = int(digits) if len(digits) <= MAX_PRICE_DIGITS else None
        return found, f"{found:,}원" if found is not None else text
    return won(text), text


# --- hours -------------------------------------------------------------------------------------
# The notations are read by stage5.site.formats (24-hour, 12-hour Korean, day words, 휴무일 …); here: how
# the API pairs them. `duration` is the day part (매일, 월~금, 휴무일, 브레이크타임 …), `time` the text.


def _entries(detail: dict[str, Any]) -> list[dict[str, Any]] | None:
    """detail.bhour[] ({duration, time, today}), else bhour_seo[]; [] when they are empty (or null): no hours;
    None when the answer has neither key, or holds them in a shape this reader does not know (a text, a list
    of texts): hours not shown, so the stored ones stay."""
    empty = False
    for key in ("bhour", "bhour_seo"):
        value = detail.get(key)
        if value is None or value == []:
            empty = empty or key in detail
            continue
        listed = [e for e in items(value)[:MAX_ENTRIES] if isinstance(e, dict)]
        if listed:
            return listed
    return [] if empty else None


def _common(week: dict[str, dict[str, Any]], key: str) -> Any:
    """The value every open day of the table agrees on, else None."""
    values = {entry[key] for entry in week.values() if not entry["closed"]}
    return values.pop() if len(values) == 1 else None


def read_hours_pairs(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """(duration, time) pairs -> open_hours (today's line, else the first, else what every day shares),
    break, last order, holiday text ('매주 월요일 휴무'), the weekly table, and the texts that did not read.
    A break or last order on a line of its own (no day part) holds for every open day of the table."""
    read: list[tuple[Hours, bool]] = []
    for entry in entries:
        duration, time = text_of(entry.get("duration")) or "", text_of(entry.get("time")) or ""
        read.append((read_hours(f"{duration} {time}"[: MAX_LINE * 2]), _flag(entry.get("today"))))
    hours = [h for h, _ in read]
    timed = [h for h, today in read if h.open and today] + [h for h in hours if h.open]
    undated = [h for h in hours if not h.days]
    brk = next((h.break_time for h in undated if h.break_time), None)
    last = next((h.last_order for h in undated if h.last_order), None)
    week = weekly_table([h for h in hours if h.open or h.closed or h.holiday])  # an unread line says nothing
    for day in week.values():
        if not day["closed"]:
            day["break"], day["last_order"] = day["break"] or brk, day["last_order"] or last
    return {
        "open_hours": timed[0].open_hours if timed else _span(_common(week, "open"), _common(week, "close")),
        "break_time": brk or next((h.break_time for h in hours if h.break_time), None),
        "last_order": last or next((h.last_order for h in hours if h.last_order), None),
        "holiday": next((h.holiday for h in hours if h.holiday), None),
        "weekly_hours": week or None,
        "unread": tuple(raw for h in hours for raw in h.unread),
    }


def _span(opening: str | None, closing: str | None) -> str | None:
    return f"{opening} - {closing}" if opening and closing else None


# --- the sections --------------------------------------------------------------------------------


def _images(restaurant: dict[str, Any]) -> tuple[str, ...] | None:
    """restaurant.images.list[] (origin, else middle, else thumb) after restaurant.img; None with neither key."""
    box = restaurant.get("images")
    listed = (items(box.get("list")) if isinstance(box, dict) else items(box))[:MAX_ENTRIES]
    if "images" not in restaurant and "img" not in restaurant:
        return None
    urls = [with_scheme(restaurant.get("img"))]
    for image in listed:
        if isinstance(image, dict):
            urls.append(with_scheme(image.get("origin") or image.get("middle") or image.get("thumb")))
        else:
            urls.append(with_scheme(image))
    return tuple(dict.fromkeys(u for u in urls if u))


def _menu(section: dict[str, Any] | None) -> tuple[MenuItem, ...] | None:
    if section is None or "list" not in section:
        return None
    menu = []
    for entry in items(section.get("list"))[:MAX_ENTRIES]:
        name = text_of(entry.get("menu") or entry.get("name")) if isinstance(entry, dict) else None
        if not name:
            continue
        price, price_text = price_of(entry.get("price"))
        rate = number(entry.get("selection_rate"))
        menu.append(MenuItem(name, price, price_text, best=_flag(entry.get("best")), selection_rate=rate))
    return tuple(menu)


def open_status_of(status: Any) -> tuple[str | None, bool]:
    """(the status text, whether it says the store closed for good). `status` is {is_open, color, time}
    on open days and changes shape on closed days (a plain text, or an object without `time`)."""
    if isinstance(status, dict):
        text = text_of(status.get("time") or status.get("text") or status.get("msg"))
        if text is None and "is_open" in status:
            text = "영업 중" if _flag(status.get("is_open")) else "영업 종료"
    else:
        text = text_of(status)
    return text, bool(text and "폐업" in text)


def _rating(found: dict[str, dict[str, Any]], restaurant: dict[str, Any]) -> dict[str, Any]:
    """rating (average, 0–5) and rating_count (review_total, else total) from the score section's `score`
    object; the 0–100 score from the restaurant section."""
    scores = found.get("score", {}).get("score")
    scores = scores if isinstance(scores, dict) else {}
    rating = number(scores.get("average"))
    count = integer(scores.get("review_total") if "review_total" in scores else scores.get("total"))
    return {
        "rating": rating if rating is not None and 0 <= rating <= 5 else None,
        "rating_count": count if count is not None and count >= 0 else None,
        "score": integer(restaurant.get("score")),
    }


def _phone(*values: Any) -> str | None:
    for value in values:
        found = PHONE_RE.search(text_of(value) or "")
        if found:
            return found.group(0)
    return None


def _reviews(section: dict[str, Any] | None) -> tuple[str, ...]:
    texts = []
    for entry in items((section or {}).get("list"))[:MAX_ENTRIES]:
        info = entry.get("review_info") if isinstance(entry, dict) else None
        text = text_of(info.get("review_cont")) if isinstance(info, dict) else None
        if text:
            texts.append(text)
    return tuple(texts)


def parse_profile(body: bytes, rid: str) -> StoreDetail:
    """`POST /API/profile/` JSON -> StoreDetail. Raises ParseError for an error answer (result_code other
    than "100") or a shape it cannot read, NotThisStore for another store's answer."""
    found = sections(_answer(body))
    rid, claimed = _check_identity(found, rid)
    restaurant, detail = found["restaurant"], found.get("detail", {})
    branch = text_of(restaurant.get("branch"))
    name = text_of(restaurant.get("rn")) or _name_without_branch(text_of(restaurant.get("name")), branch)
    if not name:
        raise ParseError("profile answer names no store (restaurant.rn and restaurant.name are empty)")
    entries = _entries(detail)
    hours = read_hours_pairs(entries) if entries is not None else dict.fromkeys(HOURS_FIELDS)
    unread = hours.pop("unread", None) or ()
    menu = _menu(found.get("menu"))
    images = _images(restaurant)
    tags = (clean_words(restaurant.get("desc")) or ()) + (clean_words(detail.get("tag")) or ())
    facilities = clean_words(detail.get("facility"))
    status, closed = open_status_of(detail.get("status"))
    fields: dict[str, Any] = {
        "branch": branch,
        "address": text_of(detail.get("address")) or text_of(restaurant.get("address")),
        "road_address": text_of(detail.get("road_address")),
        "lat": number(restaurant.get("lat")),
        "lng": number(restaurant.get("lng")),
        "phone": _phone(detail.get("phone"), restaurant.get("phone")),
        **_rating(found, restaurant),
        "categories": _categories(restaurant.get("categories")),
        "tags": tuple(dict.fromkeys(tags)),
        "menu": menu or (),
        **hours,
        "images": images or (),
        "facilities": facilities or (),
        "open_status": status,
    }
    shown = {
        "branch": "branch" in restaurant,
        "road_address": "road_address" in detail,
        "phone": "phone" in detail or "phone" in restaurant,
        "rating": "score" in found,
        "rating_count": "score" in found,
        "score": "score" in restaurant,
        "tags": "desc" in restaurant or "tag" in detail,
        "menu": menu is not None,
        "images": images is not None,
        "facilities": facilities is not None,
        "open_status": "status" in detail,
        **dict.fromkeys(HOURS_FIELDS, entries is not None),
    }
    empty = {k for k, v in fields.items() if v in (None, ())}
    missing = {k for k in empty if not shown.get(k, False)} | {"keywords"}  # no keyword links in the API
    if unread:  # an hours text it could not read says nothing of the fields it left empty
        missing |= {k for k in HOURS_FIELDS if k in empty}
    if menu is None:
        missing.add("best_menu")
    return StoreDetail(
        rid=rid,
        name=name,
        title=text_of(restaurant.get("name")),
        reviews=_reviews(found.get("review")),
        missing=frozenset(missing),
        layout=LAYOUT,
        closed=closed,
        source="api",
        claimed_ids=claimed,
        unread=unread,
        **fields,
    )


def _name_without_branch(full: str | None, branch: str | None) -> str | None:
    """restaurant.name is the name and the branch together ('육미당 강남점')."""
    if full and branch and full.endswith(branch):
        return full[: -len(branch)].strip() or None
    return full


def _categories(value: Any) -> tuple[str, ...]:
    """categories[] as a list of words, or one comma list (with `<em>` highlights, like the search's)."""
    return clean_words(value) or split_categories(value if isinstance(value, str) else None)
