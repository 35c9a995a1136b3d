"""Pure parsers of DiningCode's three answers: search JSON, list page HTML, detail page HTML.

Input is bytes, output is `stage5.models` dataclasses; no network, no database. Anything that
cannot be read raises `ParseError` saying what was missing, so the caller can log the URL.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Iterable
from typing import Any

import lxml.html
from bs4 import UnicodeDammit
from lxml import etree

from stage5.errors import ParseError
from stage5.models import MenuItem, SearchPage, StoreDetail, StoreSummary

PHONE_RE = re.compile(r"0\d{1,3}-\d{3,4}-\d{4}")
# Every pattern on page text runs in linear time: no pattern can restart a long scan at each position
# (a tag never spans a '<', a price starts where a number starts), and texts are capped before matching.
_TAG_RE = re.compile(r"<[^<>]*>")
_PRICE_RE = re.compile(r"(?<![\d,])(\d[\d,]*+)\s*원")
_RANK_RE = re.compile(r"^\s*\d+\.\s*")
_HOURS_RE = re.compile(r"영업시간\s*[:：]?\s*(\d{1,2}:\d{2}\s*[-~]\s*\d{1,2}:\d{2})")
_LAST_ORDER_RE = re.compile(r"라스트\s*오더\s*[:：]?\s*(\d{1,2}:\d{2})")
_BREAK_RE = re.compile(r"브레이크\s*타임\s*[:：]?\s*(\d{1,2}:\d{2}\s*[-~]\s*\d{1,2}:\d{2})")
_RATING_TEXT_RE = re.compile(r"(\d(?:\.\d)?)\s*\(\s*(\d[\d,]*)\s*명")
_SCORE_TEXT_RE = re.compile(r"(\d{1,3})\s*점")
_LIST_DATA_RE = re.compile(r"localStorage\.setItem\(\s*'listData'\s*,\s*'((?:[^'\\]|\\.)*)'\s*\)", re.S)


# --- small coercions: the site sends numbers as numbers or strings, sometimes empty --------------


MAX_TEXT = 4000  # characters kept of one text value (names, addresses, menu lines are far shorter)
MAX_NUMBER = 40  # characters of a number worth reading
MAX_LINE = 300  # characters of one line of hours or one price text
MAX_PRICE_DIGITS = 9  # 999,999,999 won; more is not a menu price


def _text(value: Any) -> str | None:
    """A clean, capped text from a JSON value or markup; None for empty, or for a list or an object."""
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    text = _TAG_RE.sub("", html.unescape(str(value)[: MAX_TEXT * 2])).strip()[:MAX_TEXT]
    return text or None


def _float(value: Any) -> float | None:
    """A finite number from a number or a string ('1,234'); None for NaN, infinities and junk."""
    if value in (None, "") or isinstance(value, (dict, list, bool)):
        return None
    raw = str(value).replace(",", "").strip()
    if len(raw) > MAX_NUMBER:
        return None
    try:
        number = float(raw)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _items(value: Any) -> list[Any]:
    """A JSON value that should be a list: the list, or nothing (never iterate a number or a string)."""
    return value if isinstance(value, list) else []


def _int(value: Any) -> int | None:
    number = _float(value)
    return int(number) if number is not None else None


def _split_categories(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        parts: Iterable[Any] = value
    else:
        parts = (_text(value) or "").split(",")
    return tuple(t for t in (_text(p) for p in parts) if t)


def decode(body: bytes) -> str:
    """UTF-8 as the site sends it; a page in another encoding (cp949/euc-kr) is detected, not garbled."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        dammit = UnicodeDammit(body, ["utf-8", "cp949", "euc-kr"])
        if dammit.unicode_markup is None:
            raise ParseError("body is not text in any known encoding") from None
        return dammit.unicode_markup


# --- search results -------------------------------------------------------------------------------


