"""The console in a real browser: Debian's Chromium driven by Playwright, against `stage5 serve` (a child
process), PostgreSQL and a replica. `.ci/run` installs chromium when it is missing.

STAGE5_SCREENSHOT_DIR=docs makes the tests write the README's screenshots there."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from helpers import free_port, query, wait_for_port, wait_until
from playwright.sync_api import Browser, Page, expect, sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium is not installed: apt-get install chromium (.ci/run does it)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@contextlib.contextmanager
def _serving(settings: Any, tmp_path: Path, token: str = "") -> Iterator[str]:
    """`stage5 serve` (a child process) on a free loopback port, its crawls aimed at `settings.site` (a
    replica, or a closed loopback port: never the real site); its URL."""
    port = free_port()
    command = [sys.executable, "-m", "stage5", "serve", "--port", str(port), "--site", settings.site]
    command += ["--db-schema", settings.db_schema, "--log-dir", str(tmp_path / "logs")]
    env = {**os.environ, "DATABASE_URL": settings.database_url, "STAGE5_CACHE": "off"}
    env.pop("STAGE5_API_TOKEN", None)
    if token:
        env["STAGE5_API_TOKEN"] = token
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert server.stdout is not None
    assert "stage5 console on" in server.stdout.readline(), server.stderr.read() if server.stderr else ""
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=15)


@pytest.fixture
def console(make_settings: Any, tmp_path: Path, replica_with: Any) -> Iterator[str]:
    """`stage5 serve` crawling a replica whose answers take ~60 ms (so a run is long enough to be watched)."""
    with (
        replica_with(latency_ms=60) as replica,
        _serving(make_settings(site=replica.url), tmp_path) as url,
    ):
        yield url


@pytest.fixture
def plain(make_settings: Any, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """`stage5 serve` without a token and no site to crawl (the tests seed what they show)."""
    settings = make_settings()
    with _serving(settings, tmp_path) as url:
        yield url, settings


class Pages:
    """New browser pages, each watched: a Content-Security-Policy violation or an uncaught script error on
    any of them is a trouble, and the test fails with it at its end (the console keeps to its own policy)."""

    def __init__(self, browser: Browser) -> None:
        self.browser, self.opened, self.troubles = browser, list[Page](), list[str]()

    def open(self, **options: Any) -> Page:
        page = self.browser.new_page(**options)
        page.on("console", lambda m: self.troubles.append(m.text) if "Content Security Policy" in m.text else None)
        page.on("pageerror", lambda error: self.troubles.append(f"uncaught: {error}"))
        self.opened.append(page)
        return page


@pytest.fixture
def pages(browser: Browser) -> Iterator[Pages]:
    watched = Pages(browser)
    yield watched
    for page in watched.opened:
        page.close()
    assert watched.troubles == []


def _shot(page: Page, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("STAGE5_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), full_page=True)


def test_create_run_watch_edit_and_disable_a_job(pages: Pages, console: str, tmp_path: Path) -> None:
    page = pages.open(viewport={"width": 1100, "height": 800})
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
    with _serving(settings, tmp_path, token="s3cret") as url:
        yield url, settings


def _migrated(settings: Any) -> None:
    """Until the console's scheduler has migrated its schema (it does as it starts)."""
    tables = "SELECT to_regclass('store_changes')"
    wait_until(lambda: query(settings, tables) != [(None,)], 30, "the console to migrate its schema", every=0.1)


def _add_store(settings: Any, rid: str, name: str, address: str = "서울 도봉구") -> None:
    query(
        settings,
        "INSERT INTO stores (diningcode_place_id, name, district, address, position_lat, position_lng,"
        " is_confirmed_refill, source_url, content_hash)"
        " VALUES (%s, %s, '도봉구', %s, 37.66, 127.04, true, 'x', 'h')",
        rid,
        name,
        address,
    )


