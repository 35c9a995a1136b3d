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

from stage5.cache import Kind, Mode, ResponseCache
from stage5.crawl.units import FailedUnit, Unit, run_unit
from stage5.fetch import Fetcher
from stage5.logs import log_event
from stage5.settings import Settings

log = logging.getLogger("stage5.worker")


def make_cache(settings: Settings, redis_url: str | None) -> ResponseCache:
    ttls = {Kind.SEARCH: settings.cache_ttl_search_s, Kind.DETAIL: settings.cache_ttl_detail_s,
            Kind.FAILED: settings.cache_ttl_failed_s}  # fmt: skip
    return ResponseCache(redis_url, settings.cache_namespace_or_site, ttls, Mode(settings.cache))


def snapshot(fetcher: Fetcher) -> dict[str, int]:
    """Cumulative counters of this worker, sent with every result."""
    cache = fetcher.cache.stats if fetcher.cache else None
    return {
        "requests": fetcher.stats.requests,
        "retries": fetcher.stats.retries,
        "failures": fetcher.stats.failures,
        "bytes": fetcher.stats.bytes,
        **{f"cache_{k}": v for k, v in (asdict(cache) if cache else {}).items()},
    }


def worker_main(wid: int, settings: Settings, redis_url: str | None, conn: Connection, log_queue: Queue[Any],
                delay: float, concurrency: int) -> None:  # fmt: skip
    """Entry point of the process (spawned by the master)."""
    root = logging.getLogger("stage5")
    root.handlers[:] = [logging.handlers.QueueHandler(log_queue)]
    root.setLevel(logging.INFO)
    try:
        asyncio.run(_serve(wid, settings, redis_url, conn, delay, concurrency))
    except KeyboardInterrupt:
        pass  # the master decides what happens to our units


async def _serve(wid: int, settings: Settings, redis_url: str | None, conn: Connection, delay: float,
                 concurrency: int) -> None:  # fmt: skip
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
