"""Shared fixtures: the real PostgreSQL (a database for tests, a schema per test) and replicas."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from helpers import free_port, wait_for_port
from psycopg import sql
from psycopg.conninfo import make_conninfo

from stage5.replica.process import ReplicaProcess
from stage5.replica.world import World, build_world
from stage5.services import embedded_postgres, listening
from stage5.settings import Settings, load_settings
from stage5.storage.db import connect
from stage5.storage.schema import migrate
from stage5.storage.slots import SlotStore

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TEST_DB = "stage5_test"
SMALL_SCALE = 0.1  # 250 refill stores over 25 districts: a full crawl in seconds
SEED = 5


def _admin_url() -> str:
    """STAGE5_TEST_ADMIN_URL, else the local server, else an embedded (real) pgserver: never a mock."""
    if url := os.environ.get("STAGE5_TEST_ADMIN_URL"):
        return url
    if listening("127.0.0.1", 5432):
        return DEFAULT_ADMIN_URL
    return embedded_postgres(Path(__file__).resolve().parent.parent / ".stage5" / "test-pgdata")


@pytest.fixture(scope="session")
def pg_url() -> str:
    admin = _admin_url()
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (TEST_DB,)).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEST_DB)))
    except psycopg.OperationalError as exc:
        pytest.fail(f"tests need PostgreSQL at {admin} (bash .ci/run starts it): {exc}")
    return make_conninfo(admin, dbname=TEST_DB)


@pytest.fixture
def schema(pg_url: str) -> Iterator[str]:
    """A fresh schema per test, dropped afterwards: tests never see each other's rows."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def make_settings(pg_url: str, schema: str, tmp_path: Any) -> Any:
    def make(**overrides: Any) -> Settings:
        # A test that forgets `site` talks to a closed loopback port, never to the real site.
        base: dict[str, Any] = dict(
            site="http://127.0.0.1:9",
            database_url=pg_url,
            db_schema=schema,
            log_dir=tmp_path / "logs",
            request_delay_s=0,
            host_concurrency=16,
            retry_backoff_s=0.05,
            retry_backoff_max_s=0.5,
            flush_interval_s=0.5,
            blocked_backoff_s=0.05,  # block pages slow a host down; tests that serve them stay quick
            blocked_backoff_max_s=0.2,
            # The tests written for the page's layouts, ETags and 304s read details from the page; the
            # profile API's tests (test_detail_source.py) choose their source themselves.
            detail_source="html",
        )
        base.update(overrides)
        return load_settings(**base)

    return make


@pytest.fixture(scope="session")
def small_world() -> World:
    return build_world(SEED, SMALL_SCALE)


@pytest.fixture(scope="session")
def replica() -> Iterator[ReplicaProcess]:
    with ReplicaProcess(seed=SEED, scale=SMALL_SCALE) as process:
        yield process


@pytest.fixture
def private_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Redis of this test's own, so it can be stopped mid-run without touching the shared one."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is needed for this test (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    wait_for_port(port)
    yield f"redis://127.0.0.1:{port}/0", proc
    proc.kill()
    proc.wait()


@pytest.fixture
def slot_store(pg_url: str, schema: str) -> Iterator[SlotStore]:
    """`schedule_slots` in this test's schema (migrated)."""
    import asyncio

    async def init() -> None:
        conn = await connect(pg_url, schema)
        await migrate(conn)
        await conn.close()

    asyncio.run(init())
    store = SlotStore(pg_url, schema)
    yield store
    store.close()
