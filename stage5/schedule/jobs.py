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
from dataclasses import asdict, dataclass, fields
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from stage5.errors import JobError
from stage5.site.seoul import DISTRICT_NAMES
from stage5.storage.jobs import JobValues


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
    timezone: str = ""  # the zone of its cron; empty: the scheduler's (STAGE5_TIMEZONE)

    def zone(self, default: tzinfo) -> tzinfo:
        return ZoneInfo(self.timezone) if self.timezone else default

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


# What a job stored in `scheduled_jobs` keeps in its `params` (the rest are columns).
PARAMS = ("districts", "overlap", "wait_timeout_s", "min_gap_s", "grace_s", "timeout_s", "retries", "retention_days")


def parse_job(raw: dict[str, Any]) -> Job:
    """A Job from a TOML table or an API body; JobError names the job, the field and the reason."""
    known = {f.name for f in fields(Job)}
    name = raw.get("name", "?")
    unknown = set(raw) - known
    if unknown:
        field = sorted(unknown)[0]
        raise JobError(
            f"job {name!r}: unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}", field
        )
    if not isinstance(name, str) or not name.strip() or len(name) > 80:
        raise JobError(f"job {name!r}: name must be 1 to 80 characters", "name")
    raw = {**raw, "districts": tuple(raw.get("districts") or ())} if "districts" in raw else raw
    for f in fields(Job):
        if f.name in raw and f.name not in ("name", "districts"):
            _check_type(name, f.name, raw[f.name], type(f.default))
    job = Job(**raw)
    if not croniter.is_valid(job.cron):
        raise JobError(f"job {name!r}: cron {job.cron!r} is not a cron expression (e.g. '0 1 * * *')", "cron")
    if job.kind not in ("crawl", "cleanup"):
        raise JobError(f"job {name!r}: kind must be 'crawl' or 'cleanup', got {job.kind!r}", "kind")
    unknown_districts = [d for d in job.districts if d not in DISTRICT_NAMES]
    if unknown_districts:
        raise JobError(
            f"job {name!r}: unknown district(s) {', '.join(map(str, unknown_districts))}; use Seoul's 구 names",
            "districts",
        )
    if job.overlap not in ("skip", "wait"):
        raise JobError(f"job {name!r}: overlap must be 'skip' or 'wait', got {job.overlap!r}", "overlap")
    try:
        job.zone(ZoneInfo("UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        raise JobError(f"job {name!r}: unknown timezone {job.timezone!r} (e.g. Asia/Seoul)", "timezone") from None
    return job


# The largest value each number may take: the scheduler computes dates from them (a duration past a
# year, or a retention past a century, is a typo, and a huge one would overflow the date arithmetic).
YEAR_S = 366 * 86400.0
LIMITS: dict[str, float] = {
    "wait_timeout_s": YEAR_S,
    "min_gap_s": YEAR_S,
    "grace_s": YEAR_S,
    "timeout_s": YEAR_S,
    "retries": 100,
    "retention_days": 36_500,
}


def _check_type(name: str, field: str, value: Any, wanted: type) -> None:
    ok = isinstance(value, wanted) or (wanted is float and isinstance(value, int))
    if not ok or isinstance(value, bool) or (isinstance(value, (int, float)) and not value >= 0):  # NaN too
        raise JobError(f"job {name!r}: {field} must be a non-negative {wanted.__name__}, got {value!r}", field)
    limit = LIMITS.get(field)
    if limit is not None and value > limit:
        raise JobError(f"job {name!r}: {field} must be at most {limit:,.0f}, got {value!r}", field)


def job_from_row(name: str, kind: str, cron: str, params: dict[str, Any], timezone: str = "") -> Job:
    """A job as `scheduled_jobs` stores it (validated again: the table may have been edited by hand)."""
    known = {k: v for k, v in params.items() if k in PARAMS}
    return parse_job({"name": name, "kind": kind, "cron": cron, "timezone": timezone or "", **known})


def job_params(job: Job) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(job).items() if k in PARAMS}


def job_values(job: Job) -> JobValues:
    """The job as `scheduled_jobs` keeps it (the inverse of job_from_row; the timezone is a column of its own)."""
    return JobValues(job.name, job.kind, job.cron, job_params(job))


def load_jobs(path: Path | None) -> tuple[Job, ...]:
    if path is None:
        return DEFAULT_JOBS
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise JobError(f"cannot read schedule file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise JobError(f"schedule file {path} is not valid TOML: {exc}") from None
    jobs = tuple(parse_job(raw) for raw in data.get("job", []))
    if not jobs:
        raise JobError(f"schedule file {path} defines no [[job]]")
    return jobs
