"""A hostile site for tests and benchmarks: passes a replica's answers through and spoils some of them.

    python -m stage5.replica.hostile --upstream http://127.0.0.1:8765 --case gzip_bomb --every 20

Each case spoils the detail pages of the target stores (those whose rid hashes to 0 modulo `every`),
or every search answer, in one way a real site (or something between it and us) has been seen to:
poison values, wrong shapes, bodies too large or endless, pages nested too deep, texts that make
naive patterns quadratic, a soft block. Loopback only; endless answers stop by themselves.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import subprocess
import sys
import threading
import zlib
from collections.abc import Callable
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import psutil
from aiohttp import web

from stage5.errors import Stage5Error
from stage5.replica.render import search_json

ENDLESS_FOR_S = 60.0  # an "endless" body stops after this, so a broken client cannot keep it alive
CHUNK = 1 << 20


def _sub(pattern: str, replacement: str) -> Callable[[bytes], bytes]:
    compiled = re.compile(pattern.encode())
    return lambda body: compiled.sub(replacement.encode(), body, count=1)


# Cases that rewrite a target store's detail page (bytes in, bytes out).
REWRITES: dict[str, Callable[[bytes], bytes]] = {
    "poison_number": _sub(r'"reviewCount": \d+', '"reviewCount": 99999999999'),
    "nul_name": _sub(r'"name": "', '"name": "\\\\u0000'),
    "huge_price": _sub(r'(<p class="Restaurant_MenuPrice">)[^<]*', "\\g<1>3,000,000,000원"),
    "rating_string": _sub(r'"aggregateRating": \{[^}]*\}', '"aggregateRating": "4.5"'),
    "geo_list": _sub(r'"geo": \{[^}]*\}', '"geo": [37.5, 127.0]'),
    "nan_numbers": _sub(r'"ratingValue": [\d.]+', '"ratingValue": NaN, "bestRating": 1e400'),
    "long_digits": lambda body: _sub(r'(<p class="Restaurant_MenuPrice">)[^<]*', "\\g<1>" + "9" * 60_000)(
        body.replace(
            b'<div class="busi-hours"><ul class="list">',
            b'<div class="busi-hours"><ul class="list"><li>' + b"1" * 60_000 + b"</li>",
        )
    ),
    "deep_nesting": lambda body: body.replace(
        b'<div id="div_profile">', b"<div>" * 300 + b'<div id="div_profile">'
    ).replace(b"</body>", b"</div>" * 300 + b"</body>"),
}
# Issue 21's cases: a target's page without its menu section, or with a cut byte in its name.
_LD_RE = re.compile(rb'(<script type="application/ld\+json">)(.*?)(</script>)', re.S)


def _without_menu(body: bytes) -> bytes:
    """The page with no menu anywhere: its menu block and JSON-LD's hasMenu gone (a layout without one)."""
    menu = rb'<div class="menu-info">.*?</div>|<div id="div_detail">.*?</div></div>'
    body = re.sub(menu, b"", body, count=1, flags=re.S)

    def drop(match: re.Match[bytes]) -> bytes:
        node = json.loads(match.group(2).replace(b"<\\/", b"</"))
        node.pop("hasMenu", None)
        return match.group(1) + json.dumps(node, ensure_ascii=False).encode() + match.group(3)

    return _LD_RE.sub(drop, body, count=1)


REWRITES["no_menu"] = _without_menu
REWRITES["cut_byte"] = _sub(r'("name": "[\x00-\x7f]*[\xe0-\xef][\x80-\xbf])[\x80-\xbf]', "\\g<1>")
# Cases that answer a target's detail request with something other than its page (issue 21): a block page
# with status 200, a redirect off the site or to its home page, another store's page.
IMPOSTORS = ("block_page", "redirect_offsite", "redirect_home", "other_store")
BLOCK_PAGES = (
    "<html><head><title>다이닝코드</title></head><body><h1>보안문자 입력</h1><div class='g-recaptcha'></div>"
    "<p>자동입력 방지를 위해 아래 문자를 입력해 주세요.</p></body></html>",
    "<html><head><title>다이닝코드 - 접근 제한</title></head><body><h1>비정상적인 접근이 감지되었습니다</h1>"
    "<p class='tit'>잠시 후 다시 시도해 주세요</p></body></html>",
    "<html><head><title>Access Denied</title></head><body><h1>Access Denied</h1>"
    "<p>You don't have permission to access this server.</p></body></html>",
)
# Cases that replace a target's answer with a body of their own making.
STREAMS = ("gzip_bomb", "huge_body", "endless")
# Cases that spoil every search answer: nothing at all; nothing past page 5 while the count says more
# (thinned); an id-less entry (an ad slot) at the head of every page; at most 100 stores per query.
SEARCHES = ("empty_search", "thinned", "ad_entry", "cap100", "forged")
CASES = (*REWRITES, *STREAMS, *SEARCHES, *IMPOSTORS)
THIN_AFTER_PAGES = 5
CAP = 100
AD_ENTRY = {"nm": "", "ad_yn": "Y", "title": "[광고] 이 가게 어때요?", "image": "https://ads.example.invalid/1.jpg"}


