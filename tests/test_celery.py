"""Scale-out on Celery: real worker processes over a real Redis, against the replica: equal to the local
engine through worker kills, a worker joining and a broker restart; politeness shared by every worker;
a stopped run leaves no task behind; task messages carry no secret."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from helpers import SEED, query, start_redis, until
from psycopg import sql

from stage5.crawl.run import run_crawl
from stage5.replica.process import ReplicaProcess
from stage5.replica.truth import score
from stage5.replica.world import build_world
from stage5.report import load_result
from stage5.storage.columns import STORE_COLUMNS

DISTRICTS = "강남구,마포구,송파구,관악구,중구,도봉구"


def start_worker(
    redis_url: str, logs: Path, processes: int = 2, extra: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    logs.mkdir(parents=True)
    # Output to a file, not a pipe: a pipe nobody reads fills up and blocks the worker mid-task.
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stage5",
            "worker",
            "--worker-concurrency",
            str(processes),
            "--celery-visibility-s",
            "5",
            "--log-dir",
            str(logs),
            *extra,
        ],
        env={**os.environ, "REDIS_URL": redis_url},
        stdout=subprocess.DEVNULL,
        stderr=(logs / "stderr").open("wb"),
        start_new_session=True,  # its own process group: a test can kill the worker with its children
    )


def wait_ready(worker: subprocess.Popen[bytes], logs: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while b" ready." not in (logs / "stderr").read_bytes():
        assert worker.poll() is None, "celery worker exited before it was ready"
        assert time.monotonic() < deadline, "celery worker did not start"
        time.sleep(0.2)


@pytest.fixture
def two_workers(private_redis: tuple[str, Any], tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    redis_url, _ = private_redis
    workers = [start_worker(redis_url, tmp_path / f"w{i}") for i in range(2)]
    for i, w in enumerate(workers):
        wait_ready(w, tmp_path / f"w{i}")
    yield redis_url, workers
    for w in workers:
        if w.poll() is None:
            os.killpg(w.pid, signal.SIGKILL)
        w.wait()


def rows(settings: Any) -> list[tuple[Any, ...]]:
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in STORE_COLUMNS if c != "source_url")
    return query(settings, sql.SQL("SELECT {} FROM stores ORDER BY 1").format(columns))


def drop_schema(settings: Any) -> None:
    query(settings, sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(settings.db_schema)))


async def test_celery_engine_equals_local_and_survives_a_worker_kill(
    two_workers: tuple[str, list[subprocess.Popen[bytes]]], make_settings: Any, pg_url: str, replica_with: Any
) -> None:
    redis_url, workers = two_workers
    local_schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        with replica_with(latency_ms=30) as replica:
            local_settings = make_settings(site=replica.url, districts=DISTRICTS, db_schema=local_schema)
            local = await run_crawl(local_settings, pg_url)
            settings = make_settings(
                site=replica.url, districts=DISTRICTS, engine="celery", cache="off", celery_visibility_s=5
            )
            crawl = asyncio.create_task(run_crawl(settings, pg_url, redis_url))
            replica.reset()
            await until(lambda: replica.stats()["requests"] >= 60, 60, "60 requests of the Celery run")
            os.killpg(workers[0].pid, signal.SIGKILL)  # the worker and its pool, mid-run
            assert not crawl.done()
            summary = await crawl
        assert summary.status == "succeeded" and local.status == "succeeded"
        assert summary.stores == local.stores > 100
        assert rows(settings) == rows(local_settings)
    finally:
        drop_schema(make_settings(db_schema=local_schema))


def restart_redis(proc: subprocess.Popen[bytes], port: int, down_s: float) -> subprocess.Popen[bytes]:
    """The broker killed and started again on its port, empty (no persistence: the worst case)."""
    proc.kill()
    proc.wait()
    time.sleep(down_s)  # the outage itself, not a wait for something
    return start_redis(port)


def events(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith(f"{event} ") or r.getMessage() == event]


@pytest.mark.slow
async def test_full_world_on_celery_survives_a_kill_a_join_and_a_broker_restart(
    private_redis: tuple[str, Any],
    make_settings: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    replica_with: Any,
) -> None:
    """1x Seoul with default Celery settings: two workers, one SIGKILLed mid-run, a third joining, then the
    broker restarted empty. The run finishes and stores exactly the truth."""
    caplog.set_level(logging.INFO, logger="stage5")
    redis_url, redis_proc = private_redis
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    world = build_world(SEED, 1.0)
    # Celery's own redelivery at its default visibility (600 s): a dead worker's units come back through
    # their leases lapsing, which is what this test measures.
    default = ("--celery-visibility-s", "600")
    workers = [start_worker(redis_url, tmp_path / f"w{i}", extra=default) for i in range(2)]
    try:
        for i, w in enumerate(workers):
            wait_ready(w, tmp_path / f"w{i}")
        with replica_with(scale=1.0, latency_ms=10) as replica:
            settings = make_settings(site=replica.url, engine="celery", cache="off")
            started = time.monotonic()
            crawl = asyncio.create_task(run_crawl(settings, settings.database_url, redis_url))
            await until(lambda: replica.stats()["requests"] >= 300, 120, "300 requests of the run", every=0.1)
            os.killpg(workers[0].pid, signal.SIGKILL)  # the worker and its pool, mid-run
            killed_at, killed_wall = time.monotonic() - started, time.time()
            workers.append(start_worker(redis_url, tmp_path / "w2", extra=default))
            # The broker restart comes once the dead worker's units are noticed (their leases lapse), or
            # before the run ends (the restart must hit a running crawl).
            await until(
                lambda: events(caplog, "unit_lost") or replica.stats()["requests"] >= 2500,
                600,
                "a lost unit noticed, or 2500 requests",
                every=0.1,
            )
            assert not crawl.done()
            blip_at, blip_wall = time.monotonic() - started, time.time()
            redis_proc = restart_redis(redis_proc, port, down_s=2.0)
            summary = await asyncio.wait_for(crawl, timeout=900)
            elapsed = time.monotonic() - started
            requests = replica.stats()["requests"]
        stored, rejected = await load_result(settings)
        result = score(world, stored, rejected, settings.districts)
        lost = events(caplog, "unit_lost")
        after_kill = [r.created - killed_wall for r in lost if killed_wall <= r.created < blip_wall]
        after_blip = [r.created - blip_wall for r in lost if r.created >= blip_wall]
        print(
            f"\n1x on Celery: {elapsed:.1f} s, {requests} requests, {summary.stores} stores, status {summary.status};"
            f" killed at {killed_at:.1f} s, broker restarted at {blip_at:.1f} s; units lost and re-sent: {len(lost)}"
            f" ({len(after_kill)} after the kill, first {min(after_kill, default=-1):.1f} s later;"
            f" {len(after_blip)} after the restart, first {min(after_blip, default=-1):.1f} s later)"
        )
        shown = ("broker_back", "broker_unreachable", "celery_overhead", "unit_lost", "run_finished")
        for r in sorted((r for e in shown for r in events(caplog, e)), key=lambda r: r.created):
            print(f"{r.created - killed_wall:+.1f} s after the kill: {r.getMessage()}")
        assert summary.status in ("succeeded", "partial") and result.perfect, result
        assert lost, "the lost units were handed on"
    finally:
        for w in workers:
            if w.poll() is None:
                os.killpg(w.pid, signal.SIGKILL)
            w.wait()
        redis_proc.kill()
        redis_proc.wait()


async def test_queued_tasks_carry_no_secret_and_a_stopped_run_leaves_none(
    private_redis: tuple[str, Any], make_settings: Any, tmp_path: Path, replica_with: Any
) -> None:
    """No worker yet: the run's tasks wait in the broker. Their messages, decoded, hold the unit and no
    secret. Stopped, the run takes them out of the broker; a worker started afterwards runs nothing."""
    import redis as redis_lib

    from stage5.crawl.celery_engine import KEY_PREFIX, QUEUE

    redis_url, _ = private_redis
    secret = "Pl4ntedT0ken"
    with replica_with() as replica:
        settings = make_settings(
            site=replica.url,
            districts=DISTRICTS,
            engine="celery",
            cache="off",
            api_token=secret,
            notify_url=f"http://127.0.0.1:9/hook?token={secret}",
            database_url=f"{make_settings().database_url}?password={secret}",
        )
        client = redis_lib.Redis.from_url(redis_url)
        crawl = asyncio.create_task(run_crawl(settings, make_settings().database_url, redis_url))
        in_flight = settings.celery_tasks_in_flight
        await until(lambda: client.llen(KEY_PREFIX + QUEUE) >= in_flight, 60, f"{in_flight} tasks in the broker")
        bodies = [
            base64.b64decode(json.loads(raw)["body"]).decode() for raw in client.lrange(KEY_PREFIX + QUEUE, 0, -1)
        ]
        assert len(bodies) == settings.celery_tasks_in_flight
        assert all(secret not in body and "postgresql" not in body and "redis://" not in body for body in bodies)
        assert all('"uid"' in body and '"schema"' in body for body in bodies)
        os.kill(os.getpid(), signal.SIGINT)  # the first Ctrl-C: a graceful stop
        summary = await crawl
        assert summary.status == "interrupted"
        assert client.llen(KEY_PREFIX + QUEUE) == 0
        replica.reset()
        worker = start_worker(redis_url, tmp_path / "late")
        try:
            wait_ready(worker, tmp_path / "late")
            time.sleep(2)  # a window in which a task left behind would reach the site: none may
            assert replica.stats()["requests"] == 0  # nothing of the stopped run reached the site
        finally:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


async def _politeness(settings: Any, replica: ReplicaProcess, redis_url: str | None) -> dict[str, Any]:
    replica.reset()
    summary = await run_crawl(settings, settings.database_url, redis_url)
    stats = replica.stats()
    assert summary.status == "succeeded"
    return {"in_flight": stats["max_in_flight"], "gap": min(stats["smallest_gaps"]), "gaps": stats["gap_count"]}


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 4])
async def test_politeness_on_celery_is_the_promise_whatever_the_workers(
    processes: int, private_redis: tuple[str, Any], make_settings: Any, tmp_path: Path, replica_with: Any
) -> None:
    """ "2 in flight, 0.2 s apart" per host, measured by the replica: the Celery workers share one gate in
    Redis, so 1 or 4 worker processes keep it; the local engine's figures are printed beside them."""
    redis_url, _ = private_redis
    polite = dict(districts="도봉구,중구", request_delay_s=0.2, host_concurrency=2, cache="off")
    local_schema = f"t_{uuid.uuid4().hex[:12]}"
    worker = start_worker(redis_url, tmp_path / "w", processes=processes)
    try:
        wait_ready(worker, tmp_path / "w")
        with replica_with() as replica:
            local = await _politeness(
                make_settings(site=replica.url, workers=processes, db_schema=local_schema, **polite), replica, redis_url
            )
            celery = await _politeness(make_settings(site=replica.url, engine="celery", **polite), replica, redis_url)
        print(f"\npoliteness with {processes} worker process(es): local {local}, celery {celery}")
        for figures in (local, celery):
            assert figures["in_flight"] <= 2
            # Starts 0.2 s apart by Redis' clock; arrivals jitter by a loaded machine's event-loop lag (seen:
            # 0.168 s with other tests running). Each process on its own gate gave 0.04 s.
            assert figures["gap"] >= 0.2 * 0.75
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        drop_schema(make_settings(db_schema=local_schema))


