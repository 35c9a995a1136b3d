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
    page.click("#form button[type=submit]")
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
        seen.add(page.locator(".cards").inner_text())  # stores, rate, memory, workers, districts
        time.sleep(0.3)
    expect(page.locator("#status")).to_have_text("succeeded")
    stored = page.locator("#stored").inner_text()  # the final card is what the run stored, not a partial tally
    assert int(stored) > 0 and page.locator("#stores").inner_text() == stored
    assert len(seen) >= 2, f"the live view did not move: {seen}"  # figures changed while it ran
    expect(page.locator("#units")).to_contain_text("도봉구")
    _shot(page, "console-run.png", tmp_path)

    page.goto(console + "/jobs")
    page.locator("#jobs tr", has_text="dobong-nightly").locator("button", has_text="Edit").click()
    expect(page.locator("input[name=cron]")).to_have_value("30 2 * * *")
    page.fill("input[name=cron]", "45 3 * * *")
    page.click("#form button[type=submit]")
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


@pytest.fixture
def guarded(make_settings: Any, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """`stage5 serve` with STAGE5_API_TOKEN set (no crawl needed: the tests seed the stores)."""
    settings = make_settings()
    port = free_port()
    command = [sys.executable, "-m", "stage5", "serve", "--port", str(port), "--db-schema", settings.db_schema]
    command += ["--log-dir", str(tmp_path / "logs")]
    env = {**os.environ, "DATABASE_URL": settings.database_url, "STAGE5_API_TOKEN": "s3cret", "STAGE5_CACHE": "off"}
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert server.stdout is not None
    assert "stage5 console on" in server.stdout.readline(), server.stderr.read() if server.stderr else ""
    wait_for_port(port)
    try:
        yield f"http://127.0.0.1:{port}", settings
    finally:
        server.terminate()
        server.wait(timeout=15)


def _seed(settings: Any, stores: int) -> None:
    """`stores` stores in 도봉구 (ids s000…), one run, and a change history for s000."""
    import psycopg

    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {settings.db_schema}")
        for _ in range(50):  # the console's scheduler migrates the schema as it starts
            if conn.execute("SELECT to_regclass('store_changes')").fetchone() != (None,):
                break
            time.sleep(0.1)
        for i in range(stores):
            conn.execute(
                "INSERT INTO stores (diningcode_place_id, name, district, address, position_lat, position_lng,"
                " is_confirmed_refill, source_url, content_hash)"
                " VALUES (%s, %s, '도봉구', '서울 도봉구', 37.66, 127.04, true, 'x', 'h')",
                (f"s{i:03d}", f"가게 {stores - i:03d}"),
            )
        (run_id,) = conn.execute(
            "INSERT INTO crawl_runs (status, site, districts) VALUES ('succeeded', 'x', '{도봉구}') RETURNING id"
        ).fetchone() or (0,)
        conn.execute(
            "INSERT INTO store_changes (run_id, diningcode_place_id, kind, district, name, fields) VALUES"
            " (%s, 's000', 'new', '도봉구', '가게', '{}'), (%s, 's000', 'changed', '도봉구', '가게',"
            ' \'{"price_min": {"old": 15000, "new": 17000}}\')',
            (run_id, run_id),
        )


def test_sign_in_with_the_token_then_the_timezone_field(browser: Browser, guarded: tuple[str, Any]) -> None:
    url, _ = guarded
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/" in r.url else None)
    page.goto(url + "/")
    expect(page.locator("#signin")).to_be_visible()
    expect(page.locator("#content")).to_be_hidden()  # nothing shown before the token
    assert all(a.endswith("/api/scheduler") for a in asked)  # only the probe that said 401
    page.fill("#signin input[name=token]", "wrong")
    page.click("#signin button[type=submit]")
    expect(page.locator("#error")).to_contain_text("refused")
    page.fill("#signin input[name=token]", "s3cret")
    page.click("#signin button[type=submit]")
    expect(page.locator("#sched")).to_contain_text("running")
    expect(page.locator("#sched")).to_contain_text("Asia/Seoul")
    expect(page.locator("#fires td").nth(1)).to_contain_text("Asia/Seoul")  # times in the console's zone

    page.goto(url + "/jobs")  # the token is kept for the tab's session
    expect(page.locator("#defaults")).to_be_visible()  # the scheduler's own jobs while none is stored
    expect(page.locator("#default-jobs")).to_contain_text("crawl-all")
    page.fill("input[name=name]", "utc-nightly")
    page.fill("input[name=cron]", "0 1 * * *")
    page.fill("input[name=timezone]", "UTC")
    page.click("#form button[type=submit]")
    row = page.locator("#jobs tr", has_text="utc-nightly")
    expect(row).to_contain_text("UTC")
    page.goto(url + "/")
    fire = page.locator("#fires tr", has_text="utc-nightly").locator("td").nth(1)
    expect(fire).to_contain_text("10:00:00 Asia/Seoul")  # 01:00 UTC is 10:00 in Seoul
    page.goto(url + "/jobs")
    page.once("dialog", lambda d: d.dismiss())  # delete asks first: dismissed, the job stays
    page.locator("#jobs tr", has_text="utc-nightly").locator("button", has_text="Delete").click()
    page.reload()
    expect(page.locator("#jobs tr", has_text="utc-nightly")).to_have_count(1)


def test_stores_page_past_the_first_rows_sorts_and_shows_a_history(
    browser: Browser, guarded: tuple[str, Any], tmp_path: Path
) -> None:
    url, settings = guarded
    _seed(settings, 120)
    page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
    page.goto(url + "/stores")
    page.fill("#signin input[name=token]", "s3cret")
    page.click("#signin button[type=submit]")
    expect(page.locator("#count")).to_have_text("120 stores")
    expect(page.locator("#page")).to_have_text("1–50 of 120")
    page.click("#next")
    expect(page.locator("#page")).to_have_text("51–100 of 120")
    page.click("#next")
    expect(page.locator("#page")).to_have_text("101–120 of 120")
    expect(page.locator("#next")).to_be_disabled()
    page.select_option("#sort", "name")
    page.click("#filter button[type=submit]")
    expect(page.locator("#stores tr").nth(1)).to_contain_text("가게 001")  # by name: s119 first
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, f"the page is {width} px wide at 390"
    page.select_option("#sort", "rid")
    page.click("#filter button[type=submit]")
    page.locator("#stores a", has_text="가게 120").click()
    expect(page.locator("#store-history")).to_contain_text("changed")
    expect(page.locator("#store-history")).to_contain_text("17000")
    _shot(page, "console-store-history.png", tmp_path)
