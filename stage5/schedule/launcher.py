"""Runs for the scheduler: each job a `python -m stage5 …` child process, so a timeout can stop it
(SIGTERM: interrupted, resumable) and the scheduler outlives any run."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime

from stage5.logs import log_event
from stage5.schedule.jobs import Job
from stage5.settings import Settings
from stage5.storage.db import connect
from stage5.storage.lock import crawl_lock_holder

log = logging.getLogger("stage5.schedule")
FAILED = 1  # stage5's exit code for a failed run (others: done, partial, skipped, interrupted)


class ProcessLauncher:
    def __init__(self, settings: Settings, db_url: str, jobs: tuple[Job, ...]) -> None:
        self.settings, self.db_url, self.jobs = settings, db_url, jobs
        self.procs: dict[str, tuple[subprocess.Popen[bytes], datetime, int]] = {}  # job -> (process, started, tries)

    def command(self, job: Job) -> list[str]:
        common = [
            "--db-schema",
            self.settings.db_schema,
            "--log-dir",
            str(self.settings.log_dir),
        ]
        if job.kind == "cleanup":
            return [sys.executable, "-m", "stage5", "cleanup", "--retention-days", str(job.retention_days), *common]
        cmd = [
            sys.executable,
            "-m",
            "stage5",
            "crawl",
            "--resume-if-any",  # a run a slot left unfinished goes on; else a new one
            "--trigger",
            "schedule",
            "--job",
            job.name,
            "--site",
            self.settings.site,
            "--overlap",
            job.overlap,
            "--lock-wait-s",
            str(job.wait_timeout_s),
            *common,
        ]
        if job.districts:
            cmd += ["--districts", ",".join(job.districts)]
        return cmd

    def environment(self) -> dict[str, str]:
        """The child's environment: service URLs (and their passwords) go here, never on the command
        line, where `ps` shows them to every user of the machine."""
        env = {**os.environ, "DATABASE_URL": self.db_url}
        if self.settings.redis_url:
            env["REDIS_URL"] = self.settings.redis_url
        return env

    def lock_holder(self) -> str | None:
        async def ask() -> str | None:
            conn = await connect(self.db_url, self.settings.db_schema)
            try:
                holder = await crawl_lock_holder(conn, self.settings.db_schema)
            finally:
                await conn.close()
            return f"{holder['application']} (since {holder['since']})" if holder else None

        return asyncio.run(ask())

    def start(self, job: Job, slot: datetime, tries: int = 1) -> int:
        proc = subprocess.Popen(self.command(job), stdout=subprocess.DEVNULL, env=self.environment())
        self.procs[job.name] = (proc, datetime.now(UTC), tries)
        log_event(log, "run_launched", job=job.name, slot=slot.isoformat(), pid=proc.pid, attempt=tries)
        return proc.pid

    def finished(self) -> dict[str, datetime]:
        ended: dict[str, datetime] = {}
        for name, (proc, _, tries) in list(self.procs.items()):
            if proc.poll() is None:
                continue
            del self.procs[name]
            ended[name] = datetime.now(UTC)
            log_event(log, "run_exited", job=name, pid=proc.pid, exit_code=proc.returncode)
            job = self._job(name)
            if proc.returncode == FAILED and job and tries <= job.retries:
                self.start(job, datetime.now(UTC), tries + 1)  # --resume-if-any picks up where it failed
        return ended

    def running_since(self, job: Job) -> datetime | None:
        entry = self.procs.get(job.name)
        return entry[1] if entry and entry[0].poll() is None else None

    def stop(self, job: Job) -> None:
        entry = self.procs.get(job.name)
        if entry and entry[0].poll() is None:
            entry[0].send_signal(signal.SIGTERM)

    def _job(self, name: str) -> Job | None:
        return next((j for j in self.jobs if j.name == name), None)