def summary_from_item(item: dict[str, Any]) -> StoreSummary:
    rid = _text(item.get("v_rid"))
    name = _text(item.get("nm"))
    if not rid or not name:
        raise ParseError(f"search item without v_rid/nm: {str(item)[:120]}")
    keywords = tuple(
        t for t in (_text(k.get("term") if isinstance(k, dict) else k) for k in _items(item.get("keyword"))) if t
    )
    images = tuple(i for i in (_text(x) for x in _items(item.get("image_list"))) if i)
    return StoreSummary(
        rid=rid,
        name=_RANK_RE.sub("", name),
        branch=_text(item.get("branch")),
        address=_text(item.get("addr")),
        road_address=_text(item.get("road_addr")),
        phone=_text(item.get("phone")),
        lat=_float(item.get("lat")),
        lng=_float(item.get("lng")),
        score=_int(item.get("score")),
        user_score=_float(item.get("user_score")),
        review_count=_int(item.get("review_cnt")),
        categories=_split_categories(item.get("category")),
        keywords=keywords,
        areas=tuple(a for a in (_text(x) for x in _items(item.get("area"))) if a),
        image=_text(item.get("image")),
        images=images,
        open_status=_text(item.get("open_status")),
    )


def _poi_section(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ParseError("search answer is not a JSON object")
    if "result_code" in data and str(data["result_code"]) != "100":
        raise ParseError(f"search API error result_code={data['result_code']} msg={data.get('result_msg')!r}")
    result_data = data.get("result_data")
    section = (result_data if isinstance(result_data, dict) else data).get("poi_section")
    if not isinstance(section, dict) or not isinstance(section.get("list"), list):
        raise ParseError("search answer has no result_data.poi_section.list")
    return section


def _search_page(section: dict[str, Any]) -> SearchPage:
    stores = tuple(summary_from_item(item) for item in section["list"] if isinstance(item, dict))
    return SearchPage(total=_int(section.get("total_cnt")) or 0, stores=stores)


def parse_search(body: bytes) -> SearchPage:
    """`POST /API/isearch/` JSON -> SearchPage."""
    try:
        data = json.loads(decode(body))
    except json.JSONDecodeError as exc:
        raise ParseError(f"search answer is not JSON ({exc.msg} at byte {exc.pos})") from None
    except RecursionError:
        raise ParseError("search answer is JSON nested too deep to read") from None
    return _search_page(_poi_section(data))


# --- list page ------------------------------------------------------------------------------------


def _document(body: bytes) -> lxml.html.HtmlElement:
    text = decode(body)
    if "<html" not in text[:2000].lower():
        raise ParseError("not an HTML page")
    if "</html>" not in text[-2000:].lower():
        raise ParseError("page is cut short (no closing </html>)")  # lxml would parse half a page silently
    parser = lxml.html.HTMLParser()
    try:
        doc = lxml.html.document_fromstring(text, parser=parser)
    except (etree.ParserError, ValueError) as exc:
        raise ParseError(f"HTML does not parse: {exc}") from None
    # libxml2 stops reading at a nesting depth of 256 and says so only in its error log: the rest of
    # the page (menu, hours) would be missing without a word. Such a page is incomplete, not empty.
    limits = [e.message for e in parser.error_log if e.type_name == "ERR_RESOURCE_LIMIT"]
    if limits:
        raise ParseError(f"page only partly read ({limits[0]})")
    return doc


def parse_list(body: bytes) -> SearchPage:
    """`GET /list.dc` HTML -> SearchPage, from the embedded listData JSON, else from the cards."""
    doc = _document(body)
    for script in doc.xpath("//script[not(@src)]/text()"):
        match = _LIST_DATA_RE.search(script)
        if match:
            raw = match.group(1).encode("latin-1", "backslashreplace").decode("unicode_escape")
            try:
                return _search_page(_poi_section(json.loads(raw)))
            except json.JSONDecodeError as exc:
                raise ParseError(f"listData is not JSON ({exc.msg})") from None
    return SearchPage(total=0, stores=tuple(_cards(doc)))


def _cards(doc: lxml.html.HtmlElement) -> Iterable[StoreSummary]:
    cards = doc.xpath("//a[contains(concat(' ', normalize-space(@class), ' '), ' PoiBlock ')]")
    if not cards:
        raise ParseError("list page has neither listData nor a.PoiBlock cards")
    for card in cards:
        rid = re.search(r"rid=([A-Za-z0-9_-]+)", card.get("href", ""))
        name = _text(card.xpath("string(.//h2)"))
        if not rid or not name:
            raise ParseError("a.PoiBlock card without rid or h2 name")
        yield StoreSummary(
            rid=rid.group(1),
            name=_RANK_RE.sub("", name),
            branch=_text(card.xpath("string(.//span[contains(@class,'Info__Title__Place')])")),
            score=_int(card.xpath("string(.//p[contains(@class,'Score')]/span)")),
            user_score=_float(card.xpath("string(.//span[contains(@class,'score-text')])")),
            categories=tuple(
                t for t in (_text(c) for c in card.xpath(".//span[contains(@class,'Category')]//text()")) if t
            ),
        )


# --- detail page ----------------------------------------------------------------------------------


def _json_ld(doc: lxml.html.HtmlElement) -> dict[str, Any]:
    for raw in doc.xpath("//script[@type='application/ld+json']/text()"):
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, RecursionError):
            continue
        for node in data if isinstance(data, list) else [data]:
            if isinstance(node, dict) and node.get("@type") in ("FoodEstablishment", "Restaurant"):
                return node
    return {}


