"""The scheduler: fires jobs on their cron in one timezone, never twice for a slot, never on top of a run.

Rules, per job, at each tick:
- The slots due since the last tick are computed in the job's timezone (its own, else the scheduler's),
  stored in UTC.
- A job's slots count from when it was first seen: its last recorded slot, else its creation in the
  console, else the scheduler's start; never from before it existed (a new every-minute job records no
  missed slots from the hour before).
- A slot is claimed in `schedule_slots` first (primary key job + slot): of several schedulers on one
  database, exactly one gets it.
- After downtime, only the latest missed slot runs, and only within `grace_s`; older ones are
  recorded `missed` (one catch-up run, never a burst).
- If a crawl holds the crawl lock (a 26-hour run, a manual run), the slot is `skipped` and recorded
  with the holder (overlap=skip), or the run is started to wait for the lock up to
  `wait_timeout_s` (overlap=wait). The next slot runs as usual.
- `min_gap_s`: a slot less than this after the job's last run ended is `skipped`.
- A run past `timeout_s` is stopped with SIGTERM, which leaves it interrupted and resumable; the
  next slot resumes it.

Time, the crawl lock and processes come in through `Clock` and `Launcher`, so the rules are tested with
a fake clock over days without sleeping.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Protocol

from stage5.logs import log_event
from stage5.schedule.jobs import Job
from stage5.storage.jobs import job_created
from stage5.storage.slots import SlotStore

log = logging.getLogger("stage5.schedule")


class Launcher(Protocol):
    jobs: tuple[Job, ...]

    def lock_holder(self) -> str | None: ...  # who holds the crawl lock, None when free
    def start(self, job: Job, slot: datetime) -> int: ...  # pid of the run
    def finished(self) -> dict[str, datetime]: ...  # job -> when its last run ended (polls processes)
    def running_since(self, job: Job) -> datetime | None: ...
    def stop(self, job: Job) -> None: ...  # SIGTERM: the run stops resumable


@dataclass
class SlotDecision:
    job: str
    slot: datetime
    status: str  # started | skipped | missed | taken (claimed by another scheduler)
    reason: str = ""


class Scheduler:
    """Decides, at each `tick()`, which jobs' slots fire, are skipped or were missed (rules above),
    records every decision in `schedule_slots` and starts runs through its Launcher."""

    def __init__(
        self,
        jobs: Sequence[Job],
        tz: tzinfo,
        store: SlotStore,
        launcher: Launcher,
        clock: Callable[[], datetime],
        name: str,
    ) -> None:
        self.jobs, self.tz, self.store, self.launcher, self.clock, self.name = jobs, tz, store, launcher, clock, name
        now = clock()
        # Start where we left off, but never further back than the grace window nor before the job existed.
        self.cursor = {j.name: self._start(j, now) for j in jobs}
        self.last_end: dict[str, datetime] = {}

    def _start(self, job: Job, now: datetime) -> datetime:
        since = self.store.last_slot(job.name) or job_created(self.store.conn, job.name) or now
        return max(now - timedelta(seconds=job.grace_s), min(since, now))

    def set_jobs(self, jobs: Sequence[Job]) -> None:
        """Take a new job list (the console changed it): a new job starts from now, not from the past."""
        now = self.clock()
        self.cursor = {j.name: self.cursor.get(j.name, now) for j in jobs}
        self.jobs = jobs
        self.launcher.jobs = tuple(jobs)

    def run_now(self, job: Job) -> SlotDecision:
        """Fire `job` now, as its cron would: the same slot record, lock and overlap rules."""
        now = self.clock().replace(microsecond=0)
        return self._fire(job, now, now)

    def next_fires(self, n: int = 3) -> dict[str, list[datetime]]:
        now = self.clock()
        return {j.name: j.next_fires(now, j.zone(self.tz), n) for j in self.jobs}

    def tick(self) -> list[SlotDecision]:
        now = self.clock()
        self.last_end.update(self.launcher.finished())
        decisions: list[SlotDecision] = []
        for job in self.jobs:
            self._enforce_timeout(job, now)
            due = job.fires_after(self.cursor[job.name], job.zone(self.tz), now)
            self.cursor[job.name] = now
            if not due:
                continue
            *older, latest = due
            for slot in older:  # each recorded in the history; one log line says how many
                decisions.append(self._record(job, slot, "missed", "scheduler was not running", quiet=True))
            if older:
                log_event(
                    log,
                    "slots_missed",
                    logging.WARNING,
                    job=job.name,
                    count=len(older),
                    first=older[0].isoformat(),
                    last=older[-1].isoformat(),
                    reason="scheduler was not running",
                )
            if now - latest > timedelta(seconds=job.grace_s):
                decisions.append(self._record(job, latest, "missed", f"more than grace_s={job.grace_s:.0f}s late"))
            else:
                decisions.append(self._fire(job, latest, now))
        return decisions

    def _enforce_timeout(self, job: Job, now: datetime) -> None:
        since = self.launcher.running_since(job)
        if since is not None and now - since > timedelta(seconds=job.timeout_s):
            log_event(log, "run_timeout", logging.WARNING, job=job.name, running_s=(now - since).total_seconds())
            self.launcher.stop(job)

    def _record(self, job: Job, slot: datetime, status: str, reason: str, quiet: bool = False) -> SlotDecision:
        if not self.store.claim(job.name, slot, self.name):
            return SlotDecision(job.name, slot, "taken", "claimed by another scheduler")
        self.store.decide(job.name, slot, status, reason)
        if not quiet:
            log_event(log, f"slot_{status}", logging.WARNING, job=job.name, slot=slot.isoformat(), reason=reason)
        return SlotDecision(job.name, slot, status, reason)

    def _fire(self, job: Job, slot: datetime, now: datetime) -> SlotDecision:
        if not self.store.claim(job.name, slot, self.name):
            return SlotDecision(job.name, slot, "taken", "claimed by another scheduler")
        ended = self.last_end.get(job.name)
        if job.min_gap_s and ended and now - ended < timedelta(seconds=job.min_gap_s):
            return self._decided(
                job, slot, "skipped", f"last run ended {ended.isoformat()}, min_gap_s={job.min_gap_s:.0f}"
            )
        if self.launcher.running_since(job) is not None:
            return self._decided(job, slot, "skipped", "this job's previous run is still going")
        holder = self.launcher.lock_holder() if job.kind == "crawl" else None
        if holder and job.overlap == "skip":
            return self._decided(job, slot, "skipped", f"crawl lock held by {holder}")
        pid = self.launcher.start(job, slot)
        return self._decided(job, slot, "started", "waiting for the crawl lock" if holder else "", pid)

    def _decided(self, job: Job, slot: datetime, status: str, reason: str, pid: int | None = None) -> SlotDecision:
        self.store.decide(job.name, slot, status, reason, pid)
        level = logging.INFO if status == "started" else logging.WARNING
        log_event(log, f"slot_{status}", level, job=job.name, slot=slot.isoformat(), reason=reason or None, pid=pid)
        return SlotDecision(job.name, slot, status, reason)
