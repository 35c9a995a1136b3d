"""The console's JSON API (`/api/…`): jobs, the scheduler, runs (with a live event stream), stores.

Rules for every request:
- its `Host` must name this console (the bound address, loopback names, STAGE5_CONSOLE_HOSTS): a page
  of another site whose name was rebound to 127.0.0.1 (DNS rebinding) is refused (403);
- when STAGE5_API_TOKEN is set, every API call, reads and the event stream included, needs
  `Authorization: Bearer <token>` (the pages are empty shells: their sign-in form keeps the token for
  the browser session and they show nothing before);
- requests that change something (POST, PATCH, DELETE) send JSON (a cross-site form cannot without a
  CORS preflight, which this server never answers) and an `Origin`, when sent, must be this server's;
- query parameters and bodies are checked by pydantic models: a bad one is a 400 naming the field.
Database connections come from one bounded pool; when it stays full the answer is 503 with Retry-After.
Errors are JSON: {"error": reason, "field": name} with 400, 401, 403, 404, 409 or 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar

import psutil
import psycopg
from aiohttp import web
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from stage5.errors import DatabaseUnavailable, JobError
from stage5.identity import not_the_same
from stage5.logs import log_event
from stage5.schedule.jobs import DEFAULT_JOBS, PARAMS, Job, job_values, parse_job
from stage5.schedule.service import SchedulerService
from stage5.site.seoul import DISTRICT_NAMES, DISTRICTS
from stage5.storage import jobs as job_store
from stage5.storage.console import district_units, job_history, store_columns, store_history, stores_page
from stage5.storage.runs import list_runs, show_run

log = logging.getLogger("stage5.web")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TOKEN = web.AppKey("token", str)
TIMEZONE = web.AppKey("timezone", str)
HOSTS = web.AppKey("hosts", frozenset)  # the names a Host header may give; empty: any (bound to all addresses)
POOL = web.AppKey("pool", AsyncConnectionPool)
STREAMS: web.AppKey[RunStreams] = web.AppKey("streams")
SCHEDULER = web.AppKey("scheduler", SchedulerService)
MUTATING = ("POST", "PATCH", "DELETE", "PUT")
LIVE_EVERY_S = 1.0
RETRY_AFTER_S = 5
STREAMS_MAX = 100  # event streams open at once; past it a 503 (each costs a socket, not a connection)


def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (set, tuple)):
        return list(value)
    if is_dataclass(value) and not isinstance(value, type):  # a typed row of stage5.storage
        return asdict(value)
    raise TypeError(type(value).__name__)


def reply(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, default=_default, ensure_ascii=False), status=status, content_type="application/json"
    )


def problem(status: int, reason: str, field: str = "") -> web.Response:
    return reply({"error": reason, **({"field": field} if field else {})}, status)


def host_name(host: str) -> str:
    """The name part of a Host header ('127.0.0.1:8080' -> '127.0.0.1', '[::1]:80' -> '::1'), lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _refused(request: web.Request) -> web.Response | None:
    """The Host, token and cross-site rules (module docstring); None when the request may go on."""
    hosts = request.app[HOSTS]
    if hosts and host_name(request.host) not in hosts:
        return problem(
            403, f"Host {request.host!r} is not this console's (DNS rebinding?); add the name to STAGE5_CONSOLE_HOSTS"
        )
    api = request.path.startswith("/api/")
    token = request.app[TOKEN]
    if api and token:
        scheme, _, given = request.headers.get("Authorization", "").strip().partition(" ")
        given = given.strip() if scheme.lower() == "bearer" else ""  # the scheme's case does not matter (RFC 9110)
        if not hmac.compare_digest(given.encode(), token.encode()):
            return problem(401, "this server needs its API token: Authorization: Bearer <STAGE5_API_TOKEN>")
    if api and request.method in MUTATING:
        origin = request.headers.get("Origin")
        if origin and origin != f"{request.scheme}://{request.host}":
            return problem(403, f"cross-site request from {origin} refused")
        if request.can_read_body and request.content_type != "application/json":
            return problem(400, "send the body as JSON (Content-Type: application/json)")
    return None


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The rules above for every request; database trouble is a 503, anything unforeseen a JSON 500
    (logged, never a traceback to the client)."""
    refused = _refused(request)
    if refused is not None:
        return refused
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except PoolTimeout:
        return _busy("every database connection of the console is in use")
    except (psycopg.OperationalError, DatabaseUnavailable) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return _busy(f"database unavailable: {reason}; start PostgreSQL and retry")
    except Exception as exc:  # a bug: said in the log with its traceback, a plain JSON 500 to the client
        log.exception("console request failed")
        log_event(log, "console_error", logging.ERROR, path=request.path, reason=type(exc).__name__)
        return problem(500, f"internal error ({type(exc).__name__}); see the console's log")


def _busy(reason: str) -> web.Response:
    answer = problem(503, f"{reason}; retry in {RETRY_AFTER_S} s")
    answer.headers["Retry-After"] = str(RETRY_AFTER_S)
    return answer


def _bad(reason: str, field: str = "") -> web.HTTPBadRequest:
    body = {"error": reason, **({"field": field} if field else {})}
    return web.HTTPBadRequest(text=json.dumps(body), content_type="application/json")


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    raw = await request.read()
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _bad(f"body is not UTF-8 (byte {exc.start})", "body") from None
    except json.JSONDecodeError as exc:
        raise _bad(f"body is not JSON: {exc}", "body") from None
    except RecursionError:
        raise _bad("body is nested too deeply", "body") from None
    if not isinstance(data, dict):
        raise _bad("body must be a JSON object", "body")
    return data


def _text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[str, AfterValidator(_text)]


def _validation_error(exc: ValidationError) -> web.HTTPBadRequest:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "body"
    return _bad(f"{field}: {first['msg']}", field)


M = TypeVar("M", bound=BaseModel)


def _query(request: web.Request, model: type[M]) -> M:
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise _validation_error(exc) from None


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


def _db(request: web.Request) -> contextlib.AbstractAsyncContextManager[psycopg.AsyncConnection]:
    """A connection of the console's pool (committed when the block ends, rolled back on an error)."""
    return request.app[POOL].connection()


