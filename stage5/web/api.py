"""The console's JSON API (`/api/…`): jobs, the scheduler, runs (with a live event stream), stores.

Rules for requests that change something (POST, PATCH, DELETE): when STAGE5_API_TOKEN is set they need
`Authorization: Bearer <token>`; always, their body is JSON (a cross-site form cannot send that without
a CORS preflight, which this server never answers) and an `Origin`, when the browser sends one, must be
this server's own. Errors are JSON: {"error": reason, "field": name} with 400, 401, 403, 404 or 409.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import psycopg
from aiohttp import web
from psycopg.rows import dict_row

from stage5.errors import JobError
from stage5.schedule.jobs import DEFAULT_JOBS, PARAMS, Job, parse_job
from stage5.schedule.service import SchedulerService
from stage5.site.seoul import DISTRICT_NAMES, DISTRICTS
from stage5.storage import jobs as job_store
from stage5.storage.runs import list_runs, show_run

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TOKEN = web.AppKey("token", str)
TIMEZONE = web.AppKey("timezone", str)
CONNECT = web.AppKey("connect", Callable[[], Awaitable[psycopg.AsyncConnection]])
SCHEDULER = web.AppKey("scheduler", SchedulerService)
MUTATING = ("POST", "PATCH", "DELETE", "PUT")
LIVE_EVERY_S = 1.0


def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(type(value).__name__)


def reply(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, default=_default, ensure_ascii=False), status=status, content_type="application/json"
    )


def problem(status: int, reason: str, field: str = "") -> web.Response:
    return reply({"error": reason, **({"field": field} if field else {})}, status)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Token and cross-site rules for every request that changes something."""
    if request.method in MUTATING and request.path.startswith("/api/"):
        token = request.app[TOKEN]
        if token:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), token.encode()):
                return problem(401, "this server needs its API token: Authorization: Bearer <STAGE5_API_TOKEN>")
        origin = request.headers.get("Origin")
        if origin and origin != f"{request.scheme}://{request.host}":
            return problem(403, f"cross-site request from {origin} refused")
        if request.can_read_body and request.content_type != "application/json":
            return problem(400, "send the body as JSON (Content-Type: application/json)")
    try:
        return await handler(request)
    except psycopg.OperationalError as exc:
        return problem(503, f"database unavailable: {str(exc).splitlines()[0]}; start PostgreSQL and retry")


