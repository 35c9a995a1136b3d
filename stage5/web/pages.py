"""The console's pages: HTML shells whose small plain scripts (static/*.js, no build step) read the API.

A shell holds no data: its script asks the API, and when the console has a token and the browser has not
given it yet, shows the sign-in form first (the token is kept in sessionStorage: for this tab's session)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).parent / "static"


def page(title: str, body: str, script: str, data: str = "") -> web.Response:
    html = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title} · stage5</title>
<link rel="stylesheet" href="/static/console.css"></head><body {data}>
<nav><a href="/">Dashboard</a><a href="/jobs">Jobs</a><a href="/stores">Stores</a>
<button id="signout" hidden>Sign out</button></nav>
<main><h1>{title}</h1><p id="error" class="bad"></p>{SIGNIN}<div id="content" hidden>{body}</div></main>
<script src="/static/common.js"></script><script src="/static/{script}"></script></body></html>"""
    return web.Response(text=html, content_type="text/html")


SIGNIN = """<form id="signin" hidden><p>This console needs its API token (STAGE5_API_TOKEN).</p>
<label>token <input name="token" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button></form>"""

DASHBOARD = """
<h2>Scheduler</h2><p id="sched"></p><div class="scroll"><table id="fires"></table></div>
<h2>Current run</h2><div id="current">no run is going</div>
<h2>Last runs</h2><div class="scroll"><table id="runs"></table></div>"""

JOBS = """
<p id="notice" class="ok"></p>
<div id="defaults" hidden><p>No job is stored: the scheduler runs these. Changing one stores them all first.</p>
<div class="scroll"><table id="default-jobs"></table></div></div>
<button id="presets">Create the recommended jobs</button>
<div class="scroll"><table id="jobs"></table></div>
<h2 id="form-title">New job</h2>
<form id="form"><label>name <input name="name" required></label><label>kind <select name="kind">
<option>crawl</option><option>cleanup</option></select></label><label>cron <input name="cron" value="0 1 * * *"></label>
<label>timezone <input name="timezone" list="zones" placeholder="Asia/Seoul"></label>
<datalist id="zones"><option>Asia/Seoul</option><option>UTC</option><option>Europe/London</option></datalist>
<label>parameters (JSON) <input name="params" size="40" value='{"districts": [], "overlap": "skip"}'></label>
<button type="submit">Create</button></form>
<h2 id="history-title"></h2><div class="scroll"><table id="history"></table></div>"""

RUN = """<p>Run <b id="run-id"></b>: <span id="status"></span> <button id="stop">Stop</button></p>
<dl id="facts"></dl>
<div class="cards"><div class="card">stores<b id="stores">0</b></div><div class="card">pages/s<b id="rate">0</b></div>
<div class="card">memory<b id="memory">0</b></div><div class="card">workers<b id="workers">0</b></div>
<div class="card">districts done<b id="districts">0</b></div></div>
<h2>Districts</h2><div class="scroll"><table id="units"></table></div>
<h2>Failed units</h2><div class="scroll"><table id="failed"></table></div>"""

STORES = """<form id="filter">
<label>district <select name="district" id="district"><option value="">all</option></select></label>
<label>all-you-can-eat <select name="refill"><option value="">any</option><option>true</option>
<option>false</option></select></label>
<label>name <input name="q"></label><label>sort <select name="sort" id="sort"><option value="rid">id</option>
<option value="name">name</option><option value="district">district</option><option value="price">price</option>
<option value="rating">rating</option></select></label><button type="submit">Show</button></form>
<p id="count"></p><svg id="map" width="640" height="480" viewBox="0 0 640 480"></svg>
<p class="pager"><button id="prev">‹ Previous</button> <span id="page"></span> <button id="next">Next ›</button></p>
<div class="scroll"><table id="stores"></table></div>
<section id="store" hidden><h2 id="store-name"></h2><dl id="store-facts"></dl><h3>Change history</h3>
<div class="scroll"><table id="store-history"></table></div></section>"""


async def dashboard(request: web.Request) -> web.Response:
    return page("Dashboard", DASHBOARD, "dashboard.js")


async def jobs(request: web.Request) -> web.Response:
    return page("Jobs", JOBS, "jobs.js")


async def run_page(request: web.Request) -> web.Response:
    run_id = int(request.match_info["id"][:18])
    return page(f"Run {run_id}", RUN, "run.js", data=f'data-run="{run_id}"')


async def stores(request: web.Request) -> web.Response:
    return page("Stores", STORES, "stores.js")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", dashboard)
    app.router.add_get("/jobs", jobs)
    app.router.add_get(r"/runs/{id:\d+}", run_page)
    app.router.add_get("/stores", stores)
    app.router.add_static("/static", STATIC)
