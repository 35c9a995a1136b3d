"""The console as an attacker would try it, against a real server (aiohttp on loopback) and PostgreSQL:
a DNS-rebinding Host, reads without the token, hundreds of event streams, a stop aimed at a pid that now
belongs to someone else, and bad input of every kind (each a JSON 400 naming the field, never a 500)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from typing import Any

import psutil
from aiohttp import ClientResponse, ClientSession, ClientTimeout, TCPConnector
from helpers import query, serving
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb

from stage5.identity import command_fingerprint
from stage5.web.api import STREAMS_MAX
from stage5.web.app import POOL_MAX


def _running_run(settings: Any, live: dict[str, Any]) -> int:
    ((run_id,),) = query(
        settings,
        "INSERT INTO crawl_runs (status, site, districts, live) VALUES ('running', 'x', '{도봉구}', %s) RETURNING id",
        Jsonb(live),
    )
    return int(run_id)


def _console_sessions(settings: Any) -> int:
    """Database sessions of the console served by this process (not of other tests' consoles, which other
    xdist workers may be serving at the same moment): matched by the client port of each session."""
    server_port = int(conninfo_to_dict(settings.database_url).get("port") or 5432)
    mine = [c.laddr.port for c in psutil.Process().net_connections("tcp") if c.raddr and c.raddr.port == server_port]
    ((held,),) = query(
        settings,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'stage5 console' AND client_port = ANY(%s)",
        mine,
    )
    return int(held)


async def test_a_rebound_host_is_refused_and_changes_nothing(make_settings: Any) -> None:
    settings = make_settings()
    async with serving(settings) as console:
        port = console.server.port
        evil = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
        status, answer = await console.call("POST", "/api/jobs", {"name": "wipe", "kind": "cleanup"}, **evil)
        assert status == 403 and "Host" in answer["error"]
        assert (await console.call("GET", "/api/runs", **evil))[0] == 403
        async with console.session.get(console.server.make_url("/jobs"), headers=evil) as page:
            assert page.status == 403
        assert (await console.call("GET", "/api/jobs"))[1] == []  # nothing was created
        assert (await console.call("GET", "/api/jobs", Host=f"localhost:{port}"))[0] == 200


async def test_with_a_token_every_read_and_the_stream_need_it(make_settings: Any) -> None:
    settings = make_settings(api_token="s3cret")
    async with serving(settings) as console:
        run_id = _running_run(settings, {})
        ok = {"Authorization": "Bearer s3cret"}
        for path in ("/api/jobs", "/api/runs", "/api/stores", f"/api/runs/{run_id}", "/api/scheduler"):
            assert (await console.call("GET", path))[0] == 401, path
            assert (await console.call("GET", path, **ok))[0] == 200, path
        async with console.session.get(console.server.make_url(f"/api/runs/{run_id}/events")) as answer:
            assert answer.status == 401
        async with console.session.get(console.server.make_url("/stores")) as page:
            html = await page.text()
        assert page.status == 200 and 'id="signin"' in html and "<td>" not in html  # a shell: no data


async def test_two_hundred_streams_leave_the_database_and_the_api_answering(make_settings: Any) -> None:
    settings = make_settings()
    async with serving(settings) as console:
        run_id = _running_run(settings, {"stores": 1})
        url = console.server.make_url(f"/api/runs/{run_id}/events")
        timeout = ClientTimeout(total=30)
        async with ClientSession(connector=TCPConnector(limit=0), timeout=timeout) as crowd:

            async def open_one() -> tuple[int, str, ClientResponse | None]:
                answer = await crowd.get(url)
                if answer.status == 200:
                    await answer.content.readline()  # the first event came: the stream is up (kept open)
                    return 200, "", answer
                return answer.status, answer.headers.get("Retry-After", ""), None

            answers = await asyncio.gather(*(open_one() for _ in range(200)))
            statuses = [s for s, _, _ in answers]
            assert statuses.count(200) == STREAMS_MAX
            assert {(s, retry) for s, retry, _ in answers if s != 200} == {(503, "5")}  # told when to retry
            assert (await console.call("GET", "/api/jobs"))[0] == 200
            status, runs = await console.call("GET", "/api/runs")
            assert status == 200 and runs[0]["id"] == run_id
            held = _console_sessions(settings)  # the database has room: the console holds its pool at most
            assert 1 <= held <= POOL_MAX
            query(settings, "UPDATE crawl_runs SET status = 'succeeded' WHERE id = %s", run_id)
            streams = [answer for _, _, answer in answers if answer is not None]
            try:  # the shared reader sees the end and every stream closes
                await asyncio.wait_for(asyncio.gather(*(s.content.read() for s in streams)), 30)
            except TimeoutError:
                raise AssertionError("the event streams did not end within 30 s of their run's end") from None
            assert console.server.app is not None


async def test_stop_signals_only_the_runs_own_master(make_settings: Any) -> None:
    settings = make_settings()
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        process = psutil.Process(stranger.pid)
        host = socket.gethostname()
        async with serving(settings) as console:
            # The master died; its pid now belongs to another process (other start time and command).
            stale = {"pid": stranger.pid, "host": host, "started": process.create_time() - 3600, "command": "x"}
            run_id = _running_run(settings, stale)
            status, answer = await console.call("POST", f"/api/runs/{run_id}/stop", {})
            assert status == 409 and "another process" in answer["error"]
            await asyncio.sleep(0.2)  # a window for a wrong signal to land: none may
            assert stranger.poll() is None  # not signalled
            # A record without the identity (pid only) is not enough either.
            run_id = _running_run(settings, {"pid": stranger.pid, "host": host})
            assert (await console.call("POST", f"/api/runs/{run_id}/stop", {}))[0] == 409
            assert stranger.poll() is None
            same = {**stale, "started": process.create_time(), "command": command_fingerprint(process)}
            run_id = _running_run(settings, same)
            assert (await console.call("POST", f"/api/runs/{run_id}/stop", {}))[0] == 202
            assert stranger.wait(timeout=5) == -15  # the recorded process itself: SIGTERM
    finally:
        stranger.kill()


async def test_every_bad_input_is_a_json_400_naming_the_field(make_settings: Any) -> None:
    settings = make_settings()
    async with serving(settings) as console:
        _, job = await console.call("POST", "/api/jobs", {"name": "ok"})
        bodies: list[tuple[Any, str]] = [
            ({}, "name"),
            ({"name": "a\u0000b"}, "name"),
            ({"name": "x", "cron": "0 1 * * *\u0000"}, "cron"),
            ({"name": "x", "enabled": "yes"}, "enabled"),
            ({"name": 5}, "name"),
            ({"name": "x", "params": []}, "params"),
            ({"name": "x", "params": {"districts": ["도봉구\u0000"]}}, "params"),
            ({"name": "x", "surprise": 1}, "surprise"),
        ]
        for body, field in bodies:
            status, answer = await console.call("POST", "/api/jobs", body)
            assert (status, answer.get("field")) == (400, field), (body, answer)
        assert (await console.call("PATCH", f"/api/jobs/{job['id']}", {"enabled": 1}))[1]["field"] == "enabled"
        raw = [b"\xff\xfe{}", b"[" * 100_000 + b"]" * 100_000, b'{"name": ', b"[1, 2]", b'"text"']
        for data in raw:
            url = console.server.make_url("/api/jobs")
            async with console.session.post(url, data=data, headers={"Content-Type": "application/json"}) as a:
                answer = json.loads(await a.text())
                assert (a.status, answer["field"]) == (400, "body"), (data[:20], answer)
        queries = [
            ("/api/runs?limit=0", "limit"),
            ("/api/runs?limit=x", "limit"),
            ("/api/runs?status=gone", "status"),
            ("/api/stores?limit=0", "limit"),
            ("/api/stores?q=a%00b", "q"),
            ("/api/stores?after=%00", "after"),
            ("/api/stores?sort=colour", "sort"),
            ("/api/stores?offset=-1", "offset"),
            ("/api/stores?refill=maybe", "refill"),
            (f"/api/jobs/{job['id']}/runs?limit=0", "limit"),
            ("/api/stores/a%00b", "rid"),
            ("/api/jobs/x", "id"),
        ]
        for path, field in queries:
            status, answer = await console.call("GET", path)
            assert (status, answer.get("field")) == (400, field), (path, answer)
        assert (await console.call("GET", "/api/jobs"))[1][0]["name"] == "ok"  # nothing else was stored


async def test_a_full_pool_answers_503_with_retry_after(make_settings: Any, monkeypatch: Any) -> None:
    """Every connection of the console's pool busy: a request waits POOL_WAIT_S, then is told to retry."""
    import stage5.web.app as app_module
    from stage5.web.api import POOL

    monkeypatch.setattr(app_module, "POOL_MAX", 1)
    monkeypatch.setattr(app_module, "POOL_WAIT_S", 0.5)
    async with serving(make_settings()) as console:
        assert (await console.call("GET", "/api/jobs"))[0] == 200
        app = console.server.app
        assert app is not None
        async with app[POOL].connection():  # the only connection, held
            url = console.server.make_url("/api/jobs")
            async with console.session.get(url) as answer:
                assert answer.status == 503 and answer.headers["Retry-After"] == "5"
                assert "in use" in json.loads(await answer.text())["error"]
        assert (await console.call("GET", "/api/jobs"))[0] == 200  # free again: answered
