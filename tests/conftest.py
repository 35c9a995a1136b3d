"""Shared fixtures: the real PostgreSQL (a database for tests, a schema per test), Redis, replicas of the
test world (faulty ones too); and the two lanes of the suite.

A test that uses the database, Redis, a replica or a process of its own is marked `integration` by the
fixtures it uses (see INTEGRATION_FIXTURES); a test that starts a process without one carries the marker
itself. `pytest -m "not integration"` runs the rest in seconds. The whole suite runs under pytest-xdist
(scripts/test.sh): every test has its own schema, Redis namespace, ports and tmp_path.

STAGE5_TEST_DATABASE_URL and STAGE5_TEST_REDIS_URL point the suite at another database or Redis."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from helpers import SCALE, SEED, database_turn, free_port, start_redis, wait_until
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from stage5.replica.process import ReplicaProcess
from stage5.replica.server import Faults
from stage5.replica.world import World, build_world
from stage5.services import embedded_postgres, listening
from stage5.settings import Settings, load_settings
from stage5.storage.db import connect
from stage5.storage.schema import migrate
from stage5.storage.slots import SlotStore

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_TEST_REDIS = "redis://127.0.0.1:6379/0"
TEST_DB = "stage5_test"

# Fixtures that bring a service or a process: a test using any of them (directly or through another
# fixture, e.g. make_settings -> pg_url) is an integration test.
INTEGRATION_FIXTURES = {"pg_url", "redis_url", "private_redis", "replica", "replica_with", "postgres_cluster"}


def pytest_configure(config: pytest.Config) -> None:
    # Crawls the tests start (in-process `main` and child processes) find Redis as a user's would: REDIS_URL.
    if url := os.environ.get("STAGE5_TEST_REDIS_URL"):
        os.environ["REDIS_URL"] = url


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
    # The test that restarts PostgreSQL goes first: it holds the server alone (_database_turn), and at the
    # start it waits for the other workers' first tests only, not for whatever long tests run mid-suite
    # (seen: 63 s of waiting, with the other workers idle at the gate, when it came in the middle).
    items.sort(key=lambda item: "postgres_cluster" not in getattr(item, "fixturenames", ()))


# --- PostgreSQL ---------------------------------------------------------------------------------


def _test_database_url() -> str:
    """STAGE5_TEST_DATABASE_URL, else stage5_test on the local server, else on an embedded (real) pgserver:
    never a mock. As key=value pairs (tests add a planted password to it)."""
    if url := os.environ.get("STAGE5_TEST_DATABASE_URL"):
        return make_conninfo(url, dbname=conninfo_to_dict(url).get("dbname") or TEST_DB)
    if listening("127.0.0.1", 5432):
        return make_conninfo(LOCAL_SERVER, dbname=TEST_DB)
    admin = embedded_postgres(Path(__file__).resolve().parent.parent / ".stage5" / "test-pgdata")
    return make_conninfo(admin, dbname=TEST_DB)


def _create_database(url: str) -> None:
    """The test database, created through the server's `postgres` database when missing."""
    name = conninfo_to_dict(url).get("dbname") or TEST_DB
    with psycopg.connect(make_conninfo(url, dbname="postgres"), autocommit=True, connect_timeout=5) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            pass  # another xdist worker created it a moment ago


@pytest.fixture(scope="session")
def pg_url() -> str:
    url = _test_database_url()
    try:
        with database_turn(url):
            _create_database(url)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"tests need PostgreSQL at {url} (bash .ci/run starts it; STAGE5_TEST_DATABASE_URL names another): {exc}"
        )
    return url


