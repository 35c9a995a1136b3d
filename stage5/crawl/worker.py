"""A worker process: one asyncio loop, one aiohttp session, many units at once.

It takes messages from the pool over a pipe — RunUnit, SetLimits, StopWorker — and answers
WorkerReady, UnitAnswered, UnitCrashed, Alive every few seconds, Bye, or Fatal when it cannot start
(the dataclasses below). Its log records go to the master's log files through a multiprocessing
queue, so only the master writes (and rotates) them.
"""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import os
import threading
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from multiprocessing.queues import Queue
from typing import Any

import redis.asyncio

from stage5.cache import make_cache
from stage5.crawl.pipeline import run_unit
from stage5.crawl.shared_gate import SharedGates
from stage5.fetch import Fetcher
from stage5.logs import log_event
from stage5.settings import Settings
from stage5.tallies import WorkerStats
from stage5.units import FailedUnit, Result, Unit

log = logging.getLogger("stage5.worker")
HEARTBEAT_S = 2.0


# --- pool -> worker ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RunUnit:
    unit: Unit


@dataclass(frozen=True)
class SetLimits:
    delay: float  # seconds between two starts per host
    concurrency: int  # requests in flight per host
    # False: this worker's share of the host's budget, kept by its own gate. True: the whole host's budget,
    # kept in Redis with every other worker (stage5.crawl.shared_gate); fixed when the worker starts.
    shared: bool = False
    sharers: int = 1  # worker processes sharing the budget (each one's share while Redis is away)


@dataclass(frozen=True)
class StopWorker:
    """Finish the units in hand, then say Bye."""


ToWorker = RunUnit | SetLimits | StopWorker


# --- worker -> pool ---------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerReady:
    wid: int
    pid: int


@dataclass(frozen=True)
class UnitAnswered:
    wid: int
    result: Result
    stats: WorkerStats  # cumulative counters of this worker


@dataclass(frozen=True)
class UnitCrashed:
    wid: int
    uid: int
    failure: FailedUnit
    stats: WorkerStats


@dataclass(frozen=True)
class Alive:
    wid: int


@dataclass(frozen=True)
class Bye:
    wid: int
    stats: WorkerStats


@dataclass(frozen=True)
class Fatal:
    wid: int
    cause: str


@dataclass(frozen=True)
class PipeClosed:
    """Not sent by a worker: the pool's reader says the pipe ended (the worker is gone)."""

    wid: int


FromWorker = WorkerReady | UnitAnswered | UnitCrashed | Alive | Bye | Fatal | PipeClosed


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
    limits: SetLimits,
) -> None:
    """Entry point of the process (spawned by the master)."""
    root = logging.getLogger("stage5")
    root.handlers[:] = [logging.handlers.QueueHandler(log_queue)]
    root.setLevel(logging.INFO)
    try:
        asyncio.run(_serve(wid, settings, redis_url, conn, limits))
    except KeyboardInterrupt:
        pass  # the master decides what happens to our units
    except Exception as exc:  # tell the master why, so a worker that cannot start stops the run
        try:
            conn.send(Fatal(wid, f"{type(exc).__name__}: {exc}"[:500]))
        except (OSError, ValueError):
            pass
        raise SystemExit(1) from None


async def _serve(wid: int, settings: Settings, redis_url: str | None, conn: Connection, limits: SetLimits) -> None:
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[ToWorker] = asyncio.Queue()

    def receive() -> None:  # a thread: Connection.recv blocks
        while True:
            try:
                message: ToWorker = conn.recv()
            except (EOFError, OSError):
                message = StopWorker()
            loop.call_soon_threadsafe(inbox.put_nowait, message)
            if isinstance(message, StopWorker):
                return

    threading.Thread(target=receive, name=f"worker-{wid}-inbox", daemon=True).start()
    cache = make_cache(settings, redis_url)
    running: set[asyncio.Task[None]] = set()
    shared = redis.asyncio.Redis.from_url(redis_url) if limits.shared and redis_url else None
    hold_s = settings.request_timeout_s + 5
    gates = SharedGates(shared, settings.cache_namespace_or_site, hold_s, limits.sharers) if shared else None
    async with Fetcher(settings, cache, gates=gates) as fetcher:
        await fetcher.set_limits(limits.delay, limits.concurrency)
        conn.send(WorkerReady(wid, os.getpid()))
        heartbeat = asyncio.create_task(_heartbeat(wid, conn))
        try:
            await _take_messages(wid, inbox, fetcher, settings, conn, running)
        except asyncio.CancelledError:
            # Ctrl-C reached this process too (asyncio.run cancels us): cancel the units before the session
            # closes, so none of them ends as a "failed" fetch; the master returns them to the queue.
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            raise
        await asyncio.gather(*running)
        heartbeat.cancel()
        await cache.close()
        if gates is not None and shared is not None:
            await gates.settle()
            await shared.aclose()
        conn.send(Bye(wid, snapshot(fetcher)))


async def _take_messages(
    wid: int,
    inbox: asyncio.Queue[ToWorker],
    fetcher: Fetcher,
    settings: Settings,
    conn: Connection,
    running: set[asyncio.Task[None]],
) -> None:
    """Units and limits from the master, until it says stop."""
    while True:
        message = await inbox.get()
        if isinstance(message, StopWorker):
            return
        if isinstance(message, SetLimits):
            await fetcher.set_limits(message.delay, message.concurrency)
            log_event(log, "worker_limits", worker=wid, delay_s=message.delay, concurrency=message.concurrency)
        else:
            task = asyncio.create_task(_do(wid, message.unit, fetcher, settings, conn))
            running.add(task)
            task.add_done_callback(running.discard)


async def _heartbeat(wid: int, conn: Connection) -> None:
    """'alive' every HEARTBEAT_S from the event loop: a loop stuck in a parse stops saying it, and the
    master recycles the worker (a thread could not tell, it would go on beating)."""
    while True:
        await asyncio.sleep(HEARTBEAT_S)
        conn.send(Alive(wid))


async def _do(wid: int, unit: Unit, fetcher: Fetcher, settings: Settings, conn: Connection) -> None:
    try:
        result = await run_unit(unit, fetcher)
    except Exception as exc:  # a bug or an unforeseen answer: the unit fails alone, the worker goes on
        log_event(log, "unit_crashed", logging.ERROR, worker=wid, unit=unit.uid, error=exc)
        failure = FailedUnit("unit", unit.district, f"unit {unit.uid}", repr(exc))
        conn.send(UnitCrashed(wid, unit.uid, failure, snapshot(fetcher)))
        return
    conn.send(UnitAnswered(wid, result, snapshot(fetcher)))
