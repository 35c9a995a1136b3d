"""`python -m stage5 schedule`: the long-running scheduler process."""

from __future__ import annotations

import os
import signal
import socket
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from stage5.schedule.jobs import load_jobs
from stage5.schedule.launcher import ProcessLauncher
from stage5.schedule.scheduler import Scheduler
from stage5.services import database_url
from stage5.settings import Settings
from stage5.storage.schema import migrate, on_database
from stage5.storage.slots import SlotStore

TICK_S = 30.0


def serve(settings: Settings, once: bool = False) -> int:
    jobs = load_jobs(settings.schedule_file)
    url = database_url(settings)
    on_database(url, settings.db_schema, migrate)
    tz = ZoneInfo(settings.timezone)
    store = SlotStore(url, settings.db_schema)
    name = f"scheduler pid={os.getpid()} host={socket.gethostname()}"
    scheduler = Scheduler(jobs, tz, store, ProcessLauncher(settings, url, jobs), lambda: datetime.now(UTC), name)
    print(f"stage5 schedule ({settings.timezone}); next fire times:")
    for job in jobs:
        fires = ", ".join(f"{t:%Y-%m-%d %H:%M %Z}" for t in scheduler.next_fires()[job.name])
        print(f"  {job.name:16} {job.cron:14} {job.kind:8} overlap={job.overlap:4}  {fires}")
    if once:
        store.close()
        return 0
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping:
        scheduler.tick()
        time.sleep(TICK_S)
    store.close()
    print("stage5 schedule: stopped (runs already started go on)")
    return 0
