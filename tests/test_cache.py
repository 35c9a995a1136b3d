"""The Redis cache against a real Redis: TTL per kind, modes, and a Redis that is not there."""

from __future__ import annotations

import logging
import uuid

import pytest
import redis
from helpers import start_redis, until

from stage5.cache import Kind, Mode, ResponseCache

TTLS = {Kind.SEARCH: 6 * 3600, Kind.DETAIL: 7 * 86400}


@pytest.fixture
def namespace(redis_url: str) -> str:
    ns = f"test-{uuid.uuid4().hex[:8]}"
    yield ns
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"stage5:v1:{ns}:*"):
        client.delete(key)


async def test_round_trip_with_ttl_per_kind(namespace: str, redis_url: str) -> None:
    cache = ResponseCache(redis_url, namespace, TTLS)
    search = cache.key(Kind.SEARCH, "POST", "http://h:1/API/isearch/", {"query": "강남구 무한리필", "page": "1"})
    detail = cache.key(Kind.DETAIL, "GET", "http://h:1/profile.php?rid=abc")
    assert await cache.get(search) is None
    await cache.put(search, Kind.SEARCH, b'{"a": 1}')
    await cache.put(detail, Kind.DETAIL, "<html>가게</html>".encode())
    assert await cache.get(search) == b'{"a": 1}'
    assert await cache.get(detail) == "<html>가게</html>".encode()
    assert (cache.stats.hits, cache.stats.misses) == (2, 1)
    client = redis.Redis.from_url(redis_url)
    assert 6 * 3600 - 5 <= client.ttl(search) <= 6 * 3600
    assert 7 * 86400 - 5 <= client.ttl(detail) <= 7 * 86400
    assert search.startswith(f"stage5:v1:{namespace}:search:")
    await cache.close()


async def test_key_ignores_host_but_not_query(namespace: str, redis_url: str) -> None:
    cache = ResponseCache(redis_url, namespace, TTLS)
    a = cache.key(Kind.DETAIL, "GET", "http://127.0.0.1:1111/profile.php?rid=abc")
    assert a == cache.key(Kind.DETAIL, "GET", "http://127.0.0.1:2222/profile.php?rid=abc")
    assert a != cache.key(Kind.DETAIL, "GET", "http://127.0.0.1:1111/profile.php?rid=abd")
    assert a != ResponseCache(redis_url, namespace + "x", TTLS).key(
        Kind.DETAIL, "GET", "http://127.0.0.1:1111/profile.php?rid=abc"
    )
    await cache.close()


async def test_refresh_writes_but_does_not_read(namespace: str, redis_url: str) -> None:
    on = ResponseCache(redis_url, namespace, TTLS)
    key = on.key(Kind.DETAIL, "GET", "http://h/profile.php?rid=r")
    await on.put(key, Kind.DETAIL, b"old")
    refresh = ResponseCache(redis_url, namespace, TTLS, Mode.REFRESH)
    assert await refresh.get(key) is None
    await refresh.put(key, Kind.DETAIL, b"new")
    assert await on.get(key) == b"new"
    off = ResponseCache(redis_url, namespace, TTLS, Mode.OFF)
    assert off.client is None and await off.get(key) is None
    for cache in (on, refresh, off):
        await cache.close()


async def test_redis_down_means_uncached_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    cache = ResponseCache("redis://127.0.0.1:9/0", "x", TTLS)
    caplog.set_level(logging.WARNING, logger="stage5.cache")
    key = cache.key(Kind.DETAIL, "GET", "http://h/profile.php?rid=r")
    assert await cache.get(key) is None
    await cache.put(key, Kind.DETAIL, b"x")
    assert await cache.get(key) is None
    warnings = [r for r in caplog.records if "cache_unavailable" in r.getMessage()]
    assert len(warnings) == 1 and cache.stats.errors == 1  # later calls skip Redis until RETRY_S passed
    await cache.close()


async def test_cache_comes_back_with_redis(
    private_redis: tuple[str, object], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from stage5 import cache as cache_module

    monkeypatch.setattr(cache_module, "RETRY_S", 0.0)
    caplog.set_level(logging.INFO, logger="stage5.cache")
    url, proc = private_redis
    cache = ResponseCache(url, "back", TTLS)
    key = cache.key(Kind.DETAIL, "GET", "http://h/profile.php?rid=r")
    await cache.put(key, Kind.DETAIL, b"v1")
    proc.kill()  # type: ignore[attr-defined]
    proc.wait()  # type: ignore[attr-defined]
    assert await cache.get(key) is None and cache.stats.errors >= 1
    again = start_redis(int(url.rsplit(":", 1)[1].split("/")[0]))  # the same port, empty
    try:

        async def written_and_read() -> bool:
            await cache.put(key, Kind.DETAIL, b"v2")
            return await cache.get(key) == b"v2"

        await until(written_and_read, 10, "the cache to write and read through the Redis started again")
        assert any("cache_available" in r.getMessage() for r in caplog.records)
    finally:
        again.kill()
        again.wait()
        await cache.close()
