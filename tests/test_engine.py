"""The parallel engine end to end: worker counts, recycling, deaths, the cache and the governor."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import uuid
from typing import Any

import pytest
from helpers import crawl_command, query, until, worker_processes
from psycopg import sql

from stage5.crawl.run import run_crawl
from stage5.replica.process import ReplicaProcess
from stage5.replica.truth import score
from stage5.replica.world import World
from stage5.report import load_result, print_summary
from stage5.storage.columns import STORE_COLUMNS

SOME = "강남구,마포구,송파구,중구,도봉구,관악구"


def _rows(settings: Any) -> list[tuple[Any, ...]]:
    columns = sql.SQL(", ").join(map(sql.Identifier, STORE_COLUMNS))
    return query(settings, sql.SQL("SELECT {} FROM stores ORDER BY diningcode_place_id").format(columns))


async def test_many_workers_give_the_same_table_as_one(
    make_settings: Any, replica: ReplicaProcess, pg_url: str
) -> None:
    other = f"t_{uuid.uuid4().hex[:12]}"
    one = make_settings(site=replica.url, workers=1)
    many = make_settings(site=replica.url, workers=3, db_schema=other, detail_batch=5)
    try:
        a = await run_crawl(one, pg_url)
        b = await run_crawl(many, pg_url)
        assert (a.workers_max, b.workers_max) == (1, 3)
        rows_one, rows_many = _rows(one), _rows(many)
        assert len(rows_one) == a.stores > 300
        assert rows_one == rows_many  # every column of every row, content hash included
    finally:
        query(many, sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(other)))


async def test_second_crawl_within_ttl_is_served_from_cache(
    make_settings: Any, small_world: World, private_redis: tuple[str, Any], replica_with: Any
) -> None:
    redis_url, _ = private_redis
    with replica_with() as fresh:
        settings = make_settings(site=fresh.url, cache_namespace=f"t-{uuid.uuid4().hex[:8]}")
        first = await run_crawl(settings, settings.database_url, redis_url)
        sent_first = fresh.stats()["requests"]
        fresh.reset()
        second = await run_crawl(settings, settings.database_url, redis_url)
        sent_second = fresh.stats()["requests"]
    assert first.requests == sent_first and second.requests == sent_second
    assert sent_second <= 0.05 * sent_first, (sent_first, sent_second)
    assert second.cache_hit_rate >= 0.95 and second.stores == first.stores and second.new == 0


async def _crawl_losing_redis(
    replica_with: Any, private_redis: tuple[str, Any], small_world: World, **knobs: Any
) -> tuple[Any, Any]:
    """A crawl of SOME whose Redis is killed a fifth of the way in: (its summary, its settings), checked
    to end succeeded and equal to the truth."""
    redis_url, redis_proc = private_redis
    with replica_with(latency_ms=25) as slow:
        settings = knobs.pop("make")(site=slow.url, districts=SOME, **knobs)
        crawl = asyncio.create_task(run_crawl(settings, settings.database_url, redis_url))
        await until(lambda: slow.stats()["requests"] >= 40, 60, "40 requests (a fifth of the crawl)", every=0.1)
        redis_proc.kill()
        assert not crawl.done(), "the crawl should still be running when Redis stops"
        summary = await crawl
    stored, rejected = await load_result(settings)
    assert summary.status == "succeeded" and summary.units_failed == 0
    assert score(small_world, stored, rejected, settings.districts).perfect
    return summary, settings


async def test_redis_stopping_mid_run_does_not_fail_the_crawl(
    make_settings: Any, small_world: World, private_redis: tuple[str, Any], replica_with: Any
) -> None:
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    summary, _ = await _crawl_losing_redis(
        replica_with, private_redis, small_world, make=make_settings, host_concurrency=2, cache_namespace=namespace
    )
    assert summary.cache_hits + summary.cache_misses > 0  # it did use the cache before Redis went
    assert summary.cache_errors > 0  # and noticed it going
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        print_summary(summary)
    (cache_line,) = [line for line in printed.getvalue().splitlines() if line.strip().startswith("cache ")]
    assert f"Redis failed {summary.cache_errors} times" in cache_line  # not read as a cold cache


async def test_redis_stopping_mid_run_leaves_local_workers_their_own_gates(
    make_settings: Any, small_world: World, private_redis: tuple[str, Any], replica_with: Any
) -> None:
    """With a delay, local workers share one gate per host in Redis; Redis gone mid-run, each goes on
    through a gate of its own with its share of the budget (before: every request failed with Redis's
    ConnectionError, blamed on the site)."""
    knobs = {"workers": 2, "request_delay_s": 0.01, "cache": "off"}
    await _crawl_losing_redis(replica_with, private_redis, small_world, make=make_settings, **knobs)


async def test_workers_are_recycled_after_their_units(
    make_settings: Any, replica: ReplicaProcess, small_world: World
) -> None:
    settings = make_settings(site=replica.url, workers=2, worker_max_units=5, districts=SOME)
    summary = await run_crawl(settings, settings.database_url)
    stored, rejected = await load_result(settings)
    assert summary.workers_recycled >= 3 and summary.workers_died == 0
    assert score(small_world, stored, rejected, settings.districts).perfect


async def test_a_killed_worker_is_replaced_and_its_units_return(
    make_settings: Any, small_world: World, replica_with: Any
) -> None:
    with replica_with(latency_ms=20) as slow:
        settings = make_settings(site=slow.url, workers=2, districts=SOME)
        crawl = asyncio.create_task(run_crawl(settings, settings.database_url))
        victim = (await until(worker_processes, 10, "the crawl's worker processes", every=0.1))[0]
        # mid-crawl: the victim holds units
        await until(lambda: slow.stats()["requests"] >= 40, 60, "40 requests of the crawl", every=0.1)
        os.kill(victim.pid, signal.SIGKILL)
        assert not crawl.done()
        summary = await crawl
    stored, rejected = await load_result(settings)
    assert summary.workers_died == 1 and summary.status == "succeeded"
    assert score(small_world, stored, rejected, settings.districts).perfect


async def test_small_budget_throttles_and_still_completes(
    make_settings: Any, small_world: World, replica_with: Any
) -> None:
    """A budget below what master + workers need: the governor throttles, lowers and recycles, and the
    crawl still ends with the full result. (Latency keeps the crawl long enough for several samples.)"""
    with replica_with(latency_ms=300) as slow:
        settings = make_settings(site=slow.url, workers=2, memory_budget_mb=150, districts="강남구,마포구,송파구")
        summary = await run_crawl(settings, settings.database_url)
    stored, rejected = await load_result(settings)
    assert summary.governor_actions["throttle"] >= 1 and summary.governor_actions["lower"] >= 1
    assert summary.governor_actions["recycle"] >= 1
    assert score(small_world, stored, rejected, settings.districts).perfect


BROKEN_WORKERS = """
import importlib.abc, sys
# a spawned worker's argv, or the forkserver's (whose forks are the workers)
IN_WORKER = "--multiprocessing-fork" in sys.orig_argv or any("multiprocessing.forkserver" in a for a in sys.orig_argv)

