"""Scaling and politeness.

    .venv/bin/python benchmarks/scaling.py --scales 1,4,10          # time and peak memory against world size
    .venv/bin/python benchmarks/scaling.py --polite --rate 25         # wall time against the politeness bound

Scaling: a full crawl (cache off, no delay, 16 in flight) of worlds of growing size; time should grow
linearly, memory stay nearly flat. Politeness: the replica answers in ~100 ms and caps each client at
R requests/s (429 + Retry-After over it); stage5 is set to R requests/s (request_delay_s = 1/R); the
ideal wall time is requests / R.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stage5.crawl.run import RunSummary, run_crawl
from stage5.logs import setup_logging
from stage5.replica.process import ReplicaProcess
from stage5.replica.server import Faults
from stage5.services import database_url
from stage5.settings import load_settings


def crawl(url: str, db: str, **overrides: object) -> RunSummary:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    settings = load_settings(
        site=url, db_schema=schema, cache="off", log_dir=Path("benchmarks/results/logs"), **overrides
    )
    setup_logging(settings.log_dir)
    try:
        return asyncio.run(run_crawl(settings, db, fresh=True))
    finally:
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def scaling(scales: list[float], db: str) -> None:
    rows = []
    for scale in scales:
        with ReplicaProcess(5, scale) as replica:
            s = crawl(replica.url, db, request_delay_s=0, host_concurrency=16)
        rows.append((scale, s))
        print(
            f"scale {scale:>4}: {s.stores} stores, {s.requests} requests, {s.elapsed_s}s, peak {s.peak_memory_mb} MB",
            flush=True,
        )
    base_scale, base = rows[0]
    print(f"\n{'scale':>5} {'stores':>7} {'requests':>9} {'wall s':>8} {'s per 1k stores':>16} {'peak MB':>8}")
    for scale, s in rows:
        print(
            f"{scale:>5} {s.stores:>7} {s.requests:>9} {s.elapsed_s:>8.1f} {s.elapsed_s / s.stores * 1000:>16.2f}"
            f" {s.peak_memory_mb:>8.0f}"
        )


def polite(rate: float, scale: float, db: str) -> None:
    faults = Faults(latency_ms=100, latency_jitter_ms=20, rate_cap=rate, retry_after_s=1)
    with ReplicaProcess(5, scale, faults) as replica:
        s = crawl(replica.url, db, request_delay_s=1 / rate, host_concurrency=8)
        served = replica.stats()
    ideal = s.requests / rate
    print(
        f"rate cap {rate}/s, ~100 ms answers, world {scale}x: {s.requests} requests"
        f" ({served['faults'].get('rate_cap', 0)}"
        f" answered 429), wall {s.elapsed_s:.1f}s, ideal {ideal:.1f}s: {s.elapsed_s / ideal - 1:+.1%} over the bound"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="1,4,10")
    parser.add_argument("--polite", action="store_true", help="run the politeness benchmark instead")
    parser.add_argument("--rate", type=float, default=25.0)
    parser.add_argument("--polite-scale", type=float, default=0.2)
    args = parser.parse_args()
    db = database_url(load_settings())
    if args.polite:
        polite(args.rate, args.polite_scale, db)
    else:
        scaling([float(x) for x in args.scales.split(",")], db)


if __name__ == "__main__":
    main()
