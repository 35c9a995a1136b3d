"""Kill it anywhere, lose nothing, duplicate nothing: SIGTERM, SIGKILL of the master, a PostgreSQL
restart, each followed by the end state checked against the replica's ground truth."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from helpers import crawl_command, query, until, wait_until, worker_processes

from stage5.crawl.run import run_crawl
from stage5.replica.process import ReplicaProcess
from stage5.replica.truth import score
from stage5.replica.world import World
from stage5.report import load_result

DISTRICTS = "강남구,마포구,송파구,관악구,중구,도봉구"


def _crawl_cmd(settings: Any, *extra: str) -> list[str]:
    """The crawl these tests stop and resume: 2 workers, no cache, the summary as JSON."""
    flags = ("--request-delay-s", "0", "--host-concurrency", "4", "--workers", "2", "--no-cache", "--json")
    return crawl_command(settings, *flags, *extra)


def _some_details_done(settings: Any) -> bool:
    try:
        return bool(_done_detail_rids(settings))
    except psycopg.errors.UndefinedTable:
        return False  # the crawl has not created its tables yet


def _crawl_under_way(settings: Any, own_group: bool = False) -> subprocess.Popen[str]:
    """A crawl in a child process, returned once some of its detail units are committed (the stop then
    lands mid-crawl, after real progress). `own_group`: in a process group of its own, as a terminal's
    foreground job (Ctrl-C reaches all its processes)."""
    crawl = subprocess.Popen(
        _crawl_cmd(settings, "--flush-interval-s", "0.3"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=own_group,
    )
    wait_until(lambda: _some_details_done(settings), 60, "the crawl to get going (detail units done)", every=0.1)
    return crawl


def _done_detail_rids(settings: Any) -> set[str]:
    rows = query(
        settings,
        "SELECT s ->> 'rid' FROM crawl_units, jsonb_array_elements(payload -> 'stores') s"
        " WHERE kind = 'detail' AND state IN ('done', 'failed')",
    )
    return {rid for (rid,) in rows}


def _run_status(settings: Any) -> list[tuple[Any, ...]]:
    return query(settings, "SELECT id, status, resumed FROM crawl_runs ORDER BY id")


def _assert_complete(settings: Any, world: World, replica: ReplicaProcess, done_before: set[str]) -> None:
    stored, rejected = asyncio.run(load_result(settings))
    result = score(world, stored, rejected, settings.districts)
    assert result.perfect, (result.missing[:5], result.extra[:5])
    served = replica.stats(per_store=True)["detail_served"]
    twice = sorted(rid for rid in done_before if served.get(rid, 0) > 1)
    assert not twice, f"fetched again after their unit was done: {twice[:5]}"


@pytest.mark.parametrize("kill", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill-master"])
def test_stop_then_resume(
    kill: signal.Signals, make_settings: Any, tmp_path: Path, small_world: World, replica_with: Any
) -> None:
    with replica_with(latency_ms=50) as replica:
        settings = make_settings(site=replica.url, districts=DISTRICTS, log_dir=tmp_path)
        first = _crawl_under_way(settings)
        workers = worker_processes(psutil.Process(first.pid))
        assert workers
        stopped_at = time.monotonic()
        first.send_signal(kill)
        first.wait(timeout=30)
        took = time.monotonic() - stopped_at
        if kill == signal.SIGTERM:
            assert first.returncode == 130 and took < 10, (first.returncode, took, first.stderr.read()[-2000:])
            assert _run_status(settings)[-1][1] == "interrupted"
        else:
            assert _run_status(settings)[-1][1] == "running"  # its master died mid-run
            runs = [sys.executable, "-m", "stage5", "runs", "--database-url", settings.database_url]
            listed = subprocess.run([*runs, "--db-schema", settings.db_schema], capture_output=True, text=True)
            assert "master is gone" in listed.stdout and "--resume" in listed.stdout, listed.stdout
        gone, alive = psutil.wait_procs(workers, timeout=15)
        assert not alive, "workers must leave when their master is gone"
        done_before = _done_detail_rids(settings)
        assert done_before, "some detail units should have been done before the stop"

        refused = subprocess.run(_crawl_cmd(settings), capture_output=True, text=True, timeout=60)
        assert refused.returncode == 4 and "--resume" in refused.stderr and "--fresh" in refused.stderr

        resumed = subprocess.run(_crawl_cmd(settings, "--resume"), capture_output=True, text=True, timeout=180)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        ((run_id, status, times),) = _run_status(settings)
        assert status == "succeeded" and times == 1
        _assert_complete(settings, small_world, replica, done_before)


async def test_postgres_restart_mid_load(
    make_settings: Any,
    pg_url: str,
    small_world: World,
    caplog: pytest.LogCaptureFixture,
    postgres_cluster: tuple[str, str],
    replica_with: Any,
) -> None:
    """The writer's connection dies with the server; its batch is retried whole on a new one. (Runs only
    against a local cluster it can restart, alone at the server: see the postgres_cluster fixture.)"""
    caplog.set_level(logging.WARNING, logger="stage5")
    with replica_with(latency_ms=40) as replica:
        settings = make_settings(
            site=replica.url, districts=DISTRICTS, host_concurrency=4, batch_size=20, flush_interval_s=0.2
        )
        crawl = asyncio.create_task(run_crawl(settings, pg_url))
        await until(lambda: replica.stats()["requests"] >= 80, 60, "80 requests of the crawl")
        version, cluster = postgres_cluster
        assert not crawl.done(), "the restart should land mid-crawl"
        restart = await asyncio.create_subprocess_exec(
            "pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, "restart"
        )
        assert await restart.wait() == 0  # and PostgreSQL is left running
        summary = await crawl
    assert summary.status == "succeeded"
    stored, rejected = await load_result(settings)
    assert score(small_world, stored, rejected, settings.districts).perfect
    assert summary.new == summary.stores  # counted once each, though batches were retried
    assert any("db_batch_retry" in r.getMessage() for r in caplog.records)


def test_resume_keeps_the_runs_site_and_refuses_another(
    make_settings: Any, pg_url: str, schema: str, tmp_path: Path, small_world: World, replica_with: Any
) -> None:
    """A run stopped mid-way is resumed against its own site even when the command names none (the real
    site is the default); naming another site or other districts is refused with exit 2."""
    with replica_with(latency_ms=50) as replica:
        settings = make_settings(site=replica.url, districts=DISTRICTS, log_dir=tmp_path)
        first = _crawl_under_way(settings, own_group=True)
        os.killpg(first.pid, signal.SIGINT)  # Ctrl-C: the master and its workers all get it
        out, err = first.communicate(timeout=30)
        summary = json.loads(out)
        hint = summary["resume_hint"]  # the summary (--json) says how to resume, right as printed
        assert first.returncode == 130 and hint.endswith(f"crawl --db-schema {schema} --resume"), err[-1500:]
        assert summary["workers_died"] == 0  # a stop is not a death
        assert summary["failed_units"] == []  # units cut short by the stop go back to the queue, none fails
        assert summary["districts_done"] < summary["districts"]  # counted from the units left, not assumed

        # by hand: these commands name no site and no districts (the run's own are taken)
        base = [sys.executable, "-m", "stage5", "crawl", "--database-url", pg_url, "--db-schema", schema]
        base += ["--log-dir", str(tmp_path), "--request-delay-s", "0", "--no-cache"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("STAGE5_SITE")}
        for extra, said in (
            (["--site", "http://127.0.0.1:9"], "resuming it with --site http://127.0.0.1:9"),
            (["--districts", "강남구"], "--districts 강남구 differs"),
        ):
            refused = subprocess.run([*base, "--resume", *extra], env=env, capture_output=True, text=True, timeout=60)
            assert refused.returncode == 2 and said in refused.stderr, refused.stderr[-1500:]
        before = replica.stats()["requests"]
        resumed = subprocess.run([*base, "--resume", "--json"], env=env, capture_output=True, text=True, timeout=120)
        assert resumed.returncode == 0, (resumed.stderr[-1500:], resumed.stdout[-3000:])
        assert replica.stats()["requests"] > before  # the rest went to the run's own site (the replica)
    assert _run_status(settings)[-1][1:] == ("succeeded", 1)
    stored, rejected = asyncio.run(load_result(settings))
    assert score(small_world, stored, rejected, settings.districts).perfect
