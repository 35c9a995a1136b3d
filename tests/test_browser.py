"""The console in a real browser: Debian's Chromium driven by Playwright, against `stage5 serve` (a child
process), PostgreSQL and a replica. `.ci/run` installs chromium when it is missing.

STAGE5_SCREENSHOT_DIR=docs makes the tests write the README's screenshots there."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import free_port, wait_for_port
from playwright.sync_api import Browser, Page, expect, sync_playwright

from stage5.replica.process import ReplicaProcess
from stage5.replica.server import Faults

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium is not installed: apt-get install chromium (.ci/run does it)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def console(make_settings: Any, tmp_path: Path) -> Iterator[str]:
    """`stage5 serve` on a free loopback port, crawling a replica whose answers take ~60 ms (so a run is
    long enough to be watched)."""
    settings = make_settings()
    with ReplicaProcess(5, 0.1, Faults(latency_ms=60)) as replica:
        port = free_port()
        command = [sys.executable, "-m", "stage5", "serve", "--port", str(port), "--site", replica.url]
        command += ["--db-schema", settings.db_schema, "--log-dir", str(tmp_path / "logs")]
        env = {**os.environ, "DATABASE_URL": settings.database_url, "STAGE5_CACHE": "off"}
        server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert server.stdout is not None
        assert "stage5 console on" in server.stdout.readline(), server.stderr.read() if server.stderr else ""
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
        server.terminate()
        server.wait(timeout=15)


def _shot(page: Page, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("STAGE5_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), full_page=True)


def test_create_run_watch_edit_and_disable_a_job(browser: Browser, console: str, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.goto(console + "/")
    expect(page.locator("#sched")).to_contain_text("running")

    page.goto(console + "/jobs")
    page.fill("input[name=name]", "dobong-nightly")
    page.fill("input[name=cron]", "30 2 * * *")
    page.fill("input[name=params]", '{"districts": ["도봉구"], "overlap": "skip"}')
    page.click("button[type=submit]")
    row = page.locator("#jobs tr", has_text="dobong-nightly")
    expect(row).to_contain_text("30 2 * * *")

    row.locator("button", has_text="Run now").click()
    link = page.locator("#history a", has_text="run ")
    expect(link).to_be_visible(timeout=15_000)
    link.click()
    expect(page.locator("#status")).to_have_text("running", timeout=10_000)
    seen = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and page.locator("#status").inner_text() == "running":
        seen.add(page.locator("#stores").inner_text())
        time.sleep(0.3)
    expect(page.locator("#status")).to_have_text("succeeded")
    assert len(seen) >= 2, f"the live view did not move: {seen}"  # figures changed while it ran
    expect(page.locator("#units")).to_contain_text("도봉구")
    _shot(page, "console-run.png", tmp_path)

    page.goto(console + "/jobs")
    page.locator("#jobs tr", has_text="dobong-nightly").locator("button", has_text="Edit").click()
    expect(page.locator("input[name=cron]")).to_have_value("30 2 * * *")
    page.fill("input[name=cron]", "45 3 * * *")
    page.click("button[type=submit]")
    expect(page.locator("#jobs tr", has_text="dobong-nightly")).to_contain_text("45 3 * * *")
    box = page.locator("#jobs tr", has_text="dobong-nightly").locator("input[type=checkbox]")
    expect(box).to_be_checked()
    box.uncheck()
    page.reload()
    expect(page.locator("#jobs tr", has_text="dobong-nightly").locator("input[type=checkbox]")).not_to_be_checked()

    page.goto(console + "/stores")
    page.select_option("#district", "도봉구")
    page.click("#filter button[type=submit]")
    expect(page.locator("#count")).to_have_text(re.compile(r"^[1-9]\d* stores$"))
    dots = page.locator("#map circle.store")
    assert dots.count() == int(page.locator("#count").inner_text().split()[0])
    rows = page.locator("#stores tr").all_inner_texts()[1:]
    assert rows and all("도봉구" in r for r in rows)
    _shot(page, "console-stores.png", tmp_path)