class RunsQuery(BaseModel):
    limit: int = Field(20, ge=1, le=500)
    status: Literal["running", "succeeded", "partial", "failed", "interrupted", "skipped"] | None = None


class LimitQuery(BaseModel):
    limit: int = Field(20, ge=1, le=500)


class StoresQuery(BaseModel):
    limit: int = Field(100, ge=1, le=5000)
    after: Annotated[Text, Field(max_length=64)] = ""
    offset: int = Field(0, ge=0, le=1_000_000)
    district: Annotated[Text, Field(max_length=20)] | None = None
    refill: bool | None = None
    q: Annotated[Text, Field(max_length=100)] | None = None
    sort: Literal["rid", "name", "district", "price", "rating"] = "rid"


class JobBody(BaseModel):
    """A job as the API takes it; the parameters' meaning is checked by parse_job (stage5.schedule.jobs)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    name: Annotated[Text, Field(min_length=1, max_length=80)] | None = None
    kind: Literal["crawl", "cleanup"] | None = None
    cron: Annotated[Text, Field(max_length=100)] | None = None
    timezone: Annotated[Text, Field(max_length=64)] | None = None
    enabled: bool | None = None
    params: dict[str, Any] | None = None


def _job_body(data: dict[str, Any], creating: bool) -> dict[str, Any]:
    for name in ("id", "created_at", "updated_at"):  # a job as GET gives it may be sent back
        data.pop(name, None)
    try:
        body = JobBody.model_validate(data).model_dump(exclude_none=True)
    except ValidationError as exc:
        raise _validation_error(exc) from None
    if creating and "name" not in body:
        raise _bad("name: a job needs a name", "name")
    if "\\u0000" in json.dumps(body.get("params", {})):  # json.dumps writes NUL as \\u0000
        raise _bad("params: must not contain NUL characters", "params")
    return body


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
    return parse_job({**merged, **params, "timezone": str(timezone)}), str(timezone), enabled


async def jobs_list(request: web.Request) -> web.Response:
    async with _db(request) as conn:
        return reply(await job_store.list_jobs(conn))


async def job_create(request: web.Request) -> web.Response:
    body = _job_body(await _body(request), creating=True)
    try:
        job, timezone, enabled = _validated(body)
    except JobError as exc:
        return problem(400, str(exc), exc.field)
    async with _db(request) as conn:
        try:
            row = await job_store.save_job(conn, job_values(job), timezone, enabled)
        except psycopg.errors.UniqueViolation:
            return problem(409, f"a job named {job.name!r} exists", "name")
    return reply(row, 201)


async def _stored(request: web.Request, conn: psycopg.AsyncConnection) -> job_store.JobRow:
    row = await job_store.get_job(conn, _int(request, "id", 0, 2**31 - 1))
    if row is None:
        raise web.HTTPNotFound(text=json.dumps({"error": "no such job"}), content_type="application/json")
    return row


def _as_body(row: job_store.JobRow) -> dict[str, Any]:
    return {
        "name": row.name,
        "kind": row.kind,
        "cron": row.cron,
        "timezone": row.timezone,
        "enabled": row.enabled,
        "params": row.params,
    }


async def job_get(request: web.Request) -> web.Response:
    async with _db(request) as conn:
        return reply(await _stored(request, conn))


async def job_patch(request: web.Request) -> web.Response:
    data = _job_body(await _body(request), creating=False)
    async with _db(request) as conn:
        row = await _stored(request, conn)
        base = _as_body(row)
        if "params" in data and isinstance(data["params"], dict):
            data = {**data, "params": {**row.params, **data["params"]}}
        try:
            job, timezone, enabled = _validated(data, base)
        except JobError as exc:
            return problem(400, str(exc), exc.field)
        try:
            saved = await job_store.save_job(conn, job_values(job), timezone, enabled, row.id)
        except psycopg.errors.UniqueViolation:
            return problem(409, f"a job named {job.name!r} exists", "name")
    return reply(saved)


async def job_delete(request: web.Request) -> web.Response:
    async with _db(request) as conn:
        row = await _stored(request, conn)
        await job_store.delete_job(conn, row.id)
    return reply({"deleted": row.id})


async def job_run_now(request: web.Request) -> web.Response:
    async with _db(request) as conn:
        row = await _stored(request, conn)
    job, _, _ = _validated({}, _as_body(row))
    service = request.app[SCHEDULER]
    decision = await asyncio.to_thread(service.run_now, job)
    status = 202 if decision.status == "started" else 409
    return reply({"job": job.name, "status": decision.status, "reason": decision.reason, "slot": decision.slot}, status)


async def job_runs(request: web.Request) -> web.Response:
    limit = _query(request, LimitQuery).limit
    async with _db(request) as conn:
        row = await _stored(request, conn)
        return reply(await job_history(conn, row.name, limit))


async def job_presets(request: web.Request) -> web.Response:
    async with _db(request) as conn:
        created = await job_store.add_presets(conn, [job_values(j) for j in DEFAULT_JOBS], request.app[TIMEZONE])
    return reply({"created": created}, 201 if created else 200)


# --- scheduler ----------------------------------------------------------------------------------


async def scheduler_state(request: web.Request) -> web.Response:
    service = request.app[SCHEDULER]
    async with _db(request) as conn:
        paused = await job_store.is_paused(conn)
    fires = await asyncio.to_thread(service.next_fires, 3)
    zone = request.app[TIMEZONE]
    planned = await asyncio.to_thread(service.planned)
    jobs = [{"name": j.name, "kind": j.kind, "cron": j.cron, "timezone": j.timezone or zone} for j in planned]
    return reply({"running": not paused, "paused": paused, "timezone": zone, "next": fires, "jobs": jobs})


async def scheduler_switch(request: web.Request) -> web.Response:
    paused = request.match_info["action"] == "stop"
    async with _db(request) as conn:
        await job_store.set_paused(conn, paused)
    return reply({"running": not paused, "paused": paused})


# --- runs ---------------------------------------------------------------------------------------


async def runs_list(request: web.Request) -> web.Response:
    query = _query(request, RunsQuery)
    async with _db(request) as conn:
        return reply(await list_runs(conn, query.limit, query.status))


async def _run_or_404(conn: psycopg.AsyncConnection, run_id: int) -> dict[str, Any]:
    run = await show_run(conn, run_id)
    if run is None:
        raise web.HTTPNotFound(text=json.dumps({"error": f"no run {run_id}"}), content_type="application/json")
    return run


async def run_detail(request: web.Request) -> web.Response:
    run_id = _int(request, "id", 0, 2**62)
    async with _db(request) as conn:
        run = await _run_or_404(conn, run_id)
        run["district_units"] = await district_units(conn, run_id)
    return reply(run)


async def run_stop(request: web.Request) -> web.Response:
    """The graceful stop: SIGTERM to the run's master (its Ctrl-C path), when it runs on this machine and
    the process with its pid is still that master."""
    run_id = _int(request, "id", 0, 2**62)
    async with _db(request) as conn:
        run = await _run_or_404(conn, run_id)
    live = run.get("live") or {}
    if run["status"] != "running":
        return problem(409, f"run {run_id} is {run['status']}, not running")
    if live.get("host") != socket.gethostname() or not live.get("pid"):
        return problem(409, f"run {run_id} runs on {live.get('host') or 'another machine'}: stop it there")
    other = await asyncio.to_thread(not_the_same, live)
    if other is not None:
        return problem(
            409, f"run {run_id}'s master is not running ({other}); nothing was signalled. `stage5 crawl --resume`"
        )
    try:
        psutil.Process(int(live["pid"])).send_signal(signal.SIGTERM)
    except psutil.NoSuchProcess:
        return problem(409, f"run {run_id}'s master (pid {live['pid']}) is gone; `stage5 crawl --resume` resumes it")
    return reply({"stopping": run_id}, 202)


def _event(run: dict[str, Any]) -> dict[str, Any]:
    keep = ("status", "stores_new", "stores_updated", "stores_unchanged", "stores_rejected", "finished_at")
    return {"live": run.get("live") or {}, **{k: run.get(k) for k in keep}}


class RunStreams:
    """One reader per run shared by every event stream of that run: it reads the run's row once a second
    (one pooled connection for the moment of the read) and hands the event to each stream's queue, so
    200 watchers cost what one does."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool
        self.watchers: dict[int, set[asyncio.Queue[dict[str, Any] | None]]] = {}
        self.readers: dict[int, asyncio.Task[None]] = {}
        self.open = 0  # streams open (counted before their first await, so a burst cannot overshoot)

    def reserve(self) -> bool:
        if self.open >= STREAMS_MAX:
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open -= 1

    @contextlib.asynccontextmanager
    async def watch(self, run_id: int) -> AsyncIterator[asyncio.Queue[dict[str, Any] | None]]:
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=8)
        self.watchers.setdefault(run_id, set()).add(queue)
        if run_id not in self.readers or self.readers[run_id].done():
            self.readers[run_id] = asyncio.create_task(self._read(run_id))
        try:
            yield queue
        finally:
            self.watchers.get(run_id, set()).discard(queue)

    async def _read(self, run_id: int) -> None:
        try:
            while self.watchers.get(run_id):
                try:
                    async with self.pool.connection() as conn:
                        run = await show_run(conn, run_id)
                except (PoolTimeout, psycopg.OperationalError) as exc:
                    log_event(log, "event_stream_read_failed", logging.WARNING, run=run_id, reason=type(exc).__name__)
                    await asyncio.sleep(LIVE_EVERY_S)
                    continue
                event = _event(run) if run else None
                for queue in list(self.watchers.get(run_id, ())):
                    if queue.full():  # a slow reader misses a figure, never blocks the others
                        queue.get_nowait()
                    queue.put_nowait(event)
                if event is None or event["status"] != "running":
                    return
                await asyncio.sleep(LIVE_EVERY_S)
        finally:
            self.readers.pop(run_id, None)
            if not self.watchers.get(run_id):
                self.watchers.pop(run_id, None)

    async def close(self) -> None:
        for task in list(self.readers.values()):
            task.cancel()