@pytest.fixture(autouse=True)
def _database_turn(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test using the database holds a shared turn at its server for its whole life (set-up and
    teardown included); the test that restarts the server (postgres_cluster) holds it alone."""
    if "pg_url" not in request.fixturenames:
        yield
        return
    url = request.getfixturevalue("pg_url")  # session-scoped: set up already, or now
    with database_turn(url, alone="postgres_cluster" in request.fixturenames):
        yield


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


@pytest.fixture
def slot_store(pg_url: str, schema: str) -> Iterator[SlotStore]:
    """`schedule_slots` in this test's schema (migrated)."""

    async def init() -> None:
        conn = await connect(pg_url, schema)
        await migrate(conn)
        await conn.close()

    asyncio.run(init())
    store = SlotStore(pg_url, schema)
    yield store
    store.close()


@pytest.fixture
def postgres_cluster(pg_url: str) -> Iterator[tuple[str, str]]:
    """(version, name) of the local PostgreSQL cluster serving the test database, for a test that restarts
    it. Skipped unless that server is a cluster of this machine that pg_ctlcluster can restart; the test
    holds the database alone (_database_turn) and PostgreSQL is left up, whatever the test did."""
    cluster = _restartable_cluster(pg_url)
    yield cluster
    _ensure_up(cluster, pg_url)


def _restartable_cluster(url: str) -> tuple[str, str]:
    where = conninfo_to_dict(url)
    host, port = where.get("host") or "", str(where.get("port") or 5432)
    if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("/"):
        pytest.skip(f"restarts PostgreSQL: the test database is on {host!r}, not a cluster of this machine")
    if not shutil.which("pg_lsclusters") or not shutil.which("pg_ctlcluster"):
        pytest.skip("restarts PostgreSQL: pg_lsclusters/pg_ctlcluster (postgresql-common) are not installed")
    listed = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=False).stdout
    for line in listed.splitlines():
        version, name, cluster_port, status, owner = line.split()[:5]
        if cluster_port == port and status == "online":
            if os.geteuid() != 0 and os.environ.get("USER") != owner:
                pytest.skip(f"restarts PostgreSQL: cluster {version}/{name} belongs to {owner}, not to this user")
            return version, name
    pytest.skip(f"restarts PostgreSQL: no online cluster of this machine listens on port {port} ({url})")


def _ensure_up(cluster: tuple[str, str], url: str) -> None:
    """Start the cluster if the test left it down; wait until it answers."""
    version, name = cluster
    status = subprocess.run(["pg_ctlcluster", version, name, "status"], capture_output=True, check=False)
    if status.returncode != 0:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "start"], check=False)

    def answers() -> bool:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return True
        except psycopg.OperationalError:
            return False

    wait_until(answers, 60, f"PostgreSQL {version}/{name} to answer again (pg_ctlcluster {version} {name} start)")


# --- Redis --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The shared Redis the tests use (each in a namespace of its own): STAGE5_TEST_REDIS_URL, else local."""
    url = os.environ.get("STAGE5_TEST_REDIS_URL") or LOCAL_TEST_REDIS
    try:
        redis.Redis.from_url(url, socket_connect_timeout=5).ping()
    except redis.RedisError as exc:
        pytest.fail(f"tests need Redis at {url} (bash .ci/run starts it; STAGE5_TEST_REDIS_URL names another): {exc}")
    return url


@pytest.fixture
def private_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Redis of this test's own, so it can be stopped mid-run without touching the shared one."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is needed for this test (apt-get install redis-server)")
    for attempt in range(3):  # another process may take the free port before redis-server binds it
        port = free_port()
        try:
            proc = start_redis(port)
            break
        except AssertionError:
            if attempt == 2:
                raise
    yield f"redis://127.0.0.1:{port}/0", proc
    proc.kill()
    proc.wait()


# --- the test world and its replicas ------------------------------------------------------------


@pytest.fixture(scope="session")
def small_world() -> World:
    return build_world(SEED, SCALE)


@pytest.fixture(scope="session")
def replica() -> Iterator[ReplicaProcess]:
    """A healthy replica of the test world, shared by the tests of a session (or of an xdist worker)."""
    with ReplicaProcess(seed=SEED, scale=SCALE) as process:
        yield process


@pytest.fixture
def replica_with() -> Iterator[Callable[..., ReplicaProcess]]:
    """A replica of its own, with faults (`Faults` or its knobs), another day, scale or seed:
    `with replica_with(latency_ms=50) as slow:`. Started when entered; stopped at the end of the test if
    the test did not."""
    made: list[ReplicaProcess] = []

    def make(
        faults: Faults | None = None, *, seed: int = SEED, scale: float = SCALE, day: int = 0, **knobs: Any
    ) -> ReplicaProcess:
        if faults is not None and knobs:
            raise TypeError("replica_with: give a Faults or its knobs, not both")
        process = ReplicaProcess(seed, scale, faults or Faults(**knobs), day=day)
        made.append(process)
        return process

    yield make
    for process in made:
        process.stop()