def _class_text(doc: lxml.html.HtmlElement, cls: str) -> str | None:
    nodes = doc.xpath(f"//*[contains(concat(' ', normalize-space(@class), ' '), ' {cls} ')]")
    return _text(" ".join(nodes[0].itertext())) if nodes else None


def _menu(doc: lxml.html.HtmlElement) -> tuple[MenuItem, ...]:
    items = []
    for li in doc.xpath("//ul[contains(@class,'Restaurant_MenuList')]/li"):
        name = _text(li.xpath("string(.//span[contains(@class,'Restaurant_Menu')])"))
        if not name:
            continue
        price_text = (_text(li.xpath("string(.//p[contains(@class,'Restaurant_MenuPrice')])")) or "")[:MAX_LINE]
        items.append(MenuItem(name, _price(price_text), price_text or None))
    return tuple(items)


def _price(text: str | None) -> int | None:
    """Won from '16,900원'; None when the text has no such number or an absurd one (kept as text)."""
    match = _PRICE_RE.search((text or "")[:MAX_LINE])
    digits = match.group(1).replace(",", "") if match else ""
    return int(digits) if digits and len(digits) <= MAX_PRICE_DIGITS else None


def _hours(doc: lxml.html.HtmlElement) -> dict[str, str | None]:
    items = doc.xpath("//*[contains(@class,'busi-hours')]//li")
    lines = [" ".join(" ".join(li.itertext())[: MAX_LINE * 4].split())[:MAX_LINE] for li in items]
    text = "\n".join(lines)
    found = {
        "open_hours": _HOURS_RE.search(text),
        "last_order": _LAST_ORDER_RE.search(text),
        "break_time": _BREAK_RE.search(text),
    }
    hours = {k: (" ".join(m.group(1).split()) if m else None) for k, m in found.items()}
    hours["holiday"] = next((line for line in lines if "휴무" in line), None)
    return hours


def _title_parts(title: str | None) -> tuple[str | None, tuple[str, ...]]:
    """'{name} - {area} {category}, {tags} 맛집 | 다이닝코드…' -> (name, categories)."""
    if not title or " - " not in title:
        return None, ()
    name, rest = title.split(" - ", 1)
    head = rest.split("|", 1)[0].strip().removesuffix("맛집").strip()
    first = head.split(",", 1)[0].split()
    return name.strip() or None, tuple(first[1:2])


def _ld_dict(ld: dict[str, Any], key: str) -> dict[str, Any]:
    value = ld.get(key)
    return value if isinstance(value, dict) else {}