def _bad(reason: str, field: str = "") -> web.HTTPBadRequest:
    body = {"error": reason, **({"field": field} if field else {})}
    return web.HTTPBadRequest(text=json.dumps(body), content_type="application/json")


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except json.JSONDecodeError as exc:
        raise _bad(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _bad("body must be a JSON object")
    return data


def _int(request: web.Request, name: str, default: int, high: int = 1000) -> int:
    raw = request.query.get(name, request.match_info.get(name))
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad(f"{name} must be an integer, got {raw!r}", name) from None
    if not 0 <= value <= high:
        raise _bad(f"{name} must be between 0 and {high}", name)
    return value


def _conn(request: web.Request) -> Callable[[], Awaitable[psycopg.AsyncConnection]]:
    return request.app[CONNECT]


# --- jobs ---------------------------------------------------------------------------------------


def _validated(data: dict[str, Any], base: dict[str, Any] | None = None) -> tuple[Job, str, bool]:
    """(job, timezone, enabled) from a create or patch body over `base` (the stored job)."""
    merged = {**(base or {}), **data}
    params = merged.pop("params", None) or {}
    if not isinstance(params, dict):
        raise JobError("params must be a JSON object", "params")
    timezone = merged.pop("timezone", "Asia/Seoul")
    enabled = merged.pop("enabled", True)
    if not isinstance(enabled, bool):
        raise JobError(f"enabled must be true or false, got {enabled!r}", "enabled")
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(str(timezone))
    except (KeyError, ValueError):
        raise JobError(f"unknown timezone {timezone!r} (e.g. Asia/Seoul)", "timezone") from None
    for name in ("id", "created_at", "updated_at"):
        merged.pop(name, None)
    bad = sorted(set(params) - set(PARAMS))
    if bad:
        raise JobError(f"unknown parameter(s) {', '.join(bad)}; known: {', '.join(PARAMS)}", bad[0])
    return parse_job({**merged, **params}), str(timezone), enabled


async def jobs_list(request: web.Request) -> web.Response:
    async with await _conn(request)() as conn:
        return reply(await job_store.list_jobs(conn))


async def job_create(request: web.Request) -> web.Response:
    try:
        job, timezone, enabled = _validated(await _body(request))
    except JobError as exc:
        return problem(400, str(exc), exc.field)
    async with await _conn(request)() as conn:
        try:
            row = await job_store.save_job(conn, job, timezone, enabled)
        except psycopg.errors.UniqueViolation:
            return problem(409, f"a job named {job.name!r} exists", "name")
    return reply(row, 201)


async def _stored(request: web.Request, conn: psycopg.AsyncConnection) -> dict[str, Any]:
    row = await job_store.get_job(conn, _int(request, "id", 0, 2**31 - 1))
    if row is None:
        raise web.HTTPNotFound(text=json.dumps({"error": "no such job"}), content_type="application/json")
    return row


def _as_body(row: dict[str, Any]) -> dict[str, Any]:
    keep = ("name", "kind", "cron", "timezone", "enabled", "params")
    return {k: row[k] for k in keep}


async def job_get(request: web.Request) -> web.Response:
    async with await _conn(request)() as conn:
        return reply(await _stored(request, conn))


async def job_patch(request: web.Request) -> web.Response:
    data = await _body(request)
    async with await _conn(request)() as conn:
        row = await _stored(request, conn)
        base = _as_body(row)
        if "params" in data and isinstance(data["params"], dict):
            data = {**data, "params": {**row["params"], **data["params"]}}
        try:
            job, timezone, enabled = _validated(data, base)
        except JobError as exc:
            return problem(400, str(exc), exc.field)
        try:
            saved = await job_store.save_job(conn, job, timezone, enabled, row["id"])
        except psycopg.errors.UniqueViolation:
            return problem(409, f"a job named {job.name!r} exists", "name")
    return reply(saved)


async def job_delete(request: web.Request) -> web.Response:
    async with await _conn(request)() as conn:
        row = await _stored(request, conn)
        await job_store.delete_job(conn, row["id"])
    return reply({"deleted": row["id"]})


async def job_run_now(request: web.Request) -> web.Response:
    async with await _conn(request)() as conn:
        row = await _stored(request, conn)
    job, _, _ = _validated({}, _as_body(row))
    service = request.app[SCHEDULER]
    decision = await asyncio.to_thread(service.run_now, job)
    status = 202 if decision.status == "started" else 409
    return reply({"job": job.name, "status": decision.status, "reason": decision.reason, "slot": decision.slot}, status)


async def job_runs(request: web.Request) -> web.Response:
    limit = _int(request, "limit", 20, 500)
    async with await _conn(request)() as conn:
        row = await _stored(request, conn)
        return reply(await job_store.job_runs(conn, row["name"], limit))


async def job_presets(request: web.Request) -> web.Response:
    async with await _conn(request)() as conn:
        created = await job_store.add_presets(conn, DEFAULT_JOBS, request.app[TIMEZONE])
    return reply({"created": created}, 201 if created else 200)


# --- scheduler ----------------------------------------------------------------------------------


async def scheduler_state(request: web.Request) -> web.Response:
    service = request.app[SCHEDULER]
    async with await _conn(request)() as conn:
        paused = await job_store.is_paused(conn)
    fires = await asyncio.to_thread(service.next_fires, 3)
    return reply({"running": not paused, "paused": paused, "timezone": request.app[TIMEZONE], "next": fires})


async def scheduler_switch(request: web.Request) -> web.Response:
    paused = request.match_info["action"] == "stop"
    async with await _conn(request)() as conn:
        await job_store.set_paused(conn, paused)
    return reply({"running": not paused, "paused": paused})


# --- runs ---------------------------------------------------------------------------------------


async def runs_list(request: web.Request) -> web.Response:
    limit, status = _int(request, "limit", 20, 500), request.query.get("status")
    async with await _conn(request)() as conn:
        return reply(await list_runs(conn, limit, status or None))


async def _run_or_404(conn: psycopg.AsyncConnection, run_id: int) -> dict[str, Any]:
    run = await show_run(conn, run_id)
    if run is None:
        raise web.HTTPNotFound(text=json.dumps({"error": f"no run {run_id}"}), content_type="application/json")
    return run


async def run_detail(request: web.Request) -> web.Response:
    run_id = _int(request, "id", 0, 2**62)
    async with await _conn(request)() as conn:
        run = await _run_or_404(conn, run_id)
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "SELECT district, count(*) FILTER (WHERE state = 'done') AS done,"
                " count(*) FILTER (WHERE state = 'failed') AS failed, count(*) AS units"
                " FROM crawl_units WHERE run_id = %s GROUP BY district ORDER BY district",
                (run_id,),
            )
            run["district_units"] = await cur.fetchall()
    return reply(run)


