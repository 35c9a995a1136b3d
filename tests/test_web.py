"""The console's API against a real server (aiohttp on loopback) and PostgreSQL: every endpoint, the token
and cross-site rules, the 400 cases; a job run from the API crawls a replica through the lock rules."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from helpers import Console, query, serving, until

from stage5.crawl.run import run_crawl
from stage5.replica.process import ReplicaProcess


@pytest.fixture
async def console(make_settings: Any, replica: ReplicaProcess) -> AsyncIterator[Console]:
    async with serving(make_settings(site=replica.url, districts="도봉구")) as console:
        yield console


async def test_jobs_crud_presets_and_validation(console: Console) -> None:
    status, created = await console.call(
        "POST", "/api/jobs", {"name": "dobong", "cron": "*/5 * * * *", "params": {"districts": ["도봉구"]}}
    )
    assert status == 201 and created["params"]["districts"] == ["도봉구"] and created["enabled"] is True
    job_id = created["id"]
    assert (await console.call("GET", "/api/jobs"))[1][0]["name"] == "dobong"
    assert (await console.call("GET", f"/api/jobs/{job_id}"))[1]["cron"] == "*/5 * * * *"

    status, patched = await console.call("PATCH", f"/api/jobs/{job_id}", {"enabled": False, "params": {"retries": 2}})
    assert status == 200 and patched["enabled"] is False
    assert patched["params"]["districts"] == ["도봉구"] and patched["params"]["retries"] == 2

    bad = [
        ({"name": "x", "cron": "at one"}, "cron"),
        ({"name": "x", "params": {"districts": ["마포"]}}, "districts"),
        ({"name": "x", "kind": "dance"}, "kind"),
        ({"name": "x", "params": {"overlap": "maybe"}}, "overlap"),
        ({"name": "x", "params": {"timeout_s": -1}}, "timeout_s"),
        ({"name": "x", "params": {"colour": "red"}}, "colour"),
        ({"name": "x", "timezone": "Mars/Base"}, "timezone"),
        ({"name": ""}, "name"),
    ]
    for body, field in bad:
        status, answer = await console.call("POST", "/api/jobs", body)
        assert (status, answer.get("field")) == (400, field), (body, answer)
        assert answer["error"]
    assert (await console.call("POST", "/api/jobs", {"name": "dobong"}))[0] == 409  # the name is taken
    assert (await console.call("GET", "/api/jobs/9999"))[0] == 404
    assert (await console.call("GET", "/api/jobs/abc"))[0] == 400

    status, presets = await console.call("POST", "/api/jobs/presets", {})
    assert status == 201 and presets["created"] == ["crawl-all", "cleanup-weekly"]
    assert (await console.call("POST", "/api/jobs/presets", {}))[1]["created"] == []  # not twice
    assert (await console.call("DELETE", f"/api/jobs/{job_id}"))[0] == 200
    assert sorted(j["name"] for j in (await console.call("GET", "/api/jobs"))[1]) == ["cleanup-weekly", "crawl-all"]


async def test_scheduler_pause_and_resume(console: Console) -> None:
    status, state = await console.call("GET", "/api/scheduler")
    assert status == 200 and state["running"] and state["next"]  # the defaults until jobs are stored
    assert (await console.call("POST", "/api/scheduler/stop", {}))[1]["paused"] is True
    assert (await console.call("GET", "/api/scheduler"))[1]["running"] is False
    await console.call("POST", "/api/scheduler/start", {})
    assert (await console.call("GET", "/api/scheduler"))[1]["running"] is True


async def test_run_now_crawls_and_runs_are_listed_with_events(console: Console) -> None:
    _, job = await console.call("POST", "/api/jobs", {"name": "dobong", "params": {"districts": ["도봉구"]}})
    status, fired = await console.call("POST", f"/api/jobs/{job['id']}/run", {})
    assert status == 202 and fired["status"] == "started"

    async def finished() -> dict[str, Any] | None:
        _, runs = await console.call("GET", "/api/runs?limit=5")
        return runs[0] if runs and runs[0]["status"] != "running" else None

    run = await until(finished, 60, "the run (a child process) to finish", every=0.1)
    assert run["status"] == "succeeded" and run["districts"] == ["도봉구"]
    status, detail = await console.call("GET", f"/api/runs/{run['id']}")
    assert status == 200 and detail["job"] == "dobong" and detail["district_units"][0]["district"] == "도봉구"
    assert detail["live"]["workers"] >= 0 and detail["live"]["pid"] > 0
    assert (await console.call("GET", "/api/runs?status=failed"))[1] == []
    _, history = await console.call("GET", f"/api/jobs/{job['id']}/runs?limit=5")
    assert [h["id"] for h in history if h["kind"] == "run"] == [run["id"]]
    assert (await console.call("POST", f"/api/runs/{run['id']}/stop", {}))[0] == 409  # not running any more
    assert (await console.call("GET", "/api/runs/999999"))[0] == 404

    async with console.session.get(console.server.make_url(f"/api/runs/{run['id']}/events")) as answer:
        assert answer.headers["Content-Type"].startswith("text/event-stream")
        text = await answer.text()
    event = json.loads(text.split("data: ", 1)[1])
    assert event["status"] == "succeeded" and event["stores_new"] > 0

    status, page = await console.call("GET", "/api/stores?district=도봉구&limit=5")
    assert status == 200 and len(page["stores"]) == 5 and {s["district"] for s in page["stores"]} == {"도봉구"}
    _, rest = await console.call("GET", f"/api/stores?district=도봉구&limit=1000&after={page['next_after']}")
    assert not {s["rid"] for s in page["stores"]} & {s["rid"] for s in rest["stores"]}  # keyset: no overlap
    refill = (await console.call("GET", "/api/stores?refill=true&limit=1000"))[1]["stores"]
    assert refill and all(s["refill"] for s in refill)
    rid = page["stores"][0]["rid"]
    assert (await console.call("GET", f"/api/stores/{rid}"))[1]["diningcode_place_id"] == rid
    assert (await console.call("GET", "/api/stores/nope"))[0] == 404
    assert (await console.call("GET", "/api/stores?district=마포"))[1]["field"] == "district"
    assert (await console.call("GET", "/api/stores?refill=maybe"))[1]["field"] == "refill"
    assert (await console.call("GET", "/api/stores?limit=x"))[1]["field"] == "limit"


async def test_run_now_is_refused_while_another_crawl_holds_the_lock(console: Console, make_settings: Any) -> None:
    """The same lock and overlap rules as a cron slot: a crawl is going, the job (overlap skip) is skipped."""
    settings = make_settings()
    _, job = await console.call("POST", "/api/jobs", {"name": "dobong", "params": {"districts": ["도봉구"]}})
    from helpers import hold_lock

    holder = hold_lock(settings.database_url, settings.db_schema, 30)
    try:
        status, fired = await console.call("POST", f"/api/jobs/{job['id']}/run", {})
    finally:
        holder.kill()
    assert status == 409 and fired["status"] == "skipped" and "crawl lock held" in fired["reason"]


async def test_token_and_cross_site_rules(make_settings: Any, replica: ReplicaProcess) -> None:
    async with serving(make_settings(site=replica.url, api_token="s3cret")) as console:
        assert (await console.call("POST", "/api/jobs", {"name": "a"}))[0] == 401
        assert (await console.call("POST", "/api/jobs", {"name": "a"}, Authorization="Bearer wrong"))[0] == 401
        assert (await console.call("GET", "/api/jobs"))[0] == 401  # reading needs it too
        ok = {"Authorization": "Bearer s3cret"}
        assert (await console.call("GET", "/api/jobs", **ok))[0] == 200
        assert (await console.call("GET", "/api/jobs", Authorization="bearer  s3cret"))[0] == 200  # any case
        assert (await console.call("GET", "/api/jobs", Authorization="Basic s3cret"))[0] == 401
        assert (await console.call("POST", "/api/jobs", {"name": "a"}, **ok))[0] == 201
        evil = {**ok, "Origin": "http://evil.example"}
        assert (await console.call("POST", "/api/jobs", {"name": "b"}, **evil))[0] == 403
        url, form = console.server.make_url("/api/jobs"), {**ok, "Content-Type": "text/plain"}
        async with console.session.post(url, data="name=c", headers=form) as answer:
            assert answer.status == 400  # a form-like body, as a cross-site form would send


def test_serving_beyond_loopback_needs_a_token(make_settings: Any) -> None:
    from stage5.errors import ConfigError
    from stage5.web.app import serve

    with pytest.raises(ConfigError, match="STAGE5_API_TOKEN"):
        serve(make_settings(), "0.0.0.0", 0)


async def test_live_figures_are_written_while_a_run_goes(make_settings: Any, replica: ReplicaProcess) -> None:
    """The master writes its figures into crawl_runs.live (what the events stream sends)."""
    settings = make_settings(site=replica.url, districts="도봉구")
    summary = await run_crawl(settings, settings.database_url)
    ((live,),) = query(settings, "SELECT live FROM crawl_runs WHERE id = %s", summary.run_id)
    assert live["budget_mb"] > 0 and live["districts"] == 1 and live["requests"] > 0


async def test_the_scheduler_takes_jobs_from_the_table_within_a_tick(console: Console, make_settings: Any) -> None:
    from stage5.schedule.service import SchedulerService

    service = await asyncio.to_thread(SchedulerService, make_settings(), 3600)
    try:
        assert [j.name for j in service.scheduler.jobs] == ["crawl-all", "cleanup-weekly"]  # no stored jobs yet
        await console.call("POST", "/api/jobs", {"name": "every-minute", "cron": "* * * * *"})
        await console.call("POST", "/api/jobs", {"name": "off", "enabled": False})
        await asyncio.to_thread(service.tick)
        assert [j.name for j in service.scheduler.jobs] == ["every-minute"]  # enabled ones, no restart
        await console.call("POST", "/api/scheduler/stop", {})
        assert await asyncio.to_thread(service.tick) == []  # paused: nothing fires
    finally:
        await asyncio.to_thread(service.close)


async def test_the_schedule_file_becomes_the_consoles_jobs(
    make_settings: Any, replica: ReplicaProcess, tmp_path: Any
) -> None:
    path = tmp_path / "jobs.toml"
    path.write_text('[[job]]\nname = "mapo"\ncron = "30 2 * * *"\ndistricts = ["마포구"]\n', encoding="utf-8")
    async with serving(make_settings(site=replica.url, schedule_file=path)) as console:
        _, jobs = await console.call("GET", "/api/jobs")
    assert [(j["name"], j["cron"], j["params"]["districts"]) for j in jobs] == [("mapo", "30 2 * * *", ["마포구"])]


async def test_stop_ends_a_running_run_gracefully(make_settings: Any, replica_with: Any) -> None:
    """POST /api/runs/{id}/stop sends the master its SIGTERM: the run ends interrupted (resumable)."""
    with replica_with(latency_ms=150) as slow:
        async with serving(make_settings(site=slow.url)) as console:
            _, job = await console.call("POST", "/api/jobs", {"name": "gangnam", "params": {"districts": ["강남구"]}})
            await console.call("POST", f"/api/jobs/{job['id']}/run", {})
            run = await _until(console, _running_with_a_master)
            status, answer = await console.call("POST", f"/api/runs/{run['id']}/stop", {})
            assert status == 202 and answer == {"stopping": run["id"]}
            ended = await _until(console, lambda r: r and r["status"] != "running")
    assert ended["status"] == "interrupted"


def _running_with_a_master(run: dict[str, Any] | None) -> bool:
    return bool(run and run["status"] == "running" and (run.get("live") or {}).get("pid"))


async def _until(console: Console, ok: Any, seconds: float = 60) -> dict[str, Any]:
    """The newest run, once `ok` says so (polled every 0.1 s)."""

    async def newest() -> dict[str, Any] | None:
        _, runs = await console.call("GET", "/api/runs?limit=1")
        run = (await console.call("GET", f"/api/runs/{runs[0]['id']}"))[1] if runs else None
        return run if ok(run) else None

    return await until(newest, seconds, "the newest run to get there", every=0.1)


def test_the_scheduler_stops_at_once_not_at_its_next_tick(make_settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    from stage5.schedule.service import SchedulerService

    service = SchedulerService(make_settings(), tick_s=30)
    ticked, tick = threading.Event(), service.tick

    def tick_and_tell() -> Any:
        fired = tick()
        ticked.set()  # past its first tick, the loop goes to its 30 s wait: the stop must cut that short
        return fired

    monkeypatch.setattr(service, "tick", tick_and_tell)
    thread = threading.Thread(target=service.loop)
    thread.start()
    assert ticked.wait(timeout=30), "the scheduler's loop did not tick within 30 s"
    asked = time.monotonic()
    service.stopping.set()  # what SIGTERM does in `stage5 schedule`
    thread.join(timeout=5)
    service.close()
    assert not thread.is_alive() and time.monotonic() - asked < 2


async def test_numbers_a_schedule_cannot_hold_are_refused_and_a_stored_one_is_skipped(
    console: Console, make_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A duration past a year, a retention past a century, NaN or Infinity in a job's params: 400 naming
    the field (a grace_s of 1e26 was taken, then stopped the scheduler at its next tick and kept the console
    from starting). One already in the table, from before or edited by hand, is skipped with job_invalid;
    the scheduler starts, and a tick that fails does not end its loop."""
    import logging
    import threading

    from stage5.schedule.service import SchedulerService

    bad = [
        ({"grace_s": 1e26}, "grace_s"),
        ({"timeout_s": 99999999999999999999999999}, "timeout_s"),
        ({"retention_days": 10**20}, "retention_days"),
        ({"retries": 10**6}, "retries"),
        ({"min_gap_s": float("nan")}, "min_gap_s"),
        ({"wait_timeout_s": float("inf")}, "wait_timeout_s"),
    ]
    for params, field in bad:
        status, answer = await console.call("POST", "/api/jobs", {"name": "x", "params": params})
        assert (status, answer.get("field")) == (400, field), (params, answer)
    _, job = await console.call("POST", "/api/jobs", {"name": "fine", "cron": "* * * * *"})
    status, answer = await console.call("PATCH", f"/api/jobs/{job['id']}", {"params": {"grace_s": 1e999}})
    assert (status, answer.get("field")) == (400, "grace_s"), answer

    settings = make_settings()
    query(
        settings,
        "INSERT INTO scheduled_jobs (name, kind, cron, timezone, params) VALUES ('huge', 'crawl', '* * * * *',"
        " 'Asia/Seoul', '{\"grace_s\": 1e26}')",
    )
    caplog.set_level(logging.ERROR, logger="stage5.schedule")
    service = await asyncio.to_thread(SchedulerService, settings, 0.05)
    try:
        assert [j.name for j in service.scheduler.jobs] == ["fine"]
        assert any("job_invalid" in r.getMessage() and "huge" in r.getMessage() for r in caplog.records)
        ticks, tick = [], service.tick

        def failing_once() -> Any:
            ticks.append(1)
            if len(ticks) == 1:
                raise RuntimeError("a tick that fails")
            return tick()

        service.tick = failing_once  # type: ignore[method-assign]
        thread = threading.Thread(target=service.loop)
        thread.start()
        await until(lambda: len(ticks) >= 3, 10, "ticks after the failing one")
        service.stopping.set()
        thread.join(timeout=10)
        assert any("scheduler_tick_failed" in r.getMessage() for r in caplog.records)
    finally:
        service.stopping.set()
        await asyncio.to_thread(service.close)