class BrokenInWorkers(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "stage5.crawl.pipeline" and IN_WORKER:
            raise ImportError("planted: this install is broken in worker processes")
        return None

sys.meta_path.insert(0, BrokenInWorkers())
"""


def test_workers_that_die_at_start_stop_the_run_with_the_cause(
    make_settings: Any, replica: ReplicaProcess, tmp_path: Any
) -> None:
    """A broken install (or setting) that kills every worker as it starts: the master stops after a
    few deaths with the cause, instead of respawning them forever."""
    import subprocess

    (tmp_path / "sitecustomize.py").write_text(BROKEN_WORKERS)
    settings = make_settings(site=replica.url, districts="도봉구")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "DATABASE_URL": settings.database_url}
    command = crawl_command(settings, "--no-cache", database=False)  # the database from the environment
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "workers died at start" in done.stderr and "crawl --resume" in done.stderr
    assert "stage5/cli.py" not in done.stderr  # the workers' tracebacks are theirs; the master's is a message


async def test_a_worker_stuck_in_a_unit_is_replaced(make_settings: Any, small_world: World, replica_with: Any) -> None:
    """A worker whose event loop stops answering (here: SIGSTOP) holds its units hostage: the master
    kills it after worker_stall_s, its units run elsewhere, and the crawl ends complete."""
    with replica_with(latency_ms=20) as slow:
        settings = make_settings(site=slow.url, workers=2, districts=SOME, worker_stall_s=3)
        crawl = asyncio.create_task(run_crawl(settings, settings.database_url))

        def busy_worker() -> Any:
            workers = worker_processes()
            return workers[0] if workers and slow.stats()["requests"] > 30 else None

        victim = await until(busy_worker, 60, "a worker with more than 30 requests made", every=0.1)
        os.kill(victim.pid, signal.SIGSTOP)
        summary = await crawl
    stored, rejected = await load_result(settings)
    assert summary.status == "succeeded" and summary.workers_died >= 1
    assert score(small_world, stored, rejected, settings.districts).perfect


async def test_local_workers_share_one_gate_so_starts_stay_apart(
    make_settings: Any, replica: ReplicaProcess, private_redis: tuple[str, Any]
) -> None:
    """'2 in flight, 0.3 s apart' per host with 3 worker processes: each process spacing its own starts
    0.9 s apart kept the rate but not the gap (smallest 0.04 s with 4 workers); one gate in Redis keeps both."""
    redis_url, _ = private_redis
    settings = make_settings(
        site=replica.url,
        districts="도봉구,중구,마포구",
        workers=3,
        request_delay_s=0.3,
        host_concurrency=2,
        cache="off",
    )
    replica.reset()
    summary = await run_crawl(settings, settings.database_url, redis_url)
    stats = replica.stats()
    assert summary.status == "succeeded" and summary.workers_max == 3 and stats["gap_count"] > 40
    assert stats["max_in_flight"] <= 2
    # Starts are 0.3 s apart by Redis' clock; arrivals at the replica jitter by the time a request takes to
    # leave a process on a loaded machine (seen: up to 0.065 s at load 14). Each process on its own gate (each
    # spacing its own starts 0.9 s apart, in no phase with the others): gaps of 0.02 s.
    assert min(stats["smallest_gaps"]) >= 0.3 * 0.5, stats["smallest_gaps"]


def _user_agent_pool_drawn(answer: Any) -> None:
    from stage5.fetch import user_agent_pool

    answer.put(user_agent_pool.cache_info().currsize)  # 1: drawn before this worker was forked


@pytest.mark.integration
def test_workers_are_forked_with_their_user_agent_pool_drawn() -> None:
    """fake-useragent's database is read and filtered once, in the forkserver (0.23 s of CPU per worker
    before), so a forked worker starts with its pool in hand."""
    from stage5.crawl.pool import _context

    ctx = _context("forkserver")
    answer = ctx.Queue()
    worker = ctx.Process(target=_user_agent_pool_drawn, args=(answer,))
    worker.start()
    worker.join(timeout=60)
    assert answer.get(timeout=5) == 1


def _forkserver_pid() -> int | None:
    from multiprocessing import forkserver

    return getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None)  # CPython's


async def test_crawls_in_one_process_share_its_forkserver_which_ends_with_the_process(
    make_settings: Any, replica: ReplicaProcess, replica_with: Any, tmp_path: Any
) -> None:
    """Two crawls in this process fork their workers from one forkserver (its start costs a second of CPU);
    a crawl's own process (the CLI) ends its forkserver before it exits: no idle process outlives it."""
    import subprocess

    import psutil

    await run_crawl(make_settings(site=replica.url, districts="도봉구"), make_settings().database_url)
    first = _forkserver_pid()
    await run_crawl(make_settings(site=replica.url, districts="중구"), make_settings().database_url)
    assert first is not None and _forkserver_pid() == first and psutil.pid_exists(first)

    with replica_with(latency_ms=30) as slow:
        settings = make_settings(site=slow.url, districts="도봉구", log_dir=tmp_path)
        crawl = subprocess.Popen(crawl_command(settings), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        root = psutil.Process(crawl.pid)

        def its_forkserver() -> list[psutil.Process]:
            try:
                return [p for p in root.children() if "multiprocessing.forkserver" in " ".join(p.cmdline())]
            except psutil.Error:
                return []

        (server,) = await until(its_forkserver, 60, "the CLI crawl's forkserver", every=0.05)
        assert crawl.wait(timeout=120) == 0
    assert not psutil.pid_exists(server.pid)  # ended and reaped by the crawl before it exited
