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
from collections.abc import Awaitable
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
from stage5.storage.columns import TRACKED_FIELDS, UPSERT_ONE_SQL, StoreRow, store_row, upsert_from
from stage5.storage.db import connect
from stage5.storage.runs import start_run
from stage5.storage.schema import migrate
from stage5.storage.stores import StoreWriter, copy_new, copy_upsert

# The seed's own targets ("stage5 guide"): COPY at least 20x one INSERT + commit per row, a cache hit rate of
# 60% on a repeated crawl, 500-1,000 stores/hour at the real site's politeness, 2 GB.
SEED_TARGETS = {"copy_vs_row_per_commit": 20, "cache_hit_rate": 0.60, "memory_mb": 2048, "stores_per_hour": 500}


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


BATCH = 5000
_DOC_STAGING = "CREATE TEMP TABLE IF NOT EXISTS stores_staging_doc (doc jsonb NOT NULL) ON COMMIT DELETE ROWS"
# The path stage5 had before typed COPY (the baseline of issue 16): jsonb documents typed by
# jsonb_populate_record, and field_seen_at built per row in SQL.
_SEEN_IN_SQL = (
    f"(SELECT coalesce(jsonb_object_agg(f, %(run)s::bigint), '{{}}') FROM unnest(ARRAY{TRACKED_FIELDS}::text[]) f"
    " WHERE f <> ALL(ARRAY(SELECT jsonb_array_elements_text(st.doc->'fields_missing'))))"
)
_DOC_UPSERT = upsert_from(
    "stores_staging_doc AS st,"
    f" jsonb_populate_record(NULL::stores, st.doc || jsonb_build_object('field_seen_at', {_SEEN_IN_SQL})) AS r"
)


async def _copy_rows(conn: psycopg.AsyncConnection, rows: list[StoreRow], run_id: int, binary: bool) -> None:
    """The writer's typed COPY path (binary, or text through psycopg's dumpers): stores not stored yet straight
    into the table, the others into the staging table and upserted."""
    for i in range(0, len(rows), BATCH):
        batch = rows[i : i + BATCH]
        async with conn.transaction():
            # A join, not = ANY(array): once psycopg prepares the statement (its 6th run) PostgreSQL may plan it
            # generically, and on a table it believes empty (just truncated) that is a scan testing each row
            # against the whole array (seen: 1,200 rows/s instead of 15,000).
            cur = await conn.execute(
                "SELECT s.diningcode_place_id FROM stores s JOIN unnest(%b::text[]) AS u(rid)"
                " ON s.diningcode_place_id = u.rid",
                ([r.rid for r in batch],),
            )
            stored = {rid for (rid,) in await cur.fetchall()}
            new = [r for r in batch if r.rid not in stored]
            if new and not await copy_new(conn, new, run_id, binary):
                raise RuntimeError("perftest: another writer stored rows in its scratch schema")
            if stored:
                await copy_upsert(conn, [r for r in batch if r.rid in stored], run_id, binary)


async def _copy_documents(conn: psycopg.AsyncConnection, rows: list[StoreRow], run_id: int) -> None:
    """The path stage5 used before typed COPY: one jsonb document per row (_DOC_UPSERT)."""
    for i in range(0, len(rows), BATCH):
        async with conn.transaction(), conn.cursor() as cur:
            await cur.execute(_DOC_STAGING)
            async with cur.copy("COPY stores_staging_doc (doc) FROM STDIN") as copy:
                for row in rows[i : i + BATCH]:
                    await copy.write_row((json.dumps(row.document(), ensure_ascii=False),))
            await cur.execute(_DOC_UPSERT, {"run": run_id})


async def _executemany(conn: psycopg.AsyncConnection, rows: list[StoreRow], run_id: int) -> None:
    for i in range(0, len(rows), BATCH):
        async with conn.transaction(), conn.cursor() as cur:
            params = [(*row.staged(run_id), run_id, run_id, run_id) for row in rows[i : i + BATCH]]
            await cur.executemany(UPSERT_ONE_SQL, params)


async def _row_per_commit(conn: psycopg.AsyncConnection, rows: list[StoreRow], run_id: int) -> None:
    """The seed's baseline: one INSERT and one commit per row."""
    for row in rows:
        await conn.execute(UPSERT_ONE_SQL, (*row.staged(run_id), run_id, run_id, run_id))
        await conn.commit()


async def _writer(url: str, schema: str, records: list[StoreRecord], run_id: int) -> None:
    """The real writer: change detection, unchanged rows skipped, counters, all in its batches."""
    async with StoreWriter(lambda: connect(url, schema), run_id, BATCH, 3600) as writer:
        for record in records:
            await writer.add(record)


