"""Scheduled jobs: what runs when, read from a small TOML file or the defaults.

[[job]]
name = "crawl-all"
cron = "0 1 * * *"          # 01:00 in the scheduler's timezone (Asia/Seoul by default)
kind = "crawl"
overlap = "skip"            # or "wait" (up to wait_timeout_s)
min_gap_s = 0               # also skip when the last run of this job ended less than this ago
grace_s = 3600              # after downtime, the latest missed slot still runs within this window
timeout_s = 108000          # a run still going after this is stopped (resumable)

[[job]]
name = "cleanup-weekly"
cron = "0 4 * * 0"
kind = "cleanup"
retention_days = 90
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from croniter import croniter

from stage5.errors import JobError
from stage5.site.seoul import DISTRICT_NAMES


@dataclass(frozen=True)
class Job:
    name: str
    cron: str = "0 1 * * *"
    kind: str = "crawl"  # crawl | cleanup
    districts: tuple[str, ...] = ()  # empty: all 25
    overlap: str = "skip"  # skip | wait
    wait_timeout_s: float = 3600.0
    min_gap_s: float = 0.0
    grace_s: float = 3600.0
    timeout_s: float = 30 * 3600.0
    retries: int = 0
    retention_days: int = 90

    def fires_after(self, after: datetime, tz: tzinfo, until: datetime) -> list[datetime]:
        """Fire times in (after, until], as aware datetimes in `tz`."""
        it = croniter(self.cron, after.astimezone(tz))
        times = []
        while (nxt := it.get_next(datetime)) <= until:
            times.append(nxt)
        return times

    def next_fires(self, now: datetime, tz: tzinfo, n: int = 3) -> list[datetime]:
        it = croniter(self.cron, now.astimezone(tz))
        return [it.get_next(datetime) for _ in range(n)]


DEFAULT_JOBS = (
    Job("crawl-all"),
    Job("cleanup-weekly", cron="0 4 * * 0", kind="cleanup"),
)


def _job(raw: dict[str, Any]) -> Job:
    known = {f.name for f in fields(Job)}
    name = raw.get("name", "?")
    unknown = set(raw) - known
    if unknown:
        raise JobError(
            f"job {name!r}: unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
        )
    if "districts" in raw:
        raw = {**raw, "districts": tuple(raw["districts"])}
    job = Job(**raw)
    if not croniter.is_valid(job.cron):
        raise JobError(f"job {name!r}: cron {job.cron!r} is not a cron expression (e.g. '0 1 * * *')")
    if job.kind not in ("crawl", "cleanup"):
        raise JobError(f"job {name!r}: kind must be 'crawl' or 'cleanup', got {job.kind!r}")
    unknown = [d for d in job.districts if d not in DISTRICT_NAMES]
    if unknown:
        raise JobError(f"job {name!r}: unknown district(s) {', '.join(unknown)}; use Seoul's 구 names")
    if job.overlap not in ("skip", "wait"):
        raise JobError(f"job {name!r}: overlap must be 'skip' or 'wait', got {job.overlap!r}")
    return job


def load_jobs(path: Path | None) -> tuple[Job, ...]:
    if path is None:
        return DEFAULT_JOBS
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise JobError(f"cannot read schedule file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise JobError(f"schedule file {path} is not valid TOML: {exc}") from None
    jobs = tuple(_job(raw) for raw in data.get("job", []))
    if not jobs:
        raise JobError(f"schedule file {path} defines no [[job]]")
    return jobs
