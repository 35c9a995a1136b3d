"""The scheduler's rules with a fake clock over days (no sleeping), against the real PostgreSQL."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from stage5.schedule.jobs import Job, JobError, load_jobs, parse_job
from stage5.schedule.scheduler import Scheduler
from stage5.storage.slots import SlotStore

SEOUL = ZoneInfo("Asia/Seoul")


def kst(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=SEOUL)


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


class FakeLauncher:
    """Runs that last `duration`, holding the crawl lock meanwhile; an outside holder can be set."""

    def __init__(self, clock: FakeClock, duration: timedelta) -> None:
        self.clock, self.duration = clock, duration
        self.runs: list[tuple[str, datetime, datetime]] = []  # job, started, ends
        self.outside_holder: str | None = None
        self.stopped: list[str] = []

    def _active(self, job: str | None = None) -> list[tuple[str, datetime, datetime]]:
        now = self.clock()
        return [r for r in self.runs if r[1] <= now < r[2] and (job is None or r[0] == job)]

    def lock_holder(self) -> str | None:
        return self.outside_holder or (f"run of {self._active()[0][0]}" if self._active() else None)

    def start(self, job: Job, slot: datetime) -> int:
        self.runs.append((job.name, self.clock(), self.clock() + self.duration))
        return len(self.runs)

    def finished(self) -> dict[str, datetime]:
        ended = [r for r in self.runs if r[2] <= self.clock()]
        return {job: end for job, _, end in ended}

    def running_since(self, job: Job) -> datetime | None:
        active = self._active(job.name)
        return active[0][1] if active else None

    def stop(self, job: Job) -> None:
        self.stopped.append(job.name)
        self.runs = [(j, s, min(e, self.clock()) if j == job.name else e) for j, s, e in self.runs]


@pytest.fixture
def store(slot_store: SlotStore) -> SlotStore:
    return slot_store


def run_hours(scheduler: Scheduler, clock: FakeClock, hours: int) -> None:
    for _ in range(hours * 4):  # a tick every 15 minutes
        clock.advance(minutes=15)
        scheduler.tick()


def test_next_fire_in_seoul_across_a_day_boundary() -> None:
    job = Job("crawl", cron="0 1 * * *")
    now = datetime(2026, 11, 23, 16, 30, tzinfo=UTC)  # 01:30 on the 24th in Seoul: today's slot has passed
    fires = job.next_fires(now, SEOUL, 2)
    assert fires == [kst(25, 1), kst(26, 1)]
    assert fires[0].astimezone(UTC) == datetime(2026, 11, 24, 16, 0, tzinfo=UTC)  # stored in UTC


def test_26_hour_runs_skip_every_other_day(store: SlotStore) -> None:
    clock = FakeClock(kst(23, 0, 30))
    launcher = FakeLauncher(clock, timedelta(hours=26))
    scheduler = Scheduler([Job("crawl-all")], SEOUL, store, launcher, clock, "s1")
    run_hours(scheduler, clock, 24 * 5)
    rows = [(slot.astimezone(SEOUL).day, status) for _, slot, status, _ in store.history("crawl-all")]
    assert rows == [(23, "started"), (24, "skipped"), (25, "started"), (26, "skipped"), (27, "started")]
    assert len(launcher.runs) == 3
    reasons = {r for _, _, status, r in store.history("crawl-all") if status == "skipped"}
    assert reasons == {"this job's previous run is still going"}


def test_a_run_started_elsewhere_makes_the_slot_skip_with_its_holder(store: SlotStore) -> None:
    clock = FakeClock(kst(23, 0, 45))
    launcher = FakeLauncher(clock, timedelta(hours=2))
    launcher.outside_holder = "stage5 master pid=4242 host=etl-1"
    scheduler = Scheduler([Job("crawl-all")], SEOUL, store, launcher, clock, "s1")
    run_hours(scheduler, clock, 1)
    ((_, _, status, reason),) = store.history("crawl-all")
    assert status == "skipped" and reason == "crawl lock held by stage5 master pid=4242 host=etl-1"
    launcher.outside_holder = None
    run_hours(scheduler, clock, 24)
    assert [s for _, _, s, _ in store.history("crawl-all")] == ["skipped", "started"]


def test_wait_policy_starts_the_run_to_wait_for_the_lock(store: SlotStore) -> None:
    clock = FakeClock(kst(23, 0, 45))
    launcher = FakeLauncher(clock, timedelta(hours=2))
    launcher.outside_holder = "a manual run"
    scheduler = Scheduler([Job("crawl-all", overlap="wait")], SEOUL, store, launcher, clock, "s1")
    run_hours(scheduler, clock, 1)
    ((_, _, status, reason),) = store.history("crawl-all")
    assert status == "started" and reason == "waiting for the crawl lock" and len(launcher.runs) == 1


def test_catch_up_after_downtime_is_one_run(store: SlotStore) -> None:
    clock = FakeClock(kst(20, 12))
    launcher = FakeLauncher(clock, timedelta(hours=1))
    Scheduler([Job("crawl-all", grace_s=2 * 3600)], SEOUL, store, launcher, clock, "s1").tick()
    store.claim("crawl-all", kst(20, 1).astimezone(UTC), "s0")  # the last slot before the downtime
    clock.now = kst(23, 1, 30).astimezone(UTC)  # back 3.5 days later, 30 min after today's slot
    scheduler = Scheduler([Job("crawl-all", grace_s=2 * 3600)], SEOUL, store, launcher, clock, "s1")
    decisions = scheduler.tick()
    assert [d.status for d in decisions] == ["started"] and len(launcher.runs) == 1
    assert decisions[0].slot == kst(23, 1)


def test_downtime_past_grace_runs_nothing_until_the_next_slot(store: SlotStore) -> None:
    clock = FakeClock(kst(23, 0, 50))
    launcher = FakeLauncher(clock, timedelta(hours=1))
    scheduler = Scheduler([Job("crawl-all", grace_s=600)], SEOUL, store, launcher, clock, "s1")
    clock.now = kst(23, 5).astimezone(UTC)  # the scheduler slept through 01:00 (a suspended VM)
    decisions = scheduler.tick()
    assert [(d.status, d.slot) for d in decisions] == [("missed", kst(23, 1))] and not launcher.runs
    run_hours(scheduler, clock, 24)
    assert len(launcher.runs) == 1


def test_two_schedulers_on_one_database_run_a_slot_once(store: SlotStore, pg_url: str, schema: str) -> None:
    clock = FakeClock(kst(23, 0, 45))
    launcher = FakeLauncher(clock, timedelta(hours=1))
    other_store = SlotStore(pg_url, schema)
    a = Scheduler([Job("crawl-all")], SEOUL, store, launcher, clock, "a")
    b = Scheduler([Job("crawl-all")], SEOUL, other_store, launcher, clock, "b")
    for _ in range(4 * 24 * 2):
        clock.advance(minutes=15)
        (a, b)[_ % 2].tick()  # interleaved
        (b, a)[_ % 2].tick()
    other_store.close()
    assert len(launcher.runs) == 2  # two days, two runs, not four
    assert [s for _, _, s, _ in store.history("crawl-all")] == ["started", "started"]


def test_min_gap_skips_a_slot_too_soon_after_the_last_run(store: SlotStore) -> None:
    clock = FakeClock(kst(23, 0, 45))
    launcher = FakeLauncher(clock, timedelta(hours=20))  # ends at 21:00
    job = Job("crawl-all", min_gap_s=6 * 3600)
    scheduler = Scheduler([job], SEOUL, store, launcher, clock, "s1")
    run_hours(scheduler, clock, 24 * 2 + 1)  # through 01:00 on the 25th
    statuses = [s for _, _, s, _ in store.history("crawl-all")]
    assert statuses == ["started", "skipped", "started"]  # 01:00 next day is only 4 h after 21:00


def test_run_past_its_timeout_is_stopped(store: SlotStore) -> None:
    clock = FakeClock(kst(23, 0, 45))
    launcher = FakeLauncher(clock, timedelta(hours=40))
    scheduler = Scheduler([Job("crawl-all", timeout_s=10 * 3600)], SEOUL, store, launcher, clock, "s1")
    run_hours(scheduler, clock, 12)
    assert launcher.stopped == ["crawl-all"] and launcher.running_since(Job("crawl-all")) is None


def test_job_file_errors_name_the_job(tmp_path: Path) -> None:
    path = tmp_path / "jobs.toml"
    path.write_text('[[job]]\nname = "nightly"\ncron = "at one"\n')
    with pytest.raises(JobError, match="'nightly'.*not a cron expression"):
        load_jobs(path)
    path.write_text('[[job]]\nname = "nightly"\ncorn = "0 1 * * *"\n')
    with pytest.raises(JobError, match="unknown field.*corn"):
        load_jobs(path)
    path.write_text('[[job]]\nname = "mapo"\ncron = "30 2 * * *"\ndistricts = ["마포"]\n')
    with pytest.raises(JobError, match="'mapo'.*unknown district.*마포"):  # at load, not when the job fires
        load_jobs(path)
    path.write_text('[[job]]\nname = "mapo"\ncron = "30 2 * * *"\ndistricts = ["마포구"]\n')
    (job,) = load_jobs(path)
    assert job.districts == ("마포구",) and job.cron == "30 2 * * *"


def test_real_launcher_runs_a_scheduled_crawl(
    store: SlotStore, pg_url: str, schema: str, tmp_path: Path, replica_with: Any
) -> None:
    """Fake clock, real processes: the slot starts `stage5 crawl --trigger schedule`; the next slot,
    while that run goes on, is skipped; the run lands in crawl_runs under the job's name."""
    from helpers import query

    from stage5.schedule.launcher import ProcessLauncher
    from stage5.settings import load_settings

    with replica_with(latency_ms=30) as replica:
        settings = load_settings(site=replica.url, database_url=pg_url, db_schema=schema, log_dir=tmp_path)
        job = Job("mapo", cron="0 * * * *", districts=("마포구",))
        launcher = ProcessLauncher(settings, pg_url, (job,))
        launcher.command = lambda j, base=launcher.command: [*base(j), "--request-delay-s", "0.02"]  # type: ignore[method-assign]
        clock = FakeClock(kst(23, 0, 59))
        scheduler = Scheduler([job], SEOUL, store, launcher, clock, "t")
        clock.advance(minutes=2)  # 01:01: the 01:00 slot; 00:00 came before the job existed (nothing missed)
        assert [d.status for d in scheduler.tick()] == ["started"]
        clock.advance(hours=1)
        assert [(d.status, d.reason) for d in scheduler.tick()] == [
            ("skipped", "this job's previous run is still going")
        ]
        proc = launcher.procs["mapo"][0]
        assert proc.wait(timeout=120) == 0
        assert "mapo" in launcher.finished()
    assert query(settings, "SELECT status, trigger, job FROM crawl_runs") == [("succeeded", "schedule", "mapo")]


