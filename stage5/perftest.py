"""`python -m stage5 perftest`: stage5 measured in one run, as figures and ratios.

It starts its own replica, works in a scratch schema and a scratch cache namespace (both removed
at the end), and measures: DB load (COPY + upsert vs executemany vs one INSERT + commit per row),
the cache on an immediate second crawl, 1 worker vs N, the end-to-end crawl, and stores/hour under
realistic politeness; then a verdict per target of the seed ("stage5 guide").
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import psycopg
import redis
from psycopg import sql

from stage5.crawl.progress import Progress
from stage5.crawl.run import RunSummary, run_crawl
from stage5.errors import ConfigError
from stage5.models import MenuItem, StoreRecord
from stage5.replica.process import ReplicaProcess
from stage5.replica.server import Faults
from stage5.settings import Settings
from stage5.site.seoul import DISTRICTS
from stage5.storage.db import connect
from stage5.storage.runs import start_run
from stage5.storage.schema import migrate
from stage5.storage.stores import STORE_COLUMNS, StoreWriter, store_doc

SEED_TARGETS = {"db_rows_per_s": 1000, "cache_hit_rate": 0.60, "memory_mb": 2048, "stores_per_hour": 500}


def synthetic_records(n: int, seed: int = 7) -> list[StoreRecord]:
    rng = random.Random(seed)
    records = []
    for i in range(n):
        d = DISTRICTS[i % len(DISTRICTS)]
        records.append(
            StoreRecord(
                rid=f"perf{i:08d}",
                name=f"테스트 고깃집 {i}",
                district=d.name,
                address=f"서울특별시 {d.name} 중앙동 {i}",
                lat=d.lat + rng.uniform(-0.01, 0.01),
                lng=d.lng + rng.uniform(-0.01, 0.01),
                source_url=f"https://www.diningcode.com/profile.php?rid=perf{i:08d}",
                phone=f"02-{rng.randint(200, 999)}-{i % 10000:04d}",
                categories=("삼겹살", "고기무한리필"),
                keywords=("무한리필", "가성비"),
                rating=round(rng.uniform(3, 5), 1),
                review_count=rng.randint(0, 500),
                score=rng.randint(40, 95),
                open_hours="11:30 - 22:00",
                last_order="21:00",
                menu=(MenuItem("삼겹살 무한리필", 19900, "19,900원"), MenuItem("목살", 16900, "16,900원")),
                price_min=16900,
                price_max=19900,
                image_urls=(f"https://img/{i}.jpg",),
                is_refill=True,
                refill_type="무한리필",
                refill_items=("삼겹살",),
                refill_evidence=("menu:삼겹살 무한리필",),
            )
        )
    return records


async def _db_copy(url: str, schema: str, records: list[StoreRecord], run_id: int) -> float:
    started = time.perf_counter()
    async with StoreWriter(lambda: connect(url, schema), run_id, 5000, 3600) as writer:
        for record in records:
            await writer.add(record)
    return len(records) / (time.perf_counter() - started)


_INSERT = sql.SQL(
    "INSERT INTO stores ({cols}, first_run_id, last_run_id) SELECT {r_cols}, 0, 0"
    " FROM jsonb_populate_record(NULL::stores, %s::jsonb) AS r"
    " ON CONFLICT (diningcode_place_id) DO UPDATE SET name = EXCLUDED.name, updated_at = now()"
).format(
    cols=sql.SQL(", ").join(map(sql.Identifier, STORE_COLUMNS)),
    r_cols=sql.SQL(", ").join(sql.SQL("r.") + sql.Identifier(c) for c in STORE_COLUMNS),
)


async def _db_executemany(url: str, schema: str, records: list[StoreRecord]) -> float:
    conn = await connect(url, schema)
    started = time.perf_counter()
    async with conn.cursor() as cur:
        await cur.executemany(_INSERT, [(store_doc(r),) for r in records])
    await conn.commit()
    await conn.close()
    return len(records) / (time.perf_counter() - started)


async def _db_row_per_commit(url: str, schema: str, records: list[StoreRecord]) -> float:
    """The seed's baseline: one INSERT and one commit per row."""
    conn = await connect(url, schema)
    started = time.perf_counter()
    for record in records:
        await conn.execute(_INSERT, (store_doc(record),))
        await conn.commit()
    await conn.close()
    return len(records) / (time.perf_counter() - started)


