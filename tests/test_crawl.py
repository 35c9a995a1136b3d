"""Whole crawls of the replica into the real PostgreSQL, scored against the replica's ground truth."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from helpers import crawl_command, query

from stage5.cli import main
from stage5.crawl.run import run_crawl
from stage5.replica.process import ReplicaProcess
from stage5.replica.server import Faults
from stage5.replica.truth import score
from stage5.replica.world import World
from stage5.report import load_result


async def _crawl_and_score(settings: Any, world: World) -> tuple[Any, Any]:
    summary = await run_crawl(settings, settings.database_url)
    stored, rejected = await load_result(settings)
    return summary, score(world, stored, rejected, settings.districts)


async def test_full_crawl_matches_ground_truth(make_settings: Any, replica: ReplicaProcess, small_world: World) -> None:
    settings = make_settings(site=replica.url)
    summary, result = await _crawl_and_score(settings, small_world)
    assert summary.status == "succeeded" and summary.failed_units == []
    assert result.perfect, (
        result.missing[:5],
        result.extra[:5],
        result.wrong_district[:5],
        result.wrong_refill_flag[:5],
    )
    assert result.expected_refill > 200 and result.stored == result.expected
    assert summary.out_of_area > 0  # neighbours' border stores and other cities were seen and left out
    # A second crawl updates in place: no new row, nothing changed.
    again, result2 = await _crawl_and_score(settings, small_world)
    assert (again.new, again.updated, again.unchanged) == (0, 0, result.expected)
    assert result2.stored == result.stored


async def test_each_store_detail_fetched_once(make_settings: Any, replica_with: Any) -> None:
    with replica_with() as fresh:
        summary = await run_crawl(make_settings(site=fresh.url), make_settings().database_url)
        served = fresh.stats()
    assert served["detail_repeats"] == 0
    assert served["detail_unique"] == summary.stores + summary.rejected
    assert summary.requests == served["requests"]


async def test_crawl_with_faults_still_complete(make_settings: Any, small_world: World, replica_with: Any) -> None:
    faults = Faults(
        p5xx=0.05, p429=0.05, retry_after_s=0, p_truncate=0.03, p_malformed=0.03, latency_ms=2, fault_seed=9
    )
    with replica_with(faults) as faulty:
        settings = make_settings(site=faulty.url, retry_attempts=8, districts="강남구,마포구,중구,도봉구")
        summary, result = await _crawl_and_score(settings, small_world)
        served = faulty.stats()
    assert sum(served["faults"].values()) > 0 and summary.retries >= sum(served["faults"].values()) - 1
    assert summary.status == "succeeded" and result.perfect


async def test_failed_units_are_listed_and_the_run_goes_on(
    make_settings: Any, small_world: World, replica_with: Any
) -> None:
    """Retries too few for the fault rate: some pages fail for good; each is listed, the rest lands."""
    with replica_with(p5xx=0.3, fault_seed=3) as faulty:
        settings = make_settings(site=faulty.url, retry_attempts=1, districts="도봉구,강남구,마포구")
        summary, result = await _crawl_and_score(settings, small_world)
        assert summary.status == "partial" and summary.failed_units
        assert all(u["url"].startswith(faulty.url) and "HTTP 5" in u["reason"] for u in summary.failed_units)
        assert result.stored > 0 and not result.extra  # what was stored is right, even if incomplete
        # The next run starts with the districts whose units failed, and fills the gaps.
        failed_districts = {u["district"] for u in summary.failed_units}
        again = await run_crawl(
            make_settings(site=faulty.url, retry_attempts=10, districts="도봉구,강남구,마포구"), settings.database_url
        )
    ((order,),) = query(settings, "SELECT districts FROM crawl_runs WHERE id = %s", again.run_id)
    assert set(order[: len(failed_districts)]) == failed_districts
    assert again.status == "succeeded"


async def test_districts_that_failed_last_time_go_first(make_settings: Any) -> None:
    from stage5.crawl.run import _order
    from stage5.storage.db import connect
    from stage5.storage.runs import district_sizes
    from stage5.storage.schema import migrate

    settings = make_settings()
    conn = await connect(settings.database_url, settings.db_schema)
    await migrate(conn)
    await conn.execute(
        "INSERT INTO stores (diningcode_place_id, name, district, address, position_lat, position_lng,"
        " is_confirmed_refill, source_url, content_hash) SELECT 'r' || i, 'x', '강남구', 'a', 37.5, 127,"
        " true, 'u', 'h' FROM generate_series(1, 5) i"
    )
    await conn.execute("INSERT INTO crawl_runs (id, status, site, districts) VALUES (1, 'partial', 's', '{}')")
    await conn.execute(
        "INSERT INTO crawl_units (run_id, uid, kind, district, payload, state)"
        " VALUES (1, 1, 'search', '도봉구', '{}', 'failed'), (1, 2, 'search', '마포구', '{}', 'done')"
    )
    await conn.commit()
    sizes = await district_sizes(conn)
    assert sizes == {"강남구": 5}
    ordered = await _order(conn, ["마포구", "강남구", "도봉구"], sizes)
    assert ordered == ["도봉구", "강남구", "마포구"]  # failed last time, then the largest
    await conn.close()


def test_dead_database_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], replica: ReplicaProcess, tmp_path: Path
) -> None:
    code = main(
        [
            "crawl",
            "--site",
            replica.url,
            "--districts",
            "중구",
            "--log-dir",
            str(tmp_path),
            "--database-url",
            "postgresql://postgres@127.0.0.1:9/nowhere",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "cannot connect to PostgreSQL at postgresql://postgres@127.0.0.1:9/nowhere" in err and "start" in err.lower()


def test_a_database_that_refuses_the_user_says_so_not_start_it(
    capsys: pytest.CaptureFixture[str], pg_url: str, tmp_path: Path
) -> None:
    """The server runs and answered 'no such role': starting it is no fix; the credentials are."""
    from psycopg.conninfo import conninfo_to_dict

    server = conninfo_to_dict(pg_url)  # key=value pairs
    wrong = f"postgresql://no_such_role_stage5@{server.get('host', '127.0.0.1')}:{server.get('port', 5432)}/x"
    code = main(["runs", "--database-url", wrong])
    err = capsys.readouterr().err
    assert code == 1 and "refused the connection" in err and 'role "no_such_role_stage5"' in err, err
    assert "check the user, password and database" in err and "pg_ctlcluster" not in err


def test_cli_crawl_json_and_parse(
    replica: ReplicaProcess, make_settings: Any, tmp_path: Path, small_world: World
) -> None:
    run = [sys.executable, "-m", "stage5"]
    settings = make_settings(site=replica.url, districts="도봉구", log_dir=tmp_path / "logs")
    out = subprocess.run(
        crawl_command(settings, "--request-delay-s", "0", "--json"), capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    expected = [s for s in small_world.stores if s.district == "도봉구" and s.expect == "store"]
    assert summary["stores"] == len(expected) and summary["status"] == "succeeded"
    lines = (tmp_path / "logs" / "parallel_crawler.log").read_text().splitlines()
    events = [_logfmt(line) for line in lines]
    run_id = str(summary["run_id"])
    finished = [e for e in events if e["event"] == "district_finished"]
    assert finished and finished[0]["district"] == "도봉구" and finished[0]["run_id"] == run_id
    # every line after the run started carries its id, the workers' lines included
    started = next(i for i, e in enumerate(events) if e["event"] == "run_started")
    assert all(e.get("run_id") == run_id for e in events[started:] if e["event"] != "log")
    assert {e["logger"] for e in events[started:]} >= {"stage5.crawl", "stage5.storage", "stage5.worker"}
    assert not any("{'" in line or "Error(" in line for line in lines)  # values, not Python reprs
    assert not any(e["event"] == "db_batch" and e.get("rows") == "0" for e in events)

    page = tmp_path / "profile.php?rid=x.html"
    with urllib.request.urlopen(f"{replica.url}/profile.php?rid={expected[0].rid}", timeout=10) as answer:
        page.write_bytes(answer.read())
    parsed = subprocess.run(run + ["parse", str(page)], capture_output=True, text=True, timeout=60)
    assert parsed.returncode == 0 and json.loads(parsed.stdout)["name"] == expected[0].name
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body>점검중</body></html>")
    failed = subprocess.run(run + ["parse", str(bad), "--kind", "detail"], capture_output=True, text=True, timeout=60)
    assert failed.returncode == 2 and "does not parse as detail" in failed.stderr


_PAIR = re.compile(r'([\w.]+)=("(?:[^"\\]|\\.)*"|\S*)')


def _logfmt(line: str) -> dict[str, str]:
    """One logfmt line as a dict; fails on anything that is not key=value pairs."""
    pairs = _PAIR.findall(line)
    assert " ".join(f"{k}={v}" for k, v in pairs) == line, line
    return {k: json.loads(v) if v.startswith('"') else v for k, v in pairs}


def test_the_demo_never_touches_the_real_tables(make_settings: Any, replica: ReplicaProcess, pg_url: str) -> None:
    """A real crawl, a paused run, then the demo with the same database and STAGE5_DB_SCHEMA: the real
    rows and run states are exactly as they were; the demo crawled and scored its own schema."""
    import asyncio
    import os

    from psycopg import sql

    from stage5.cli import DEMO_SCHEMA, main

    settings = make_settings(site=replica.url, districts="도봉구")
    demo = settings.model_copy(update={"db_schema": DEMO_SCHEMA})
    asyncio.run(run_crawl(settings, pg_url))
    query(settings, "UPDATE crawl_runs SET status = 'interrupted'")  # a paused run
    query(demo, sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(DEMO_SCHEMA)))

    def state() -> tuple[Any, ...]:
        stores = query(settings, "SELECT diningcode_place_id, content_hash FROM stores")
        runs = query(settings, "SELECT id, status FROM crawl_runs")
        return sorted(stores), sorted(runs)

    before = state()
    environ = dict(os.environ)
    os.environ.update(STAGE5_DB_SCHEMA=settings.db_schema, DATABASE_URL=pg_url)
    try:
        code = main(["demo", "--scale", "0.1", "--districts", "도봉구,마포구", "--log-dir", str(settings.log_dir)])
    finally:
        os.environ.clear()
        os.environ.update(environ)
    assert code == 0
    assert state() == before
    ((demo_stores,),) = query(demo, "SELECT count(*) FROM stores")
    assert demo_stores > len(before[0])
    query(demo, sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(DEMO_SCHEMA)))


async def test_robots_txt_refusal_stops_before_any_run_and_log_mode_goes_on(
    make_settings: Any, replica_with: Any
) -> None:
    from stage5.errors import RobotsDisallowed

    rules = "User-agent: *\\nDisallow: /profile\\nCrawl-delay: 0.05\\n"
    with replica_with(robots=rules) as replica:
        settings = make_settings(site=replica.url, districts="도봉구", request_delay_s=0)
        with pytest.raises(RobotsDisallowed, match=r"disallows /profile.php \('Disallow: /profile'\).*ROBOTS_TXT=log"):
            await run_crawl(settings, settings.database_url)
        assert replica.stats()["by_endpoint"] == {"/robots.txt": 1}  # nothing else was asked
        assert query(settings, "SELECT count(*) FROM crawl_runs") == [(0,)]  # no run left behind

        logged = make_settings(site=replica.url, districts="도봉구", request_delay_s=0, robots_txt="log")
        summary = await run_crawl(logged, logged.database_url)
    assert summary.status == "succeeded" and summary.stores > 0


async def test_robots_crawl_delay_is_a_floor_under_the_request_delay(make_settings: Any, replica_with: Any) -> None:
    from stage5.crawl.politeness import apply_robots

    with replica_with(robots="User-agent: *\\nCrawl-delay: 2\\n") as replica:
        settings = make_settings(site=replica.url, request_delay_s=0.5, cache="off")
        assert (await apply_robots(settings, None)).request_delay_s == 2.0
        slower = settings.model_copy(update={"request_delay_s": 3.0})
        assert (await apply_robots(slower, None)).request_delay_s == 3.0  # a floor, not a ceiling
