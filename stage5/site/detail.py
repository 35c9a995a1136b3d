"""The detail page (`profile.php?rid=`), in every layout the site has used (`shared/diningcode.md` §3).

Each field is read by its meaning, from whichever element carries it, with the sources in one order of
trust: JSON-LD, then the markup (the `Restaurant_Menu*` classes of 2023–25 and the older `l-txt` /
`r-txt` pairs), then the title and meta tags; the search answer fills the rest later (validate.py).

A field the page shows no sign of (no section that would hold it) is *missing*: the store keeps what
was stored. A field whose section is there but empty is *absent*: the page says it is gone.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import lxml.html
from lxml import etree

from stage5.errors import ParseError
from stage5.models import MenuItem, StoreDetail
from stage5.site.evidence import STORE_SECTIONS, check_store_page, claimed_ids
from stage5.site.formats import (
    WEEK,
    Hours,
    read_days,
    read_hours,
    read_opening_hours,
    weekly_table,
    won,
)
from stage5.site.markup import MAX_LINE, document, integer, number, split_categories, text_of

Doc = lxml.html.HtmlElement

PHONE_RE = re.compile(r"0\d{1,3}-\d{3,4}-\d{4}")
_RATING_TEXT_RE = re.compile(r"(\d(?:\.\d)?)\s*\(\s*(\d[\d,]{0,12})\s*명")
_SCORE_TEXT_RE = re.compile(r"(\d{1,3})\s*점")
WEEKDAYS = WEEK
__all__ = ["PHONE_RE", "WEEKDAYS", "json_ld", "parse_detail", "won"]  # won: prices are read in formats.py
LAYOUTS = ("jsonld", "classic", "no-jsonld")
TEXT_FIELDS = ("branch", "address", "road_address", "phone", "open_hours", "break_time", "last_order", "holiday")


@functools.lru_cache(maxsize=256)
def _compiled(expr: str) -> etree.XPath:
    return etree.XPath(expr)


def _find(node: Doc, expr: str) -> list[Any]:
    """node.xpath(expr), with the expression compiled once per process (compiling cost more than running)."""
    return _compiled(expr)(node)  # type: ignore[no-any-return]


def _has_class(cls: str) -> str:
    # the plain substring test first: cheap, and false for nearly every element
    return f"contains(@class, '{cls}') and contains(concat(' ', normalize-space(@class), ' '), ' {cls} ')"


def _first_text(doc: Doc, xpath: str) -> str | None:
    nodes = _find(doc, xpath)
    return text_of(" ".join(nodes[0].itertext())) if nodes else None


def _own_text(node: Doc) -> str | None:
    """A node's text without its child elements' (an `h1` holding the branch in a `span`)."""
    return text_of("".join([node.text or "", *(child.tail or "" for child in node)]))


# --- JSON-LD ------------------------------------------------------------------------------------


def json_ld(doc: Doc) -> dict[str, Any]:
    """The FoodEstablishment (or Restaurant) node, or {} when the page has none."""
    for raw in _find(doc, "//script[@type='application/ld+json']/text()"):
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, RecursionError):
            continue
        for node in data if isinstance(data, list) else [data]:
            if isinstance(node, dict) and node.get("@type") in ("FoodEstablishment", "Restaurant"):
                return node
    return {}


class Reader:
    """One page: its document, its JSON-LD, and a count of JSON-LD values that had the wrong shape."""

    def __init__(self, doc: Doc) -> None:
        self.doc = doc
        self.ld = json_ld(doc)
        self.fallbacks = 0
        self._classes: dict[str, list[Doc]] | None = None

    def with_class(self, cls: str, tag: str | None = None) -> list[Doc]:
        """Elements carrying the class token `cls` (optionally of one tag), in document order: one walk
        of the page serves every such look-up (each XPath scan walked all of it again)."""
        if self._classes is None:
            self._classes = {}
            for element in self.doc.iter(etree.Element):
                for token in (element.get("class") or "").split():
                    self._classes.setdefault(token, []).append(element)
        found = self._classes.get(cls, [])
        return [e for e in found if e.tag == tag] if tag else found

    def class_text(self, cls: str) -> str | None:
        """The text of the first element with class `cls`, as _first_text would give it."""
        found = self.with_class(cls)
        return text_of(" ".join(found[0].itertext())) if found else None

    def ld_object(self, key: str) -> dict[str, Any]:
        value = self.ld.get(key)
        if isinstance(value, dict):
            return value
        if value not in (None, "", []):
            self.fallbacks += 1  # e.g. aggregateRating as a string, geo as a list: the markup decides
        return {}

    def ld_number(self, node: dict[str, Any], key: str) -> float | None:
        value = number(node.get(key))
        if value is None and node.get(key) not in (None, ""):
            self.fallbacks += 1  # NaN, 1e400, junk
        return value

    def meta(self, prop: str) -> str | None:
        values = _find(self.doc, f"//meta[@property='{prop}' or @name='{prop}']/@content")
        return text_of(values[0]) if values else None


# --- name, place, contact -----------------------------------------------------------------------


def _title_parts(title: str | None) -> tuple[str | None, tuple[str, ...]]:
    """'{name} - {area} {category}, {tags} 맛집 | 다이닝코드…' -> (name, categories)."""
    if not title or " - " not in title:
        return None, ()
    name, rest = title.split(" - ", 1)
    head = rest.split("|", 1)[0].strip().removesuffix("맛집").strip()
    first = head.split(",", 1)[0].split()
    return name.strip() or None, tuple(first[1:2])


# The store's own heading: an h1, or a `.tit` inside the store block (tit-point, #div_profile). A `.tit`
# elsewhere (the recent-search box "최근검색기록", side lists) is not the store.
def _headings(page: Reader) -> list[Doc]:
    titles = [t for t in page.with_class("tit") if any(_is_store_block(a) for a in t.iterancestors())]
    return [*_find(page.doc, "//h1"), *titles]


def _is_store_block(element: Doc) -> bool:
    return element.get("id") == "div_profile" or "tit-point" in (element.get("class") or "").split()


def _heading_parts(node: Doc) -> list[str]:
    """The texts of a heading: its own text and each child span's (`<p class="tit">이름 <span>지점</span></p>`,
    `<p class="tit"><span>이름</span></p>`)."""
    spans = [text_of(s.text_content()) for s in node.findall("span")]
    return [t for t in (_own_text(node), *spans) if t]


def _split_heading(parts: list[str], known: str | None) -> tuple[str, str | None] | None:
    """(name, branch) from a heading's parts when the heading is the store's: it holds the known name (JSON-LD,
    title) as a part, or all of it; with no known name, the first heading is taken."""
    if not parts:
        return None
    if known is None or " ".join(parts) == known or parts[0] == known:
        return parts[0], parts[1] if len(parts) > 1 else None
    if known in parts:  # the name in a span, the branch beside it
        others = [p for p in parts if p != known]
        return known, others[0] if others else None
    return None


def _name_and_branch(page: Reader, title_name: str | None) -> tuple[str | None, str | None]:
    """Name without the branch where the page marks the branch separately (h1 > span, p.tit > span), read from
    the store's own heading only."""
    doc = page.doc
    branch = page.class_text("branch") or _first_text(doc, "//span[contains(@class,'Info__Title__Place')]")
    known = text_of(page.ld.get("name")) or title_name
    for heading in _headings(page):
        split = _split_heading(_heading_parts(heading), known)
        if split:
            return split[0], branch or split[1]
    return known, branch