def test_an_every_minute_job_says_its_missed_slots_in_one_line(
    store: SlotStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Started an hour after it last ran: 59 slots missed are recorded one by one, logged as one line."""
    clock = FakeClock(kst(23, 9, 0))
    launcher = FakeLauncher(clock, timedelta(seconds=10))
    job = Job("minutely", cron="* * * * *")
    store.claim("minutely", kst(23, 8, 0).astimezone(UTC), "s0")
    clock.now = kst(
        23,
        9,
        0,
    ).astimezone(UTC) + timedelta(seconds=5)
    with caplog.at_level(logging.WARNING, logger="stage5.schedule"):
        decisions = Scheduler([job], SEOUL, store, launcher, clock, "s1").tick()
    assert [d.status for d in decisions].count("missed") == 59 and decisions[-1].status == "started"
    lines = [r.getMessage() for r in caplog.records]
    assert len([m for m in lines if m.startswith("slots_missed")]) == 1 and "count=59" in lines[0]
    assert not any(m.startswith("slot_missed") for m in lines)


def test_a_new_job_records_no_slot_from_before_it_was_created(store: SlotStore) -> None:
    """A `* * * * *` job stored in the console a minute ago: the scheduler starting now counts its slots
    from its creation, not from an hour back (the grace window)."""
    created = kst(23, 9, 0).astimezone(UTC)
    store.conn.execute(
        "INSERT INTO scheduled_jobs (name, kind, cron, timezone, created_at) VALUES ('minutely', 'crawl', '* * * * *',"
        " 'Asia/Seoul', %s)",
        (created,),
    )
    clock = FakeClock(created + timedelta(minutes=1, seconds=5))
    launcher = FakeLauncher(clock, timedelta(seconds=10))
    decisions = Scheduler([Job("minutely", cron="* * * * *")], SEOUL, store, launcher, clock, "s1").tick()
    assert [d.status for d in decisions] == ["started"]  # 09:01 only; nothing "missed" before 09:00


def test_a_jobs_own_timezone_decides_its_slots(store: SlotStore) -> None:
    """The same cron in UTC and in Seoul's zone fires nine hours apart, whatever the scheduler's zone."""
    clock = FakeClock(kst(23, 0, 0))
    launcher = FakeLauncher(clock, timedelta(minutes=1))
    jobs = [Job("seoul", cron="0 1 * * *"), Job("utc", cron="0 1 * * *", timezone="UTC")]
    scheduler = Scheduler(jobs, SEOUL, store, launcher, clock, "s1")
    fires = scheduler.next_fires(1)
    assert fires["seoul"][0] == kst(23, 1) and fires["utc"][0] == kst(23, 10)
    with pytest.raises(JobError) as bad:
        parse_job({"name": "x", "timezone": "Mars/Base"})
    assert bad.value.field == "timezone"
