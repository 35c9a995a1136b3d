"""The fetcher against the replica's fault knobs: bounded retries, Retry-After, politeness."""

from __future__ import annotations

import time
from typing import Any

import pytest
from tenacity import RetryCallState

from stage5.fetch import Fetcher, FetchFailed, Request, Retryable, parse_retry_after
from stage5.replica.process import ReplicaProcess
from stage5.replica.server import Faults
from stage5.replica.world import World
from stage5.site.parsers import parse_detail


def _details(world: World, n: int) -> list[str]:
    return [s.rid for s in world.stores[:n]]


async def _fetch_all(settings: Any, url: str, rids: list[str]) -> tuple[Fetcher, list[Any]]:
    async with Fetcher(settings) as fetcher:
        results = []
        for rid in rids:
            request = Request("GET", f"{url}/profile.php?rid={rid}")
            try:
                results.append(await fetcher.fetch(request, lambda b, rid=rid: parse_detail(b, rid)))
            except FetchFailed as exc:
                results.append(exc)
    return fetcher, results


@pytest.mark.parametrize(
    "faults, kind",
    [
        (Faults(p5xx=0.4, fault_seed=1), "5xx"),
        (Faults(p429=0.4, retry_after_s=0, fault_seed=2), "429"),
        (Faults(p_truncate=0.4, fault_seed=3), "truncate"),
        (Faults(p_malformed=0.4, fault_seed=4), "malformed"),
    ],
)
async def test_transient_faults_are_retried(
    make_settings: Any, small_world: World, faults: Faults, kind: str, replica_with: Any
) -> None:
    rids = _details(small_world, 40)
    with replica_with(faults) as replica:
        settings = make_settings(site=replica.url, retry_attempts=8)
        fetcher, results = await _fetch_all(settings, replica.url, rids)
        served = replica.stats()
    assert [getattr(r, "rid", None) for r in results] == rids  # every page, in the end
    assert served["faults"][kind] > 0 and fetcher.stats.retries == served["faults"][kind]


async def test_hung_connection_times_out_and_is_retried(
    make_settings: Any, small_world: World, replica_with: Any
) -> None:
    with replica_with(p_hang=0.3, hang_s=5, fault_seed=6) as replica:
        settings = make_settings(site=replica.url, request_timeout_s=0.5, retry_attempts=8)
        fetcher, results = await _fetch_all(settings, replica.url, _details(small_world, 15))
    assert all(not isinstance(r, FetchFailed) for r in results)
    assert fetcher.stats.errors["TimeoutError"] > 0


async def test_failure_after_bounded_retries_names_the_url(
    make_settings: Any, small_world: World, replica_with: Any
) -> None:
    with replica_with(p5xx=1.0) as replica:
        settings = make_settings(site=replica.url, retry_attempts=3)
        fetcher, results = await _fetch_all(settings, replica.url, _details(small_world, 1))
        served = replica.stats()
    (failure,) = results
    assert isinstance(failure, FetchFailed)
    assert failure.attempts == 3 and served["requests"] == 3
    assert "profile.php?rid=" in str(failure) and "HTTP 5" in str(failure)


async def test_404_is_not_retried(make_settings: Any, replica: ReplicaProcess) -> None:
    fetcher, (failure,) = await _fetch_all(make_settings(site=replica.url), replica.url, ["doesNotExist"])
    assert isinstance(failure, FetchFailed) and failure.reason == "HTTP 404" and fetcher.stats.retries == 0


async def test_rate_cap_429s_are_honoured(make_settings: Any, small_world: World, replica_with: Any) -> None:
    """A per-client cap of 10 req/s answering 429 + Retry-After: 1: every page arrives, the host pauses."""
    with replica_with(rate_cap=10, retry_after_s=1) as replica:
        settings = make_settings(site=replica.url, host_concurrency=8, retry_attempts=6)
        started = time.monotonic()
        fetcher, results = await _fetch_all(settings, replica.url, _details(small_world, 25))
        elapsed = time.monotonic() - started
        served = replica.stats()
    assert all(not isinstance(r, FetchFailed) for r in results)
    assert served["faults"].get("rate_cap", 0) == fetcher.stats.retries
    assert elapsed >= 2.0  # 25 requests at <= 10/s cannot take less than two full windows


def test_retry_after_wins_over_backoff(make_settings: Any) -> None:
    fetcher = Fetcher(make_settings(retry_backoff_s=0.01, retry_after_max_s=60))
    state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
    state.set_exception((Retryable, Retryable("HTTP 429", retry_after=7.0), None))
    assert fetcher._wait(state) == 7.0
    state.set_exception((Retryable, Retryable("HTTP 429", retry_after=600.0), None))
    assert fetcher._wait(state) == 60.0  # capped by retry_after_max_s


@pytest.mark.parametrize(
    "value, low, high", [("3", 3, 3), ("Wed, 21 Oct 2099 07:28:00 GMT", 1e8, 1e10), ("soon", None, None)]
)
def test_parse_retry_after(value: str, low: float | None, high: float | None) -> None:
    seconds = parse_retry_after(value)
    if low is None:
        assert seconds is None
    else:
        assert seconds is not None and low <= seconds <= high


async def test_politeness_delay_spaces_requests(
    make_settings: Any, replica: ReplicaProcess, small_world: World
) -> None:
    settings = make_settings(site=replica.url, request_delay_s=0.1, host_concurrency=4)
    started = time.monotonic()
    await _fetch_all(settings, replica.url, _details(small_world, 11))
    assert time.monotonic() - started >= 0.9  # 11 starts, at least 0.1 s apart
