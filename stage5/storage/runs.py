"""The `crawl_runs` table: one row per run, opened at start and closed with its counts; and what a run
reads of the stored stores when it starts (its baseline, its refresh plan) and ends (its figures).

add_store_counts and write_live run inside the writer's transaction (stage5.storage.stores): they do not
commit, so a batch's rows and its counts land together.
"""

from __future__ import annotations

from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb

from stage5.storage.lock import run_lock_holder

# crawl_runs.status: running until it ends as one of EndStatus, or (resumed) running again; skipped when
# another run held the crawl lock; abandoned when a new run was started over it (--fresh).
EndStatus = Literal["succeeded", "partial", "failed", "interrupted"]
RunStatus = Literal["running", "succeeded", "partial", "failed", "interrupted", "skipped", "abandoned"]


async def start_run(
    conn: psycopg.AsyncConnection,
    site: str,
    districts: list[str],
    params: dict[str, Any],
    trigger: str = "manual",
    job: str | None = None,
) -> int:
    cur = await conn.execute(
        "INSERT INTO crawl_runs (status, trigger, site, districts, params, job)"
        " VALUES ('running', %s, %s, %s, %s, %s) RETURNING id",
        (trigger, site, districts, Jsonb(params), job),
    )
    row = await cur.fetchone()
    await conn.commit()
    assert row is not None
    return int(row[0])


async def record_skip(
    conn: psycopg.AsyncConnection, site: str, districts: list[str], trigger: str, holder: dict[str, Any] | None
) -> int:
    """A run that did not start because another held the crawl lock: a row all the same, with who."""
    cur = await conn.execute(
        "INSERT INTO crawl_runs (status, trigger, site, districts, finished_at, error, counts)"
        " VALUES ('skipped', %s, %s, %s, now(), %s, %s) RETURNING id",
        (trigger, site, districts, "crawl lock held", Jsonb({"lock_holder": holder})),
    )
    row = await cur.fetchone()
    await conn.commit()
    assert row is not None
    return int(row[0])


async def finish_run(
    conn: psycopg.AsyncConnection,
    run_id: int,
    status: EndStatus,
    counts: dict[str, Any],
    failed_units: list[dict[str, Any]],
    error: str | None = None,
    coverage: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        "UPDATE crawl_runs SET finished_at = now(), status = %s, counts = %s, failed_units = %s, error = %s,"
        " coverage = coalesce(%s, coverage) WHERE id = %s",
        (status, Jsonb(counts), Jsonb(failed_units), error, Jsonb(coverage) if coverage else None, run_id),
    )
    await conn.commit()


async def add_store_counts(
    conn: psycopg.AsyncConnection[Any], run_id: int, new: int, updated: int, unchanged: int, rejected: int
) -> None:
    """Add one batch's stores to the run's counters (in the caller's transaction)."""
    await conn.execute(
        "UPDATE crawl_runs SET stores_new = stores_new + %s, stores_updated = stores_updated + %s,"
        " stores_unchanged = stores_unchanged + %s, stores_rejected = stores_rejected + %s WHERE id = %s",
        (new, updated, unchanged, rejected, run_id),
    )


async def write_live(conn: psycopg.AsyncConnection[Any], run_id: int, figures: dict[str, Any]) -> None:
    """The master's live figures for the console (in the caller's transaction)."""
    await conn.execute("UPDATE crawl_runs SET live = %s WHERE id = %s", (Jsonb(figures), run_id))


async def save_completeness(conn: psycopg.AsyncConnection, run_id: int, listings: dict[str, Any]) -> None:
    """Per district: complete or not, the site's count, the stores found, the queries split."""
    await conn.execute("UPDATE crawl_runs SET completeness = %s WHERE id = %s", (Jsonb(listings), run_id))
    await conn.commit()


async def coverage_history(conn: psycopg.AsyncConnection, before_run: int, limit: int = 5) -> list[dict[str, Any]]:
    """The field coverage of the last `limit` successful runs before `before_run` (newest first)."""
    cur = await conn.execute(
        "SELECT coverage FROM crawl_runs WHERE id < %s AND status = 'succeeded' AND coverage <> '{}'"
        " ORDER BY id DESC LIMIT %s",
        (before_run, limit),
    )
    return [row[0] for row in await cur.fetchall()]


async def unfinished_run(conn: psycopg.AsyncConnection) -> dict[str, Any] | None:
    """The newest run left running (its master died) or interrupted, with its unit progress."""
    cur = await conn.execute(
        "SELECT r.id, r.status, r.started_at, r.districts, r.site, r.trigger, r.params,"
        " count(u.uid) FILTER (WHERE u.state IN ('done', 'failed')) AS units_done, count(u.uid) AS units"
        " FROM crawl_runs r LEFT JOIN crawl_units u ON u.run_id = r.id"
        " WHERE r.status IN ('running', 'interrupted') GROUP BY r.id ORDER BY r.id DESC LIMIT 1"
    )
    row = await cur.fetchone()
    await conn.commit()
    if row is None:
        return None
    names = [d.name for d in cur.description or []]
    return dict(zip(names, row))


