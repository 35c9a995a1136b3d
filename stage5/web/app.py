"""`python -m stage5 serve`: the web console and its JSON API, with the scheduler running inside.

Loopback by default; binding to any other address needs STAGE5_API_TOKEN (every change then needs it).
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import AsyncIterator

from aiohttp import web

from stage5.errors import ConfigError
from stage5.schedule.service import SchedulerService
from stage5.services import database_url
from stage5.settings import Settings
from stage5.storage import jobs as job_store
from stage5.storage.db import connect
from stage5.web import api, pages


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_app(settings: Settings, tick_s: float | None = None) -> web.Application:
    """The application; its scheduler thread starts and stops with it."""
    url = database_url(settings)
    app = web.Application(middlewares=[api.guard])
    app[api.TOKEN] = settings.api_token or ""
    app[api.TIMEZONE] = settings.timezone
    app[api.CONNECT] = lambda: connect(url, settings.db_schema, role="console")
    api.add_routes(app)
    pages.add_routes(app)

    async def scheduler(app: web.Application) -> AsyncIterator[None]:
        service = await asyncio.to_thread(SchedulerService, settings, *([tick_s] if tick_s else []))
        if settings.schedule_file:  # the schedule file's jobs become the console's, once
            async with await app[api.CONNECT]() as conn:
                if not await job_store.list_jobs(conn):
                    await job_store.add_presets(conn, service.file_jobs, settings.timezone)
        app[api.SCHEDULER] = service
        thread = threading.Thread(target=service.loop, name="scheduler", daemon=True)
        thread.start()
        yield
        service.stopping.set()
        await asyncio.to_thread(thread.join, 5)
        service.close()

    app.cleanup_ctx.append(scheduler)
    return app


def serve(settings: Settings, host: str, port: int) -> int:
    if not _loopback(host) and not settings.api_token:
        raise ConfigError(
            f"serving on {host} (not loopback) needs an API token: set STAGE5_API_TOKEN, or serve on 127.0.0.1"
        )
    print(f"stage5 console on http://{host}:{port}/ (Ctrl-C stops it)", flush=True)
    web.run_app(make_app(settings), host=host, port=port, print=None, access_log=None)
    return 0
