"""Chaos: kill workers and the master at random moments of a faulty crawl, resume, compare.

    .venv/bin/python benchmarks/chaos.py --kills 25 --scale 0.3

Runs `python -m stage5 crawl` against a replica with faults on (5xx, 429 + Retry-After, cut-short
and malformed bodies, latency). While it runs, every 0.3-1.5 s (random) it SIGKILLs a worker, SIGKILLs
the master, or sends the master SIGTERM; a stopped master is started again with `--resume`. After
`--kills` kills the crawl is left to finish. Then the `stores` table is compared, column by column,
with an undisturbed crawl of the same world, and scored against the replica's ground truth.
Bounded: at most --max-seconds, loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stage5.replica.process import ReplicaProcess
from stage5.replica.server import Faults
from stage5.replica.truth import score
from stage5.replica.world import build_world
from stage5.report import load_result
from stage5.services import database_url
from stage5.settings import load_settings
from stage5.storage.columns import STORE_COLUMNS

LOGS = Path("benchmarks/results/chaos-logs")


def crawl_cmd(url: str, db: str, schema: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "stage5",
        "crawl",
        "--site",
        url,
        "--database-url",
        db,
        "--db-schema",
        schema,
        "--log-dir",
        str(LOGS),
        "--request-delay-s",
        "0",
        "--host-concurrency",
        "8",
        "--workers",
        "2",
        "--no-cache",
        "--json",
        *extra,
    ]


def rows(db: str, schema: str) -> list[tuple[object, ...]]:
    """Every data column but source_url, which names the replica's port (different for the two runs)."""
    columns = [c for c in STORE_COLUMNS if c != "source_url"]
    with psycopg.connect(db) as conn:
        return conn.execute(
            sql.SQL("SELECT {} FROM {}.stores ORDER BY 1").format(
                sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(schema)
            )
        ).fetchall()


def workers_of(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    try:
        return [c for c in psutil.Process(proc.pid).children() if c.is_running()]
    except psutil.NoSuchProcess:
        return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=25)
    parser.add_argument("--scale", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--rng", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=900)
    args = parser.parse_args()
    rng = random.Random(args.rng)
    LOGS.mkdir(parents=True, exist_ok=True)
    db = database_url(load_settings())
    chaos_schema, calm_schema = f"chaos_{uuid.uuid4().hex[:8]}", f"calm_{uuid.uuid4().hex[:8]}"
    faults = Faults(
        latency_ms=10,
        latency_jitter_ms=5,
        p5xx=0.03,
        p429=0.02,
        retry_after_s=0,
        p_truncate=0.01,
        p_malformed=0.01,
        fault_seed=args.rng,
    )
    kills = {"worker": 0, "master": 0, "sigterm": 0}
    starts = 0
    started = time.monotonic()
    with ReplicaProcess(args.seed, args.scale, faults) as replica:
        proc: subprocess.Popen[bytes] | None = None
        while time.monotonic() - started < args.max_seconds:
            if proc is None or proc.poll() is not None:
                if proc is not None and proc.returncode == 0:
                    break  # the crawl finished
                extra = ("--resume",) if starts else ()
                proc = subprocess.Popen(
                    crawl_cmd(replica.url, db, chaos_schema, "--retry-attempts", "8", *extra),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                starts += 1
            if sum(kills.values()) >= args.kills:
                proc.wait(timeout=args.max_seconds)
                continue
            time.sleep(rng.uniform(0.3, 1.5))
            if proc.poll() is not None:
                continue
            what = rng.choice(("worker", "worker", "master", "sigterm"))
            victims = workers_of(proc) if what == "worker" else []
            if what == "worker" and victims:
                rng.choice(victims).kill()
            elif what == "master":
                proc.kill()
                proc.wait()
            elif what == "sigterm":
                proc.terminate()
                proc.wait(timeout=30)
            else:
                continue
            kills[what] += 1
            print(f"kill {sum(kills.values()):>2}: {what:8} t={time.monotonic() - started:6.1f}s", flush=True)
        chaos_elapsed = time.monotonic() - started
        finished = proc is not None and proc.returncode == 0
    with ReplicaProcess(args.seed, args.scale) as calm_replica:
        calm = subprocess.run(crawl_cmd(calm_replica.url, db, calm_schema), capture_output=True, timeout=600)
    chaos_rows, calm_rows = rows(db, chaos_schema), rows(db, calm_schema)
    settings = load_settings(database_url=db, db_schema=chaos_schema)
    stored, rejected = asyncio.run(load_result(settings))
    result = score(build_world(args.seed, args.scale), stored, rejected, settings.districts)
    with psycopg.connect(db) as conn:
        status = conn.execute(
            sql.SQL("SELECT status, resumed FROM {}.crawl_runs ORDER BY id").format(sql.Identifier(chaos_schema))
        ).fetchall()
        for schema in (chaos_schema, calm_schema):
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    differ = sum(1 for a, b in zip(chaos_rows, calm_rows) if a != b) + abs(len(chaos_rows) - len(calm_rows))
    print(
        f"\nkills survived     {sum(kills.values())} ({kills['worker']} workers SIGKILL, {kills['master']} master "
        f"SIGKILL, {kills['sigterm']} master SIGTERM), master starts {starts}"
    )
    print(f"chaos run          {'finished' if finished else 'DID NOT FINISH'} in {chaos_elapsed:.0f}s; runs {status}")
    print(f"undisturbed run    exit {calm.returncode}, {len(calm_rows)} stores")
    print(f"stores table       {len(chaos_rows)} rows; rows differing from the undisturbed run: {differ}")
    print(
        f"vs ground truth    {'PERFECT' if result.perfect else 'DIFFERENCES'}: missing {len(result.missing)},"
        f" extra {len(result.extra)}, wrong district {len(result.wrong_district)},"
        f" wrong refill flag {len(result.wrong_refill_flag)}"
    )
    sys.exit(0 if finished and differ == 0 and result.perfect else 1)


if __name__ == "__main__":
    main()