async def measure_db(url: str, schema: str, rows: int, slow_rows: int) -> dict[str, Any]:
    conn = await connect(url, schema)
    await migrate(conn)
    run_id = await start_run(conn, "perftest", [], {})
    records = synthetic_records(rows)
    copy_new = await _db_copy(url, schema, records, run_id)
    copy_again = await _db_copy(url, schema, [replace(r, score=(r.score or 0) + 1) for r in records], run_id)
    await conn.execute("TRUNCATE stores")
    await conn.commit()
    many = await _db_executemany(url, schema, [replace(r, rid="m" + r.rid) for r in records])
    single = await _db_row_per_commit(url, schema, [replace(r, rid="s" + r.rid) for r in records[:slow_rows]])
    await conn.execute("TRUNCATE stores")  # the crawls after this start from an empty table, as a first run does
    await conn.commit()
    await conn.close()
    return {
        "rows": rows,
        "copy_upsert_rows_per_s": round(copy_new),
        "copy_upsert_update_rows_per_s": round(copy_again),
        "executemany_rows_per_s": round(many),
        "row_per_commit_rows_per_s": round(single),
        "row_per_commit_rows_measured": slow_rows,
        "copy_vs_row_per_commit": round(copy_new / single, 1),
        "copy_vs_executemany": round(copy_new / many, 1),
    }


async def _crawl(
    settings: Settings, url: str, redis_url: str | None, replica: ReplicaProcess, progress: Progress | None = None
) -> tuple[RunSummary, int]:
    replica.reset()
    summary = await run_crawl(settings, url, redis_url, fresh=True, progress=progress)
    return summary, int(replica.stats()["requests"])


async def measure_crawls(base: Settings, url: str, redis_url: str | None, replica: ReplicaProcess) -> dict[str, Any]:
    cores = psutil.cpu_count() or 1
    fast = {"site": replica.url, "request_delay_s": 0.0, "host_concurrency": 16}
    cached = base.model_copy(update={**fast, "cache": "on"})
    first, sent_first = await _crawl(cached, url, redis_url, replica)
    second, sent_second = await _crawl(cached, url, redis_url, replica)
    one, _ = await _crawl(base.model_copy(update={**fast, "cache": "off", "workers": 1}), url, None, replica)
    progress = Progress(1.0, quiet=True)
    many, _ = await _crawl(
        base.model_copy(update={**fast, "cache": "off", "workers": cores}), url, None, replica, progress
    )
    return {
        "cache": {
            "first_requests": sent_first,
            "second_requests": sent_second,
            "second_hit_rate": second.cache_hit_rate,
            "requests_saved": round(1 - sent_second / sent_first, 4) if sent_first else 0.0,
        },
        "parallel": {
            "workers": cores,
            "one_worker_s": one.elapsed_s,
            "n_workers_s": many.elapsed_s,
            "speedup": round(one.elapsed_s / many.elapsed_s, 2) if many.elapsed_s else 0.0,
        },
        "end_to_end": {
            "stores": many.stores,
            "requests": many.requests,
            "elapsed_s": many.elapsed_s,
            "stores_per_hour": round(many.stores / many.elapsed_s * 3600),
            "pages_per_s": round(many.requests / many.elapsed_s, 1),
            "peak_memory_mb": many.peak_memory_mb,
            "governor_actions": many.governor_actions,
            "requests_per_store": round(many.requests / max(many.stores, 1), 3),
        },
        "series": [
            {"t": round(t, 1), "stores": f.stores, "requests": f.requests, "memory_mb": round(f.memory_mb)}
            for t, f in progress.history
        ],
    }


async def measure_polite(base: Settings, url: str, seed: int, scale: float) -> dict[str, Any]:
    """One small district at the real-site defaults against a replica answering in ~100 ms."""
    district = "도봉구"
    with ReplicaProcess(seed, scale, Faults(latency_ms=100, latency_jitter_ms=20)) as slow:
        polite = base.model_copy(
            update={
                "site": slow.url,
                "cache": "off",
                "districts": [district],
                "request_delay_s": Settings.model_fields["request_delay_s"].default,
                "host_concurrency": Settings.model_fields["host_concurrency"].default,
            }
        )
        summary = await run_crawl(polite, url, None, fresh=True)
    return {
        "district": district,
        "stores": summary.stores,
        "requests": summary.requests,
        "elapsed_s": summary.elapsed_s,
        "request_delay_s": polite.request_delay_s,
        "stores_per_hour": round(summary.stores / summary.elapsed_s * 3600),
    }