async def measure_db(url: str, schema: str, rows: int, slow_rows: int) -> dict[str, Any]:
    conn = await connect(url, schema)
    await migrate(conn)
    run_id = await start_run(conn, "perftest", [], {})
    records = synthetic_records(rows)
    typed = [store_row(r) for r in records]
    rates: dict[str, float] = {}

    async def timed(name: str, work: Awaitable[None], n: int = rows, fresh: bool = True) -> None:
        if fresh:
            await conn.execute("TRUNCATE stores, store_changes")
            await conn.commit()
        started = time.perf_counter()
        await work
        rates[name] = n / (time.perf_counter() - started)

    await timed("copy_binary", _copy_rows(conn, typed, run_id, binary=True))
    await timed("copy_binary_stored", _copy_rows(conn, typed, run_id, binary=True), fresh=False)
    await timed("copy_text", _copy_rows(conn, typed, run_id, binary=False))
    await timed("copy_jsonb_documents", _copy_documents(conn, typed, run_id))
    await timed("executemany", _executemany(conn, typed, run_id))
    await timed("executemany_stored", _executemany(conn, typed, run_id), fresh=False)
    await timed("row_per_commit", _row_per_commit(conn, typed[:slow_rows], run_id), n=slow_rows)
    await timed("writer_first_load", _writer(url, schema, records, run_id))
    await timed("writer_rerun_unchanged", _writer(url, schema, records, run_id), fresh=False)
    changed = [replace(r, score=(r.score or 0) + 1) for r in records]
    await timed("writer_rerun_changed", _writer(url, schema, changed, run_id), fresh=False)
    await conn.execute("TRUNCATE stores, store_changes")  # the crawls after this start from an empty table
    await conn.commit()
    await conn.close()
    result: dict[str, Any] = {"rows": rows, "row_per_commit_rows_measured": slow_rows}
    result.update({f"{name}_rows_per_s": round(rate) for name, rate in rates.items()})
    best_copy = max(rates["copy_binary"], rates["copy_text"])
    result["copy_vs_row_per_commit"] = round(best_copy / rates["row_per_commit"], 1)
    result["copy_vs_executemany"] = round(best_copy / rates["executemany"], 2)
    result["copy_vs_executemany_stored"] = round(rates["copy_binary_stored"] / rates["executemany_stored"], 2)
    result["copy_vs_jsonb_documents"] = round(best_copy / rates["copy_jsonb_documents"], 2)
    result["rerun_unchanged_vs_first_load"] = round(rates["writer_rerun_unchanged"] / rates["writer_first_load"], 2)
    return result


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
    """(target, wanted, measured, met): the seed's own targets, then the database path's."""
    t = SEED_TARGETS
    db, cache, e2e = result["db"], result["crawl"]["cache"], result["crawl"]["end_to_end"]
    polite = result.get("polite") or {}
    polite_rate = polite.get("stores_per_hour", result.get("polite_estimate_stores_per_hour", 0))
    return [
        (
            "COPY vs row/commit",
            f">= {t['copy_vs_row_per_commit']}x",
            f"{db['copy_vs_row_per_commit']}x",
            db["copy_vs_row_per_commit"] >= t["copy_vs_row_per_commit"],
        ),
        (
            "cache hit rate",
            f">= {t['cache_hit_rate']:.0%}",
            f"{cache['second_hit_rate']:.1%}",
            cache["second_hit_rate"] >= t["cache_hit_rate"],
        ),
        (
            "polite speed",
            f">= {t['stores_per_hour']} stores/hour",
            f"{polite_rate:,} stores/hour" + ("" if polite else " (estimated)"),
            polite_rate >= t["stores_per_hour"],
        ),
        (
            "memory",
            f"<= {t['memory_mb']:,} MB",
            f"{e2e['peak_memory_mb']:.0f} MB",
            e2e["peak_memory_mb"] <= t["memory_mb"],
        ),
        (
            "typed vs jsonb COPY",
            ">= 2x",
            f"{db['copy_vs_jsonb_documents']}x",
            db["copy_vs_jsonb_documents"] >= 2,
        ),
        ("COPY vs executemany", ">= 2x", f"{db['copy_vs_executemany']}x", db["copy_vs_executemany"] >= 2),
        (
            "  every row stored",
            ">= 1x",
            f"{db['copy_vs_executemany_stored']}x",
            db["copy_vs_executemany_stored"] >= 1,
        ),
        (
            "unchanged re-run",
            ">= 2x first load",
            f"{db['rerun_unchanged_vs_first_load']}x",
            db["rerun_unchanged_vs_first_load"] >= 2,
        ),
    ]