def _breadcrumb_address(page: Reader) -> str | None:
    """`li.locat`: '서울특별시 › 종로구 › 관철동' as links, then the lot number as plain text."""
    for li in page.with_class("locat", "li"):
        links = _find(li, ".//a")
        if not links:
            continue
        parts = [text_of(a.text_content()) for a in links]
        tail = text_of((links[-1].tail or "").replace("›", " ").replace("&gt;", " ").replace(">", " "))
        return " ".join(p for p in [*parts, tail] if p)
    return None


def _place(page: Reader) -> dict[str, Any]:
    address = page.ld.get("address")
    street = address.get("streetAddress") if isinstance(address, dict) else address
    geo = page.ld_object("geo")
    lat, lng = page.ld_number(geo, "latitude"), page.ld_number(geo, "longitude")
    if lat is None or lng is None:
        lat, lng = _markup_position(page)
    return {
        "address": text_of(street) or page.class_text("addr") or _breadcrumb_address(page),
        "road_address": page.class_text("road"),
        "lat": lat,
        "lng": lng,
    }


# Coordinates outside JSON-LD: hidden inputs (`<input id="hdn_lat" type="hidden" value="37.5…">`, a page of
# 2020) or data attributes on a map element; one scan of the page finds either.
_HIDDEN_POSITION = "//input[@id='hdn_lat' or @id='hdn_lng' or @name='hdn_lat' or @name='hdn_lng']"
_POSITION_NODES = f"{_HIDDEN_POSITION} | //*[@data-lat or @data-latitude]"


