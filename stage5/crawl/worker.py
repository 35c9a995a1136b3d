"""A worker process: one asyncio loop, one aiohttp session, many units at once.

It takes messages from the master over a pipe — ("unit", Unit), ("limits", delay, concurrency),
("stop",) — and answers ("ready", …), ("result", …), ("bye", …). Its log records go to the
master's log files through a multiprocessing queue, so only the master writes (and rotates) them.
"""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import os
import threading
from dataclasses import asdict
from multiprocessing.connection import Connection
from multiprocessing.queues import Queue
from typing import Any

from stage5.cache import make_cache
from stage5.crawl.pipeline import run_unit
from stage5.fetch import Fetcher
from stage5.logs import log_event
from stage5.settings import Settings
from stage5.tallies import WorkerStats
from stage5.units import FailedUnit, Unit

log = logging.getLogger("stage5.worker")


def snapshot(fetcher: Fetcher) -> WorkerStats:
    """Cumulative counters of this worker, sent with every result."""
    cache = {f"cache_{k}": v for k, v in asdict(fetcher.cache.stats).items()} if fetcher.cache else {}
    s = fetcher.stats
    return WorkerStats(requests=s.requests, retries=s.retries, failures=s.failures, bytes=s.bytes, **cache)


def worker_main(
    wid: int,
    settings: Settings,
    redis_url: str | None,
    conn: Connection,
    log_queue: Queue[Any],
    delay: float,
    concurrency: int,
) -> None:
    """Entry point of the process (spawned by the master)."""
    root = logging.getLogger("stage5")
    root.handlers[:] = [logging.handlers.QueueHandler(log_queue)]
    root.setLevel(logging.INFO)
    try:
        asyncio.run(_serve(wid, settings, redis_url, conn, delay, concurrency))
    except KeyboardInterrupt:
        pass  # the master decides what happens to our units


async def _serve(
    wid: int, settings: Settings, redis_url: str | None, conn: Connection, delay: float, concurrency: int
) -> None:
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()

    def receive() -> None:  # a thread: Connection.recv blocks
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                message = ("stop",)
            loop.call_soon_threadsafe(inbox.put_nowait, message)
            if message[0] == "stop":
                return

    threading.Thread(target=receive, name=f"worker-{wid}-inbox", daemon=True).start()
    cache = make_cache(settings, redis_url)
    running: set[asyncio.Task[None]] = set()
    async with Fetcher(settings, cache) as fetcher:
        await fetcher.set_limits(delay, concurrency)
        conn.send(("ready", wid, os.getpid()))
        while True:
            message = await inbox.get()
            if message[0] == "stop":
                break
            if message[0] == "limits":
                await fetcher.set_limits(message[1], message[2])
                log_event(log, "worker_limits", worker=wid, delay_s=message[1], concurrency=message[2])
            elif message[0] == "unit":
                task = asyncio.create_task(_do(wid, message[1], fetcher, settings, conn))
                running.add(task)
                task.add_done_callback(running.discard)
        await asyncio.gather(*running)
        await cache.close()
        conn.send(("bye", wid, snapshot(fetcher)))


async def _do(wid: int, unit: Unit, fetcher: Fetcher, settings: Settings, conn: Connection) -> None:
    try:
        result = await run_unit(unit, fetcher, settings.page_size, settings.max_pages)
    except Exception as exc:  # a bug or an unforeseen answer: the unit fails alone, the worker goes on
        log_event(log, "unit_crashed", logging.ERROR, worker=wid, unit=unit.uid, error=repr(exc))
        failure = FailedUnit("unit", unit.district, f"unit {unit.uid}", repr(exc))
        conn.send(("failed", wid, unit.uid, failure, snapshot(fetcher)))
        return
    conn.send(("result", wid, result, snapshot(fetcher)))
