"""The Scrapy baseline: the same job as stage5, written the way Scrapy users usually write it.

    .venv/bin/python benchmarks/scrapy_baseline.py --site http://127.0.0.1:8765 --schema scrapy_run

Same keywords (stage5's keyword list), same paging stop rules, same district filter (the store's
own address), same dedupe on v_rid, one detail page per store, same refill words, same concurrency
and delay; parsing with Scrapy's selectors; an item pipeline that upserts each item into PostgreSQL
and commits it. A benchmark dependency only (benchmarks/requirements.txt), not part of stage5.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import psycopg
import scrapy
from psycopg import sql
from psycopg.types.json import Jsonb
from scrapy.crawler import CrawlerProcess

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stage5.site.diningcode import queries_for
from stage5.site.seoul import DISTRICT_BY_NAME, DISTRICT_NAMES

REFILL_WORDS = ("무한리필", "무제한", "셀프바", "뷔페", "리필")
TAG = re.compile(r"<[^>]+>")
PRICE = re.compile(r"(\d[\d,]*)\s*원")
SEOUL_LAT, SEOUL_LNG = (37.41, 37.72), (126.73, 127.27)

TABLE_SQL = """
CREATE TABLE IF NOT EXISTS scrapy_stores (
    diningcode_place_id text PRIMARY KEY, name text NOT NULL, district text NOT NULL, address text NOT NULL,
    position_lat double precision, position_lng double precision, phone_number text, categories text[],
    menu_items jsonb, is_confirmed_refill boolean NOT NULL, refill_evidence text[], source_url text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
)
"""
UPSERT = """
INSERT INTO scrapy_stores (diningcode_place_id, name, district, address, position_lat, position_lng, phone_number,
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


class PostgresPipeline:
    """The usual pipeline: a connection opened with the spider, one upsert and commit per item."""

    def __init__(self, url: str, schema: str) -> None:
        self.url, self.schema = url, schema

    @classmethod
    def from_crawler(cls, crawler: Any) -> PostgresPipeline:
        return cls(crawler.settings["PG_URL"], crawler.settings["PG_SCHEMA"])

    def open_spider(self) -> None:
        self.conn = psycopg.connect(self.url)
        self.conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
        self.conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        self.conn.execute(TABLE_SQL)
        self.conn.commit()

    def close_spider(self) -> None:
        self.conn.close()

    def process_item(self, item: dict[str, Any]) -> dict[str, Any]:
        self.conn.execute(UPSERT, {**item, "menu": Jsonb(item["menu"])})
        self.conn.commit()
        return item


class DiningCodeSpider(scrapy.Spider):
    name = "diningcode"

    def __init__(self, site: str, districts: list[str], page_size: int = 20, **kw: Any) -> None:
        super().__init__(**kw)
        self.site, self.districts, self.page_size = site.rstrip("/"), districts, page_size
        self.claimed: set[str] = set()

    async def start(self) -> Any:
        for name in self.districts:
            for query in queries_for(DISTRICT_BY_NAME[name]):
                yield self.search(query, 1, set())

    def search(self, query: Any, page: int, seen: set[str]) -> scrapy.FormRequest:
        return scrapy.FormRequest(
            f"{self.site}/API/isearch/",
            formdata=query.form(page, self.page_size),
            callback=self.parse_search,
            cb_kwargs={"query": query, "page": page, "seen": seen},
            dont_filter=True,
        )

    def parse_search(self, response: Any, query: Any, page: int, seen: set[str]) -> Any:
        section = response.json()["result_data"]["poi_section"]
        new = [item for item in section["list"] if item["v_rid"] not in seen]
        if not new:
            return
        seen.update(item["v_rid"] for item in new)
        for item in new:
            here = query.district in (district_of(item.get("addr")), district_of(item.get("road_addr")))
            if here and item["v_rid"] not in self.claimed:
                self.claimed.add(item["v_rid"])
                yield scrapy.Request(
                    f"{self.site}/profile.php?rid={item['v_rid']}",
                    callback=self.parse_detail,
                    cb_kwargs={"summary": item},
                )
        if page * self.page_size < int(section.get("total_cnt") or 0):
            yield self.search(query, page + 1, seen)

    def parse_detail(self, response: Any, summary: dict[str, Any]) -> Any:
        ld = json.loads(response.css('script[type="application/ld+json"]::text').get() or "{}")
        address = (ld.get("address") or {}).get("streetAddress") or summary.get("addr")
        geo = ld.get("geo") or {}
        lat, lng = (
            float(geo.get("latitude") or summary.get("lat") or 0),
            float(geo.get("longitude") or summary.get("lng") or 0),
        )
        district = district_of(address)
        if district is None or not (SEOUL_LAT[0] <= lat <= SEOUL_LAT[1] and SEOUL_LNG[0] <= lng <= SEOUL_LNG[1]):
            return  # outside Seoul or unusable: dropped, as such spiders usually do
        menu = []
        for li in response.css("ul.Restaurant_MenuList li"):
            price = PRICE.search(li.css("p.Restaurant_MenuPrice::text").get() or "")
            menu.append(
                {
                    "name": li.css("span.Restaurant_Menu::text").get(),
                    "price": int(price.group(1).replace(",", "")) if price else None,
                }
            )
        categories = [TAG.sub("", c).strip() for c in (summary.get("category") or "").split(",") if c.strip()]
        tags = [t.lstrip("#") for t in response.css(".tags a::text").getall()]
        keywords = [k.get("term", "") for k in summary.get("keyword") or []]
        texts = [ld.get("name") or summary["nm"], *categories, *keywords, *tags, *(m["name"] or "" for m in menu)]
        evidence = [t for t in texts if any(w in t for w in REFILL_WORDS)]
        phone = re.search(r"0\d{1,3}-\d{3,4}-\d{4}", ld.get("telephone") or summary.get("phone") or "")
        yield {
            "rid": summary["v_rid"],
            "name": ld.get("name") or summary["nm"],
            "district": district,
            "address": address,
            "lat": lat,
            "lng": lng,
            "phone": phone.group(0) if phone else None,
            "categories": categories,
            "menu": menu,
            "refill": bool(evidence),
            "evidence": evidence,
            "url": response.url,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", required=True)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/stage5")
    parser.add_argument("--schema", required=True)
    parser.add_argument("--districts", default=",".join(DISTRICT_NAMES))
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    process = CrawlerProcess(
        settings={
            "CONCURRENT_REQUESTS": args.concurrency,
            "CONCURRENT_REQUESTS_PER_DOMAIN": args.concurrency,
            "DOWNLOAD_DELAY": args.delay,
            "DOWNLOAD_DELAY_JITTER": 0,
            "ROBOTSTXT_OBEY": False,
            "RETRY_TIMES": 3,
            "COOKIES_ENABLED": False,
            "TELNETCONSOLE_ENABLED": False,
            "LOG_LEVEL": "WARNING",
            "ITEM_PIPELINES": {PostgresPipeline: 300},
            "PG_URL": args.database_url,
            "PG_SCHEMA": args.schema,
            "USER_AGENT": (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
                " Chrome/131 Safari/537.36"
            ),
        }
    )
    process.crawl(DiningCodeSpider, site=args.site, districts=args.districts.split(","))
    process.start()


if __name__ == "__main__":
    main()