async def run_stop(request: web.Request) -> web.Response:
    """The graceful stop: SIGTERM to the run's master (its Ctrl-C path), when it runs on this machine."""
    run_id = _int(request, "id", 0, 2**62)
    async with await _conn(request)() as conn:
        run = await _run_or_404(conn, run_id)
    live = run.get("live") or {}
    if run["status"] != "running":
        return problem(409, f"run {run_id} is {run['status']}, not running")
    if live.get("host") != socket.gethostname() or not live.get("pid"):
        return problem(409, f"run {run_id} runs on {live.get('host') or 'another machine'}: stop it there")
    try:
        os.kill(int(live["pid"]), signal.SIGTERM)
    except ProcessLookupError:
        return problem(409, f"run {run_id}'s master (pid {live['pid']}) is gone; `stage5 crawl --resume` resumes it")
    return reply({"stopping": run_id}, 202)


async def run_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the run's figures every second until it is no longer running."""
    run_id = _int(request, "id", 0, 2**62)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    async with await _conn(request)() as conn:
        while True:
            run = await _run_or_404(conn, run_id)
            event = {
                "status": run["status"],
                "live": run.get("live") or {},
                "stores_new": run["stores_new"],
                "stores_updated": run["stores_updated"],
                "stores_unchanged": run["stores_unchanged"],
                "stores_rejected": run["stores_rejected"],
            }
            await response.write(f"data: {json.dumps(event, default=_default)}\n\n".encode())
            if run["status"] != "running":
                break
            await asyncio.sleep(LIVE_EVERY_S)
    return response


# --- stores -------------------------------------------------------------------------------------

STORE_FIELDS = (
    "diningcode_place_id AS rid, name, branch, district, address, position_lat AS lat, position_lng AS lng,"
    " is_confirmed_refill AS refill, refill_type, price_min, price_max, diningcode_rating AS rating, status"
)


async def stores_list(request: web.Request) -> web.Response:
    district, refill, q = request.query.get("district"), request.query.get("refill"), request.query.get("q")
    if district and district not in DISTRICT_NAMES:
        return problem(400, f"unknown district {district!r}; use Seoul's 구 names", "district")
    if refill not in (None, "", "true", "false"):
        return problem(400, "refill must be true or false", "refill")
    limit, after = _int(request, "limit", 100, 5000), request.query.get("after") or ""
    async with await _conn(request)() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {STORE_FIELDS} FROM stores WHERE diningcode_place_id > %(after)s"
            " AND (%(district)s::text IS NULL OR district = %(district)s)"
            " AND (%(refill)s::boolean IS NULL OR is_confirmed_refill = %(refill)s)"
            " AND (%(q)s::text IS NULL OR name ILIKE '%%' || %(q)s || '%%')"
            " ORDER BY diningcode_place_id LIMIT %(limit)s",
            {"after": after, "district": district or None, "refill": refill or None, "q": q or None, "limit": limit},
        )
        rows = await cur.fetchall()
    next_after = rows[-1]["rid"] if len(rows) == limit else None
    return reply({"stores": rows, "next_after": next_after})


async def store_detail(request: web.Request) -> web.Response:
    async with await _conn(request)() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM stores WHERE diningcode_place_id = %s", (request.match_info["rid"],))
        row = await cur.fetchone()
    return reply(row) if row else problem(404, "no such store")


async def districts(request: web.Request) -> web.Response:
    return reply([{"name": d.name, "lat": d.lat, "lng": d.lng} for d in DISTRICTS])


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/jobs", jobs_list)
    r.add_post("/api/jobs", job_create)
    r.add_post("/api/jobs/presets", job_presets)
    r.add_get("/api/jobs/{id}", job_get)
    r.add_patch("/api/jobs/{id}", job_patch)
    r.add_delete("/api/jobs/{id}", job_delete)
    r.add_post("/api/jobs/{id}/run", job_run_now)
    r.add_get("/api/jobs/{id}/runs", job_runs)
    r.add_get("/api/scheduler", scheduler_state)
    r.add_post("/api/scheduler/{action:start|stop}", scheduler_switch)
    r.add_get("/api/runs", runs_list)
    r.add_get("/api/runs/{id}", run_detail)
    r.add_post("/api/runs/{id}/stop", run_stop)
    r.add_get("/api/runs/{id}/events", run_events)
    r.add_get("/api/stores", stores_list)
    r.add_get("/api/stores/{rid}", store_detail)
    r.add_get("/api/districts", districts)
