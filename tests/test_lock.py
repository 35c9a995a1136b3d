"""The crawl lock: one run at a time per dataset; a second run skips (recorded, with the holder) or
waits; a dead holder's lock expires with its connection; other schemas are not blocked."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import uuid
from typing import Any

import psycopg
import pytest
from helpers import crawl_command, hold_lock, query, until

from stage5.crawl.run import run_crawl
from stage5.errors import RunSkipped
from stage5.replica.process import ReplicaProcess
from stage5.storage.db import connect
from stage5.storage.lock import LockSession, crawl_lock_holder, try_crawl_lock


def runs(settings: Any) -> list[tuple[Any, ...]]:
    return query(settings, "SELECT status, trigger, counts FROM crawl_runs ORDER BY id")


async def test_second_run_skips_and_records_the_holder(
    make_settings: Any, pg_url: str, schema: str, replica: ReplicaProcess
) -> None:
    holder = hold_lock(pg_url, schema, 30)
    try:
        with pytest.raises(RunSkipped, match="stage5 holder pid="):
            await run_crawl(make_settings(site=replica.url, districts="도봉구"), pg_url, trigger="schedule")
    finally:
        holder.kill()
        holder.wait()
    ((status, trigger, counts),) = runs(make_settings())
    assert (status, trigger) == ("skipped", "schedule") and "holder" in counts["lock_holder"]["application"]


async def test_waiting_run_starts_when_the_lock_frees(
    make_settings: Any, pg_url: str, schema: str, replica: ReplicaProcess
) -> None:
    holder = hold_lock(pg_url, schema, 2.0)  # exits, and so releases, after two seconds
    started = time.monotonic()
    summary = await run_crawl(
        make_settings(site=replica.url, districts="도봉구", overlap="wait", lock_wait_s=30), pg_url
    )
    holder.wait()
    assert summary.status == "succeeded" and time.monotonic() - started >= 1.5


async def test_wait_gives_up_after_its_timeout(
    make_settings: Any, pg_url: str, schema: str, replica: ReplicaProcess
) -> None:
    holder = hold_lock(pg_url, schema, 30)
    try:
        started = time.monotonic()
        with pytest.raises(RunSkipped):
            await run_crawl(
                make_settings(site=replica.url, districts="도봉구", overlap="wait", lock_wait_s=1.5), pg_url
            )
        assert 1.4 <= time.monotonic() - started < 10
    finally:
        holder.kill()
        holder.wait()


async def test_dead_holders_lock_expires(pg_url: str, schema: str) -> None:
    holder = hold_lock(pg_url, schema, 60)
    conn = await connect(pg_url, schema)
    assert not await try_crawl_lock(conn, schema)
    assert (await crawl_lock_holder(conn, schema) or {}).get("application", "").startswith("stage5 holder")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    # PostgreSQL ends the session when it sees the socket closed
    await until(lambda: try_crawl_lock(conn, schema), 5, "the dead holder's lock to expire")
    await conn.close()


async def test_other_schemas_are_not_blocked(
    make_settings: Any, pg_url: str, schema: str, replica: ReplicaProcess
) -> None:
    # a name of its own: this test running in another pytest session at the same time holds another lock
    holder = hold_lock(pg_url, f"some_other_dataset_{uuid.uuid4().hex[:8]}", 30)
    try:
        summary = await run_crawl(make_settings(site=replica.url, districts="도봉구"), pg_url)
    finally:
        holder.kill()
        holder.wait()
    assert summary.status == "succeeded"


def test_cli_exit_code_for_a_skip(
    make_settings: Any, pg_url: str, schema: str, replica: ReplicaProcess, tmp_path: Any
) -> None:
    settings = make_settings(site=replica.url, districts="도봉구", log_dir=tmp_path)
    holder = hold_lock(pg_url, schema, 30)
    try:
        out = subprocess.run(crawl_command(settings), capture_output=True, text=True, timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert out.returncode == 5 and "crawl lock is held by stage5 holder" in out.stderr
    assert json.dumps(runs(settings)[0][0]) == '"skipped"'


async def test_a_master_whose_session_is_killed_never_works_beside_the_next(
    make_settings: Any, pg_url: str, small_world: Any, replica_with: Any
) -> None:
    """Kill the master's lock session and let another process take the run's lock at once: the first
    master stops with LockLost and writes nothing more; a resume then finishes the run, each store once."""
    import os

    from stage5.errors import LockLost
    from stage5.replica.truth import score
    from stage5.report import load_result
    from stage5.storage.lock import dataset_key

    with replica_with(latency_ms=100) as slow:
        settings = make_settings(site=slow.url, districts="강남구,마포구,송파구", workers=1, host_concurrency=2)
        schema = settings.db_schema
        first = asyncio.create_task(run_crawl(settings, pg_url))

        def stored() -> int:
            try:
                return int(query(settings, "SELECT count(*) FROM stores")[0][0])
            except psycopg.errors.UndefinedTable:
                return 0  # not migrated yet

        await until(lambda: stored() >= 10, 60, "the first master to store 10 stores")
        other = psycopg.connect(pg_url, autocommit=True)
        try:
            ((run_id,),) = query(settings, "SELECT max(id) FROM crawl_runs")
            other.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE %s",
                (f"stage5 master pid={os.getpid()} %",),
            )
            other.execute("SELECT pg_advisory_lock(%s::int, %s::int)", (dataset_key(schema), run_id))
            with pytest.raises(LockLost, match=f"run {run_id}"):
                await asyncio.wait_for(first, 60)
            at_loss = stored()
            await asyncio.sleep(1.5)  # a window for a late write to show: none may come
            assert stored() == at_loss  # nothing written after the loss
        finally:
            other.close()
        summary = await run_crawl(settings, pg_url, resume=True)
    assert summary.run_id == run_id and summary.status == "succeeded"
    assert summary.new + summary.updated + summary.unchanged == summary.stores  # no store counted twice
    got, rejected = await load_result(settings)
    assert score(small_world, got, rejected, settings.districts).perfect


async def test_a_closed_session_frees_the_crawl_lock_before_close_returns(pg_url: str, schema: str) -> None:
    """A crawl started right after another on the same dataset (perftest runs three in a row) takes the
    lock at once: closing a session frees its locks only when its backend has exited, a moment later, so
    LockSession.close() releases them first. Without that, 5 runs of this test failed at tries 3 to 25."""
    other = await connect(pg_url, schema)
    try:
        for attempt in range(200):
            first = await connect(pg_url, schema, role="master")
            assert await try_crawl_lock(first, schema), f"attempt {attempt}: the lock was not free to take"
            session = LockSession(first, lambda: connect(pg_url, schema), schema)
            await session.close()
            assert await try_crawl_lock(other, schema), f"attempt {attempt}: still held after close()"
            await other.execute("SELECT pg_advisory_unlock_all()")
            await other.commit()
    finally:
        await other.close()
