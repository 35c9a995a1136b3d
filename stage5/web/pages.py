"""The console's pages: HTML shells whose small plain scripts (static/*.js, no build step) read the API."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).parent / "static"


def page(title: str, body: str, script: str, data: str = "") -> web.Response:
    html = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title} · stage5</title>
<link rel="stylesheet" href="/static/console.css"></head><body {data}>
<nav><a href="/">Dashboard</a><a href="/jobs">Jobs</a><a href="/stores">Stores</a></nav>
<main><h1>{title}</h1><p id="error" class="bad"></p>{body}</main>
<script src="/static/common.js"></script><script src="/static/{script}"></script></body></html>"""
    return web.Response(text=html, content_type="text/html")


DASHBOARD = """
<h2>Scheduler</h2><p id="sched"></p><table id="fires"></table>
<h2>Current run</h2><div id="current">no run is going</div>
<h2>Last runs</h2><table id="runs"></table>"""

JOBS = """
<button id="presets">Create the recommended jobs</button>
<table id="jobs"></table>
<h2 id="form-title">New job</h2>
<form id="form"><label>name <input name="name" required></label><label>kind <select name="kind">
<option>crawl</option><option>cleanup</option></select></label><label>cron <input name="cron" value="0 1 * * *"></label>
<label>parameters (JSON) <input name="params" size="50" value='{"districts": [], "overlap": "skip"}'></label>
<button type="submit">Create</button></form>
<h2 id="history-title"></h2><table id="history"></table>"""

RUN = """<p>Run <b id="run-id"></b>: <span id="status"></span> <button id="stop">Stop</button></p>
<div class="cards"><div class="card">stores<b id="stores">0</b></div><div class="card">pages/s<b id="rate">0</b></div>
<div class="card">memory<b id="memory">0</b></div><div class="card">workers<b id="workers">0</b></div>
<div class="card">districts done<b id="districts">0</b></div></div>
<h2>Districts</h2><table id="units"></table><h2>Failed units</h2><table id="failed"></table>"""

STORES = """<form id="filter">
<label>district <select name="district" id="district"><option value="">all</option></select></label>
<label>all-you-can-eat <select name="refill"><option value="">any</option><option>true</option>
<option>false</option></select></label>
<label>name <input name="q"></label><button type="submit">Show</button></form>
<p id="count"></p><svg id="map" width="640" height="480" viewBox="0 0 640 480"></svg><table id="stores"></table>"""


async def dashboard(request: web.Request) -> web.Response:
    return page("Dashboard", DASHBOARD, "dashboard.js")


async def jobs(request: web.Request) -> web.Response:
    return page("Jobs", JOBS, "jobs.js")


async def run_page(request: web.Request) -> web.Response:
    run_id = int(request.match_info["id"])
    return page(f"Run {run_id}", RUN, "run.js", data=f'data-run="{run_id}"')


async def stores(request: web.Request) -> web.Response:
    return page("Stores", STORES, "stores.js")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", dashboard)
    app.router.add_get("/jobs", jobs)
    app.router.add_get(r"/runs/{id:\d+}", run_page)
    app.router.add_get("/stores", stores)
    app.router.add_static("/static", STATIC)