def _markup_position(page: Reader) -> tuple[float | None, float | None]:
    for node in _find(page.doc, _POSITION_NODES):
        if node.tag == "input":
            inputs = {(n.get("id") or n.get("name")): n.get("value") for n in _find(page.doc, _HIDDEN_POSITION)}
            lat, lng = number(inputs.get("hdn_lat")), number(inputs.get("hdn_lng"))
        else:
            lat = number(node.get("data-lat") or node.get("data-latitude"))
            lng = number(node.get("data-lng") or node.get("data-lon") or node.get("data-longitude"))
        if lat is not None and lng is not None:
            return lat, lng
    return None, None


def _phone(page: Reader) -> str | None:
    for raw in (text_of(page.ld.get("telephone")), page.class_text("tel")):
        found = PHONE_RE.search(raw or "")
        if found:
            return found.group(0)
    return None


def _rating(page: Reader) -> dict[str, Any]:
    """rating, rating_count and score: JSON-LD's aggregateRating, else the page's score texts."""
    rating = page.ld_object("aggregateRating")
    text = _RATING_TEXT_RE.search((page.class_text("score-text") or "")[:MAX_LINE])
    score = _SCORE_TEXT_RE.search((page.class_text("total_score") or "")[:MAX_LINE])
    value, count = page.ld_number(rating, "ratingValue"), page.ld_number(rating, "reviewCount")
    return {
        "rating": value if value is not None else (number(text.group(1)) if text else None),
        "rating_count": int(count) if count is not None else (integer(text.group(2)) if text else None),
        "score": integer(score.group(1)) if score else None,
    }


# --- tags and keywords --------------------------------------------------------------------------


def _unique(texts: Iterable[str | None]) -> tuple[str, ...]:
    """'#' stripped, empty dropped, deduped, in page order."""
    cleaned = (t.strip().lstrip("#").strip() for t in texts if t)
    return tuple(dict.fromkeys(t for t in cleaned if t))


def _tags(doc: Doc) -> tuple[str, ...] | None:
    """`li.tag span`, `.tags a`, or `#tag` text; None when the page has no tag section."""
    spans = _find(doc, f"//li[{_has_class('tag')}]//span | //*[{_has_class('tags')}]//a")
    if spans:
        return _unique([text_of(s.text_content()) for s in spans])
    block = _find(doc, f"//*[@id='tag'] | //li[{_has_class('tag')}] | //*[{_has_class('tags')}]")
    if not block:
        return None
    return _unique(re.split(r"[\s#,]+", block[0].text_content()[: MAX_LINE * 4]))


def _is_breadcrumb(texts: list[str]) -> bool:
    return bool(texts) and texts[0].endswith(("특별시", "광역시", "도"))


def _keywords(page: Reader) -> tuple[str, ...] | None:
    """`div.btxt > a` (the keyword links); a `btxt` holding a region breadcrumb is not keywords."""
    blocks = page.with_class("btxt", "div")
    if not blocks:
        return None
    texts = [text_of(a.text_content()) or "" for a in _find(blocks[0], ".//a")]
    return None if _is_breadcrumb(texts) else _unique(texts)


# --- hours ---------------------------------------------------------------------------------------
# The notations themselves are read in stage5.site.formats; here: where the lines sit.

_HOURS_WORDS = ("영업", "라스트", "브레이크", "휴무", "24시간", "오더", "매일", "평일", "주말", "오전", "오후")