async def test_more_units_than_a_worker_serves_before_recycling(
    two_workers: tuple[str, list[subprocess.Popen[bytes]]], make_settings: Any, small_world: Any, replica_with: Any
) -> None:
    """The crash of issue 23: past worker_max_units units a Celery run died (an inherited recycle step)."""
    redis_url, _ = two_workers
    with replica_with() as replica:
        settings = make_settings(
            site=replica.url, districts=DISTRICTS, engine="celery", cache="off", worker_max_units=3
        )
        summary = await run_crawl(settings, settings.database_url, redis_url)
    stored, rejected = await load_result(settings)
    assert summary.status == "succeeded" and summary.units > 3 * 3
    assert score(small_world, stored, rejected, settings.districts).perfect
    import redis as redis_lib

    from stage5.crawl.celery_engine import KEY_PREFIX

    left = redis_lib.Redis.from_url(redis_url).keys(f"{KEY_PREFIX}run:*:wanted:*")
    assert left == []  # each answered unit's key went with its answer (they waited 7 days to expire)


async def test_a_workers_lines_are_printed_once_and_under_no_celery_prefix(
    two_workers: tuple[str, list[subprocess.Popen[bytes]]], make_settings: Any, tmp_path: Path, replica_with: Any
) -> None:
    """Celery redirected the pool's stderr into its logger and gave the root logger a handler: each stage5
    line of a worker came out twice, once relabelled 'WARNING/ForkPoolWorker-N] INFO retry …'."""
    redis_url, _ = two_workers
    with replica_with(p5xx=0.3) as faulty:  # retries: lines a worker logs
        settings = make_settings(site=faulty.url, districts="도봉구", engine="celery", cache="off")
        summary = await run_crawl(settings, settings.database_url, redis_url)
    assert summary.status == "succeeded" and summary.retries > 0
    lines = [ln for w in ("w0", "w1") for ln in (tmp_path / w / "stderr").read_text(errors="replace").splitlines()]
    retries = [ln for ln in lines if "retry url=" in ln]
    assert retries and not [ln for ln in retries if "ForkPoolWorker" in ln]
    assert len(retries) == len(set(retries))  # each once (a retry line names its url, attempt and wait)


