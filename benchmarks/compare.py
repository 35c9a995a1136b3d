"""stage5 against the Scrapy and Crawlee baselines: same replica, same machine, A B C A B C, medians.

    .venv/bin/pip install -r benchmarks/requirements.txt
    .venv/bin/python benchmarks/compare.py --rounds 3
    .venv/bin/python benchmarks/compare.py --rounds 1 --detail-source html

All crawl all 25 districts of one zero-latency replica (answers pre-rendered) into PostgreSQL (a fresh
schema each) with the same concurrency (16 in flight, no delay) and no cache, reading each store's details
from the same source: the profile API (`--detail-source api`, the default; POST /API/profile/, as stage5
asks by default) or the profile.php page (`html`). For each run: wall time (start to exit,
the database load included), pages/s, stores/s, CPU seconds of the whole process tree, peak memory of
the tree (RSS sampled every 0.2 s); both results are checked against the replica's ground truth.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stage5.replica.process import ReplicaProcess
from stage5.replica.server import Faults
from stage5.replica.world import build_world
from stage5.services import database_url
from stage5.settings import load_settings

HERE = Path(__file__).resolve().parent
SOURCE_NAMES = {"api": "the profile API", "html": "the profile.php page"}
DETAIL_PATHS = {"api": "/API/profile/", "html": "/profile.php"}


def peak_rss(pid: int, stop: threading.Event, out: list[float]) -> None:
    peak = 0.0
    while not stop.is_set():
        try:
            proc = psutil.Process(pid)
            procs = [proc, *proc.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()) / 2**20)
        except psutil.NoSuchProcess:
            pass
        stop.wait(0.2)
    out.append(peak)


def measure(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    stop, peak = threading.Event(), []
    watcher = threading.Thread(target=peak_rss, args=(proc.pid, stop, peak))
    watcher.start()
    _, err = proc.communicate(timeout=1800)
    wall = time.monotonic() - started
    stop.set()
    watcher.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed ({proc.returncode}): {err[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "peak_mb": peak[0]}


def stored(db: str, schema: str, table: str) -> dict[str, tuple[str, bool]]:
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            sql.SQL("SELECT diningcode_place_id, district, is_confirmed_refill FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
        ).fetchall()
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        conn.commit()
    return {rid: (district, refill) for rid, district, refill in rows}


def detail_requests(by_endpoint: dict[str, int], source: str) -> tuple[int, int]:
    """(detail requests to the chosen source's endpoint, detail requests to the other one)."""
    other = "html" if source == "api" else "api"
    return by_endpoint.get(DETAIL_PATHS[source], 0), by_endpoint.get(DETAIL_PATHS[other], 0)


def verdict(matches: bool, other_source: int) -> str:
    if other_source:  # e.g. stage5's auto source falling back to the page: not the comparison asked for
        return f"ASKED THE OTHER SOURCE {other_source} times"
    return "matches ground truth" if matches else "DIFFERS from ground truth"


def command(name: str, site: str, db: str, schema: str, source: str) -> tuple[list[str], dict[str, str], str]:
    """(command line, environment, table) of one contender: the same site, database, detail source,
    concurrency 16 and no delay. stage5 takes its source from STAGE5_DETAIL_SOURCE (its settings have no
    flag for it), the baselines from --detail-source."""
    env = {**os.environ, "STAGE5_DETAIL_SOURCE": source}  # read by stage5 only
    if name == "stage5":
        cmd = [sys.executable, "-m", "stage5", "crawl", "--site", site, "--database-url", db, "--db-schema", schema]
        cmd += ["--no-cache", "--request-delay-s", "0", "--host-concurrency", "16"]
        return [*cmd, "--log-dir", str(HERE / "results" / "logs")], env, "stores"
    script = HERE / f"{name}_baseline.py"
    cmd = [sys.executable, str(script), "--site", site, "--database-url", db, "--schema", schema]
    cmd += ["--concurrency", "16", "--detail-source", source, *(["--delay", "0"] if name == "scrapy" else [])]
    return cmd, env, f"{name}_stores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--only", default="stage5,scrapy,crawlee", help="contenders, in round order")
    parser.add_argument("--render-live", action="store_true", help="the replica renders every answer (as before)")
    parser.add_argument(
        "--detail-source",
        choices=("api", "html"),
        default="api",
        help="where every contender reads a store's details: api (POST /API/profile/, stage5's default) or html"
        " (the profile.php page)",
    )
    args = parser.parse_args()
    db = database_url(load_settings())
    world = build_world(args.seed, args.scale)
    truth = {s.rid: (s.district, s.is_refill) for s in world.stores if s.expect == "store"}
    names = args.only.split(",")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    # Pre-rendered answers: on 2 cores the replica's own rendering would otherwise be measured too.
    with ReplicaProcess(args.seed, args.scale, Faults(prerender=not args.render_live)) as replica:
        for round_no in range(1, args.rounds + 1):
            for name in names:
                schema = f"cmp_{name}_{uuid.uuid4().hex[:6]}"
                cmd, env, table = command(name, replica.url, db, schema, args.detail_source)
                replica.reset()
                figures: dict[str, Any] = measure(cmd, env)
                served = replica.stats()
                figures["requests"] = served["requests"]
                figures["details"], figures["other_source"] = detail_requests(served["by_endpoint"], args.detail_source)
                result = stored(db, schema, table)
                figures["stores"] = len(result)
                figures["matches_truth"] = result == truth and figures["other_source"] == 0
                runs[name].append(figures)
                print(
                    f"round {round_no} {name:7} wall {figures['wall_s']:6.1f}s cpu {figures['cpu_s']:6.1f}s "
                    f"peak {figures['peak_mb']:6.0f} MB  {figures['stores']} stores  {figures['details']} details "
                    f"from {DETAIL_PATHS[args.detail_source]}  {verdict(result == truth, figures['other_source'])}",
                    flush=True,
                )
    report(runs, args.rounds, args.scale, len(truth), args.detail_source)