def _rating(doc: lxml.html.HtmlElement, ld: dict[str, Any]) -> dict[str, Any]:
    """rating, rating_count and score: JSON-LD's aggregateRating, else the page's score texts."""
    rating = _ld_dict(ld, "aggregateRating")
    text = _RATING_TEXT_RE.search(_class_text(doc, "score-text") or "")
    score = _SCORE_TEXT_RE.search(_class_text(doc, "total_score") or "")
    return {
        "rating": _float(rating.get("ratingValue")) or (_float(text.group(1)) if text else None),
        "rating_count": _int(rating.get("reviewCount")) or (_int(text.group(2)) if text else None),
        "score": _int(score.group(1)) if score else None,
    }


def _location(doc: lxml.html.HtmlElement, ld: dict[str, Any]) -> dict[str, Any]:
    """address, road_address, lat, lng and phone: JSON-LD first, then the markup."""
    address = ld.get("address")
    street = address.get("streetAddress") if isinstance(address, dict) else address
    geo = _ld_dict(ld, "geo")
    phone = PHONE_RE.search(_text(ld.get("telephone")) or _class_text(doc, "tel") or "")
    return {
        "address": _text(street) or _class_text(doc, "addr"),
        "road_address": _class_text(doc, "road"),
        "lat": _float(geo.get("latitude")),
        "lng": _float(geo.get("longitude")),
        "phone": phone.group(0) if phone else None,
    }


def _labels(doc: lxml.html.HtmlElement, title_categories: tuple[str, ...]) -> dict[str, Any]:
    """categories (from the title, else the last breadcrumb) and tags."""
    crumbs = [_text(a.text_content()) for a in doc.xpath("//a[starts-with(@href, '/list.dc?query=')]")]
    tags = (_text(x) for x in doc.xpath("//*[contains(@class,'tags')]//a//text()"))
    return {
        "categories": title_categories or tuple(c for c in crumbs[-1:] if c),
        "tags": tuple(t.lstrip("#") for t in tags if t),
    }


def _media(ld: dict[str, Any]) -> dict[str, Any]:
    images = ld.get("image")
    reviews = _items(ld.get("review"))
    return {
        "images": tuple(i for i in (_text(x) for x in (images if isinstance(images, list) else [images])) if i),
        "reviews": tuple(t for t in (_text(r.get("description")) for r in reviews if isinstance(r, dict)) if t),
    }


def parse_detail(body: bytes, rid: str) -> StoreDetail:
    """`GET /profile.php?rid=` HTML -> StoreDetail. JSON-LD first, markup classes as fallback."""
    doc = _document(body)
    ld = _json_ld(doc)
    title = _text(doc.findtext(".//title"))
    title_name, title_categories = _title_parts(title)
    name = _text(ld.get("name")) or title_name
    if not name:
        raise ParseError("detail page has no store name (no JSON-LD FoodEstablishment, no title)")
    return StoreDetail(
        rid=rid,
        name=name,
        title=title,
        branch=_class_text(doc, "branch"),
        menu=_menu(doc),
        **_location(doc, ld),
        **_rating(doc, ld),
        **_labels(doc, title_categories),
        **_media(ld),
        **_hours(doc),
    )


def parse_any(body: bytes, kind: str, rid: str = "") -> list[Any]:
    """Dispatch used by `python -m stage5 parse`: one saved response -> records."""
    if kind == "search":
        return list(parse_search(body).stores)
    if kind == "list":
        return list(parse_list(body).stores)
    if kind == "detail":
        return [parse_detail(body, rid)]
    raise ParseError(f"unknown kind {kind!r}; use search, list or detail")


def guess_kind(body: bytes, name: str) -> str:
    """Which parser a saved response needs, from its name or its first bytes."""
    if "profile.php" in name or "rid=" in name:
        return "detail"
    if "list.dc" in name:
        return "list"
    head = body.lstrip()[:1]
    if head in (b"{", b"["):
        return "search"
    return "detail" if b"application/ld+json" in body or b"Restaurant_Menu" in body else "list"
