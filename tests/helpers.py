"""Helpers shared by several test modules (pytest puts this folder on sys.path)."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import psutil
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

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


def wait_for_port(port: int, tries: int = 100) -> None:
    """Until something listens on 127.0.0.1:port (a server child process starting)."""
    for _ in range(tries):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


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