def _seed(settings: Any, stores: int) -> None:
    """`stores` stores in 도봉구 (ids s000…), one run, and a change history for s000."""
    _migrated(settings)
    for i in range(stores):
        _add_store(settings, f"s{i:03d}", f"가게 {stores - i:03d}")
    ((run_id,),) = query(
        settings, "INSERT INTO crawl_runs (status, site, districts) VALUES ('succeeded', 'x', '{도봉구}') RETURNING id"
    )
    query(
        settings,
        "INSERT INTO store_changes (run_id, diningcode_place_id, kind, district, name, fields) VALUES"
        " (%s, 's000', 'new', '도봉구', '가게', '{}'), (%s, 's000', 'changed', '도봉구', '가게',"
        ' \'{"price_min": {"old": 15000, "new": 17000}}\')',
        run_id,
        run_id,
    )


def test_sign_in_with_the_token_then_the_timezone_field(pages: Pages, guarded: tuple[str, Any]) -> None:
    url, _ = guarded
    page = pages.open(viewport={"width": 1100, "height": 800})
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
    pages: Pages, guarded: tuple[str, Any], tmp_path: Path
) -> None:
    url, settings = guarded
    _seed(settings, 120)
    page = pages.open(viewport={"width": 390, "height": 844})  # a phone
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


HOSTILE = '<img src=x onerror="window.pwned=1">'


def _nothing_ran(page: Page) -> None:
    """No element came out of data (the hostile text is text) and none of its script ran."""
    assert page.locator("main img, main script, nav img").count() == 0
    assert page.evaluate("window.pwned") is None


def test_hostile_text_shows_as_text_and_runs_nothing(pages: Pages, plain: tuple[str, Any]) -> None:
    url, settings = plain
    address = "<script>window.pwned=2</script>서울 도봉구"
    _migrated(settings)
    _add_store(settings, "h001", HOSTILE, address)
    page = pages.open(viewport={"width": 1100, "height": 800})
    page.goto(url + "/stores")
    link = page.locator("#stores tbody a")
    expect(link).to_have_text(HOSTILE)
    expect(page.locator("#stores tbody td").nth(2)).to_have_text(address)
    expect(page.locator("#map circle.store title")).to_have_text(HOSTILE)
    link.click()
    expect(page.locator("#store-name")).to_have_text(HOSTILE)
    expect(page.locator("#store-facts")).to_contain_text(address)
    _nothing_ran(page)

    page.goto(url + "/jobs")
    page.fill("input[name=name]", HOSTILE)
    page.click("#form button[type=submit]")
    row = page.locator("#jobs tbody tr", has_text=HOSTILE)
    expect(row.locator("td").first).to_have_text(HOSTILE)
    row.locator("button", has_text="History").click()
    expect(page.locator("#history-title")).to_have_text(f"History of {HOSTILE}")
    _nothing_ran(page)

    page.goto(url + "/")
    expect(page.locator("#fires tbody td").first).to_have_text(HOSTILE)
    _nothing_ran(page)

    # Were markup to get in all the same, the policy stops its handler: the browser refuses and says so.
    with page.expect_console_message(lambda m: "Content Security Policy" in m.text):
        page.evaluate("html => document.querySelector('main').insertAdjacentHTML('beforeend', html)", HOSTILE)
    assert page.evaluate("window.pwned") is None
    pages.troubles.clear()  # the violation this test caused on purpose


PROXY_PAGE = (
    "<html><head><title>500</title></head><body><h1>Internal Server Error</h1><p>upstream timed out</p>"
    '<img src=x onerror="window.pwned=1"></body></html>'
)


