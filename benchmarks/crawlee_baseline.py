"""The Crawlee for Python baseline: the same job as stage5 and the Scrapy baseline, written the way the
Crawlee docs write an HttpCrawler (every answer JSON) or a ParselCrawler (detail pages in HTML).

    .venv/bin/python benchmarks/crawlee_baseline.py --site http://127.0.0.1:8765 --schema crawlee_run

Same keywords, paging stop rules, district filter, dedupe, refill words and detail parsing as the Scrapy
baseline (benchmarks/baseline_common.py); a fixed concurrency (the autoscaled pool pinned to it), no
delay, in-memory request queue; each item upserted into PostgreSQL and committed from the handler.
Details from the profile API (a Request with method POST and a form payload, as the docs' "fill and
submit a web form" example writes one; answers read as JSON by an HttpCrawler, which parses nothing
itself) or, with `--detail-source html`, from the profile.php page through a ParselCrawler's selector.
A benchmark dependency only (benchmarks/requirements.txt), not part of stage5.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
from crawlee import ConcurrencySettings, Request
from crawlee.crawlers import HttpCrawler, HttpCrawlingContext, ParselCrawler, ParselCrawlingContext
from crawlee.storage_clients import MemoryStorageClient
from psycopg import sql
from psycopg.types.json import Jsonb

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

from stage5.site.diningcode import SearchQuery, queries_for
from stage5.site.seoul import DISTRICT_BY_NAME

TABLE = "crawlee_stores"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def search_request(site: str, query: SearchQuery, page: int, page_size: int) -> Request:
    return Request.from_url(
        f"{site}/API/isearch/",
        method="POST",
        payload=urlencode(query.form(page, page_size)).encode(),
        headers=FORM,
        label="search",
        unique_key=f"{query.keyword}|{query.district}|{page}",  # POSTs to one URL: the key says which
        user_data={"keyword": query.keyword, "district": query.district, "page": page},
    )


def detail_request(site: str, summary: dict[str, Any], source: DetailSource) -> Request:
    """One store's details: a POST of its v_rid to the profile API, or a GET of its page."""
    if source == "html":
        return Request.from_url(page_url(site, summary["v_rid"]), label="detail", user_data={"summary": summary})
    return Request.from_url(
        profile_url(site),
        method="POST",
        payload=urlencode(profile_form(summary["v_rid"])).encode(),
        headers=FORM,
        label="profile",
        unique_key=f"profile|{summary['v_rid']}",  # POSTs to one URL: the key says which store
        user_data={"summary": summary},
    )


async def main() -> None:
    args = baseline_arguments(__doc__.split("\n\n")[0]).parse_args()
    site = args.site.rstrip("/")

    conn = await psycopg.AsyncConnection.connect(args.database_url)
    await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(args.schema)))
    await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(args.schema)))
    await conn.execute(TABLE_SQL.format(table=TABLE))
    await conn.commit()

    queries = {(q.keyword, q.district): q for d in args.districts.split(",") for q in queries_for(DISTRICT_BY_NAME[d])}
    seen: dict[tuple[str, str], set[str]] = {key: set() for key in queries}
    claimed: set[str] = set()
    pinned = args.concurrency
    # Every answer is JSON with the API source: an HttpCrawler hands the bytes over unparsed (a
    # ParselCrawler would parse each JSON answer into a selector first, in a thread, for nothing).
    crawler_class = HttpCrawler if args.detail_source == "api" else ParselCrawler
    crawler = crawler_class(
        storage_client=MemoryStorageClient(),
        concurrency_settings=ConcurrencySettings(
            min_concurrency=pinned, desired_concurrency=pinned, max_concurrency=pinned
        ),
        max_request_retries=3,
        configure_logging=False,
    )

    async def save(item: dict[str, Any] | None) -> None:
        if item:
            await conn.execute(UPSERT.format(table=TABLE), {**item, "menu": Jsonb(item["menu"])})
            await conn.commit()

    @crawler.router.handler("search")
    async def on_search(context: HttpCrawlingContext) -> None:
        data: dict[str, Any] = context.request.user_data  # type: ignore[assignment]
        key = (str(data["keyword"]), str(data["district"]))
        page = int(data["page"])
        section = json.loads(await context.http_response.read())["result_data"]["poi_section"]
        fetch, more = search_step(section, key[1], page, args.page_size, seen[key], claimed)
        requests = [detail_request(site, item, args.detail_source) for item in fetch]
        if more:
            requests.append(search_request(site, queries[key], page + 1, args.page_size))
        await context.add_requests(requests)

    @crawler.router.handler("profile")
    async def on_profile(context: HttpCrawlingContext) -> None:
        summary: dict[str, Any] = context.request.user_data["summary"]  # type: ignore[assignment]
        body = await context.http_response.read()
        await save(parse_profile_answer(body, summary, page_url(site, summary["v_rid"])))

    @crawler.router.handler("detail")
    async def on_detail(context: ParselCrawlingContext) -> None:
        summary: dict[str, Any] = context.request.user_data["summary"]  # type: ignore[assignment]
        await save(parse_detail(context.selector, summary, context.request.url))

    await crawler.run([search_request(site, q, 1, args.page_size) for q in queries.values()])
    await conn.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main())
