"""Hostile answers, measured: per case, a healthy crawl then a crawl through the hostile site, in a
scratch schema; prints the exit code, stored rows lost or changed against the healthy baseline (must be
0), stores rejected or failed (the spoiled ones), peak memory of the crawler's tree against the budget,
and time.

    .venv/bin/python benchmarks/hostile.py                   # every case, 0.3x world, 3 districts
    .venv/bin/python benchmarks/hostile.py --cases gzip_bomb,endless --budget 1024
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stage5.cli import _exit_code
from stage5.crawl.run import run_crawl
from stage5.logs import setup_logging
from stage5.replica.hostile import CASES, HostileProcess, PeakMemory, is_target
from stage5.replica.process import ReplicaProcess
from stage5.report import store_hashes
from stage5.services import database_url, redis_url
from stage5.settings import Settings, load_settings
from stage5.storage.db import connect


async def hashes(settings: Settings) -> dict[str, str]:
    conn = await connect(database_url(settings), settings.db_schema)
    try:
        return await store_hashes(conn)
    finally:
        await conn.close()


def one_case(case: str, replica: ReplicaProcess, base: Settings, every: int) -> dict[str, Any]:
    settings = base.model_copy(update={"db_schema": f"bench_{uuid.uuid4().hex[:8]}", "site": replica.url})
    url = database_url(settings)
    cache = redis_url(settings) if settings.cache != "off" else None
    try:
        healthy = asyncio.run(run_crawl(settings, url, cache))
        before = asyncio.run(hashes(settings))
        with HostileProcess(replica.url, case, every) as site, PeakMemory() as memory:
            spoiled = settings.model_copy(update={"site": site.url})
            started = time.monotonic()
            summary = asyncio.run(run_crawl(spoiled, url, cache))
            elapsed = time.monotonic() - started
        after = asyncio.run(hashes(settings))
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(settings.db_schema)))
    return {
        "case": case,
        "exit": _exit_code(summary.status),
        "status": summary.status,
        "baseline_rows": len(before),
        "rows_lost": len(before.keys() - after.keys()),
        "rows_changed": sum(1 for rid, h in before.items() if rid in after and after[rid] != h),
        "targets": sum(1 for rid in before if is_target(rid, every)),
        "rejected": summary.rejected,
        "failed": summary.units_failed,
        "suspect": len(summary.suspect_districts),
        "peak_mb": round(memory.peak_mb),
        "budget_mb": settings.memory_budget_mb,
        "seconds": round(elapsed, 1),
        "healthy_seconds": healthy.elapsed_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--scale", type=float, default=0.3)
    parser.add_argument("--districts", default="마포구,구로구,강남구")
    parser.add_argument("--every", type=int, default=10, help="spoil the stores whose rid hash %% every == 0")
    parser.add_argument("--budget", type=int, default=1024, help="memory budget (MB) of the hostile crawl")
    args = parser.parse_args()
    base = load_settings(
        site="http://127.0.0.1:9",  # replaced by the replica's URL: this benchmark never leaves loopback
        districts=args.districts,
        memory_budget_mb=args.budget,
        cache="off",
        request_delay_s=0,
        host_concurrency=16,
        retry_backoff_s=0.1,
        log_dir=Path("benchmarks/results/logs"),
    )
    setup_logging(base.log_dir)
    results = []
    header = f"{'case':15} {'exit':>4} {'status':9} {'rows':>5} {'lost':>4} {'changed':>7} {'targets':>7}"
    header += f" {'rejected':>8} {'failed':>6} {'suspect':>7} {'peak MB':>8} {'budget':>6} {'s':>6}"
    print(header)
    with ReplicaProcess(5, args.scale) as replica:
        for case in args.cases.split(","):
            r = one_case(case, replica, base, args.every)
            results.append(r)
            print(
                f"{r['case']:15} {r['exit']:>4} {r['status']:9} {r['baseline_rows']:>5} {r['rows_lost']:>4}"
                f" {r['rows_changed']:>7} {r['targets']:>7} {r['rejected']:>8} {r['failed']:>6} {r['suspect']:>7}"
                f" {r['peak_mb']:>8} {r['budget_mb']:>6} {r['seconds']:>6}",
                flush=True,
            )
    out = Path("benchmarks/results") / f"hostile-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(f"\nfigures: {out}")


if __name__ == "__main__":
    main()
