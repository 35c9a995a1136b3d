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
from typing import Any

import lxml.html
from lxml import etree

from stage5.errors import ParseError
from stage5.models import MenuItem, StoreDetail
from stage5.site.markup import MAX_LINE, MAX_PRICE_DIGITS, document, integer, number, text_of

Doc = lxml.html.HtmlElement

PHONE_RE = re.compile(r"0\d{1,3}-\d{3,4}-\d{4}")
_TIME = r"(\d{1,2})\s*:\s*(\d{2})"
_RANGE = _TIME + r"\s*[-~∼–]\s*" + _TIME
_HOURS_RE = re.compile(r"영업\s*시간\s*[:：]?\s*" + _RANGE)
_BREAK_RE = re.compile(r"브레이크\s*타임\s*[:：]?\s*" + _RANGE)
_LAST_ORDER_RE = re.compile(r"라스트\s*오더\s*[:：]?\s*" + _TIME)
_RATING_TEXT_RE = re.compile(r"(\d(?:\.\d)?)\s*\(\s*(\d[\d,]{0,12})\s*명")
_SCORE_TEXT_RE = re.compile(r"(\d{1,3})\s*점")
_WON_RE = re.compile(r"(?<![\d,])(\d[\d,]*+)\s*원")
_NUMBER_RE = re.compile(r"(?<![\d,])(\d[\d,]*+)")
_KOREAN_WON_RE = re.compile(r"(?:(\d{1,4})\s*만)?\s*(?:(\d)\s*천)?\s*(?:(\d)\s*백)?\s*(\d{1,3})?\s*원")
WEEKDAYS = ("월", "화", "수", "목", "금", "토", "일")
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


def _name_and_branch(page: Reader, title_name: str | None) -> tuple[str | None, str | None]:
    """Name without the branch where the page marks the branch separately (h1 > span, .tit > span)."""
    doc = page.doc
    branch = page.class_text("branch") or _first_text(doc, "//span[contains(@class,'Info__Title__Place')]")
    heading = _find(doc, f"//h1 | //*[{_has_class('tit-point')}]//*[{_has_class('tit')}]")
    marked = heading[0] if heading else None
    if marked is not None and marked.find("span") is not None:
        branch = branch or text_of(marked.find("span").text_content())
    name = text_of(page.ld.get("name")) or (_own_text(marked) if marked is not None else None) or title_name
    return name, branch


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
    return {
        "address": text_of(street) or page.class_text("addr") or _breadcrumb_address(page),
        "road_address": page.class_text("road"),
        "lat": page.ld_number(geo, "latitude"),
        "lng": page.ld_number(geo, "longitude"),
    }


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


def _unique(texts: list[str | None]) -> tuple[str, ...]:
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


# --- hours --------------------------------------------------------------------------------------


def _time(hour: str, minute: str) -> str:
    return f"{int(hour):02d}:{minute}"


def _span(match: re.Match[str] | None) -> str | None:
    return f"{_time(match.group(1), match.group(2))} - {_time(match.group(3), match.group(4))}" if match else None


def _lines(node: Doc) -> list[str]:
    """The text lines of one hours entry, whether they sit in p.r-txt, p, div or the li itself."""
    parts = _find(node, f".//*[{_has_class('r-txt')}]") or _find(node, ".//p | .//div") or [node]
    return [" ".join(" ".join(p.itertext())[: MAX_LINE * 4].split())[:MAX_LINE] for p in parts]


def _day_of(node: Doc) -> str | None:
    label = _first_text(node, f".//*[{_has_class('l-txt')}]") or ""
    day = label[:1] if label[:1] in WEEKDAYS and label[1:].startswith("요일") else None
    return day


def _day_hours(lines: list[str]) -> dict[str, Any]:
    text = "\n".join(lines)
    hours = _HOURS_RE.search(text)
    return {
        "open": _time(hours.group(1), hours.group(2)) if hours else None,
        "close": _time(hours.group(3), hours.group(4)) if hours else None,
        "break": _span(_BREAK_RE.search(text)),
        "last_order": (lambda m: _time(m.group(1), m.group(2)) if m else None)(_LAST_ORDER_RE.search(text)),
        "closed": not hours and any("휴무" in line for line in lines),
    }


def _hours(doc: Doc) -> dict[str, Any] | None:
    """Today's hours and the weekly table; None when the page has no hours section at all."""
    section = _find(doc, f"//*[@id='div_hour'] | //*[{_has_class('busi-hours')}]")
    if not section:
        return None
    entries = _find(section[0], ".//li")
    weekly = {day: _day_hours(_lines(li)) for li in entries if (day := _day_of(li))}
    today = [li for li in entries if not _day_of(li)]
    lines = [line for li in today for line in _lines(li)]
    text = "\n".join(lines)
    last = _LAST_ORDER_RE.search(text)
    return {
        "open_hours": _span(_HOURS_RE.search(text)),
        "break_time": _span(_BREAK_RE.search(text)),
        "last_order": _time(last.group(1), last.group(2)) if last else None,
        "holiday": next((line for line in lines if "휴무" in line and line != "휴무일"), None),
        "weekly_hours": weekly or None,
    }


# --- menu ---------------------------------------------------------------------------------------


def won(text: str | None) -> int | None:
    """Won from '16,900원', '+ 5,000원', '1만5천원', '12,000~15,000원' (the lower end); None for '시가',
    '변동' or an absurd number (the text is kept beside it)."""
    text = (text or "")[:MAX_LINE]
    head = text.split("~", 1)[0]
    korean = _KOREAN_WON_RE.search(text)
    if korean and any(korean.group(i) for i in (1, 2, 3)):
        man, cheon, baek, rest = (int(g) if g else 0 for g in korean.groups())
        return man * 10_000 + cheon * 1_000 + baek * 100 + rest
    found = _WON_RE.search(head) or (_NUMBER_RE.search(head) if "~" in text else None)
    digits = found.group(1).replace(",", "") if found else ""
    return int(digits) if digits and len(digits) <= MAX_PRICE_DIGITS else None


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


# --- the page -----------------------------------------------------------------------------------


def _images(page: Reader) -> tuple[str, ...]:
    raw = page.ld.get("image")
    listed = raw if isinstance(raw, list) else [raw]
    return _unique([text_of(x) for x in [*listed, page.meta("og:image")]])


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
    if not (page.ld or title_name or og_name or _find(page.doc, "//*[@id='div_profile']")):
        raise ParseError("not a store page (no JSON-LD, no store title, no profile block): an error or notice page?")
    name, branch = _name_and_branch(page, title_name or og_name)
    if not name:
        raise ParseError("detail page has no store name (no JSON-LD, heading or title)")
    hours, menu, tags = _hours(page.doc), _menu(page.doc), _tags(page.doc)
    fields: dict[str, Any] = {
        "branch": branch,
        **_place(page),
        "phone": _phone(page),
        **_rating(page),
        "categories": title_categories or og_categories,
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
        **fields,
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
