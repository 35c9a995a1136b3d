"""The machine failing under stage5 (issue 24, item 5): a read-only or full database, an unwritable or
full log folder. Each ends with one line saying what, where, what to do and how to go on; never a
traceback, never a line per log record."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import psycopg
from helpers import crawl_command
from psycopg.conninfo import make_conninfo

from stage5.failures import explain


def _crawl(settings: Any, url: str, logs: Path) -> subprocess.CompletedProcess[str]:
    """A crawl of 도봉구 at a closed port (settings' site), into the database at `url`, logging to `logs`."""
    where = settings.model_copy(update={"districts": ["도봉구"], "database_url": url, "log_dir": logs})
    flags = ("--retry-attempts", "1", "--retry-backoff-s", "0.05", "--request-delay-s", "0", "--no-cache")
    command = crawl_command(where, *flags)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr and "Logging error" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith("stage5: ") and "stopping" not in line]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def test_a_read_only_database_is_one_line(make_settings: Any, tmp_path: Path) -> None:
    settings = make_settings()
    url = make_conninfo(settings.database_url, options="-c default_transaction_read_only=on")
    done = _crawl(settings, url, tmp_path / "logs")
    line = _one_line(done.stderr)
    assert done.returncode == 1
    assert "is read-only" in line and "make it writable" in line and f"--db-schema {settings.db_schema}" in line
    assert "--resume" in line and "nothing stored was lost" in line


def test_a_full_database_is_one_line() -> None:
    full = psycopg.errors.DiskFull("could not extend file base/16384/2619: No space left on device")
    line = explain(
        full, type("S", (), {"database_url": "postgresql://u:secret@db/x"})(), "python -m stage5 crawl --resume"
    )
    assert line is not None and "is full" in line and "free disk space" in line and "--resume" in line
    assert "secret" not in line
    assert explain(ValueError("a bug"), None) is None  # a bug keeps its traceback


def test_a_full_log_folder_stops_the_crawl_in_one_line(make_settings: Any, tmp_path: Path) -> None:
    settings = make_settings()
    logs = tmp_path / "logs"
    logs.mkdir()
    for name in ("parallel_crawler.log", "stage5_performance.log"):
        (logs / name).symlink_to("/dev/full")  # every write: ENOSPC
    done = _crawl(settings, settings.database_url, logs)
    line = _one_line(done.stderr)
    assert "the disk is full" in line and "parallel_crawler.log" in line and "STAGE5_LOG_DIR" in line
    assert "--resume" in line and done.returncode in (1, 130)


def test_an_unwritable_log_folder_is_one_line(make_settings: Any, tmp_path: Path) -> None:
    settings = make_settings()
    logs = tmp_path / "logs"
    (logs / "parallel_crawler.log").mkdir(parents=True)  # the file's place is taken: it cannot be opened
    done = _crawl(settings, settings.database_url, logs)
    line = _one_line(done.stderr)
    assert done.returncode in (1, 130) and "cannot write" in line and "parallel_crawler.log" in line
    assert "make it writable" in line and "STAGE5_LOG_DIR" in line and "--resume" in line
