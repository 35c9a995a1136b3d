"""Scaling and politeness.

    .venv/bin/python benchmarks/scaling.py --scales 1,10,30         # time, CPU and peak memory against world size
    .venv/bin/python benchmarks/scaling.py --polite --rate 25         # wall time against the politeness bound

Scaling: a full crawl (cache off, no delay, 16 in flight) of worlds of growing size; time should grow
linearly, memory stay nearly flat. Politeness: the replica answers in ~100 ms and caps each client at
R requests/s (429 + Retry-After over it); stage5 is set to R requests/s (request_delay_s = 1/R); the
ideal wall time is requests / R.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stage5.crawl.pool import stop_forkserver
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
        stop_forkserver()  # waited for, so its workers' CPU counts in RUSAGE_CHILDREN (it lives for the process)
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _cpu_s() -> float:
    """CPU seconds of this process and of its children that ended (the workers, via the forkserver)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def scaling(scales: list[float], db: str) -> None:
    rows = []
    for scale in scales:
        with ReplicaProcess(5, scale) as replica:
            before = _cpu_s()
            s = crawl(replica.url, db, request_delay_s=0, host_concurrency=16)
            cpu = _cpu_s() - before  # measured before the replica ends: its CPU is not the crawler's
        rows.append((scale, s, cpu))
        print(
            f"scale {scale:>4}: {s.stores} stores, {s.requests} requests, {s.elapsed_s}s, peak {s.peak_memory_mb} MB,"
            f" {cpu:.1f} CPU s",
            flush=True,
        )
    print(
        f"\n{'scale':>5} {'stores':>7} {'requests':>9} {'wall s':>8} {'stores/s':>9} {'CPU ms/page':>12} {'peak MB':>8}"
    )
    for scale, s, cpu in rows:
        print(
            f"{scale:>5} {s.stores:>7} {s.requests:>9} {s.elapsed_s:>8.1f} {s.stores / s.elapsed_s:>9.1f}"
            f" {cpu / s.requests * 1000:>12.2f} {s.peak_memory_mb:>8.0f}"
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
    parser.add_argument("--scales", default="1,10,30")
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