def verdicts(result: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    t = SEED_TARGETS
    db, cache, e2e = result["db"], result["crawl"]["cache"], result["crawl"]["end_to_end"]
    polite = result.get("polite") or {}
    polite_rate = polite.get("stores_per_hour", result.get("polite_estimate_stores_per_hour", 0))
    return [
        (
            "DB load",
            f">= {t['db_rows_per_s']:,} rows/s",
            f"{db['copy_upsert_rows_per_s']:,} rows/s",
            db["copy_upsert_rows_per_s"] >= t["db_rows_per_s"],
        ),
        (
            "cache hit rate",
            f">= {t['cache_hit_rate']:.0%}",
            f"{cache['second_hit_rate']:.1%}",
            cache["second_hit_rate"] >= t["cache_hit_rate"],
        ),
        (
            "memory",
            f"<= {t['memory_mb']:,} MB",
            f"{e2e['peak_memory_mb']:.0f} MB",
            e2e["peak_memory_mb"] <= t["memory_mb"],
        ),
        (
            "polite speed",
            f">= {t['stores_per_hour']} stores/hour",
            f"{polite_rate:,} stores/hour" + ("" if polite else " (estimated)"),
            polite_rate >= t["stores_per_hour"],
        ),
    ]


def render(result: dict[str, Any]) -> str:
    db, c = result["db"], result["crawl"]
    lines = [
        f"stage5 perftest ({'quick' if result['quick'] else 'full'};"
        f" replica scale {result['scale']}, {result['cores']} cores)",
        "",
        f"DB load, {db['rows']:,} rows        rows/s",
        f"  COPY + upsert (new)        {db['copy_upsert_rows_per_s']:>9,}",
        f"  COPY + upsert (update)     {db['copy_upsert_update_rows_per_s']:>9,}",
        f"  executemany                {db['executemany_rows_per_s']:>9,}   COPY is {db['copy_vs_executemany']}x",
        f"  INSERT + commit per row    {db['row_per_commit_rows_per_s']:>9,}   COPY is {db['copy_vs_row_per_commit']}x"
        f"   ({db['row_per_commit_rows_measured']:,} rows timed)",
        "",
        f"cache: second crawl sent {c['cache']['second_requests']} of {c['cache']['first_requests']} requests;"
        f" hit rate {c['cache']['second_hit_rate']:.1%}, requests saved {c['cache']['requests_saved']:.1%}",
        f"parallel: 1 worker {c['parallel']['one_worker_s']}s, {c['parallel']['workers']} workers"
        f" {c['parallel']['n_workers_s']}s: speed-up {c['parallel']['speedup']}x",
        f"end to end: {c['end_to_end']['stores']} stores in {c['end_to_end']['elapsed_s']}s ="
        f" {c['end_to_end']['stores_per_hour']:,} stores/hour, {c['end_to_end']['pages_per_s']} pages/s,"
        f" peak {c['end_to_end']['peak_memory_mb']:.0f} MB, governor {c['end_to_end']['governor_actions']}",
    ]
    if result.get("polite"):
        p = result["polite"]
        lines.append(
            f"polite: {p['district']} at {p['request_delay_s']} s/request, 100 ms answers: {p['stores']} stores"
            f" in {p['elapsed_s']}s = {p['stores_per_hour']:,} stores/hour"
        )
    lines += ["", f"{'target (seed)':16} {'wanted':22} {'measured':28} verdict"]
    for name, wanted, measured, ok in verdicts(result):
        lines.append(f"{name:16} {wanted:22} {measured:28} {'PASS' if ok else 'MISS'}")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("--plot needs matplotlib: .venv/bin/pip install -r benchmarks/requirements.txt") from None
    series = result["crawl"]["series"]
    t = [p["t"] for p in series]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    top.plot(t, [p["stores"] for p in series], label="stores")
    top.plot(t, [p["requests"] for p in series], label="requests")
    top.set_ylabel("cumulative")
    top.legend()
    top.set_title("stage5 perftest: end-to-end crawl")
    bottom.plot(t, [p["memory_mb"] for p in series], color="tab:red")
    bottom.set_ylabel("process tree MB (PSS)")
    bottom.set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def run_perftest(base: Settings, url: str, redis_url: str | None, quick: bool, seed: int = 5) -> dict[str, Any]:
    scale = 0.2 if quick else 1.0
    schema = f"perftest_{uuid.uuid4().hex[:8]}"
    namespace = f"perftest-{uuid.uuid4().hex[:8]}"
    settings = base.model_copy(update={"db_schema": schema, "cache_namespace": namespace})
    result: dict[str, Any] = {"quick": quick, "scale": scale, "cores": psutil.cpu_count(), "seed": seed}
    try:
        result["db"] = asyncio.run(measure_db(url, schema, 5_000 if quick else 50_000, 300 if quick else 2_000))
        with ReplicaProcess(seed, scale) as replica:
            result["crawl"] = asyncio.run(measure_crawls(settings, url, redis_url, replica))
        if quick:
            per_store = result["crawl"]["end_to_end"]["requests_per_store"]
            delay = Settings.model_fields["request_delay_s"].default
            result["polite_estimate_stores_per_hour"] = round(3600 / (per_store * delay))
        else:
            result["polite"] = asyncio.run(measure_polite(settings, url, seed, 1.0))
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        if redis_url:
            client = redis.Redis.from_url(redis_url)
            for key in client.scan_iter(f"stage5:v1:{namespace}:*", count=1000):
                client.delete(key)
    result["verdicts"] = [dict(zip(("target", "wanted", "measured", "pass"), v)) for v in verdicts(result)]
    return result


def save(result: dict[str, Any], path: Path | None) -> Path:
    path = path or Path("benchmarks/results") / f"perftest-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, ensure_ascii=False, indent=2))
    return path
