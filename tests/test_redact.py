"""Secrets: a planted password and a webhook token never show in output, logs, `ps`, the run history,
task messages or child command lines."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest
from helpers import crawl_command, query

from stage5.redact import redact_url
from stage5.replica.process import ReplicaProcess
from stage5.schedule.jobs import Job
from stage5.schedule.launcher import ProcessLauncher

PASSWORD = "Pl4ntedPassw0rd"
TOKEN = "Pl4ntedT0ken"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://postgres:{PASSWORD}@db:5432/x",
        f"postgresql://postgres:p@ss{PASSWORD}@db/x",  # '@' inside the password
        f"postgresql://:{PASSWORD}@db/x",  # no user
        f"postgresql://db/x?sslmode=require&password={PASSWORD}",
        f"host=db user=u password={PASSWORD} dbname=x",
        f"redis://:{PASSWORD}@cache:6379/0",
        f"https://hooks.example/notify?token={TOKEN}&channel=ops",
    ],
)
def test_every_url_form_is_redacted(url: str) -> None:
    shown = redact_url(url)
    assert PASSWORD not in shown and TOKEN not in shown and "***" in shown


def _secret_in(text: str) -> bool:
    return PASSWORD in text or TOKEN in text


def test_a_crawl_with_planted_secrets_shows_them_nowhere(
    make_settings: Any, pg_url: str, replica: ReplicaProcess, tmp_path: Path
) -> None:
    """PostgreSQL here trusts local connections, so a password in the URL is accepted and ignored: the
    crawl runs for real with the secret in its configuration."""
    secret_db = f"{pg_url} password={PASSWORD}"
    logs = tmp_path / "logs"
    settings = make_settings(site=replica.url, districts="도봉구", log_dir=logs)
    token = f"{TOKEN}{uuid.uuid4().hex[:8]}"  # this run's own: the same test in another session is no leak
    command = crawl_command(
        settings,
        *("--no-cache", "--request-delay-s", "0", "--notify-url", f"http://127.0.0.1:9/hook?token={token}", "--json"),
        database=False,  # the secret URL comes from the environment
    )
    env = {"DATABASE_URL": secret_db, "STAGE5_API_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen_in_ps: list[str] = []
    # Every process of the machine while the crawl runs, but the crawl's own command line (the token is on
    # it: this test typed it) and this test's process. (It skipped every line with "pytest" in it before,
    # which let the crawl's line through only because its log folder, under pytest's tmp_path, said so.)
    typed = {proc.pid, os.getpid()}
    while proc.poll() is None:
        for p in psutil.process_iter(["cmdline"]):
            line = " ".join(p.info["cmdline"] or [])
            if (PASSWORD in line or token in line) and p.pid not in typed:
                seen_in_ps.append(line)
        time.sleep(0.1)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert json.loads(out)["status"] == "succeeded"
    assert not seen_in_ps
    assert not _secret_in(out) and not _secret_in(err)
    for log in logs.iterdir():
        assert not _secret_in(log.read_text()), log
    assert "notify_failed" in (logs / "parallel_crawler.log").read_text()  # the hook was tried, redacted
    history = query(settings, "SELECT row_to_json(r)::text FROM crawl_runs r")
    assert history and not any(_secret_in(row[0]) for row in history)


def test_scheduled_runs_get_secrets_through_the_environment(make_settings: Any) -> None:
    settings = make_settings(redis_url=f"redis://:{PASSWORD}@127.0.0.1:6379/0")
    launcher = ProcessLauncher(settings, f"postgresql://u:{PASSWORD}@db/x", (Job("crawl-all"),))
    assert not _secret_in(" ".join(launcher.command(Job("crawl-all"))))
    env = launcher.environment()
    assert PASSWORD in env["DATABASE_URL"] and PASSWORD in env["REDIS_URL"]


def test_celery_task_messages_carry_no_settings_secret(make_settings: Any) -> None:
    from dataclasses import asdict

    from stage5.crawl.celery_engine import RunKeys, TaskMessage
    from stage5.site.diningcode import queries_for
    from stage5.site.seoul import DISTRICT_BY_NAME
    from stage5.units import SearchUnit

    settings = make_settings(
        database_url=f"postgresql://u:{PASSWORD}@db/x",
        notify_url=f"https://hooks/x?token={TOKEN}",
        redis_url=f"redis://:{PASSWORD}@127.0.0.1:6379/0",
        api_token=TOKEN,
        engine="celery",
    )
    unit = SearchUnit(1, queries_for(DISTRICT_BY_NAME["도봉구"])[0])
    message = json.dumps(asdict(TaskMessage.of(RunKeys("s", 1), unit, settings)), ensure_ascii=False)
    assert not _secret_in(message) and "도봉구" in message
