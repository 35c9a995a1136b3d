"""The replica: an aiohttp server that answers like DiningCode, with fault knobs and counters.

Endpoints: `POST|GET /API/isearch/`, `POST /API/profile/` (form v_rid), `GET /list.dc`,
`GET /profile.php?rid=`. Its own, outside the
site's namespace: `GET /__replica/stats` (what it served) and `POST /__replica/reset`.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import signal
import time
import zlib
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import MultiMapping

from stage5.replica import profile_api, render
from stage5.replica.world import Store, World
from stage5.site.seoul import distance_m

MAX_PAGE_SIZE = 50
GET_PAGE_SIZE = 4  # the site answers GET too, but always with 4 items
LIST_PAGE_SIZE = 20


@dataclass
class Faults:
    """Fault knobs, all off by default. Probabilities are per request, from 0 to 1."""

    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    p429: float = 0.0
    retry_after_s: float = 1.0
    p5xx: float = 0.0
    p_hang: float = 0.0
    hang_s: float = 30.0
    p_truncate: float = 0.0
    p_malformed: float = 0.0
    rate_cap: float = 0.0  # requests per second per client address; over it: 429 + Retry-After
    fault_seed: int = 0
    # How detail pages look (not a fault, but a knob of the same kind): each store's page is in one of
    # the site's layouts, chosen by its id; `layout` forces one for every store; `layout_shift` moves
    # half the stores to the next layout (a site redesign half rolled out).
    layout: str = ""
    layout_shift: int = 0
    # Render every detail page once at start and keep answers in memory, so that on a small machine a
    # benchmark measures the crawler rather than the replica's rendering (bodies are the same bytes).
    prerender: bool = False
    # The replica's robots.txt ("" serves one that allows the crawl, as the tests and the demo need).
    robots: str = ""
    # At most this many distinct stores per search query, as the real site is reported to answer (0: no
    # cap); total_cnt and params.rcount keep the true count.
    result_cap: int = 0
    # The profile API answers an error (result_code other than 100) for this share of the stores, chosen by
    # id (profile_api.fails): 1 is an API that is down, a fraction a mixed crawl.
    api_fail: float = 0.0


@dataclass
class Stats:
    requests: int = 0
    by_endpoint: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    detail_served: Counter[str] = field(default_factory=Counter)  # rid -> 200 answers
    # Politeness as the site sees it: requests being answered at once (most ever), and the smallest gaps
    # between two arrivals (the 100 smallest, seconds) with how many gaps there were.
    in_flight: int = 0
    max_in_flight: int = 0
    last_arrival: float = 0.0
    gaps: list[float] = field(default_factory=list)

    def arrived(self) -> None:
        now = time.monotonic()
        if self.last_arrival:
            self.gaps.append(now - self.last_arrival)
        self.last_arrival = now
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "max_in_flight": self.max_in_flight,
            "gap_count": len(self.gaps),
            "smallest_gaps": sorted(self.gaps)[:100],
            "by_endpoint": dict(self.by_endpoint),
            "by_status": {str(k): v for k, v in self.by_status.items()},
            "faults": dict(self.faults),
            "detail_unique": len(self.detail_served),
            "detail_repeats": sum(n - 1 for n in self.detail_served.values() if n > 1),
        }


def _query_word(query: str) -> tuple[str, str]:
    """'강남구 고기무한리필' -> ('강남구', '고기무한리필'); the place is the first word."""
    words = query.split()
    return (words[0], words[-1]) if len(words) >= 2 else ("", words[0] if words else "")


class Replica:
    def __init__(self, world: World, faults: Faults | None = None) -> None:
        self.world = world
        self.faults = faults or Faults()
        self.rng = random.Random(self.faults.fault_seed)
        self.stats = Stats()
        self.recent: dict[str, deque[float]] = defaultdict(deque)
        self._short_names = {d[:-1]: d for d in world.by_district if len(d) > 2}
        self._rendered: dict[tuple[str, ...], tuple[bytes, str]] = {}
        if self.faults.prerender:
            for store in world.stores:
                if store.listed:
                    self._detail_body(store)
                    self._api_body(store)

    def _remembered(self, key: tuple[str, ...], make: Callable[[], bytes]) -> tuple[bytes, str]:
        """(body, ETag) of an answer; kept in memory when prerendering (the world does not change)."""
        found = self._rendered.get(key)
        if found is None:
            body = make()
            found = (body, f'"{hashlib.sha1(body).hexdigest()[:20]}"')  # as a site's CDN sends them
            if self.faults.prerender:
                self._rendered[key] = found
        return found

    def _detail_body(self, store: Store) -> tuple[bytes, str]:
        layout = render.layout_for(store.rid, self.faults.layout, self.faults.layout_shift)
        return self._remembered(("detail", store.rid, layout), lambda: render.detail_page(store, layout))

    def _api_body(self, store: Store) -> bytes:
        return self._remembered(("api", store.rid), lambda: profile_api.profile_json(store))[0]

    # --- what a query matches ----------------------------------------------------------------
    def match(self, query: str) -> list[Store]:
        place, word = _query_word(query)
        district = place if place in self.world.by_district else self._short_names.get(place)
        hotspot = None
        if district is None and place in self.world.hotspot_district:
            hotspot, district = place, self.world.hotspot_district[place]
        if district is None:
            return self.world.nationwide_top  # unknown place: the soft filter answers wide
        stores = self.world.by_district[district]
        words = query.split()
        if len(words) >= 3:  # "{구} {동} 무한리필": the stores whose address is in that 동
            stores = [s for s in stores if f" {words[1]} " in s.address]
        if hotspot:
            stores = [s for s in stores if s.hotspot == hotspot]
        if word != "무한리필":
            food = word.removesuffix("무한리필")
            stores = [s for s in stores if food and (food == s.kind or food in s.name or food in s.categories)]
        return stores or self.world.nationwide_top

    def near(self, query: str, point: tuple[float, float, float]) -> list[Store]:
        """A coordinate query (lat, lng, radius in metres): the query's stores within the radius, nearest
        first; none inside: the wide answer instead, as the site's soft filter does."""
        lat, lng, radius = point
        stores = self.match(query)
        inside = [(d, s.rid, s) for s in stores if (d := distance_m(lat, lng, s.lat, s.lng)) <= radius]
        return [s for _, _, s in sorted(inside)] if inside else stores

    def page(
        self, query: str, offset: int, size: int, point: tuple[float, float, float] | None = None
    ) -> tuple[list[Store], int]:
        """(stores of the page, the true count). Past the cap (result_cap) the query has no more pages."""
        stores = self.near(query, point) if point else self.match(query)
        shown = stores[: self.faults.result_cap] if self.faults.result_cap else stores
        if offset < len(shown):
            return shown[offset : offset + size], len(stores)
        # Past the end the site either answers empty or repeats the last page.
        if zlib.crc32(query.encode()) % 2 or not shown:
            return [], len(stores)
        return shown[-size:], len(stores)

    # --- handlers ---------------------------------------------------------------------------
    async def search(self, request: web.Request) -> web.Response:
        form: MultiMapping[object] = await request.post() if request.method == "POST" else request.query
        query = str(form.get("query", ""))
        if request.method == "GET":
            size = GET_PAGE_SIZE
        else:
            size = max(1, min(MAX_PAGE_SIZE, _int(form.get("size"), 20)))
        if "from" in form:
            offset = max(0, _int(form.get("from"), 0))
        else:
            offset = (max(1, _int(form.get("page"), 1)) - 1) * size
        if not query.strip():
            return web.Response(body=render.error_json("400", "query is empty"), content_type="application/json")
        point = _point(form)

        def answer() -> bytes:
            stores, total = self.page(query, offset, size, point)
            word = _query_word(query)[1].removeprefix("고기")
            items = [render.search_item(s, word) for s in stores]
            if point:  # each entry's distance from the point asked about
                for item, store in zip(items, stores):
                    item["distance"] = render.distance_text(distance_m(point[0], point[1], store.lat, store.lng))
            return render.search_json(items, total, rcount=total)

        body, _ = self._remembered(("search", query, str(offset), str(size), str(point)), answer)
        return web.Response(body=body, content_type="application/json")

    async def list_page(self, request: web.Request) -> web.Response:
        query = request.query.get("query", "")
        stores = self.match(query)
        body = render.list_page(query, stores[:LIST_PAGE_SIZE], len(stores))
        return web.Response(body=body, content_type="text/html", charset="utf-8")

    async def detail(self, request: web.Request) -> web.Response:
        store = self.world.by_rid.get(request.query.get("rid", ""))
        if store is None or not store.listed:  # a closed store the site no longer lists: gone
            raise web.HTTPNotFound(text="no such store")
        self.stats.detail_served[store.rid] += 1
        body, etag = self._detail_body(store)
        if request.headers.get("If-None-Match") == etag:
            self.stats.by_status[304] += 1
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=body, content_type="text/html", charset="utf-8", headers={"ETag": etag})

    async def profile(self, request: web.Request) -> web.Response:
        """`POST /API/profile/` (form v_rid): the §3b JSON; an unknown id or a failing store is the error
        shape (HTTP 200, result_code other than 100), as the site's API answers."""
        form = await request.post()
        store = self.world.by_rid.get(str(form.get("v_rid", "")))
        if store is None or not store.listed:
            body = profile_api.profile_error("400", "존재하지 않는 매장입니다")
        elif profile_api.fails(store.rid, self.faults.api_fail):
            self.stats.faults["api_error"] += 1
            body = profile_api.profile_error("900", "일시적인 오류입니다. 잠시 후 다시 시도해 주세요")
        else:
            self.stats.detail_served[store.rid] += 1
            body = self._api_body(store)
        return web.Response(body=body, content_type="application/json")  # no ETag: a POST answer

    async def robots(self, request: web.Request) -> web.Response:
        text = self.faults.robots.replace("\\n", "\n") or "User-agent: *\nDisallow: /__replica/\n"
        return web.Response(text=text, content_type="text/plain")

    async def stats_handler(self, request: web.Request) -> web.Response:
        data = self.stats.as_json()
        if request.query.get("detail"):
            data["detail_served"] = dict(self.stats.detail_served)  # rid -> times served
        return web.json_response(data)

    async def reset_handler(self, request: web.Request) -> web.Response:
        self.stats = Stats()
        return web.json_response({"reset": True})

    # --- faults -----------------------------------------------------------------------------
    def _over_rate_cap(self, client: str) -> bool:
        if self.faults.rate_cap <= 0:
            return False
        now = time.monotonic()
        window = self.recent[client]
        while window and now - window[0] >= 1.0:
            window.popleft()
        if len(window) >= self.faults.rate_cap:
            return True
        window.append(now)
        return False

    def _too_many(self, kind: str) -> web.Response:
        self.stats.faults[kind] += 1
        retry_after = max(0, round(self.faults.retry_after_s))
        return web.Response(status=429, text="Too Many Requests", headers={"Retry-After": str(retry_after)})

    async def _truncated(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        full = await handler(request)
        body = _body_of(full)
        resp = web.StreamResponse(status=200, headers={"Content-Type": full.content_type})
        resp.content_length = len(body)
        await resp.prepare(request)
        await resp.write(body[: len(body) // 2])
        if request.transport is not None:
            request.transport.close()  # the client sees a body shorter than Content-Length
        return resp

    async def _malformed(self, request: web.Request, handler: Handler) -> web.Response:
        full = await handler(request)
        body = _body_of(full)
        if self.rng.random() < 0.5:
            return web.Response(body=body[: len(body) // 3], content_type=full.content_type)
        maintenance = "<html><body><h1>서비스 점검 중입니다</h1></body></html>"
        return web.Response(text=maintenance, content_type="text/html")

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/__replica/"):
            return await handler(request)
        self.stats.by_endpoint[request.path] += 1
        if request.path == "/robots.txt":  # served plainly and not counted: `requests` is the crawl's pages
            return await handler(request)
        self.stats.requests += 1
        stats = self.stats  # a reset while this request is answered starts a new count
        stats.arrived()
        try:
            response = await self._answer(request, handler)
        finally:
            stats.in_flight -= 1
        self.stats.by_status[response.status] += 1
        return response

    async def _answer(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        f = self.faults
        if self._over_rate_cap(request.remote or "?"):  # counted on arrival, as a real rate limiter does
            return self._too_many("rate_cap")
        if f.latency_ms or f.latency_jitter_ms:
            delay = max(0.0, self.rng.gauss(f.latency_ms, f.latency_jitter_ms)) / 1000
            await asyncio.sleep(delay)
        roll = self.rng.random()
        for kind, p in (
            ("429", f.p429),
            ("5xx", f.p5xx),
            ("hang", f.p_hang),
            ("truncate", f.p_truncate),
            ("malformed", f.p_malformed),
        ):
            if roll < p:
                self.stats.faults[kind] += 1
                return await self._inject(kind, request, handler)
            roll -= p
        return await handler(request)

    async def _inject(self, kind: str, request: web.Request, handler: Handler) -> web.StreamResponse:
        if kind == "429":
            self.stats.faults[kind] -= 1  # counted once, by _too_many
            return self._too_many("429")
        if kind == "5xx":
            return web.Response(status=self.rng.choice((500, 502, 503)), text="server error")
        if kind == "hang":
            await asyncio.sleep(self.faults.hang_s)
            return await handler(request)
        if kind == "truncate":
            return await self._truncated(request, handler)
        return await self._malformed(request, handler)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.middleware])
        app.router.add_route("POST", "/API/isearch/", self.search)
        app.router.add_route("GET", "/API/isearch/", self.search)
        app.router.add_post("/API/profile/", self.profile)
        app.router.add_get("/list.dc", self.list_page)
        app.router.add_get("/profile.php", self.detail)
        app.router.add_get("/robots.txt", self.robots)
        app.router.add_get("/__replica/stats", self.stats_handler)
        app.router.add_post("/__replica/reset", self.reset_handler)
        return app


def _point(form: MultiMapping[object]) -> tuple[float, float, float] | None:
    """(lat, lng, radius_m) of a coordinate query: lat and lng with a `distance`; None otherwise (the
    crawler's keyword searches send the district office's lat/lng without a distance: not near-me)."""
    try:
        lat, lng, radius = (float(str(form.get(k, ""))) for k in ("lat", "lng", "distance"))
    except ValueError:
        return None
    return (lat, lng, radius) if radius > 0 else None


def _body_of(response: web.StreamResponse) -> bytes:
    """A handler's answer as bytes (the replica's handlers answer whole `web.Response`s; a stream has none)."""
    return response.body if isinstance(response, web.Response) and isinstance(response.body, bytes) else b""


def _int(value: Any, default: int) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


async def serve(replica: Replica, host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM; print the URL first so a parent process can read it."""
    if not host.startswith("127.") and host not in ("localhost", "::1"):
        raise ValueError(f"the replica serves loopback only; got host {host!r}")
    runner = web.AppRunner(replica.app(), access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"replica listening on http://{host}:{bound} stores={len(replica.world.stores)}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
