"""Peak memory of the whole process tree against the budget, on a scaled-up replica world.

    .venv/bin/python benchmarks/memory_budget.py --scale 10 --budgets 2048,250

For each budget: a full crawl of all 25 districts into a scratch schema (dropped afterwards), with the
cache off so every page is fetched and parsed; prints elapsed time, stores, peak tree memory (PSS),
governor actions, workers, and the score against the replica's ground truth.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stage5.crawl.run import run_crawl
from stage5.logs import setup_logging
from stage5.replica.process import ReplicaProcess
from stage5.replica.truth import score
from stage5.replica.world import build_world
from stage5.report import load_result
from stage5.services import database_url
from stage5.settings import load_settings
from stage5.site.seoul import DISTRICT_NAMES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--budgets", default="2048,250", help="comma-separated MB")
    parser.add_argument("--workers", type=int, default=0, help="0: sized by stage5")
    args = parser.parse_args()
    rows = []
    results = []
    with ReplicaProcess(args.seed, args.scale) as replica:
        for budget in (int(b) for b in args.budgets.split(",")):
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            settings = load_settings(
                site=replica.url,
                db_schema=schema,
                memory_budget_mb=budget,
                cache="off",
                request_delay_s=0,
                host_concurrency=16,
                workers=args.workers,
                log_dir=Path("benchmarks/results/logs"),
            )
            setup_logging(settings.log_dir)
            url = database_url(settings)
            started = time.monotonic()
            summary = asyncio.run(run_crawl(settings, url))
            elapsed = time.monotonic() - started
            results.append(asyncio.run(load_result(settings)))
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
            row = {
                "scale": args.scale,
                "budget_mb": budget,
                "effective_budget_mb": summary.memory_budget_mb,
                "peak_mb": summary.peak_memory_mb,
                "under_budget": summary.peak_memory_mb <= summary.memory_budget_mb,
                "elapsed_s": round(elapsed, 1),
                "stores": summary.stores,
                "requests": summary.requests,
                "stores_per_hour": round(summary.stores / elapsed * 3600),
                "governor": summary.governor_actions,
                "workers_max": summary.workers_max,
                "workers_recycled": summary.workers_recycled,
            }
            rows.append(row)
    # Scored after the crawls: the ground truth of a 10x world weighs ~60 MB, not the crawler's memory.
    world = build_world(args.seed, args.scale)
    for row, (stored, rejected) in zip(rows, results):
        result = score(world, stored, rejected, list(DISTRICT_NAMES))
        row.update(score_perfect=result.perfect, missing=len(result.missing), extra=len(result.extra))
        print(json.dumps(row, ensure_ascii=False), flush=True)
    print("\nscale  budget  peak MB  under  elapsed  stores  stores/h   throttle lower raise recycle  workers  perfect")
    for r in rows:
        g = r["governor"]
        print(
            f"{r['scale']:>5}  {r['budget_mb']:>6}  {r['peak_mb']:>7.0f}  {str(r['under_budget']):>5}  "
            f"{r['elapsed_s']:>6.0f}s  {r['stores']:>6}  {r['stores_per_hour']:>8}   "
            f"{g['throttle']:>8} {g['lower']:>5} {g['raise']:>5} {g['recycle']:>7}  "
            f"{r['workers_max']:>7}  {r['score_perfect']}"
        )


if __name__ == "__main__":
    main()
