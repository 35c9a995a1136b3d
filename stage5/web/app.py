"""`python -m stage5 serve`: the web console and its JSON API, with the scheduler running inside.

Loopback by default; binding to any other address needs STAGE5_API_TOKEN (every API call then needs it).
A request's Host must be the bound address, a loopback name or one of STAGE5_CONSOLE_HOSTS; bound to all
addresses (0.0.0.0) with no names configured, any Host is taken (the token guards it then).
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import AsyncIterator

import psycopg
from aiohttp import web
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from stage5.errors import ConfigError
from stage5.schedule.jobs import job_values
from stage5.schedule.service import SchedulerService
from stage5.services import database_url
from stage5.settings import Settings
from stage5.storage import jobs as job_store
from stage5.web import api, pages


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


POOL_MAX = 8  # the console's PostgreSQL connections at most, whatever the number of clients
POOL_WAIT_S = 5.0  # a request waits this long for one, then is answered 503 + Retry-After


def allowed_hosts(settings: Settings, host: str) -> frozenset[str]:
    """The names a Host header may give; empty when any is taken (bound to every address, none named)."""
    named = {h.strip().lower() for h in settings.console_hosts.split(",") if h.strip()}
    if host in ("0.0.0.0", "::", "") and not named:
        return frozenset()
    return frozenset({api.host_name(host), "127.0.0.1", "localhost", "::1", *named})


def _pool(settings: Settings) -> AsyncConnectionPool:
    schema = settings.db_schema

    async def configure(conn: psycopg.AsyncConnection) -> None:
        # The scheduler's start migrates (and creates) the schema; a search_path may name it before.
        await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        await conn.commit()

    return AsyncConnectionPool(
        database_url(settings),
        min_size=1,
        max_size=POOL_MAX,
        timeout=POOL_WAIT_S,
        kwargs={"application_name": "stage5 console", "connect_timeout": 10},
        configure=configure,
        open=False,
    )


def make_app(settings: Settings, tick_s: float | None = None, host: str = "127.0.0.1") -> web.Application:
    """The application; its connection pool and scheduler thread start and stop with it."""
    app = web.Application(middlewares=[api.guard])
    app[api.TOKEN] = settings.api_token or ""
    app[api.TIMEZONE] = settings.timezone
    app[api.HOSTS] = allowed_hosts(settings, host)
    api.add_routes(app)
    pages.add_routes(app)

    async def pool(app: web.Application) -> AsyncIterator[None]:
        app[api.POOL] = _pool(settings)
        await app[api.POOL].open(wait=False)
        app[api.STREAMS] = api.RunStreams(app[api.POOL])
        yield
        await app[api.STREAMS].close()
        await app[api.POOL].close()

    async def scheduler(app: web.Application) -> AsyncIterator[None]:
        service = await asyncio.to_thread(SchedulerService, settings, *([tick_s] if tick_s else []))
        if settings.schedule_file:  # the schedule file's jobs become the console's, once
            async with app[api.POOL].connection() as conn:
                if not await job_store.list_jobs(conn):
                    await job_store.add_presets(conn, [job_values(j) for j in service.file_jobs], settings.timezone)
        app[api.SCHEDULER] = service
        thread = threading.Thread(target=service.loop, name="scheduler", daemon=True)
        thread.start()
        yield
        service.stopping.set()
        await asyncio.to_thread(thread.join, 5)
        service.close()

    app.cleanup_ctx.append(pool)
    app.cleanup_ctx.append(scheduler)
    return app


def serve(settings: Settings, host: str, port: int) -> int:
    if not _loopback(host) and not settings.api_token:
        raise ConfigError(
            f"serving on {host} (not loopback) needs an API token: set STAGE5_API_TOKEN, or serve on 127.0.0.1"
        )
    print(f"stage5 console on http://{host}:{port}/ (Ctrl-C stops it)", flush=True)
    web.run_app(make_app(settings, host=host), host=host, port=port, print=None, access_log=None)
    return 0