async def run_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the run's figures every second until it is no longer running."""
    run_id = _int(request, "id", 0, 2**62)
    streams = request.app[STREAMS]
    if not streams.reserve():
        return _busy(f"{STREAMS_MAX} event streams are open")
    try:
        async with _db(request) as conn:
            await _run_or_404(conn, run_id)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        async with streams.watch(run_id) as queue:
            while (event := await queue.get()) is not None:
                await response.write(f"data: {json.dumps(event, default=_default)}\n\n".encode())
                if event["status"] != "running":
                    break
        return response
    finally:
        streams.release()


# --- stores -------------------------------------------------------------------------------------


async def stores_list(request: web.Request) -> web.Response:
    """Stores by filter: keyset pages (`after`) in id order, or `offset` pages in another `sort`; `total`
    counts every store the filter matches."""
    query = _query(request, StoresQuery)
    if query.district and query.district not in DISTRICT_NAMES:
        return problem(400, f"unknown district {query.district!r}; use Seoul's 구 names", "district")
    async with _db(request) as conn:
        page = await stores_page(
            conn,
            district=query.district or None,
            refill=query.refill,
            name_part=query.q or None,
            sort=query.sort,
            limit=query.limit,
            after=query.after,
            offset=query.offset,
        )
    rows = page.stores
    next_after = rows[-1].rid if len(rows) == query.limit and query.sort == "rid" else None
    return reply({"stores": rows, "next_after": next_after, "total": page.total, "offset": query.offset})


async def store_detail(request: web.Request) -> web.Response:
    """One store with its change history (newest first)."""
    rid = request.match_info["rid"]
    if len(rid) > 64 or "\x00" in rid:
        return problem(400, "rid: not a store id", "rid")
    async with _db(request) as conn:
        row = await store_columns(conn, rid)
        if row is None:
            return problem(404, "no such store")
        row["history"] = await store_history(conn, rid)
    return reply(row)


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