def _line(node: Doc) -> str:
    return " ".join(" ".join(node.itertext())[: MAX_LINE * 4].split())[:MAX_LINE]


def _label_and_lines(node: Doc) -> tuple[str | None, list[str]]:
    """An hours entry's label (`p.l-txt`) and its text lines, whether they sit in p.r-txt, p, div or the li
    itself; one walk of the (small) entry instead of an XPath per part."""
    label, r_txt, blocks = None, [], []
    for element in node.iterdescendants(etree.Element):
        classes = (element.get("class") or "").split()
        if "l-txt" in classes:
            label = label or text_of(" ".join(element.itertext()))
        elif "r-txt" in classes:
            r_txt.append(element)
        elif element.tag in ("p", "div"):
            blocks.append(element)
    return label, [_line(part) for part in r_txt or blocks or [node]]


def _entry(node: Doc) -> Hours:
    """One `li` of hours: a weekday's (its label `일요일`, `월~금`, or day words before its time) or today's
    (a date label `3월 2일 (목)`, or none)."""
    label, lines = _label_and_lines(node)
    days = read_days(label) if label else ()
    if days:
        return replace(read_hours("\n".join(lines)), days=days)
    if label and lines:  # a date, or a key such as `휴무일` with its value beside it (`매주 월요일`)
        lines = [f"{label[:MAX_LINE]} {lines[0]}", *lines[1:]]
    return read_hours("\n".join(lines))


def _hours_entries(page: Reader) -> list[Hours] | None:
    """The page's hours entries: the `#div_hour` / `busi-hours` block's items, else any list item holding hours
    words wherever it sits (§3: "a list item holding 영업시간 / 라스트오더 / 휴무 / 브레이크타임 text"), else
    JSON-LD `openingHours`; None when the page has none of them (its hours are missing, not gone)."""
    section = _find(page.doc, f"//*[@id='div_hour'] | //*[{_has_class('busi-hours')}]")
    if section:
        return [_entry(li) for li in _find(section[0], ".//li")]
    loose = [
        li
        for li in _find(page.doc, "//li[not(.//li)]")
        if any(word in (text := li.text_content()[: MAX_LINE * 4]) for word in _HOURS_WORDS) and _says_hours(text)
    ]
    if loose:
        return [_entry(li) for li in loose]
    opening = page.ld.get("openingHours")
    if opening in (None, "", []):
        return None
    entries = read_opening_hours(opening)
    if not entries:
        page.fallbacks += 1  # openingHours of a shape no reader knows: counted
    # JSON-LD entries name their days (`매일 11:00-22:30`, `월 휴무`) or, without a day word, hold for every day
    return [_ld_entry(e) for e in entries]


def _ld_entry(entry: Hours) -> Hours:
    if entry.days:
        return entry
    if entry.holiday and not entry.open:
        return replace(entry, days=read_days(entry.holiday), closed=True)
    return replace(entry, days=WEEK) if entry.open else entry


def _says_hours(text: str) -> bool:
    h = read_hours(text)
    return bool(h.open or h.break_time or h.last_order or h.holiday or h.closed)


def _common(week: dict[str, dict[str, Any]], key: str) -> Any:
    """The value every open day of the table agrees on, else None (no day's hours stand for the others)."""
    values = {entry[key] for entry in week.values() if not entry["closed"]}
    return values.pop() if len(values) == 1 else None


def _hours(page: Reader) -> dict[str, Any] | None:
    """Today's hours and the weekly table; None when the page has no hours section at all. Today's hours are
    the undated lines; without them, the hours every open day of the table shares."""
    entries = _hours_entries(page)
    if entries is None:
        return None
    today = [e for e in entries if not e.days]
    weekly = weekly_table([e for e in entries if e.days])
    merged = _merge(today)
    for day in read_days(merged.holiday) if weekly and merged.holiday else ():
        weekly[day] = Hours(closed=True).day_entry()  # `휴무일: 매주 월요일` beside a table of the other days
    opening, closing = merged.open, merged.close
    if opening is None and weekly:
        opening, closing = _common(weekly, "open"), _common(weekly, "close")
    holidays = [e.holiday for e in entries if e.days and e.holiday and not e.open]
    return {
        "open_hours": f"{opening} - {closing}" if opening and closing else None,
        "break_time": merged.break_time or (_common(weekly, "break") if weekly and not today else None),
        "last_order": merged.last_order or (_common(weekly, "last_order") if weekly and not today else None),
        "holiday": merged.holiday or (holidays[0] if holidays and not today else None),
        "weekly_hours": weekly or None,
        "unread": tuple(raw for e in entries for raw in e.unread),
    }