def test_a_worker_pool_is_sized_and_governed_by_its_machine_budget(make_settings: Any) -> None:
    from stage5.crawl.celery_engine import worker_argv, worker_pool_size

    assert worker_pool_size(make_settings(memory_budget_mb=2048), cores=2) == 2
    assert worker_pool_size(make_settings(memory_budget_mb=2048), cores=64) == 17  # ~120 MB a process
    assert worker_pool_size(make_settings(memory_budget_mb=100), cores=8) == 1
    assert worker_pool_size(make_settings(memory_budget_mb=100, worker_concurrency=3), cores=8) == 3
    argv = worker_argv(make_settings(memory_budget_mb=2048, worker_max_units=50), 4, "n@h")
    assert "--max-memory-per-child=524288" in argv and "--max-tasks-per-child=50" in argv
    assert "--concurrency=4" in argv


async def test_a_worker_over_its_budget_replaces_its_processes_and_the_summary_shows_it(
    private_redis: tuple[str, Any], make_settings: Any, tmp_path: Path, small_world: Any, replica_with: Any
) -> None:
    """A 64 MB budget for one pool process: Celery replaces the process after each unit (its resident
    memory is over that), the units still all run, and the run's summary names the engine, the host and
    the processes replaced."""
    import socket

    redis_url, _ = private_redis
    worker = start_worker(redis_url, tmp_path / "w", processes=1, extra=("--memory-budget-mb", "64"))
    try:
        wait_ready(worker, tmp_path / "w")
        with replica_with() as replica:
            settings = make_settings(site=replica.url, districts="도봉구,중구", engine="celery", cache="off")
            summary = await run_crawl(settings, settings.database_url, redis_url)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    stored, rejected = await load_result(settings)
    assert summary.status == "succeeded" and score(small_world, stored, rejected, settings.districts).perfect
    assert summary.engine == "celery" and summary.workers_by_host == {socket.gethostname(): 1}
    assert summary.units > 4 and summary.workers_recycled >= summary.units // 2, summary.workers_recycled
    assert summary.counts()["engine"] == "celery"