async def reopen_run(conn: psycopg.AsyncConnection, run_id: int) -> None:
    await conn.execute(
        "UPDATE crawl_runs SET status = 'running', resumed = resumed + 1, finished_at = NULL WHERE id = %s", (run_id,)
    )
    await conn.commit()


async def abandon_run(conn: psycopg.AsyncConnection, run_id: int) -> None:
    await conn.execute("UPDATE crawl_runs SET status = 'abandoned', finished_at = now() WHERE id = %s", (run_id,))
    await conn.commit()


async def run_counters(conn: psycopg.AsyncConnection, run_id: int) -> dict[str, int]:
    cur = await conn.execute(
        "SELECT stores_new, stores_updated, stores_unchanged, stores_rejected, resumed FROM crawl_runs WHERE id = %s",
        (run_id,),
    )
    row = await cur.fetchone()
    await conn.commit()
    keys = ("new", "updated", "unchanged", "rejected", "resumed")
    return dict(zip(keys, row)) if row else dict.fromkeys(keys, 0)


async def show_run(conn: psycopg.AsyncConnection, run_id: int) -> dict[str, Any] | None:
    cur = await conn.execute("SELECT * FROM crawl_runs WHERE id = %s", (run_id,))
    row = await cur.fetchone()
    names = [d.name for d in cur.description or []]
    await conn.commit()
    return dict(zip(names, row)) if row else None


async def prune(conn: psycopg.AsyncConnection, retention_days: int) -> dict[str, int]:
    """Forget finished runs (with their units and rejections) and schedule slots older than the retention."""
    runs = await conn.execute(
        "DELETE FROM crawl_runs WHERE started_at < now() - make_interval(days => %s)"
        " AND status NOT IN ('running', 'interrupted')",
        (retention_days,),
    )
    slots = await conn.execute(
        "DELETE FROM schedule_slots WHERE slot_at < now() - make_interval(days => %s)", (retention_days,)
    )
    await conn.commit()
    return {"runs": runs.rowcount, "slots": slots.rowcount}


async def list_runs(conn: psycopg.AsyncConnection, limit: int = 20, status: str | None = None) -> list[dict[str, Any]]:
    """The newest runs (of one status, when given) with their units done and in all."""
    cur = await conn.execute(
        "SELECT r.id, r.started_at, r.finished_at, r.status, r.trigger, r.site, r.districts, r.counts,"
        " r.resumed, count(u.uid) FILTER (WHERE u.state IN ('done', 'failed')) AS units_done, count(u.uid) AS units"
        " FROM crawl_runs r LEFT JOIN crawl_units u ON u.run_id = r.id WHERE %s::text IS NULL OR r.status = %s"
        " GROUP BY r.id ORDER BY r.id DESC LIMIT %s",
        (status, status, limit),
    )
    names = [d.name for d in cur.description or []]
    runs = [dict(zip(names, row)) for row in await cur.fetchall()]
    schema = (await (await conn.execute("SELECT current_schema()")).fetchone() or ("public",))[0]
    for run in runs:  # a running run's master: the process holding its lock, or None when it died
        run["master"] = await run_lock_holder(conn, schema, run["id"]) if run["status"] == "running" else None
    return runs


async def run_baseline(conn: psycopg.AsyncConnection, run_id: int) -> dict[str, int]:
    """Stored stores per district when the run started (its soft-block baseline)."""
    cur = await conn.execute("SELECT params -> 'baseline' FROM crawl_runs WHERE id = %s", (run_id,))
    row = await cur.fetchone()
    return {d: int(n) for d, n in (row[0] or {}).items()} if row and row[0] else {}


async def district_sizes(conn: psycopg.AsyncConnection) -> dict[str, int]:
    """Stored stores per district."""
    cur = await conn.execute("SELECT district, count(*) FROM stores GROUP BY district")
    return dict(await cur.fetchall())


async def stored_listings(conn: psycopg.AsyncConnection) -> dict[str, tuple[str | None, int | None, bool, str | None]]:
    """rid -> (listing_hash, detail_run_id, detail_due, detail_etag): what the refresh policy decides on."""
    cur = await conn.execute(
        "SELECT diningcode_place_id, listing_hash, detail_run_id, detail_due, detail_etag FROM stores"
    )
    return {row[0]: tuple(row[1:]) for row in await cur.fetchall()}


async def refill_seen(conn: psycopg.AsyncConnection, run_id: int) -> int:
    """All-you-can-eat stores this run saw (written, or kept as stored)."""
    cur = await conn.execute(
        "SELECT count(*) FROM stores WHERE last_run_id = %s AND is_confirmed_refill AND status = '운영중'", (run_id,)
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0
