"""Evidence before write, measured (issue 21): per case, a healthy crawl through a loopback proxy, the
proxy turned hostile for a second crawl, then healthy again for a third (cache on); prints the exit code
of the hostile crawl and how many stored rows it changed against the healthy baseline, and how many still
differ after the healthy crawl that follows.

The crawler runs as a command (`python -m stage5 crawl`) from the tree given by --tree, so the same
proxies measure an older checkout too (before/after figures); the replica and the proxy come from here.

    .venv/bin/python benchmarks/evidence.py                              # this tree, every case
    git worktree add /tmp/old 869f5b9 && .venv/bin/python benchmarks/evidence.py --tree /tmp/old
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))

from stage5.replica.hostile import HostileProcess
from stage5.replica.process import ReplicaProcess

PG = "postgresql://postgres@127.0.0.1:5432/stage5_bench"
REDIS = "redis://127.0.0.1:6379/0"
# (case, every): which stores' answers the proxy spoils (rid hash % every == 0)
CASES = [
    ("block_page", 3),
    ("redirect_offsite", 10),
    ("redirect_home", 10),
    ("other_store", 10),
    ("no_menu", 10),
    ("cut_byte", 10),
]
COLUMNS = (
    "name, branch, district, address, road_address, position_lat, position_lng, phone_number, menu_items::text,"
    " open_hours, is_confirmed_refill, refill_type, refill_items, status, missed_runs"
)


def crawl(tree: Path, site: str, schema: str, districts: str, cache: str) -> int:
    command = [sys.executable, "-m", "stage5", "crawl", "--site", site, "--db-schema", schema]
    command += ["--districts", districts, "--request-delay-s", "0", "--host-concurrency", "8", "--workers", "1"]
    command += {"on": [], "refresh": ["--refresh"], "off": ["--no-cache"]}[cache]
    env = {**os.environ, "PYTHONPATH": str(tree), "DATABASE_URL": PG, "REDIS_URL": REDIS}
    env.update(STAGE5_CACHE_NAMESPACE=f"evidence-{schema}", STAGE5_DETAIL_SOURCE="html", STAGE5_RETRY_BACKOFF_S="0.05")
    # block pages space requests out (2 s doubling to 30 s by default): shorter here, so a case takes seconds
    env.update(STAGE5_BLOCKED_BACKOFF_S="0.1", STAGE5_BLOCKED_BACKOFF_MAX_S="1")
    done = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True, timeout=600)
    return done.returncode


def rows(schema: str) -> dict[str, tuple[Any, ...]]:
    with psycopg.connect(PG) as conn:
        query = sql.SQL(f"SELECT diningcode_place_id, {COLUMNS} FROM {{}}.stores").format(sql.Identifier(schema))
        return {r[0]: r[1:] for r in conn.execute(query).fetchall()}


def differing(before: dict[str, tuple[Any, ...]], after: dict[str, tuple[Any, ...]]) -> int:
    return sum(1 for rid, row in before.items() if after.get(rid) != row)


def switch(site: HostileProcess, on: bool) -> None:
    request = urllib.request.Request(f"{site.url}/__hostile/{'on' if on else 'off'}", method="POST")
    urllib.request.urlopen(request, timeout=5).close()


def one_case(tree: Path, replica: ReplicaProcess, case: str, every: int, districts: str) -> dict[str, Any]:
    schema = f"evidence_{uuid.uuid4().hex[:8]}"
    try:
        with HostileProcess(replica.url, case, every) as site:
            switch(site, False)
            healthy = crawl(tree, site.url, schema, districts, "on")
            before = rows(schema)
            switch(site, True)
            hostile = crawl(tree, site.url, schema, districts, "refresh")
            during = rows(schema)
            switch(site, False)
            crawl(tree, site.url, schema, districts, "on")
            after = rows(schema)
    finally:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    return {
        "case": case,
        "healthy_exit": healthy,
        "hostile_exit": hostile,
        "stores": len(before),
        "rows_changed": differing(before, during),
        "rows_wrong_after_recovery": differing(before, after),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=HERE, help="the checkout whose crawler is measured")
    parser.add_argument("--scale", type=float, default=0.3)
    parser.add_argument("--districts", default="마포구,구로구,강남구")
    parser.add_argument("--cases", default=",".join(c for c, _ in CASES))
    args = parser.parse_args()
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'stage5_bench'").fetchone():
            conn.execute("CREATE DATABASE stage5_bench")
    wanted = args.cases.split(",")
    print(f"tree {args.tree}  scale {args.scale}  districts {args.districts}")
    print(f"{'case':18} {'exit':>4} {'stores':>6} {'changed':>7} {'wrong after recovery':>20}")
    with ReplicaProcess(seed=5, scale=args.scale) as replica:
        for case, every in CASES:
            if case in wanted:
                r = one_case(args.tree.resolve(), replica, case, every, args.districts)
                print(
                    f"{r['case']:18} {r['hostile_exit']:>4} {r['stores']:>6} {r['rows_changed']:>7}"
                    f" {r['rows_wrong_after_recovery']:>20}",
                    flush=True,
                )
                print(json.dumps(r), file=sys.stderr)


if __name__ == "__main__":
    main()