def _merge(entries: list[Hours]) -> Hours:
    """Today's entries (the hours line, a break line, a holiday line) as one reading: the first of each value."""
    timed = next((e for e in entries if e.open), Hours())
    return Hours(
        open=timed.open,
        close=timed.close,
        break_time=next((e.break_time for e in entries if e.break_time), None),
        last_order=next((e.last_order for e in entries if e.last_order), None),
        holiday=next((e.holiday for e in entries if e.holiday), None),
    )


# --- menu ---------------------------------------------------------------------------------------


def _menu(doc: Doc) -> tuple[MenuItem, ...] | None:
    """`ul.Restaurant_MenuList li` or `div.menu-info ul.list li` (p.l-txt / p.r-txt); None without a menu."""
    lists = _find(doc, f"//ul[contains(@class,'Restaurant_MenuList')] | //div[{_has_class('menu-info')}]//ul")
    if not lists:
        return None
    items = []
    for li in _find(lists[0], "./li"):
        name = _first_text(li, ".//span[contains(@class,'Restaurant_Menu')]") or _first_text(
            li, f".//*[{_has_class('l-txt')}]"
        )
        if not name:
            continue
        price_text = (
            _first_text(li, ".//p[contains(@class,'Restaurant_MenuPrice')]")
            or _first_text(li, f".//*[{_has_class('r-txt')}]")
            or ""
        )[:MAX_LINE]
        items.append(MenuItem(name, won(price_text), price_text or None))
    return tuple(items)


MAX_MENU_ITEMS = 500  # a menu longer than this is not a restaurant's


def _ld_menu(page: Reader) -> tuple[MenuItem, ...] | None:
    """JSON-LD `hasMenu`: a Menu (or a list of them) holding `hasMenuItem[]` and/or `hasMenuSection[]` (sections
    nest), each item a `name` with `offers.price` as "8,000원" or 8000; None when the JSON-LD has no menu."""
    menu = page.ld.get("hasMenu")
    if not isinstance(menu, (dict, list)):
        if menu not in (None, ""):
            page.fallbacks += 1  # a menu URL or text: nothing to read here
        return None
    items: list[MenuItem] = []
    _collect_menu(menu, items, depth=0)
    return tuple(items)


def _collect_menu(node: Any, items: list[MenuItem], depth: int) -> None:
    if depth > 6 or len(items) >= MAX_MENU_ITEMS:
        return
    if isinstance(node, list):
        for child in node[:MAX_MENU_ITEMS]:
            _collect_menu(child, items, depth + 1)
        return
    if not isinstance(node, dict):
        return
    if node.get("@type") == "MenuItem" or "offers" in node:
        name = text_of(node.get("name"))
        if name:
            offer = node.get("offers")
            offer = offer[0] if isinstance(offer, list) and offer else offer
            price = offer.get("price") if isinstance(offer, dict) else None
            price_text = text_of(price)
            items.append(MenuItem(name, won(price), price_text[:MAX_LINE] if price_text else None))
        return
    for key in ("hasMenuItem", "hasMenuSection"):
        _collect_menu(node.get(key), items, depth + 1)


# --- the page -----------------------------------------------------------------------------------


# The site's "no image" picture (`…/dcicons/new/images/web/common/noimage.png`) stands for no photo at all.
_PLACEHOLDER_RE = re.compile(r"no[-_]?im(?:a)?ge?(?![a-z])|noimg", re.IGNORECASE)


def _images(page: Reader) -> tuple[str, ...]:
    raw = page.ld.get("image")
    listed = raw if isinstance(raw, list) else [raw]
    urls = [text_of(x.get("url") if isinstance(x, dict) else x) for x in [*listed, page.meta("og:image")]]
    return _unique([u if u and not _PLACEHOLDER_RE.search(u) else None for u in urls])


