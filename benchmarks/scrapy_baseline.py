"""The Scrapy baseline: the same job as stage5, written the way Scrapy users usually write it.

    .venv/bin/python benchmarks/scrapy_baseline.py --site http://127.0.0.1:8765 --schema scrapy_run

Same keywords (stage5's keyword list), same paging stop rules, same district filter (the store's
own address), same dedupe on v_rid, one detail answer per store, same refill words, same concurrency
and delay. Details from the profile API (a FormRequest, POST /API/profile/ with v_rid; the JSON read
by the shared reader) or, with `--detail-source html`, the profile.php page read with Scrapy's
selectors; an item pipeline that upserts each item into PostgreSQL and commits it. A benchmark
dependency only (benchmarks/requirements.txt), not part of stage5.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import psycopg
import scrapy
from psycopg import sql
from psycopg.types.json import Jsonb
from scrapy.crawler import CrawlerProcess

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from baseline_common import (
    TABLE_SQL,
    UPSERT,
    DetailSource,
    baseline_arguments,
    page_url,
    parse_detail,
    parse_profile_answer,
    profile_form,
    profile_url,
    search_step,
)

from stage5.site.diningcode import queries_for
from stage5.site.seoul import DISTRICT_BY_NAME


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
        self.conn.execute(TABLE_SQL.format(table="scrapy_stores"))
        self.conn.commit()

    def close_spider(self) -> None:
        self.conn.close()

    def process_item(self, item: dict[str, Any]) -> dict[str, Any]:
        self.conn.execute(UPSERT.format(table="scrapy_stores"), {**item, "menu": Jsonb(item["menu"])})
        self.conn.commit()
        return item


class DiningCodeSpider(scrapy.Spider):
    name = "diningcode"

    def __init__(
        self, site: str, districts: list[str], page_size: int = 20, detail_source: DetailSource = "api", **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.site, self.districts, self.page_size = site.rstrip("/"), districts, page_size
        self.detail_source = detail_source
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
        fetch, more = search_step(section, query.district, page, self.page_size, seen, self.claimed)
        for item in fetch:
            yield self.detail(item)
        if more:
            yield self.search(query, page + 1, seen)

    def detail(self, summary: dict[str, Any]) -> scrapy.Request:
        """One store's details: a POST of its v_rid to the profile API, or a GET of its page."""
        if self.detail_source == "api":
            return scrapy.FormRequest(
                profile_url(self.site),
                formdata=profile_form(summary["v_rid"]),
                callback=self.parse_profile,
                cb_kwargs={"summary": summary},
            )
        url = page_url(self.site, summary["v_rid"])
        return scrapy.Request(url, callback=self.parse_detail, cb_kwargs={"summary": summary})

    def parse_profile(self, response: Any, summary: dict[str, Any]) -> Any:
        item = parse_profile_answer(response.body, summary, page_url(self.site, summary["v_rid"]))
        if item:
            yield item

    def parse_detail(self, response: Any, summary: dict[str, Any]) -> Any:
        item = parse_detail(response, summary, response.url)
        if item:
            yield item


def main() -> None:
    parser = baseline_arguments(__doc__.split("\n\n")[0])
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
    process.crawl(
        DiningCodeSpider,
        site=args.site,
        districts=args.districts.split(","),
        page_size=args.page_size,
        detail_source=args.detail_source,
    )
    process.start()


if __name__ == "__main__":
    main()
