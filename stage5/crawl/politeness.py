"""Before a run: the site's robots.txt, fetched once (kept a day in Redis), applied to the settings."""

from __future__ import annotations

import logging

import aiohttp

from stage5.cache import Kind, ResponseCache, make_cache
from stage5.errors import CrawlDelayTooLong, RobotsDisallowed
from stage5.logs import log_event
from stage5.settings import Settings
from stage5.site.diningcode import DETAIL_PATH, PROFILE_API_PATH, Endpoints
from stage5.site.robots import Robots, needed

log = logging.getLogger("stage5.crawl")


async def _fetch(session: aiohttp.ClientSession, url: str, cache: ResponseCache) -> Robots:
    key = cache.key(Kind.ROBOTS, "GET", url)
    cached = await cache.get(key) if cache.reading else None
    if cached is not None:
        return Robots(url, cached.decode("utf-8", "replace"))
    try:
        async with session.get(url, allow_redirects=True) as answer:
            body = await answer.content.read(512 * 1024)  # robots.txt is small; a huge one is cut
            status = answer.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        log_event(log, "robots_unreachable", logging.WARNING, url=url, reason=exc)
        return Robots(url, "")  # unreachable: nothing is disallowed (as Scrapy does)
    # 4xx: the site has no rules; 5xx: it could not say (allowed, and warned)
    text = body.decode("utf-8", "replace") if status == 200 else ""
    if status >= 500:
        log_event(log, "robots_unreachable", logging.WARNING, url=url, reason=f"HTTP {status}")
    else:
        await cache.put(key, Kind.ROBOTS, text.encode())
    return Robots(url, text)


def _detail_source_robots_allow(settings: Settings, endpoints: Endpoints, read: dict[str, Robots]) -> Settings:
    """auto reads details from the API first; when robots.txt refuses the API but not the page, the run
    reads pages only (obeying robots.txt is no reason to stop a run that has a permitted way)."""
    if settings.detail_source != "auto" or settings.robots_txt != "obey":
        return settings
    url = f"{endpoints.api}/robots.txt"
    rule = read[url].refused_by(PROFILE_API_PATH)
    if rule is None or read[f"{endpoints.www}/robots.txt"].refused_by(DETAIL_PATH) is not None:
        return settings
    log_event(log, "robots_refuse_profile_api", logging.WARNING, url=url, rule=rule, detail_source="html")
    return settings.model_copy(update={"detail_source": "html"})


async def apply_robots(settings: Settings, redis_url: str | None) -> Settings:
    """The settings with robots.txt applied: a refused path stops the run (robots_txt=obey) or is logged
    (robots_txt=log); a Crawl-delay above request_delay_s becomes the delay."""
    endpoints = Endpoints.for_site(settings.site)
    timeout = aiohttp.ClientTimeout(total=settings.request_timeout_s)
    read: dict[str, Robots] = {}
    cache = make_cache(settings, redis_url)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for url, _ in needed(endpoints):
                if url not in read:
                    read[url] = await _fetch(session, url, cache)
    finally:
        await cache.close()
    settings = _detail_source_robots_allow(settings, endpoints, read)
    for url, path in needed(endpoints, settings.detail_source):
        rule = read[url].refused_by(path)
        if rule is None:
            continue
        log_event(
            log, "robots_disallowed", logging.WARNING, url=url, path=path, rule=rule, robots_txt=settings.robots_txt
        )
        if settings.robots_txt == "obey":
            raise RobotsDisallowed(
                f"{url} disallows {path} ('{rule}'), which the crawl needs; stopped before the first request."
                " To crawl anyway and only log it: STAGE5_ROBOTS_TXT=log (--robots-txt log)"
            )
    delays = [r.crawl_delay for r in read.values() if r.crawl_delay is not None]
    if delays and max(delays) > settings.crawl_delay_max_s and settings.robots_txt == "obey":
        where = next(url for url, r in read.items() if r.crawl_delay == max(delays))
        log_event(log, "robots_crawl_delay_too_long", logging.ERROR, url=where, delay_s=max(delays))
        raise CrawlDelayTooLong(
            f"{where} asks for Crawl-delay: {max(delays):g} s between requests, above crawl_delay_max_s"
            f" ({settings.crawl_delay_max_s:g} s); stopped before the first request. Raise the maximum"
            " (STAGE5_CRAWL_DELAY_MAX_S, --crawl-delay-max-s) to crawl that slowly, or ask the site."
        )
    if delays and max(delays) > settings.request_delay_s and settings.robots_txt == "obey":
        log_event(log, "robots_crawl_delay", delay_s=max(delays), was_s=settings.request_delay_s)
        return settings.model_copy(update={"request_delay_s": max(delays)})
    return settings