def _layout(page: Reader) -> str:
    if not page.ld:
        return "no-jsonld"
    return "jsonld" if _find(page.doc, "//ul[contains(@class,'Restaurant_MenuList')]") else "classic"


def _missing(fields: dict[str, Any], sections: dict[str, bool]) -> frozenset[str]:
    """Fields with no value and no section that would hold one: the page said nothing about them."""
    empty = {name for name, value in fields.items() if value in (None, ())}
    return frozenset(name for name in empty if not sections.get(name, False))


def parse_detail(body: bytes, rid: str) -> StoreDetail:
    """`GET /profile.php?rid=` HTML -> StoreDetail, in any of the site's layouts."""
    page = Reader(document(body))
    title = text_of(page.doc.findtext(".//title"))
    title_name, title_categories = _title_parts(title)
    og_name, og_categories = _title_parts(page.meta("og:title"))
    self_urls = _self_urls(page)
    check_store_page(_has_store_sections(page), page.doc.text_content, self_urls)
    name, branch = _name_and_branch(page, title_name or og_name)
    if not name:
        raise ParseError("detail page has no store name (no JSON-LD, heading or title)")
    hours, tags = _hours(page), _tags(page.doc)
    menu = _menu(page.doc)
    if menu is None:
        menu = _ld_menu(page)
    unread = hours.pop("unread") if hours else ()
    fields: dict[str, Any] = {
        "branch": branch,
        **_place(page),
        "phone": _phone(page),
        **_rating(page),
        "categories": split_categories(page.ld.get("servesCuisine")) or title_categories or og_categories,
        "tags": tags or (),
        "keywords": _keywords(page) or (),
        "menu": menu or (),
        **(hours or dict.fromkeys(("open_hours", "break_time", "last_order", "holiday", "weekly_hours"))),
        "images": _images(page),
    }
    hours_fields = ("open_hours", "break_time", "last_order", "holiday")
    sections = {"menu": menu is not None, "tags": tags is not None, **dict.fromkeys(hours_fields, hours is not None)}
    return StoreDetail(
        rid=rid,
        name=name,
        title=title,
        closed=_says_closed(page.doc),
        reviews=tuple(t for t in (text_of(r.get("description")) for r in _reviews(page)) if t),
        missing=_missing(fields, sections),
        layout=_layout(page),
        fallbacks=page.fallbacks,
        unread=unread,
        claimed_ids=claimed_ids(self_urls, _find(page.doc, _HIDDEN_ID)),
        **fields,
    )


# Where a page gives its own id: hidden inputs a profile page keeps its id in.
_HIDDEN_ID = "//input[@type='hidden' and (@id='hdn_rid' or @name='rid' or @name='v_rid' or @id='v_rid')]/@value"


def _self_urls(page: Reader) -> list[str | None]:
    """The URLs a page gives for itself: canonical link, og:url, JSON-LD @id and url."""
    canonical = _find(page.doc, "//link[@rel='canonical']/@href")
    return [
        text_of(canonical[0]) if canonical else None,
        page.meta("og:url"),
        text_of(page.ld.get("@id")),
        text_of(page.ld.get("url")),
    ]


def _has_store_sections(page: Reader) -> bool:
    """A store page has its FoodEstablishment JSON-LD or one of the store blocks (any layout)."""
    if page.ld:
        return True
    return any(page.with_class(c) for c in STORE_SECTIONS) or bool(
        _find(page.doc, "//*[@id='div_profile' or @id='div_hour' or @id='div_detail']")
    )


def _says_closed(doc: Doc) -> bool:
    """A notice that the store closed (폐업): a `closed-info` block, or its words in a notice."""
    notice = _find(
        doc,
        f"//*[{_has_class('closed-info')}] | //div[contains(text(), '폐업한 가게') or contains(text(), '폐업 신고')]",
    )
    return bool(notice)


def _reviews(page: Reader) -> list[dict[str, Any]]:
    reviews = page.ld.get("review")
    return [r for r in reviews if isinstance(r, dict)] if isinstance(reviews, list) else []
