"""The console's pages: static HTML shells (static/*.html) whose ES modules (static/*.js, no build step) read
the API and fill the pages' <template> rows with text.

A shell holds no data: its script asks the API, and when the console has a token and the browser has not
given it yet, shows the sign-in form first (the token is kept in sessionStorage: for this tab's session).
Every answer carries a Content-Security-Policy that lets scripts, styles and requests come from this server
only: no inline script, no handler attribute, nothing from another host."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).parent / "static"
PAGES = {"/": "dashboard.html", "/jobs": "jobs.html", r"/runs/{id:\d+}": "run.html", "/stores": "stores.html"}

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "Referrer-Policy": "no-referrer",
}


def _page(name: str) -> Callable[[web.Request], Awaitable[web.FileResponse]]:
    path = STATIC / name

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(path)

    return page


async def _secure(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer's security headers; pages and their files are checked again on each load (no-cache:
    an upgraded console never runs yesterday's module beside today's)."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-cache")


def add_routes(app: web.Application) -> None:
    for path, name in PAGES.items():
        app.router.add_get(path, _page(name))
    app.router.add_static("/static", STATIC)
    app.on_response_prepare.append(_secure)
