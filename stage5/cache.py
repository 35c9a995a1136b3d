"""Response cache in Redis: raw bodies that parsed, under `stage5:` keys, with a TTL per kind.

Redis is an accelerator, never a dependency: when it is down or goes away, the crawl goes on
uncached with one warning, and the cache is tried again every `RETRY_S` seconds.
"""

from __future__ import annotations

import hashlib
import logging
import time
import zlib
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from stage5.logs import log_event
from stage5.settings import Settings

log = logging.getLogger("stage5.cache")
PREFIX = "stage5:v1"
RETRY_S = 5.0
MAX_CONNECTIONS = 32


class Kind(str, Enum):
    SEARCH = "search"
    DETAIL = "detail"
    ROBOTS = "robots"


class Mode(str, Enum):
    ON = "on"  # read and write
    REFRESH = "refresh"  # ignore what is cached, still write fresh answers
    OFF = "off"  # no Redis at all


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    errors: int = 0
    corrupt: int = 0  # entries that did not decode or parse: deleted and fetched afresh

    @property
    def hit_rate(self) -> float:
        looked = self.hits + self.misses
        return self.hits / looked if looked else 0.0


def cache_key(
    namespace: str, kind: Kind, method: str, url: str, form: dict[str, str] | None = None, scope: str = ""
) -> str:
    """`stage5:v1:<namespace>:<kind>[:<scope>]:<sha1 of the request>`; the namespace keeps sites (and
    replica worlds) apart, the scope (a district for searches) lets one district's answers be purged."""
    parts = urlsplit(url)  # host:port is the namespace's business, so a moved replica keeps its cache
    query = "&".join(f"{k}={v}" for k, v in sorted(form.items())) if form else ""
    material = f"{method} {parts.path}?{parts.query}{query}"
    prefix = f"{PREFIX}:{namespace}:{kind.value}" + (f":{scope}" if scope else "")
    return f"{prefix}:{hashlib.sha1(material.encode()).hexdigest()}"


class ResponseCache:
    def __init__(self, url: str | None, namespace: str, ttls: dict[Kind, int], mode: Mode = Mode.ON) -> None:
        self.namespace = namespace
        self.mode = mode if url else Mode.OFF
        self.ttls = ttls
        self.stats = CacheStats()
        self.client: aioredis.Redis | None = None
        if url and self.mode != Mode.OFF:
            # A blocking pool makes a burst of look-ups wait for a connection instead of failing.
            pool = aioredis.BlockingConnectionPool.from_url(
                url, max_connections=MAX_CONNECTIONS, timeout=5, socket_connect_timeout=1, socket_timeout=2
            )
            self.client = aioredis.Redis(connection_pool=pool)
        self._down_since: float | None = None

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    @property
    def reading(self) -> bool:
        return self.mode == Mode.ON and self.client is not None

    def key(self, kind: Kind, method: str, url: str, form: dict[str, str] | None = None, scope: str = "") -> str:
        return cache_key(self.namespace, kind, method, url, form, scope)

    def _usable(self) -> bool:
        if self.client is None:
            return False
        return self._down_since is None or time.monotonic() - self._down_since >= RETRY_S

    def _went_down(self, exc: Exception) -> None:
        self.stats.errors += 1
        if self._down_since is None:
            log_event(log, "cache_unavailable", logging.WARNING, reason=exc, action="continuing uncached")
        self._down_since = time.monotonic()

    def _came_back(self) -> None:
        if self._down_since is not None:
            log_event(log, "cache_available")
            self._down_since = None

    async def get(self, key: str) -> bytes | None:
        if self.mode != Mode.ON or not self._usable():
            return None
        assert self.client is not None
        try:
            raw = await self.client.get(key)
        except (RedisError, OSError) as exc:
            self._went_down(exc)
            return None
        self._came_back()
        if raw is None:
            self.stats.misses += 1
            return None
        assert isinstance(raw, bytes)  # the pool has no decode_responses: Redis answers bytes
        try:
            body = zlib.decompress(raw)
        except zlib.error:  # a damaged entry (or someone else's key): gone, and fetched afresh
            await self.discard(key)
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        self.stats.bytes_read += len(raw)
        return body

    async def discard(self, key: str) -> None:
        """Delete an entry that could not be read, so it is not met again for the rest of its TTL."""
        self.stats.corrupt += 1
        log_event(log, "cache_entry_discarded", logging.WARNING, key=key)
        await self._delete(key)

    async def purge(self, kind: Kind, scope: str) -> int:
        """Delete every entry of one kind and scope (a suspect district's search answers)."""
        if self.client is None or not self._usable():
            return 0
        pattern = f"{PREFIX}:{self.namespace}:{kind.value}:{scope}:*"
        try:
            keys = [k async for k in self.client.scan_iter(match=pattern, count=500)]
            if keys:
                await self.client.delete(*keys)
        except (RedisError, OSError) as exc:
            self._went_down(exc)
            return 0
        return len(keys)

    async def _delete(self, key: str) -> None:
        if self.client is None or not self._usable():
            return
        try:
            await self.client.delete(key)
        except (RedisError, OSError) as exc:
            self._went_down(exc)

    async def put(self, key: str, kind: Kind, body: bytes, ttl: int | None = None) -> None:
        """Store `body` for the kind's TTL (or `ttl`, e.g. briefly for an empty answer)."""
        if self.mode == Mode.OFF or not self._usable():
            return
        assert self.client is not None
        packed = zlib.compress(body, 3)
        try:
            await self.client.set(key, packed, ex=ttl or self.ttls[kind])
        except (RedisError, OSError) as exc:
            self._went_down(exc)
            return
        self._came_back()
        self.stats.bytes_written += len(packed)


def make_cache(settings: Settings, redis_url: str | None) -> ResponseCache:
    """The response cache the settings describe (TTLs per kind, namespace, mode)."""
    ttls = {
        Kind.SEARCH: settings.cache_ttl_search_s,
        Kind.DETAIL: settings.cache_ttl_detail_s,
        Kind.ROBOTS: 86_400,  # robots.txt is read once a day at most
    }
    return ResponseCache(redis_url, settings.cache_namespace_or_site, ttls, Mode(settings.cache))