def spoil_search(case: str, form: dict[str, str], body: bytes) -> bytes:
    """A search answer spoiled by one of SEARCHES; the site's count (total_cnt, params.rcount) is kept."""
    if case == "empty_search":
        return search_json([], 0)
    data: dict[str, Any] = json.loads(body)
    section = data["result_data"]["poi_section"]
    size = int(form.get("size") or 20)
    offset = int(form["from"]) if form.get("from") else (int(form.get("page") or 1) - 1) * size
    if case == "thinned" and offset >= THIN_AFTER_PAGES * size:
        section["list"] = []
    elif case == "cap100":
        section["list"] = section["list"][: max(0, CAP - offset)]
    elif case == "ad_entry":
        section["list"].insert(0, dict(AD_ENTRY))
    elif case == "forged" and not _is_district_query(form.get("query", "")):
        section["list"] = [_forged(item) for item in section["list"]]
    return json.dumps(data, ensure_ascii=False).encode()


def _is_district_query(query: str) -> bool:
    """'강남구 무한리필': a district's own query (the one the crawler trusts first for its stores)."""
    words = query.split()
    return len(words) == 2 and words[0].endswith("구") and words[1] == "무한리필"


def _forged(item: dict[str, Any]) -> dict[str, Any]:
    """An entry of another query that lies about its store: another branch, categories and keywords that
    say all-you-can-eat, coordinates a kilometre off (still in Seoul)."""
    if not isinstance(item, dict) or not item.get("v_rid"):
        return item
    lat, lng = float(item.get("lat") or 37.55), float(item.get("lng") or 126.99)
    return {
        **item,
        "branch": "위조점",
        "category": "고기무한리필,뷔페",
        "keyword": [{"term": "무한리필", "mark": 1}, {"term": "셀프바", "mark": 1}],
        "lat": round(lat + 0.009, 6),
        "lng": round(lng + 0.009, 6),
    }


def is_target(rid: str, every: int) -> bool:
    return zlib.crc32(rid.encode()) % every == 0


