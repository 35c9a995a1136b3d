"""Requests per night: a full crawl every night against the change-driven refresh, over replica days 0–7.

For each night: requests sent, the minutes they take at the real site's politeness (0.75 s between
requests, as `STAGE5_REQUEST_DELAY_S` defaults), why detail pages were fetched, and — for the
change-driven schema — how many stored stores and fields differ from that day's truth, and how old their
detail was (in nights).

    .venv/bin/python benchmarks/refresh.py --scale 1 --days 7 --max-age 7
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stage5.crawl.run import run_crawl
from stage5.logs import setup_logging
from stage5.replica.process import ReplicaProcess
from stage5.replica.render import layout_for
from stage5.replica.truth import score
from stage5.replica.world import build_world
from stage5.report import load_result
from stage5.services import database_url
from stage5.settings import Settings, load_settings

POLITE_S = 0.75


def night(settings: Settings, day: int, scale: float) -> Any:
    with ReplicaProcess(5, scale, day=day) as site:
        return asyncio.run(run_crawl(settings.model_copy(update={"site": site.url}), database_url(settings)))


def staleness(settings: Settings, day: int, scale: float, run_id: int) -> tuple[int, int, float]:
    """(stores with a stale field, stale fields, median age in nights of their detail)."""
    stored, rejected = asyncio.run(load_result(settings))
    world = build_world(5, scale, day)
    result = score(world, stored, rejected, settings.districts, layout_for)
    stale = {rid for rids in result.wrong_fields.values() for rid in rids}
    with psycopg.connect(database_url(settings)) as conn:
        ages = dict(
            conn.execute(
                sql.SQL("SELECT diningcode_place_id, %s - detail_run_id FROM {}.stores").format(
                    sql.Identifier(settings.db_schema)
                ),
                (run_id,),
            ).fetchall()
        )
    age = statistics.median(ages[r] for r in stale) if stale else 0.0
    return len(stale), sum(len(r) for r in result.wrong_fields.values()), age


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--max-age", type=int, default=7, help="STAGE5_DETAIL_MAX_AGE_RUNS")
    parser.add_argument("--page-size", type=int, default=20, help="STAGE5_PAGE_SIZE (the site answers up to 50)")
    args = parser.parse_args()
    common = dict(
        site="http://127.0.0.1:9",  # replaced by each night's replica: loopback only
        cache="off",
        request_delay_s=0,
        host_concurrency=16,
        detail_max_age_runs=args.max_age,
        page_size=args.page_size,
        log_dir=Path("benchmarks/results/logs"),
    )
    full = load_settings(**common, db_schema=f"bench_{uuid.uuid4().hex[:8]}", detail_refresh="all")
    driven = load_settings(**common, db_schema=f"bench_{uuid.uuid4().hex[:8]}", detail_refresh="changed")
    setup_logging(full.log_dir)
    print(
        f"{'day':>3} {'full req':>8} {'min':>6} {'driven req':>10} {'min':>6} {'share':>6}  "
        f"{'stale stores':>12} {'fields':>6} {'age':>4}  detail pages fetched because"
    )
    shares = []
    try:
        for day in range(args.days + 1):
            a = night(full, day, args.scale)
            b = night(driven, day, args.scale)
            stores, fields, age = staleness(driven, day, args.scale, b.run_id)
            share = b.requests / a.requests
            if day:
                shares.append(share)
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(b.details.items()))
            print(
                f"{day:>3} {a.requests:>8} {a.requests * POLITE_S / 60:>6.1f} {b.requests:>10}"
                f" {b.requests * POLITE_S / 60:>6.1f} {share:>6.0%}  {stores:>12} {fields:>6} {age:>4.0f}  {reasons}",
                flush=True,
            )
    finally:
        with psycopg.connect(database_url(full), autocommit=True) as conn:
            for s in (full, driven):
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(s.db_schema)))
    print(
        f"\nnights 1-{args.days}: the change-driven run sent {statistics.mean(shares):.0%} of a full crawl's"
        f" requests on average ({min(shares):.0%}-{max(shares):.0%})"
    )


if __name__ == "__main__":
    main()
