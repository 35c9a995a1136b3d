"""`python -m stage5 schedule` (and the scheduler inside `stage5 serve`): the long-running scheduler.

Jobs come from `scheduled_jobs` (the console's) when that table holds any, else from the schedule file
or the defaults; they are read again at every tick, so a change made in the console applies within
one tick without a restart. While the console has paused the scheduler, no slot fires.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from stage5.errors import JobError
from stage5.logs import log_event
from stage5.schedule.jobs import Job, job_from_row, load_jobs
from stage5.schedule.launcher import ProcessLauncher
from stage5.schedule.scheduler import Scheduler, SlotDecision
from stage5.services import database_url
from stage5.settings import Settings
from stage5.storage.jobs import any_jobs, enabled_jobs, paused
from stage5.storage.schema import migrate, on_database
from stage5.storage.slots import SlotStore

log = logging.getLogger("stage5.schedule")
TICK_S = 30.0


class SchedulerService:
    """A Scheduler with its job source, pause switch and a stop that takes effect at once."""

    def __init__(self, settings: Settings, tick_s: float = TICK_S) -> None:
        self.settings, self.tick_s = settings, tick_s
        self.file_jobs = load_jobs(settings.schedule_file)
        url = database_url(settings)
        on_database(url, settings.db_schema, migrate)
        self.store = SlotStore(url, settings.db_schema)
        self.tz = ZoneInfo(settings.timezone)
        name = f"scheduler pid={os.getpid()} host={socket.gethostname()}"
        launcher = ProcessLauncher(settings, url, self.file_jobs)
        self.scheduler = Scheduler(self.jobs(), self.tz, self.store, launcher, lambda: datetime.now(UTC), name)
        self.stopping = threading.Event()
        self.lock = threading.Lock()  # one tick or run-now at a time (the store's connection is shared)

    def jobs(self) -> tuple[Job, ...]:
        if not any_jobs(self.store.conn):
            return self.file_jobs
        jobs = []
        for row in enabled_jobs(self.store.conn):
            try:
                jobs.append(job_from_row(row.name, row.kind, row.cron, row.params, row.timezone))
            except JobError as exc:  # edited by hand into something unusable: that job alone is skipped
                log_event(log, "job_invalid", logging.ERROR, job=row.name, reason=exc)
        return tuple(jobs)

    def tick(self) -> list[SlotDecision]:
        with self.lock:
            self.scheduler.set_jobs(self.jobs())
            if paused(self.store.conn):
                self.scheduler.cursor = dict.fromkeys(self.scheduler.cursor, self.scheduler.clock())
                return []
            return self.scheduler.tick()

    def run_now(self, job: Job) -> SlotDecision:
        with self.lock:
            return self.scheduler.run_now(job)

    def next_fires(self, n: int = 3) -> dict[str, list[datetime]]:
        """The next fire times of the jobs as they are now (read afresh: a job just saved shows at once)."""
        with self.lock:
            now = self.scheduler.clock()
            return {j.name: j.next_fires(now, j.zone(self.tz), n) for j in self.jobs()}

    def planned(self) -> tuple[Job, ...]:
        """The jobs the scheduler runs: the stored ones, else the schedule file's or the defaults."""
        with self.lock:
            return self.jobs()

    def loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self.tick()
            except Exception as exc:  # one failed tick (a database blip, a bug) must not end the schedule
                log_event(log, "scheduler_tick_failed", logging.ERROR, error=f"{type(exc).__name__}: {exc}")
            self.stopping.wait(self.tick_s)  # a stop (SIGTERM, the console closing) ends the wait at once

    def close(self) -> None:
        self.stopping.set()
        with self.lock:
            self.store.close()


def serve(settings: Settings, once: bool = False) -> int:
    service = SchedulerService(settings)
    print(f"stage5 schedule ({settings.timezone}); next fire times:")
    fires = service.next_fires()
    for job in service.scheduler.jobs:
        when = ", ".join(f"{t:%Y-%m-%d %H:%M %Z}" for t in fires[job.name])
        print(f"  {job.name:16} {job.cron:14} {job.kind:8} overlap={job.overlap:4}  {when}")
    if once:
        service.close()
        return 0
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: service.stopping.set())
    service.loop()
    service.close()
    print("stage5 schedule: stopped (runs already started go on)")
    return 0
