"""Fetching: one aiohttp session, per-host politeness, rotating user agents, tenacity retries.

`Fetcher.fetch(request, parse)` sends a request and parses the answer inside the retry loop, so a
maintenance page or a truncated body is retried like a 503, and what comes back has been read.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import NoReturn, Protocol, TypeVar
from urllib.parse import urlencode, urljoin, urlsplit

import aiohttp
from aiolimiter import AsyncLimiter
from fake_useragent import UserAgent
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from stage5.cache import Kind, ResponseCache
from stage5.errors import BlockedAnswer, Cause, ParseError, Stage5Error, Unverified
from stage5.logs import log_event
from stage5.redact import redact_url
from stage5.settings import Settings
from stage5.site.diningcode import Endpoints
from stage5.site.evidence import is_home_url
from stage5.tallies import unit_tally

log = logging.getLogger("stage5.fetch")
T = TypeVar("T")


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    form: dict[str, str] | None = None
    etag: str | None = None  # a validator from an earlier answer: sent as If-None-Match

    @property
    def label(self) -> str:
        """The URL, with the search query (or the profile API's store id) for POSTs, for logs and failure lists."""
        if self.form and "v_rid" in self.form:
            return f"{self.url} v_rid={self.form['v_rid']}"
        return f"{self.url} query={self.form.get('query')!r} page={self.form.get('page')}" if self.form else self.url


class Retryable(Stage5Error):
    """A failure worth another try: timeout, dropped connection, 429, 5xx, unreadable or unverified body."""

    def __init__(self, reason: str, retry_after: float | None = None, cause: Cause = "") -> None:
        super().__init__(reason)
        self.retry_after, self.cause = retry_after, cause


class NotModified(Stage5Error):
    """The site answered 304 to a conditional request: what is stored is current."""


class FetchFailed(Stage5Error):
    """A request that failed for good (after retries, or a 4xx). Carries the URL, the reason and, for an
    answer that was no evidence, its cause: "blocked", "not_this_store" or "redirect" (counted per run)."""

    def __init__(self, request: Request, reason: str, attempts: int, cause: Cause = "") -> None:
        super().__init__(f"{request.label}: {reason} (after {attempts} attempt(s))")
        self.request, self.reason, self.attempts, self.cause = request, reason, attempts, cause


@dataclass
class FetchStats:
    requests: int = 0
    retries: int = 0
    failures: int = 0
    bytes: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


class AdjustableLimit:
    """A semaphore whose size can change while tasks wait on it (the governor turns it up and down)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = max(1, limit), 0
        self._changed = asyncio.Condition()

    async def set(self, limit: int) -> None:
        async with self._changed:
            self.limit = max(1, limit)
            self._changed.notify_all()

    async def __aenter__(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.used < self.limit)
            self.used += 1

    async def __aexit__(self, *exc: object) -> None:
        async with self._changed:
            self.used -= 1
            self._changed.notify(1)  # one slot freed: one waiter can take it


class Gate(Protocol):
    """What the fetcher asks of a host's gate: HostGate here, or one shared by many processes."""

    def slot(self) -> AbstractAsyncContextManager[None]: ...

    async def adjust(self, delay: float, concurrency: int) -> None: ...

    def pause(self, seconds: float) -> None: ...

    def back_off(self, first_gap: float, max_gap: float) -> float: ...

    def recover(self, first_gap: float) -> None: ...


class HostGate:
    """Politeness for one host: at most `concurrency` requests in flight, one start per `delay`,
    a shared pause when the host answers 429 with Retry-After, and a growing gap between starts once
    it serves block pages (it is telling us to slow down)."""

    def __init__(self, delay: float, concurrency: int) -> None:
        self.semaphore = AdjustableLimit(concurrency)
        self.limiter = AsyncLimiter(1, delay) if delay > 0 else None
        self.paused_until = 0.0
        self.block_gap = 0.0  # seconds between two starts since the host served a block page
        self._next_start = 0.0

    def back_off(self, first_gap: float, max_gap: float) -> float:
        """A block page: space this host's requests out, twice as far each time (up to `max_gap`)."""
        self.block_gap = min(max(self.block_gap * 2, first_gap), max_gap)
        return self.block_gap

    def recover(self, first_gap: float) -> None:
        """A good answer: the gap halves, and closes once it is below the first one."""
        if self.block_gap:
            self.block_gap = self.block_gap / 2 if self.block_gap / 2 >= first_gap else 0.0

    async def adjust(self, delay: float, concurrency: int) -> None:
        await self.semaphore.set(concurrency)
        self.limiter = AsyncLimiter(1, delay) if delay > 0 else None

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self.semaphore:
            while (wait := self.paused_until - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            if self.limiter:
                await self.limiter.acquire()
            if self.block_gap > 0:
                now = time.monotonic()
                start = max(now, self._next_start)
                self._next_start = start + self.block_gap
                await asyncio.sleep(start - now)
            yield


FORM_TYPE = "application/x-www-form-urlencoded"


def _form_body(form: dict[str, str] | None) -> bytes | None:
    """A POST's form as the bytes aiohttp's FormData would send: encoded here, because FormData builds a
    multipart writer (and a uuid4 boundary) for every request even when it sends a plain urlencoded form."""
    return urlencode(form).encode() if form else None


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either a number or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


UA_POOL_SIZE = 40
MAX_REDIRECTS = 10
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
BODY_CHUNK = 64 * 1024


@functools.cache  # once per process, also for Celery tasks that each open a new Fetcher
def user_agent_pool(size: int = UA_POOL_SIZE) -> list[str]:
    """Desktop browser user agents drawn once per process. fake-useragent filters its whole
    database on every `.random` (about 6 ms: profiling showed it was most of a worker's CPU), so
    requests rotate through a pool drawn up front instead."""
    source = UserAgent(platforms="desktop", browsers=["Chrome", "Firefox", "Edge", "Safari"])
    return list(dict.fromkeys(source.random for _ in range(size)))


class Fetcher:
    """One worker's HTTP client: `fetch(request, parse)` returns the parsed answer, from the cache or
    from the site (politely, with retries), or raises FetchFailed naming the URL and the reason."""

    def __init__(
        self,
        settings: Settings,
        cache: ResponseCache | None = None,
        gates: Callable[[str, float, int], Gate] | None = None,
    ) -> None:
        self.settings = settings
        self.cache = cache
        self.delay, self.concurrency = settings.request_delay_s, settings.host_concurrency
        self.endpoints = Endpoints.for_site(settings.site)
        self.stats = FetchStats()
        # host, delay, concurrency -> its gate: this process's own by default; the Celery executor's
        # are shared in Redis by every worker (stage5.crawl.shared_gate)
        self.make_gate = gates or (lambda _host, delay, concurrency: HostGate(delay, concurrency))
        self.gates: dict[str, Gate] = {}
        self.user_agents = user_agent_pool()
        self.session: aiohttp.ClientSession | None = None
        self.etags: dict[str, str] = {}  # url -> the ETag of its last 200 answer (taken by the caller)
        self._backoff = wait_exponential_jitter(
            multiplier=settings.retry_backoff_s, max=settings.retry_backoff_max_s, jitter=settings.retry_backoff_s
        )

    async def __aenter__(self) -> Fetcher:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=self.settings.host_concurrency, ttl_dns_cache=300)
        timeout = aiohttp.ClientTimeout(total=self.settings.request_timeout_s)
        self.session = aiohttp.ClientSession(connector=connector, timeout=timeout, raise_for_status=False)
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self.session:
            await self.session.close()

    def gate(self, url: str) -> Gate:
        host = urlsplit(url).netloc
        if host not in self.gates:
            self.gates[host] = self.make_gate(host, self.delay, self.concurrency)
        return self.gates[host]

    async def set_limits(self, delay: float, concurrency: int) -> None:
        """This process's share of each host's politeness budget (the master splits it among workers)."""
        self.delay, self.concurrency = delay, concurrency
        for gate in self.gates.values():
            await gate.adjust(delay, concurrency)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Retryable) and exc.retry_after is not None:
            return min(exc.retry_after, self.settings.retry_after_max_s)
        return float(self._backoff(state))

    def _before_sleep(self, request: Request) -> Callable[[RetryCallState], None]:
        def note(state: RetryCallState) -> None:
            self.stats.retries += 1
            unit_tally().retries += 1
            exc = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0
            log_event(log, "retry", url=request.label, attempt=state.attempt_number, reason=exc, wait_s=round(wait, 2))

        return note

    async def fetch(
        self,
        request: Request,
        parse: Callable[[bytes], T],
        kind: Kind | None = None,
        scope: str = "",
        empty: Callable[[T], bool] | None = None,
        read_cache: bool = True,
    ) -> T:
        """The parsed answer to `request`: from the cache when `kind` is given and it holds a readable
        body (unless `read_cache` is off), else from the site with retries (and then cached: under
        `scope`, and only briefly when `empty(answer)` says it holds nothing). Raises FetchFailed, or
        NotModified for a conditional request (`request.etag`) the site answers 304."""
        cache = self.cache if kind and self.cache else None
        key = cache.key(kind, request.method, request.url, request.form, scope) if cache and kind else None
        if cache and key and cache.reading and read_cache:
            cached = await cache.get(key)
            if cached is not None:
                try:
                    result = parse(cached)
                    unit_tally().cache_hits += 1
                    return result
                except Exception:  # an entry this version cannot read: fetch afresh and overwrite it
                    await cache.discard(key)
            unit_tally().cache_misses += 1
        body, result = await self._fetch_with_retries(request, parse)
        if cache and key and kind:
            ttl = self.settings.cache_ttl_empty_s if empty and empty(result) else None
            await cache.put(key, kind, body, ttl)
        return result

    async def _fetch_with_retries(self, request: Request, parse: Callable[[bytes], T]) -> tuple[bytes, T]:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.retry_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(Retryable),
            before_sleep=self._before_sleep(request),
            reraise=True,
        )
        attempts = 0
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    body = await self._once(request)
                    return body, self._parse(request, parse, body, attempts)
        except Retryable as exc:
            self.stats.failures += 1
            raise FetchFailed(request, str(exc), attempts, exc.cause) from exc
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _blocked(self, request: Request) -> None:
        self.stats.errors["blocked"] += 1
        gap = self.gate(request.url).back_off(self.settings.blocked_backoff_s, self.settings.blocked_backoff_max_s)
        log_event(log, "blocked_page", logging.WARNING, url=request.label, host_gap_s=round(gap, 2))

    def _parse(self, request: Request, parse: Callable[[bytes], T], body: bytes, attempts: int) -> T:
        try:
            answer = parse(body)
        except Unverified as exc:  # never cached; a block page slows the host down
            if isinstance(exc, BlockedAnswer):
                self._blocked(request)
                if exc.final:  # a captcha or a denial: the store is asked again by the next run, not now
                    self.stats.failures += 1
                    raise FetchFailed(request, str(exc), attempts, exc.kind) from exc
            raise Retryable(str(exc), cause=exc.kind) from exc  # an error page, another store's page
        except ParseError as exc:  # a maintenance page, a cut-short body: worth another try
            raise Retryable(f"unreadable answer: {exc}") from exc
        except Exception as exc:  # the parser choked on this answer: it would again, so no retry
            self.stats.failures += 1
            raise FetchFailed(request, f"answer the parser cannot read: {exc!r}"[:300], attempts) from exc
        self.gate(request.url).recover(self.settings.blocked_backoff_s)
        return answer

    async def _once(self, request: Request) -> bytes:
        assert self.session is not None, "use `async with Fetcher(...)`"
        gate = self.gate(request.url)
        headers = self.endpoints.headers(random.choice(self.user_agents))
        if request.etag:
            headers["If-None-Match"] = request.etag
        async with gate.slot():
            self.stats.requests += 1
            unit_tally().requests += 1
            try:
                status, retry_after, body = await self._follow(request, headers)
            except (TimeoutError, aiohttp.ClientError) as exc:
                reason = type(exc).__name__ if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
                self.stats.errors[type(exc).__name__] += 1
                raise Retryable(reason) from exc
        self.stats.statuses[status] += 1
        self.stats.bytes += len(body)
        unit_tally().bytes += len(body)
        return self._check_status(request, status, retry_after, gate, body)

    async def _follow(self, request: Request, headers: dict[str, str]) -> tuple[int, str | None, bytes]:
        """(status, Retry-After, body) of the request, following redirects only within the site's own hosts
        and never to its home or search pages: a store's URL that leads elsewhere is no answer about it."""
        assert self.session is not None
        method, url, form = request.method, request.url, _form_body(request.form)
        if form is not None:
            headers = {**headers, "Content-Type": FORM_TYPE}
        for _ in range(MAX_REDIRECTS + 1):
            async with self.session.request(method, url, data=form, headers=headers, allow_redirects=False) as resp:
                if resp.status in REDIRECT_STATUSES and "Location" in resp.headers:
                    url = self._redirect_target(request, url, resp.headers["Location"])
                    if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                        method, form = "GET", None  # as browsers (and aiohttp) do
                        headers = {k: v for k, v in headers.items() if k != "Content-Type"}
                    continue
                body = await self._read_capped(request, resp)
                if resp.status == 200 and resp.headers.get("ETag"):
                    self.etags[request.url] = resp.headers["ETag"]
                return resp.status, resp.headers.get("Retry-After"), body
        self.stats.failures += 1
        raise FetchFailed(request, f"redirect loop: more than {MAX_REDIRECTS} redirects (last to {url})", 1, "redirect")

    def _redirect_target(self, request: Request, current: str, location: str) -> str:
        target = urljoin(current, location)
        where = None
        if urlsplit(target).netloc not in self.endpoints.hosts:
            where = "outside the site"
        elif is_home_url(target):
            where = "the site's home or search page"
        if where is None:
            return target
        self.stats.failures += 1
        self.stats.errors["redirect_elsewhere"] += 1
        raise FetchFailed(request, f"redirected to {redact_url(target)} ({where}): not followed", 1, "redirect")

    async def _read_capped(self, request: Request, resp: aiohttp.ClientResponse) -> bytes:
        """The body, decompressed, read in chunks and cut at `max_body_mb` (as Scrapy's
        DOWNLOAD_MAXSIZE): a gzip bomb, a huge or an endless body fails this page, and memory stays
        bounded by the cap (aiohttp inflates chunk by chunk)."""
        limit = int(self.settings.max_body_mb * 2**20)
        declared = resp.content_length
        if declared is not None and declared > limit:
            self._too_large(request, f"Content-Length {declared:,} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(BODY_CHUNK):
            size += len(chunk)
            if size > limit:
                self._too_large(request, f"over {size:,} bytes after decompression and still coming")
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, request: Request, what: str) -> NoReturn:
        self.stats.failures += 1
        self.stats.errors["body_too_large"] += 1
        limit = f"limit STAGE5_MAX_BODY_MB={self.settings.max_body_mb}"
        raise FetchFailed(request, f"answer too large: {what} ({limit})", 1)

    def _check_status(self, request: Request, status: int, retry_after: str | None, gate: Gate, body: bytes) -> bytes:
        if status == 304:
            raise NotModified(f"{request.label}: not modified")
        if status == 429:
            wait = parse_retry_after(retry_after)
            if wait is not None:
                gate.pause(min(wait, self.settings.retry_after_max_s))
            raise Retryable("HTTP 429", retry_after=wait)
        if status >= 500:
            raise Retryable(f"HTTP {status}")
        if status >= 400:
            self.stats.failures += 1
            raise FetchFailed(request, f"HTTP {status}", 1)
        return body