def test_api_errors_are_shown_to_the_user(pages: Pages, plain: tuple[str, Any]) -> None:
    url, _ = plain
    page = pages.open(viewport={"width": 1100, "height": 800})
    error = page.locator("#error")

    # A JSON error: the API's own words.
    page.goto(url + "/jobs")
    page.fill("input[name=name]", "bad-cron")
    page.fill("input[name=cron]", "at one")
    page.click("#form button[type=submit]")
    expect(error).to_contain_text("cron 'at one' is not a cron expression")
    expect(page.locator("#jobs tbody")).to_have_text("no job stored yet")
    page.goto(url + "/runs/999999")
    expect(error).to_have_text("no run 999999")

    # An error answer that is not JSON (a proxy's page): its status and words, its markup never run.
    def proxy(route: Any) -> None:
        route.fulfill(status=500, content_type="text/html", body=PROXY_PAGE)

    page.route(lambda u: "/api/runs?" in u, proxy)
    page.goto(url + "/")
    expect(error).to_contain_text("GET /api/runs: HTTP 500")
    expect(error).to_contain_text("not JSON: Internal Server Error upstream timed out")
    assert page.locator("#error *").count() == 0 and page.evaluate("window.pwned") is None
    expect(page.locator("#sched-state")).to_have_text("running")  # the rest of the page still shows
    page.unroute_all()
    expect(error).to_have_text("", timeout=10_000)  # the next poll answered: its message goes

    # No answer at all.
    page.route(lambda u: u.endswith("/api/scheduler/stop"), lambda route: route.abort("connectionrefused"))
    page.click("#toggle")
    expect(error).to_contain_text("POST /api/scheduler/stop: no answer from the console")
    expect(page.locator("#sched-state")).to_have_text("running")


def test_a_click_is_handled_once_however_many_polls_came_before(pages: Pages, plain: tuple[str, Any]) -> None:
    url, _ = plain
    page = pages.open(viewport={"width": 1100, "height": 800})
    sent: list[str] = []
    page.on("request", lambda r: sent.append(f"{r.method} {urlsplit(r.url).path}"))
    page.clock.install()  # the page's timers run when the test says: polls without waiting for them
    page.goto(url + "/")
    expect(page.locator("#runs tbody")).to_contain_text("no run yet")  # the first load is done
    for _ in range(3):  # each poll renders the scheduler, its toggle and the runs again
        with page.expect_response(lambda r: "/api/runs?" in r.url):
            page.clock.run_for(5000)
    assert sent.count("GET /api/runs") >= 4
    with page.expect_response(lambda r: r.url.endswith("/api/runs?limit=10")):  # the reload after it
        page.click("#toggle")
    expect(page.locator("#sched-state")).to_have_text("paused")
    assert (sent.count("POST /api/scheduler/stop"), sent.count("POST /api/scheduler/start")) == (1, 0)

    for name in ("job-a", "job-b", "job-c"):
        assert page.request.post(url + "/api/jobs", data={"name": name}).status == 201
    page.goto(url + "/jobs")
    box = page.locator("#jobs tbody tr", has_text="job-b").locator("input[type=checkbox]")
    expect(box).to_be_checked()
    for _ in range(3):  # each change is stored, then the table is rendered again
        with page.expect_response(lambda r: r.request.method == "GET" and r.url.endswith("/api/jobs")):
            box.click()
    assert len([s for s in sent if s.startswith("PATCH /api/jobs/")]) == 3
    jobs = {j["name"]: j["enabled"] for j in page.request.get(url + "/api/jobs").json()}
    assert jobs == {"job-a": True, "job-b": False, "job-c": True}


def test_a_default_job_is_disabled_from_the_jobs_page(pages: Pages, plain: tuple[str, Any]) -> None:
    """No job stored: the scheduler's defaults are listed; disabling one stores them all, that one off."""
    url, _ = plain
    page = pages.open(viewport={"width": 1100, "height": 800})
    page.goto(url + "/jobs")
    expect(page.locator("#jobs tbody")).to_have_text("no job stored yet")
    page.locator("#default-jobs tr", has_text="crawl-all").locator("button", has_text="Disable").click()
    expect(page.locator("#defaults")).to_be_hidden()
    expect(page.locator("#jobs tbody tr", has_text="crawl-all").locator("input[type=checkbox]")).not_to_be_checked()
    expect(page.locator("#jobs tbody tr", has_text="cleanup-weekly").locator("input[type=checkbox]")).to_be_checked()
