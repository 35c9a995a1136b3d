"""Scale-out on Celery: two real worker processes over a real Redis, against the replica."""

from __future__ import annotations

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
from psycopg import sql

from stage5.crawl.run import run_crawl
from stage5.replica.process import ReplicaProcess
from stage5.replica.server import Faults
from stage5.storage.columns import STORE_COLUMNS

SEED, SCALE = 5, 0.1
DISTRICTS = "강남구,마포구,송파구,관악구,중구,도봉구"


def start_worker(redis_url: str, logs: Path) -> subprocess.Popen[bytes]:
    logs.mkdir(parents=True)
    # Output to a file, not a pipe: a pipe nobody reads fills up and blocks the worker mid-task.
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stage5",
            "worker",
            "--worker-concurrency",
            "2",
            "--celery-visibility-s",
            "5",
            "--log-dir",
            str(logs),
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


def rows(pg_url: str, schema: str) -> list[tuple[Any, ...]]:
    columns = [c for c in STORE_COLUMNS if c != "source_url"]
    with psycopg.connect(pg_url) as conn:
        return conn.execute(
            sql.SQL("SELECT {} FROM {}.stores ORDER BY 1").format(
                sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(schema)
            )
        ).fetchall()


async def test_celery_engine_equals_local_and_survives_a_worker_kill(
    two_workers: tuple[str, list[subprocess.Popen[bytes]]], make_settings: Any, pg_url: str, schema: str
) -> None:
    redis_url, workers = two_workers
    local_schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        with ReplicaProcess(SEED, SCALE, Faults(latency_ms=30)) as replica:
            local = await run_crawl(
                make_settings(site=replica.url, districts=DISTRICTS, db_schema=local_schema), pg_url
            )
            settings = make_settings(
                site=replica.url, districts=DISTRICTS, engine="celery", cache="off", celery_visibility_s=5
            )
            import asyncio

            crawl = asyncio.create_task(run_crawl(settings, pg_url, redis_url))
            replica.reset()
            while replica.stats()["requests"] < 60:
                await asyncio.sleep(0.05)
            os.killpg(workers[0].pid, signal.SIGKILL)  # the worker and its pool, mid-run
            assert not crawl.done()
            summary = await crawl
        assert summary.status == "succeeded" and local.status == "succeeded"
        assert summary.stores == local.stores > 100
        assert rows(pg_url, schema) == rows(pg_url, local_schema)
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(local_schema)))