async def test_a_killed_master_resumed_follows_the_tasks_it_had_sent(
    two_workers: tuple[str, list[subprocess.Popen[bytes]]],
    make_settings: Any,
    small_world: Any,
    replica_with: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Celery workers outlive their master. While units run, crawl_units shows who runs each and until when
    (the lease, renewed while it runs); the master SIGKILLed, its resumed successor follows the tasks still
    waited for (answers sent while no master read them included) instead of sending them all again, and
    the run equals the truth."""
    from helpers import crawl_command, wait_until

    caplog.set_level(logging.INFO, logger="stage5")
    redis_url, _ = two_workers
    with replica_with(latency_ms=300) as replica:
        settings = make_settings(
            site=replica.url, districts="관악구,중구,도봉구", engine="celery", cache="off", log_dir=tmp_path
        )
        # Detail units of 20 stores, one request at a time, 300 ms each: a unit runs long enough to be seen.
        flags = ("--engine", "celery", "--no-cache", "--request-delay-s", "0", "--host-concurrency", "1")
        command = crawl_command(settings, *flags, "--detail-batch", "20", "--flush-interval-s", "0.3")
        master = subprocess.Popen(command, env={**os.environ, "REDIS_URL": redis_url}, stdout=subprocess.DEVNULL)
        running = "SELECT uid, lease_owner FROM crawl_units WHERE state = 'leased' AND lease_expires_at > now()"

        def held_by_nodes() -> list[tuple[Any, ...]]:
            try:
                return [row for row in query(settings, running) if "@" in (row[1] or "")]
            except psycopg.errors.UndefinedTable:  # the crawl has not made its tables yet
                return []

        held = wait_until(held_by_nodes, 90, "running units leased to a Celery node in crawl_units", every=0.2)
        master.kill()
        master.wait()
        assert query(settings, "SELECT status FROM crawl_runs") == [("running",)]
        summary = await run_crawl(settings, settings.database_url, redis_url, resume=True)
        stored, rejected = await load_result(settings)
    adopted = [r for r in caplog.records if r.getMessage().startswith("units_adopted ")]
    assert held and adopted and "adopted=0 " not in adopted[0].getMessage(), adopted
    assert summary.status == "succeeded" and score(small_world, stored, rejected, settings.districts).perfect


def test_a_unit_whose_lease_just_went_is_lost_only_when_it_stays_gone(make_settings: Any) -> None:
    """A task deletes its lease with its answer, which the master reads just after: a check that runs in
    between must not hand the unit on (it was: judged lost 3 ms after its worker answered, run twice)."""
    from stage5.crawl.celery_engine import CeleryExecutor, Sent
    from stage5.site.diningcode import queries_for
    from stage5.site.seoul import DISTRICT_BY_NAME
    from stage5.units import SearchUnit

    executor = CeleryExecutor(make_settings(engine="celery"), "redis://127.0.0.1:9/0", run_id=1)  # no I/O here
    unit = SearchUnit(1, queries_for(DISTRICT_BY_NAME["중구"])[0])
    sent = Sent(unit, "task-1")
    assert not executor._lost(sent, b"node@host", set(), set())  # running: its lease is there
    assert not executor._lost(sent, None, set(), set())  # gone once: maybe answered, not yet read
    assert executor._lost(sent, None, set(), set())  # gone twice: its worker died or hangs


def test_an_unreachable_broker_stops_a_celery_crawl_in_one_line_leaving_no_run(
    make_settings: Any, replica: ReplicaProcess, tmp_path: Path
) -> None:
    from helpers import crawl_command, free_port

    settings = make_settings(site=replica.url, districts="도봉구", log_dir=tmp_path)
    broker = f"redis://:s3cret@127.0.0.1:{free_port()}/0"  # nothing listens there
    command = crawl_command(settings, "--engine", "celery", "--no-cache")
    done = subprocess.run(command, env={**os.environ, "REDIS_URL": broker}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr  # a service could not be used (ExitCode.FAILED), no traceback
    assert "does not answer" in done.stderr and "REDIS_URL" in done.stderr and "Traceback" not in done.stderr
    assert "s3cret" not in done.stderr
    runs = query(settings, "SELECT to_regclass('crawl_runs') IS NOT NULL")[0][0]
    assert not runs or query(settings, "SELECT count(*) FROM crawl_runs") == [(0,)]  # nothing to resume


async def test_a_crawl_that_no_worker_serves_says_so(
    private_redis: tuple[str, Any], make_settings: Any, replica: ReplicaProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """Tasks queued on a broker no worker listens to: after two leases the master warns, naming the fix,
    instead of printing '0 pages/s' forever."""
    caplog.set_level(logging.INFO, logger="stage5")
    redis_url, _ = private_redis
    settings = make_settings(site=replica.url, districts="도봉구", engine="celery", cache="off", celery_lease_s=2)
    crawl = asyncio.create_task(run_crawl(settings, settings.database_url, redis_url))
    await until(lambda: events(caplog, "celery_no_worker"), 30, "the master to warn that no worker takes tasks")
    os.kill(os.getpid(), signal.SIGINT)  # the first Ctrl-C: a graceful stop
    summary = await crawl
    (warning,) = events(caplog, "celery_no_worker")[:1]
    assert summary.status == "interrupted" and "stage5 worker" in warning.getMessage()
    assert "--engine celery --resume" in summary.resume_hint  # resumed as it ran, not in local processes
