"""Helpers shared by several test modules (pytest puts this folder on sys.path)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import psutil

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
