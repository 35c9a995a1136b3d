"""Numbers an operator can trust (issue 24, item 3): a total outage is a failure, a resumed run keeps
the settings it started with, `runs` never offers to resume a running run, `--resume` with nothing to
resume says so, `changes` shows where old and new differ, log lines carry the schema with the run id and
performance figures are fields; an interrupted run does not judge the districts it never reached."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
from contextlib import redirect_stdout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from helpers import crawl_command, query, wait_until

from stage5.cli import main
from stage5.crawl.run import bound_to_run, run_crawl
from stage5.logs import EventFormatter, bind, log_event
from stage5.report import differing, print_runs
from stage5.settings import load_settings


async def test_a_total_outage_fails_with_its_cause(make_settings: Any) -> None:
    """No answer at all (nothing listens): `failed` (exit 1), not `partial`, and the summary says why."""
    settings = make_settings(districts="도봉구,마포구", retries=1)
    summary = await run_crawl(settings, settings.database_url)
    assert summary.status == "failed" and summary.failed_units
    from stage5.report import print_summary

    out = io.StringIO()
    with redirect_stdout(out):
        print_summary(summary)
    assert "FAILED         no usable answer; first failure: http://127.0.0.1:9" in out.getvalue()


def test_resume_with_nothing_to_resume_exits_2(make_settings: Any, capsys: pytest.CaptureFixture[str]) -> None:
    settings = make_settings()
    db = ["--database-url", settings.database_url, "--db-schema", settings.db_schema]
    db += ["--log-dir", str(settings.log_dir), "--districts", "도봉구"]
    code = main(["crawl", "--resume", "--site", "http://127.0.0.1:9", *db])
    assert code == 2 and "no unfinished run to resume" in capsys.readouterr().err
    assert query(settings, "SELECT count(*) FROM crawl_runs") == [(0,)]  # and no run was started
    # What the scheduler runs: resume one if any, else start one (here it fails: nothing listens)
    assert main(["crawl", "--resume-if-any", "--site", "http://127.0.0.1:9", "--retry-attempts", "1", *db]) == 1
    assert query(settings, "SELECT count(*) FROM crawl_runs") == [(1,)]


def test_a_resumed_run_keeps_every_setting_it_started_with() -> None:
    run = {
        "id": 7,
        "site": "http://127.0.0.1:9",
        "districts": ["도봉구"],
        "params": {"cache": "off", "request_delay_s": 0.5, "page_size": 20, "workers": 2},
    }
    resumed = bound_to_run(load_settings(), run)
    assert (resumed.cache, resumed.request_delay_s, resumed.page_size, resumed.workers) == ("off", 0.5, 20, 2)
    again = bound_to_run(load_settings(cache="refresh"), run)  # given again explicitly: that is honoured
    assert again.cache == "refresh" and again.page_size == 20


def test_runs_never_offers_to_resume_a_running_run(capsys: pytest.CaptureFixture[str]) -> None:
    def run(id_: int, status: str) -> dict[str, Any]:
        started = datetime(2026, 12, 1, tzinfo=UTC)
        return dict(id=id_, status=status, trigger="manual", started_at=started, finished_at=None, counts={},
                    units_done=1, units=3, resumed=0, site="x")  # fmt: skip

    print_runs([run(9, "running"), run(8, "interrupted")])
    out = capsys.readouterr().out
    assert "can be resumed" not in out and "run 9 is running" in out
    print_runs([run(8, "interrupted")])
    assert "run 8 can be resumed" in capsys.readouterr().out


def test_changes_show_where_old_and_new_differ() -> None:
    common = "월-금 11:00 - 22:00, 토 11:00 - 23:00, 일 12:00 - 21:00, 라스트오더 "
    old, new = differing(common + "21:00 (브레이크타임 15:00-17:00)", common + "21:30 (브레이크타임 15:00-17:00)")
    assert old != new and "21:00" in old and "21:30" in new
    assert old.startswith("…") and len(old) < len(common)  # the common start is left out
    assert differing(15000, 17000) == ("15000", "17000")


def test_log_lines_carry_the_schema_and_performance_figures_are_fields() -> None:
    logger = logging.getLogger("stage5.test_honest")
    record: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = record.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)  # not left to whatever an earlier test set on "stage5" (run alone: WARNING)
    try:
        bind(run_id=3, schema="t_abc")
        log_event(logger, "perf", stores=12, pages_per_s=3.5, memory_mb=120)
        line = json.loads(EventFormatter("json").format(record[0]))
        text = EventFormatter().format(record[0])
    finally:
        bind(run_id=None, schema=None)
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    assert (line["event"], line["stores"], line["pages_per_s"], line["memory_mb"]) == ("perf", 12, 3.5, 120)
    assert line["run_id"] == 3 and line["schema"] == "t_abc" and "message" not in line
    assert "run_id=3 schema=t_abc" in text and " stores=12 " in text


def _crawl(settings: Any, *extra: str, group: bool = False) -> subprocess.Popen[str]:
    flags = ("--request-delay-s", "0", "--workers", "1", "--host-concurrency", "2", "--json", *extra)
    return subprocess.Popen(
        crawl_command(settings, *flags),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=group,
    )


def _units_done(settings: Any) -> int:
    try:
        ((done,),) = query(
            settings,
            "SELECT count(*) FROM crawl_units WHERE state = 'done' AND run_id ="
            " (SELECT max(id) FROM crawl_runs WHERE status = 'running')",
        )
    except psycopg.errors.UndefinedTable:
        return 0
    return int(done)


def test_a_stopped_run_judges_only_what_it_reached_and_resumes_as_it_started(
    make_settings: Any, tmp_path: Path, replica_with: Any
) -> None:
    """A full crawl stores the four districts; a second one, with --no-cache, is stopped early (SIGTERM):
    the districts it never reached are not SUSPECT and no coverage drift is reported. Resumed without
    the flag, it still reads nothing from the cache, and its summary counts both segments."""
    with replica_with(latency_ms=40) as replica:
        settings = make_settings(site=replica.url, districts="강남구,마포구,송파구,도봉구", log_dir=tmp_path)
        first = _crawl(settings)
        assert first.wait(timeout=180) == 0, first.stderr.read() if first.stderr else ""  # type: ignore[union-attr]
        row = query(settings, "SELECT (counts ->> 'requests')::int FROM crawl_runs")
        before = int(row[0][0]) if row and row[0][0] else 0
        # In a process group of its own, as a terminal's foreground job: Ctrl-C reaches every process
        second = _crawl(settings, "--no-cache", "--flush-interval-s", "0.2", group=True)
        wait_until(lambda: _units_done(settings) >= 5, 60, "a few units of the second run done")  # then stop it
        os.killpg(second.pid, signal.SIGINT)
        out, err = second.communicate(timeout=60)
        assert second.returncode == 130, err[-2000:]
        stopped = json.loads(out.strip().splitlines()[-1])
        assert stopped["status"] == "interrupted"
        assert stopped["suspect_districts"] == [] and stopped["coverage_drops"] == []
        assert "SUSPECT" not in err
        log = (tmp_path / "parallel_crawler.log").read_text(encoding="utf-8")
        assert "event=worker_died" not in log  # a clean stop is not a worker death
        resumed = _crawl(settings, "--resume")
        out, err = resumed.communicate(timeout=180)
        assert resumed.returncode == 0, err[-2000:]
        summary = json.loads(out.strip().splitlines()[-1])
    assert summary["cache_hits"] == 0  # the run started with --no-cache: its second segment too
    assert summary["resumed"] == 1 and summary["elapsed_s"] > stopped["elapsed_s"]  # the whole run's time
    assert summary["requests"] >= before > 0
