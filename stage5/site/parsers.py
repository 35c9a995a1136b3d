"""Pure parsers of DiningCode's answers: search JSON and the list page here, the detail page in
`stage5.site.detail`; `parse_any` dispatches a saved answer of any kind.

Input is bytes, output is `stage5.models` dataclasses; no network, no database. Anything that
cannot be read raises `ParseError` saying what was missing, so the caller can log the URL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import lxml.html

from stage5.errors import ParseError
from stage5.models import SearchPage, StoreSummary
from stage5.site.detail import parse_detail
from stage5.site.markup import document, integer, items, json_answer, number, split_categories, text_of
from stage5.site.profile import parse_profile

__all__ = [
    "ParseError",
    "distance_m",
    "parse_detail",
    "parse_list",
    "parse_search",
    "parse_any",
    "guess_kind",
    "rid_from_name",
]

# A profile API answer: its result_data is a list of sections with a key ("key": "restaurant" first).
_PROFILE_MARK_RE = re.compile(rb'"key"\s*:\s*"(?:restaurant|detail|menu)"')
MAX_SNIFF = 64 * 1024
_RANK_RE = re.compile(r"^\s*\d+\.\s*")
_LIST_DATA_RE = re.compile(r"localStorage\.setItem\(\s*'listData'\s*,\s*'((?:[^'\\]|\\.)*)'\s*\)", re.S)


# --- search results -------------------------------------------------------------------------------


def summary_from_item(item: dict[str, Any]) -> StoreSummary:
    rid = text_of(item.get("v_rid"))
    name = text_of(item.get("nm"))
    if not rid or not name:
        raise ParseError(f"search item without v_rid/nm: {str(item)[:120]}")
    keywords = tuple(
        t for t in (text_of(k.get("term") if isinstance(k, dict) else k) for k in items(item.get("keyword"))) if t
    )
    images = tuple(i for i in (text_of(x) for x in items(item.get("image_list"))) if i)
    return StoreSummary(
        rid=rid,
        name=_RANK_RE.sub("", name),
        branch=text_of(item.get("branch")),
        address=text_of(item.get("addr")),
        road_address=text_of(item.get("road_addr")),
        phone=text_of(item.get("phone")),
        lat=number(item.get("lat")),
        lng=number(item.get("lng")),
        score=integer(item.get("score")),
        user_score=number(item.get("user_score")),
        review_count=integer(item.get("review_cnt")),
        categories=split_categories(item.get("category")),
        keywords=keywords,
        areas=tuple(a for a in (text_of(x) for x in items(item.get("area"))) if a),
        image=text_of(item.get("image")),
        images=images,
        open_status=text_of(item.get("open_status")),
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
    """The page's stores; an entry that is not one (no v_rid or nm: an ad slot, a banner) is skipped and
    counted, never failing the page."""
    stores, distances, skipped = [], [], 0
    for item in section["list"]:
        try:
            if not isinstance(item, dict):
                raise ParseError(f"search entry is not an object: {str(item)[:60]}")
            stores.append(summary_from_item(item))
            distances.append(distance_m(item.get("distance")))
        except ParseError:
            skipped += 1
    params = section.get("params")
    rcount = integer(params.get("rcount")) if isinstance(params, dict) else None
    return SearchPage(
        total=integer(section.get("total_cnt")) or 0,
        stores=tuple(stores),
        rcount=rcount,
        skipped=skipped,
        distances=tuple(distances),
    )


_DISTANCE_RE = re.compile(r"^\s*(\d+(?:\.(\d+))?)\s*(m|km)\s*$", re.I)


def distance_m(value: Any) -> float | None:
    """An entry's `distance` ('451m', '1.2km') as the least metres it can mean (its text is rounded:
    '1.2km' is 1150-1250 m, so 1150), or None when it gives none."""
    match = _DISTANCE_RE.match(text_of(value) or "")
    if not match:
        return None
    decimals = len(match.group(2) or "")
    unit = 1000.0 if match.group(3).lower() == "km" else 1.0
    half_step = 0.5 * unit / 10.0**decimals
    return max(0.0, float(match.group(1)) * unit - half_step)


def parse_search(body: bytes) -> SearchPage:
    """`POST /API/isearch/` JSON -> SearchPage."""
    return _search_page(_poi_section(json_answer(body, "search answer")))


# --- list page ------------------------------------------------------------------------------------


def parse_list(body: bytes) -> SearchPage:
    """`GET /list.dc` HTML -> SearchPage, from the embedded listData JSON, else from the cards."""
    doc = document(body)
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
        name = text_of(card.xpath("string(.//h2)"))
        if not rid or not name:
            raise ParseError("a.PoiBlock card without rid or h2 name")
        yield StoreSummary(
            rid=rid.group(1),
            name=_RANK_RE.sub("", name),
            branch=text_of(card.xpath("string(.//span[contains(@class,'Info__Title__Place')])")),
            score=integer(card.xpath("string(.//p[contains(@class,'Score')]/span)")),
            user_score=number(card.xpath("string(.//span[contains(@class,'score-text')])")),
            categories=tuple(
                t for t in (text_of(c) for c in card.xpath(".//span[contains(@class,'Category')]//text()")) if t
            ),
        )


def parse_any(body: bytes, kind: str, rid: str = "") -> list[Any]:
    """Dispatch used by `python -m stage5 parse`: one saved response -> records."""
    if kind == "search":
        return list(parse_search(body).stores)
    if kind == "list":
        return list(parse_list(body).stores)
    if kind == "detail":
        return [parse_detail(body, rid)]
    if kind == "profile":
        return [parse_profile(body, rid)]
    raise ParseError(f"unknown kind {kind!r}; use search, list, detail or profile")


def rid_from_name(name: str) -> str:
    """The store id a saved detail page names: `profile.php?rid=X` in a URL, or a file `…_X.html`."""
    if "rid=" in name:
        rid = name.split("rid=")[-1].split("&")[0].split("#")[0]
        return rid.removesuffix(".html").removesuffix(".htm")
    stem = Path(name).stem
    return stem.rsplit("_", 1)[-1] if "_" in stem else ""


def guess_kind(body: bytes, name: str) -> str:
    """Which parser a saved response needs: a JSON answer by what it holds (the profile API's sections, or
    the search's poi_section), a page by its name or its markup."""
    if body.lstrip()[:1] in (b"{", b"["):
        return "profile" if _PROFILE_MARK_RE.search(body[:MAX_SNIFF]) else "search"
    if "profile.php" in name or "rid=" in name:
        return "detail"
    if "list.dc" in name:
        return "list"
    if b"PoiBlock" in body or b"listData" in body:
        return "list"
    return "detail"