def gzip_bomb(inflated_mb: int) -> bytes:
    """A gzip body of zeros: about 1 KB on the wire per MB it inflates to."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(CHUNK)
    return b"".join(packer.compress(zeros) for _ in range(inflated_mb)) + packer.flush()


class Hostile:
    def __init__(self, upstream: str, case: str, every: int, bomb_mb: int = 512, huge_mb: int = 200) -> None:
        if case not in CASES:
            raise Stage5Error(f"unknown case {case!r}; one of: {', '.join(CASES)}")
        self.upstream, self.case, self.every, self.huge_mb = upstream.rstrip("/"), case, every, huge_mb
        self.bomb = gzip_bomb(bomb_mb) if case == "gzip_bomb" else b""
        self.spoiled = 0
        self.session: aiohttp.ClientSession | None = None
        self.active = True  # POST /__hostile/off makes it a plain pass-through (the site recovered)
        self.last_rid = ""  # a store whose page `other_store` serves in place of a target's

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/__hostile/stats":
            return web.json_response({"case": self.case, "spoiled": self.spoiled, "active": self.active})
        if request.path in ("/__hostile/on", "/__hostile/off"):
            self.active = request.path.endswith("/on")
            return web.json_response({"active": self.active})
        if not self.active:
            status, headers, body = await self._forward(request)
            kind = headers.get("Content-Type", "text/html").split(";")[0]
            return web.Response(status=status, body=body, content_type=kind)
        rid = request.query.get("rid", "")
        if request.path == "/profile.php" and self.case in IMPOSTORS:
            if is_target(rid, self.every):
                self.spoiled += 1
                return await self._impostor(request, rid)
            self.last_rid = rid
        if request.path == "/profile.php" and self.case in STREAMS and is_target(rid, self.every):
            self.spoiled += 1
            return await self._stream(request)
        status, headers, body = await self._forward(request)
        if "isearch" in request.path and self.case in SEARCHES and status == 200:
            self.spoiled += 1
            form = {k: v[0] for k, v in parse_qs((await request.read()).decode()).items()}
            return web.Response(body=spoil_search(self.case, form, body), content_type="application/json")
        if request.path == "/profile.php" and self.case in REWRITES and is_target(rid, self.every):
            self.spoiled += 1
            body = REWRITES[self.case](body)
        return web.Response(
            status=status, body=body, content_type=headers.get("Content-Type", "text/html").split(";")[0]
        )

    async def _impostor(self, request: web.Request, rid: str) -> web.StreamResponse:
        if self.case == "block_page":
            which = zlib.crc32(rid.encode()) // self.every % len(BLOCK_PAGES)  # every kind, not only crc % every
            return web.Response(text=BLOCK_PAGES[which], content_type="text/html")
        if self.case == "redirect_offsite":  # never followed: nothing listens there, and nothing may be asked
            raise web.HTTPFound(f"http://127.0.0.2:9/profile.php?rid={rid}")
        if self.case == "redirect_home":
            raise web.HTTPFound("/")
        other = self.last_rid or rid
        assert self.session is not None
        async with self.session.get(f"{self.upstream}/profile.php?rid={other}") as answer:
            return web.Response(status=answer.status, body=await answer.read(), content_type="text/html")

    async def _forward(self, request: web.Request) -> tuple[int, dict[str, str], bytes]:
        assert self.session is not None
        data = await request.read()
        async with self.session.request(
            request.method,
            self.upstream + request.path_qs,
            data=data or None,
            headers={"Content-Type": request.content_type},
        ) as answer:
            return answer.status, dict(answer.headers), await answer.read()

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        if self.case == "gzip_bomb":
            return web.Response(body=self.bomb, headers={"Content-Encoding": "gzip", "Content-Type": "text/html"})
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        await response.prepare(request)  # chunked: no Content-Length to refuse it by
        deadline = asyncio.get_running_loop().time() + ENDLESS_FOR_S
        chunk = b"<p>" + b"x" * (CHUNK - 7) + b"</p>"
        sent = 0
        try:
            while asyncio.get_running_loop().time() < deadline:
                if self.case == "huge_body" and sent >= self.huge_mb:
                    break
                await response.write(chunk)
                sent += 1
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            pass  # the client hung up: what a client with a body limit does
        return response

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        app.on_startup.append(self._open)
        app.on_cleanup.append(self._close)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def _open(self, _: web.Application) -> None:
        self.session = aiohttp.ClientSession()

    async def _close(self, _: web.Application) -> None:
        if self.session:
            await self.session.close()


async def serve(hostile: Hostile, port: int) -> None:
    runner = web.AppRunner(hostile.app(), access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(f"hostile listening on http://127.0.0.1:{runner.addresses[0][1]} case={hostile.case}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


class HostileProcess:
    """`with HostileProcess(replica.url, "gzip_bomb") as site: site.url` — in a process of its own, so
    the bodies it builds never count against the crawler's memory."""

    def __init__(self, upstream: str, case: str, every: int = 20) -> None:
        self.command = [sys.executable, "-m", "stage5.replica.hostile", "--upstream", upstream, "--case", case]
        self.command += ["--every", str(every)]
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> HostileProcess:
        self.proc = subprocess.Popen(self.command, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("hostile listening on "):
            self.__exit__()
            raise Stage5Error(f"hostile site did not start (said {line!r})")
        self.url = line.split()[3]
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


class PeakMemory:
    """Samples the crawler's tree (this process and its worker processes, not the sites) every 50 ms."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.05):
            total = me.memory_info().rss
            for child in me.children(recursive=True):
                try:
                    if "multiprocessing" in " ".join(child.cmdline()):
                        total += child.memory_info().rss
                except psutil.Error:
                    continue
            self.peak_mb = max(self.peak_mb, total / 2**20)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="the replica to pass through")
    parser.add_argument("--case", required=True, choices=CASES)
    parser.add_argument("--every", type=int, default=20, help="spoil the stores whose rid hash %% every == 0")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if not args.upstream.startswith(("http://127.", "http://localhost")):
        raise SystemExit("the hostile site passes through a loopback replica only")
    asyncio.run(serve(Hostile(args.upstream, args.case, args.every), args.port))


if __name__ == "__main__":
    main()
