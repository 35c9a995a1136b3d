"""What the Scrapy and Crawlee baselines share: the same table, the same district filter, the same
reading of a store's details, the same refill words. A benchmark dependency only, not part of stage5.

Details come from one of two sources (`--detail-source`, as stage5's STAGE5_DETAIL_SOURCE):
- `api` (default, what stage5 asks by default): `POST /API/profile/` with form `v_rid`, its JSON read by
  stage5's own parser (stage5.site.profile.parse_profile), so all three crawlers do the same parsing work
  for the same answer and the comparison measures the engines;
- `html`: the profile.php page, read with parsel selectors (Scrapy's `response` and Crawlee's
  `context.selector` both are one): the baselines' own, lighter reading of the page (JSON-LD, menu, tags).
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any, Literal

from stage5.site.profile import parse_profile
from stage5.site.seoul import DISTRICT_BY_NAME, DISTRICT_NAMES

DetailSource = Literal["api", "html"]
DETAIL_SOURCES: tuple[DetailSource, ...] = ("api", "html")

REFILL_WORDS = ("무한리필", "무제한", "셀프바", "뷔페", "리필")
TAG = re.compile(r"<[^>]+>")
PRICE = re.compile(r"(\d[\d,]*)\s*원")
PHONE = re.compile(r"0\d{1,3}-\d{3,4}-\d{4}")
SEOUL_LAT, SEOUL_LNG = (37.41, 37.72), (126.73, 127.27)

TABLE_SQL = """
CREATE TABLE IF NOT EXISTS {table} (
    diningcode_place_id text PRIMARY KEY, name text NOT NULL, district text NOT NULL, address text NOT NULL,
    position_lat double precision, position_lng double precision, phone_number text, categories text[],
    menu_items jsonb, is_confirmed_refill boolean NOT NULL, refill_evidence text[], source_url text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
)
"""
UPSERT = """
INSERT INTO {table} (diningcode_place_id, name, district, address, position_lat, position_lng, phone_number,
    categories, menu_items, is_confirmed_refill, refill_evidence, source_url)
VALUES (%(rid)s, %(name)s, %(district)s, %(address)s, %(lat)s, %(lng)s, %(phone)s, %(categories)s, %(menu)s,
    %(refill)s, %(evidence)s, %(url)s)
ON CONFLICT (diningcode_place_id) DO UPDATE SET name = EXCLUDED.name, district = EXCLUDED.district,
    address = EXCLUDED.address, position_lat = EXCLUDED.position_lat, position_lng = EXCLUDED.position_lng,
    phone_number = EXCLUDED.phone_number, categories = EXCLUDED.categories, menu_items = EXCLUDED.menu_items,
    is_confirmed_refill = EXCLUDED.is_confirmed_refill, refill_evidence = EXCLUDED.refill_evidence,
    source_url = EXCLUDED.source_url, updated_at = now()
"""


def district_of(address: str | None) -> str | None:
    if not address or not re.match(r"^\s*서울(특별시|시)?\s", address):
        return None
    return next((t for t in address.split()[1:3] if t in DISTRICT_BY_NAME), None)


def profile_url(site: str) -> str:
    """The profile API's endpoint (a POST with form `v_rid`, `shared/diningcode.md` §3b)."""
    return f"{site}/API/profile/"


def profile_form(rid: str) -> dict[str, str]:
    return {"v_rid": rid}


def page_url(site: str, rid: str) -> str:
    """The store's page: fetched with `--detail-source html`, and cited as the row's source in both modes."""
    return f"{site}/profile.php?rid={rid}"


def parse_detail(page: Any, summary: dict[str, Any], url: str) -> dict[str, Any] | None:
    """One store from its detail page (`page`: a parsel selector) and its search answer."""
    ld = json.loads(page.css('script[type="application/ld+json"]::text').get() or "{}")
    geo = ld.get("geo") or {}
    menu = []
    for li in page.css("ul.Restaurant_MenuList li"):
        price = PRICE.search(li.css("p.Restaurant_MenuPrice::text").get() or "")
        menu.append(
            {
                "name": li.css("span.Restaurant_Menu::text").get(),
                "price": int(price.group(1).replace(",", "")) if price else None,
            }
        )
    return store_item(
        summary,
        url,
        name=ld.get("name"),
        address=(ld.get("address") or {}).get("streetAddress"),
        lat=geo.get("latitude"),
        lng=geo.get("longitude"),
        phone=ld.get("telephone"),
        categories=None,
        tags=[t.lstrip("#") for t in page.css(".tags a::text").getall()],
        menu=menu,
    )