DB_METHODS = (
    ("copy_binary", "typed COPY (binary) + upsert"),
    ("copy_binary_stored", "  the same, every row stored already"),
    ("copy_text", "typed COPY (text) + upsert"),
    ("copy_jsonb_documents", "jsonb-document COPY + upsert (before)"),
    ("executemany", "executemany (pipelined)"),
    ("executemany_stored", "  the same, every row stored already"),
    ("row_per_commit", "INSERT + commit per row"),
    ("writer_first_load", "stage5 writer, first load"),
    ("writer_rerun_unchanged", "stage5 writer, unchanged re-run"),
    ("writer_rerun_changed", "stage5 writer, every row changed"),
)


def render(result: dict[str, Any]) -> str:
    db, c = result["db"], result["crawl"]
    lines = [
        f"stage5 perftest ({'quick' if result['quick'] else 'full'};"
        f" replica scale {result['scale']}, {result['cores']} cores)",
        "",
        f"DB load, {db['rows']:,} full store rows (row per commit: {db['row_per_commit_rows_measured']:,})   rows/s",
    ]
    lines += [f"  {label:38} {db[key + '_rows_per_s']:>9,}" for key, label in DB_METHODS]
    lines += [
        "",
        f"cache: second crawl sent {c['cache']['second_requests']} of {c['cache']['first_requests']} requests;"
        f" hit rate {c['cache']['second_hit_rate']:.1%}, requests saved {c['cache']['requests_saved']:.1%}",
        f"parallel: 1 worker {c['parallel']['one_worker_s']}s, {c['parallel']['workers']} workers"
        f" {c['parallel']['n_workers_s']}s: speed-up {c['parallel']['speedup']}x",
        f"end to end: {c['end_to_end']['stores']} stores in {c['end_to_end']['elapsed_s']}s ="
        f" {c['end_to_end']['stores_per_hour']:,} stores/hour, {c['end_to_end']['pages_per_s']} pages/s,"
        f" peak {c['end_to_end']['peak_memory_mb']:.0f} MB",
    ]
    if result.get("polite"):
        p = result["polite"]
        lines.append(
            f"polite: {p['district']} at {p['request_delay_s']} s/request, 100 ms answers: {p['stores']} stores"
            f" in {p['elapsed_s']}s = {p['stores_per_hour']:,} stores/hour"
        )
    lines += ["", f"{'target':22} {'wanted':22} {'measured':28} verdict"]
    for name, wanted, measured, ok in verdicts(result):
        lines.append(f"{name:22} {wanted:22} {measured:28} {'PASS' if ok else 'MISS'}")
    return "\n".join(lines)


def check_plotting() -> None:
    """Before any measuring: --plot needs matplotlib (benchmarks/requirements.txt)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError("--plot needs matplotlib: .venv/bin/pip install -r benchmarks/requirements.txt") from None


def _rates(series: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """Per-second rate of a cumulative count, at the middle of each sampling interval."""
    times, rates = [], []
    for a, b in zip(series, series[1:]):
        if b["t"] > a["t"]:
            times.append((a["t"] + b["t"]) / 2)
            rates.append((b[key] - a[key]) / (b["t"] - a["t"]))
    return times, rates


def plot(result: dict[str, Any], path: Path) -> None:
    check_plotting()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series, db = result["crawl"]["series"], result["db"]
    fig, (speed, memory, methods) = plt.subplots(3, 1, figsize=(9, 10))
    for key, label in (("requests", "pages/s"), ("stores", "stores/s")):
        speed.plot(*_rates(series, key), marker=".", label=label)
    speed.set(title="end-to-end crawl: throughput (per second)", xlabel="seconds", ylabel="per second")
    speed.legend()
    memory.plot([p["t"] for p in series], [p["memory_mb"] for p in series], color="tab:red", label="process tree")
    memory.axhline(SEED_TARGETS["memory_mb"], color="black", linestyle="--", label="budget")
    memory.set(title="memory of the process tree (PSS)", xlabel="seconds", ylabel="MB", ylim=(0, None))
    memory.legend()
    labels = [label for _, label in DB_METHODS]
    methods.barh(labels, [db[key + "_rows_per_s"] for key, _ in DB_METHODS], color="tab:blue")
    methods.invert_yaxis()
    methods.set(title=f"database load, {db['rows']:,} full store rows", xlabel="rows/s")
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
