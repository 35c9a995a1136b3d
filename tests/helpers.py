"""Helpers shared by several test modules (pytest puts this folder on sys.path): the test world, waits on
conditions, the one way to query a test schema, crawl command lines, services started by tests."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import inspect
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import psutil
import psycopg
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

# The test world: 250 refill stores over 25 districts, a full crawl in seconds.
SEED, SCALE = 5, 0.1

T = TypeVar("T")


# --- waits on conditions ------------------------------------------------------------------------


def wait_until(condition: Callable[[], T], timeout: float, what: str, every: float = 0.05) -> T:
    """Poll `condition` until it answers something true, and return that; past `timeout` seconds, fail
    saying what did not happen (`what`: the condition in words)."""
    deadline = time.monotonic() + timeout
    while not (answer := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g} s for {what}: it did not happen")
        time.sleep(every)
    return answer


async def until(condition: Callable[[], T | Awaitable[T]], timeout: float, what: str, every: float = 0.05) -> T:
    """`wait_until` inside an event loop: the loop runs between polls; `condition` may be async."""
    deadline = time.monotonic() + timeout
    while True:
        answer = condition()
        if inspect.isawaitable(answer):
            answer = await answer
        if answer:
            return answer  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g} s for {what}: it did not happen")
        await asyncio.sleep(every)


# --- the test schema and crawl command lines ----------------------------------------------------


class Dataset(Protocol):
    """Where a run stores: Settings (make_settings) is one."""

    @property
    def database_url(self) -> str | None: ...

    @property
    def db_schema(self) -> str: ...


def query(dataset: Dataset, text: str | sql.Composable, *params: Any) -> list[tuple[Any, ...]]:
    """The rows of `text` run in the dataset's schema (its search_path), committed; [] for a statement that
    returns none. The one way tests read and touch a test schema."""
    with psycopg.connect(dataset.database_url or "", autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(dataset.db_schema)))
        cursor = conn.execute(text, params or None)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def crawl_command(settings: Any, *flags: str, database: bool = True) -> list[str]:
    """`python -m stage5 crawl` as a user types it, for the site, districts, schema and log folder of
    `settings` (and its database, unless `database=False`: then the environment's), then `flags`."""
    command = [sys.executable, "-m", "stage5", "crawl", "--site", settings.site]
    command += ["--districts", ",".join(settings.districts)]
    if database:
        command += ["--database-url", settings.database_url]
    command += ["--db-schema", settings.db_schema, "--log-dir", str(settings.log_dir)]
    return [*command, *flags]


@contextlib.contextmanager
def database_turn(url: str, alone: bool = False) -> Iterator[None]:
    """A turn at the database server of `url`, shared with every other test (in any process of this
    machine: xdist workers, other pytest sessions), or `alone` (the test that restarts the server): it waits
    until the tests using the server are done, and new ones wait for it. A lock that lets a waiting writer go
    first, from two flock files: readers pass the gate only to take their shared turn; the writer holds the
    gate while it waits for and holds its turn."""
    where = conninfo_to_dict(url)
    server = re.sub(r"[^\w.-]", "_", f"{where.get('host') or 'local'}-{where.get('port') or 5432}")
    folder = Path(tempfile.gettempdir())
    with (
        open(folder / f"stage5-tests-{server}.gate", "a") as gate,
        open(folder / f"stage5-tests-{server}.turn", "a") as turn,
    ):
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(turn, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            if not alone:
                fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(turn, fcntl.LOCK_UN)
            if alone:
                fcntl.flock(gate, fcntl.LOCK_UN)


# --- processes and ports ------------------------------------------------------------------------

HOLD = """
import asyncio, sys, time
from stage5.storage.db import connect
from stage5.storage.lock import try_crawl_lock
async def main():
    conn = await connect(sys.argv[1], sys.argv[2], role="holder")
    print("locked" if await try_crawl_lock(conn, sys.argv[2]) else "busy", flush=True)
    await asyncio.sleep(float(sys.argv[3]))
asyncio.run(main())
"""


def hold_lock(pg_url: str, schema: str, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, pg_url, schema, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def worker_processes(root: psutil.Process | None = None) -> list[psutil.Process]:
    """The crawl workers below `root` (default: this process): forked by the forkserver, or spawned."""

    def command(p: psutil.Process) -> str:
        try:
            return " ".join(p.cmdline())
        except psutil.Error:
            return ""

    found = []
    for p in (root or psutil.Process()).children(recursive=True):
        parent = p.parent()
        forked = "forkserver" in command(p) and parent is not None and "forkserver" in command(parent)
        if forked or "multiprocessing.spawn" in command(p):
            found.append(p)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30) -> None:
    """Until something listens on 127.0.0.1:port (a server child process starting)."""

    def answers() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return False

    wait_until(answers, timeout, f"something to listen on 127.0.0.1:{port}", every=0.1)


def start_redis(port: int) -> subprocess.Popen[bytes]:
    """redis-server on 127.0.0.1:port without persistence, returned once it is the one listening there (a
    port another process took between free_port() and now fails here, not in the test)."""
    server = shutil.which("redis-server") or "redis-server"
    args = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)

    def listening_itself() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"redis-server for port {port} exited ({proc.returncode}): is the port taken?")
        try:
            sockets = psutil.Process(proc.pid).net_connections("tcp")
        except psutil.Error:
            return False
        return any(s.status == psutil.CONN_LISTEN and s.laddr.port == port for s in sockets)

    try:
        wait_until(listening_itself, 30, f"redis-server to listen on 127.0.0.1:{port}")
    except AssertionError:
        proc.kill()
        proc.wait()
        raise
    return proc


# --- the console under test ---------------------------------------------------------------------

JSON = {"Content-Type": "application/json"}


class Console:
    """A client of a console served on loopback: `call` answers (status, parsed JSON body or None)."""

    def __init__(self, server: TestServer, session: ClientSession) -> None:
        self.server, self.session = server, session

    async def call(self, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body)
        url = self.server.make_url(path)
        async with self.session.request(method, url, data=data, headers={**JSON, **headers}) as answer:
            return answer.status, json.loads(await answer.text() or "null")


@contextlib.asynccontextmanager
async def serving(settings: Any) -> AsyncIterator[Console]:
    """The console on a free loopback port (its scheduler ticking hourly), and a client session to it."""
    from stage5.web.app import make_app

    server = TestServer(make_app(settings, tick_s=3600), host="127.0.0.1")
    await server.start_server()
    try:
        async with ClientSession() as session:
            yield Console(server, session)
    finally:
        await server.close()