def parse_profile_answer(body: bytes, summary: dict[str, Any], url: str) -> dict[str, Any] | None:
    """One store from its profile API answer (JSON bytes) and its search answer. Raises stage5's
    ParseError for an error answer or a shape it cannot read (the framework logs it; the store is lost)."""
    detail = parse_profile(body, summary["v_rid"])
    return store_item(
        summary,
        url,
        name=detail.name,
        address=detail.address,
        lat=detail.lat,
        lng=detail.lng,
        phone=detail.phone,
        categories=list(detail.categories) or None,
        tags=list(detail.tags),
        menu=[{"name": m.name, "price": m.price} for m in detail.menu],
    )


def store_item(
    summary: dict[str, Any],
    url: str,
    *,
    name: str | None,
    address: str | None,
    lat: Any,
    lng: Any,
    phone: str | None,
    categories: list[str] | None,
    tags: list[str],
    menu: list[dict[str, Any]],
) -> dict[str, Any] | None:
    """The row of one store from what its detail answer gave (None: not given, the search answer's value
    is used), or None when the store is outside Seoul or unusable (dropped, as such spiders usually do)."""
    address = address or summary.get("addr")
    lat, lng = float(lat or summary.get("lat") or 0), float(lng or summary.get("lng") or 0)
    district = district_of(address)
    if district is None or not (SEOUL_LAT[0] <= lat <= SEOUL_LAT[1] and SEOUL_LNG[0] <= lng <= SEOUL_LNG[1]):
        return None
    if categories is None:
        categories = [TAG.sub("", c).strip() for c in (summary.get("category") or "").split(",") if c.strip()]
    keywords = [k.get("term", "") for k in summary.get("keyword") or []]
    name = name or summary["nm"]
    texts = [name, *categories, *keywords, *tags, *(m["name"] or "" for m in menu)]
    evidence = [t for t in texts if any(w in t for w in REFILL_WORDS)]
    found_phone = PHONE.search(phone or summary.get("phone") or "")
    return {
        "rid": summary["v_rid"],
        "name": name,
        "district": district,
        "address": address,
        "lat": lat,
        "lng": lng,
        "phone": found_phone.group(0) if found_phone else None,
        "categories": categories,
        "menu": menu,
        "refill": bool(evidence),
        "evidence": evidence,
        "url": url,
    }


def search_step(
    section: dict[str, Any], district: str, page: int, page_size: int, seen: set[str], claimed: set[str]
) -> tuple[list[dict[str, Any]], bool]:
    """(the stores of this answer to fetch, whether to ask for the next page): stop when a page brings
    nothing new; a store is fetched once, by the first query of its own district that lists it."""
    new = [item for item in section["list"] if item["v_rid"] not in seen]
    if not new:
        return [], False
    seen.update(item["v_rid"] for item in new)
    fetch = []
    for item in new:
        here = district in (district_of(item.get("addr")), district_of(item.get("road_addr")))
        if here and item["v_rid"] not in claimed:
            claimed.add(item["v_rid"])
            fetch.append(item)
    return fetch, page * page_size < int(section.get("total_cnt") or 0)


def baseline_arguments(description: str) -> argparse.ArgumentParser:
    """The command line both baselines take (compare.py passes the same values to each)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--site", required=True)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/stage5")
    parser.add_argument("--schema", required=True)
    parser.add_argument("--districts", default=",".join(DISTRICT_NAMES))
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--page-size", type=int, default=20)
    parser.add_argument(
        "--detail-source",
        choices=DETAIL_SOURCES,
        default="api",
        help="api: POST /API/profile/ (stage5's default source); html: the profile.php page",
    )
    return parser
