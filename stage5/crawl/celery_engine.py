"""Scale-out on Celery: the same units, run by Celery workers on any number of machines.

The master stays where it is (one writer, durable progress, the crawl lock); only the place where
units run changes. A task is one unit: idempotent (fetch, parse, validate; no writes), acknowledged
late and rejected when its worker dies, so the broker hands it to another worker. The broker and the
result backend are Redis, under their own key prefix (`stage5:celery:`).

    python -m stage5 worker                  # on each machine
    python -m stage5 crawl --engine celery   # anywhere: dispatches, follows, summarises
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import replace
from typing import Any

from celery import Celery

from stage5.cache import make_cache
from stage5.crawl.master import Master, WorkerHandle
from stage5.crawl.pipeline import run_unit
from stage5.errors import ServiceMissing
from stage5.fetch import Fetcher
from stage5.logs import log_event
from stage5.settings import Settings
from stage5.tallies import WorkerStats
from stage5.units import (
    FailedUnit,
    Result,
    Unit,
    result_from_json,
    result_to_json,
    unit_from_payload,
    unit_kind,
    unit_payload,
)

log = logging.getLogger("stage5.crawl")
KEY_PREFIX = "stage5:celery:"
app = Celery("stage5")


def configure(redis_url: str, visibility_s: int) -> Celery:
    app.conf.update(
        broker_url=redis_url,
        result_backend=redis_url,
        broker_transport_options={
            "global_keyprefix": KEY_PREFIX,
            "visibility_timeout": visibility_s,
            # Sweep for tasks of dead workers about as often as the timeout allows (kombu's default
            # cadence is ~100 s whatever the timeout).
            "unacked_restore_interval": max(1, min(10, visibility_s // 2)),
            "unacked_restore_throttle": 1,
        },
        result_backend_transport_options={"global_keyprefix": KEY_PREFIX},
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        result_expires=24 * 3600,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )
    return app


@app.task(name="stage5.unit", acks_late=True, reject_on_worker_lost=True)
def unit_task(
    kind: str,
    uid: int,
    district: str,
    payload: dict[str, Any],
    settings_json: dict[str, Any],
    delay: float,
    concurrency: int,
) -> dict[str, Any]:
    """Run one unit in this worker process; the master writes what it returns. JSON in, JSON out.

    The message carries no secret: the settings come without service URLs or notify targets, and the
    cache is the Redis this worker was configured with (its broker)."""
    unit = unit_from_payload(uid, kind, district, payload)
    settings = Settings(**settings_json)

    async def run() -> Result:
        cache = make_cache(settings, app.conf.broker_url)
        try:
            async with Fetcher(settings, cache) as fetcher:
                await fetcher.set_limits(delay, concurrency)
                return await run_unit(unit, fetcher)
        finally:
            await cache.close()

    return result_to_json(asyncio.run(run()))


class CeleryMaster(Master):
    """The master with Celery in place of local worker processes."""

    POLL_S = 0.1

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        configure(self._broker(), self.settings.celery_visibility_s)
        self.remote = WorkerHandle(0, process=None, conn=None)  # type: ignore[arg-type]
        self.tasks: dict[int, Any] = {}  # uid -> AsyncResult
        self.sent_at: dict[int, float] = {}
        self._lock = threading.Lock()
        self._poller: threading.Thread | None = None
        self._totals = WorkerStats()  # summed over the results, for the live view

    def _broker(self) -> str:
        if not self.redis_url:
            raise ServiceMissing("--engine celery needs Redis for its broker: set REDIS_URL (or STAGE5_ENGINE=local)")
        return self.redis_url

    # Local-process machinery is not used: the workers are Celery's.
    def _active(self) -> list[WorkerHandle]:
        return [self.remote]

    def _ensure_workers(self) -> None:
        if self._poller is None:
            self.workers[0] = self.remote
            self._poller = threading.Thread(target=self._poll, args=(asyncio.get_running_loop(),), daemon=True)
            self._poller.start()

    def _check_processes(self) -> None:
        pass

    def _check_stalls(self) -> None:
        pass  # Celery's own visibility timeout hands a dead worker's task on; see _dispatch

    def _scale(self, decision: Any) -> None:
        pass

    def _send_limits(self) -> None:
        pass

    def _limits(self) -> tuple[float, int]:
        """Each task's share of the politeness budget: at most celery_tasks_in_flight run at once."""
        share = self.settings.celery_tasks_in_flight
        return self.settings.request_delay_s * share, max(1, self.settings.host_concurrency // share)

    def task_args(self, unit: Unit) -> tuple[Any, ...]:
        """What a task message carries: the unit, the shareable settings (no secrets), its politeness share."""
        delay, concurrency = self._limits()
        return (
            unit_kind(unit),
            unit.uid,
            unit.district,
            unit_payload(unit),
            self.settings.shareable(),
            delay,
            concurrency,
        )

    def _send_task(self, unit: Unit) -> None:
        args = self.task_args(unit)
        result = unit_task.apply_async(args)
        with self._lock:
            self.tasks[unit.uid] = result
        self.sent_at[unit.uid] = time.monotonic()

    def _dispatch(self, throttled: bool) -> None:
        # A task without an answer for twice the visibility timeout: its worker is gone and the broker
        # has not handed it on yet. Units are idempotent, so send it again; the first answer counts.
        overdue = time.monotonic() - 2 * self.settings.celery_visibility_s
        for uid, unit in list(self.remote.inflight.items()):
            if self.sent_at.get(uid, overdue) < overdue:
                log_event(log, "unit_redispatched", logging.WARNING, unit=uid, district=unit.district)
                self._send_task(unit)
        limit = 1 if throttled else self.settings.celery_tasks_in_flight
        while len(self.remote.inflight) < limit:
            unit = self._next_unit()
            if unit is None:
                return
            self._send_task(unit)
            self.remote.inflight[unit.uid] = unit
            self.writer.lease(unit.uid)

    def _poll(self, loop: asyncio.AbstractEventLoop) -> None:
        while not self.finishing:
            with self._lock:
                ready = [(uid, r) for uid, r in self.tasks.items() if r.ready()]
                for uid, _ in ready:
                    del self.tasks[uid]
            for uid, async_result in ready:
                loop.call_soon_threadsafe(self.events.put_nowait, self._event(uid, async_result))
            time.sleep(self.POLL_S)

    def _event(self, uid: int, async_result: Any) -> tuple[Any, ...]:
        if async_result.successful():
            result = result_from_json(async_result.result)
            self._totals.add(result.tally)
            return ("result", 0, result, replace(self._totals))
        unit = self.remote.inflight.get(uid)
        failure = FailedUnit(
            "unit", unit.district if unit else "", f"celery task for unit {uid}", repr(async_result.result)
        )
        return ("failed", 0, uid, failure, replace(self._totals))

    async def _stop_all(self) -> None:
        self.finishing = True
        with self._lock:
            pending = list(self.tasks.values())
            self.tasks.clear()
        for async_result in pending:  # interrupted: their units stay leased and return to the queue
            async_result.revoke()