def report(runs: dict[str, list[dict[str, Any]]], rounds: int, scale: float, expected: int, source: str) -> None:
    med: dict[str, dict[str, Any]] = {}
    for name, rs in runs.items():
        med[name] = {
            "wall_s": statistics.median(r["wall_s"] for r in rs),
            "cpu_s": statistics.median(r["cpu_s"] for r in rs),
            "peak_mb": statistics.median(r["peak_mb"] for r in rs),
            "pages_per_s": statistics.median(r["requests"] / r["wall_s"] for r in rs),
            "stores_per_s": statistics.median(r["stores"] / r["wall_s"] for r in rs),
            "cpu_ms_per_page": statistics.median(r["cpu_s"] / r["requests"] * 1000 for r in rs),
            "all_match": all(r["matches_truth"] for r in rs),
        }
    order = " ".join(chr(65 + i) for i in range(len(runs)))
    print(
        f"\nmedians of {rounds} rounds ({order} …), replica scale {scale}, details from {SOURCE_NAMES[source]},"
        f" {expected} stores expected"
    )
    print(f"{'':10}{'wall s':>9}{'pages/s':>10}{'stores/s':>10}{'CPU s':>9}{'CPU ms/page':>12}{'peak MB':>9}  truth")
    for name, m in med.items():
        print(
            f"{name:10}{m['wall_s']:9.1f}{m['pages_per_s']:10.1f}{m['stores_per_s']:10.1f}{m['cpu_s']:9.1f}"
            f"{m['cpu_ms_per_page']:12.2f}{m['peak_mb']:9.0f}  {'all runs match' if m['all_match'] else 'MISMATCH'}"
        )
    if "stage5" in med:
        a = med["stage5"]
        for name, b in med.items():
            if name != "stage5":
                print(
                    f"stage5 vs {name}: {a['stores_per_s'] / b['stores_per_s']:.2f}x the stores/s,"
                    f" {b['cpu_s'] / a['cpu_s']:.2f}x less CPU, {a['peak_mb'] / b['peak_mb']:.2f}x the peak memory"
                )


if __name__ == "__main__":
    main()
