"""`store_changes`: what happened to each store, run by run — new, changed (which fields, old and new),
closed (its page says so), vanished (missing from K complete runs in a row), reappeared.

Changes are detected inside the writer's batch transaction (the rows before the upsert against the
records written), so a change is recorded exactly when the row that shows it is committed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from stage5.models import StoreRecord
from stage5.storage.columns import DATA_COLUMNS, STATUS_CLOSED, STATUS_OPEN, STATUS_VANISHED

KINDS = ("new", "changed", "closed", "vanished", "reappeared")
# The columns whose change is news to a reader of the data (ratings and review counts move daily: not).
NEWS = (
    "name",
    "branch",
    "address",
    "road_address",
    "phone_number",
    "open_hours",
    "break_time",
    "last_order",
    "holiday",
    "weekly_hours",
    "menu_items",
    "price_min",
    "price_max",
    "is_confirmed_refill",
)
# column -> the record field that `missing` names for it (columns.py says which field protects which column;
# the others are never missing)
TRACKED: dict[str, str] = {c.name: c.protects or c.name for c in DATA_COLUMNS if c.name in NEWS}


@dataclass(frozen=True)
class Change:
    rid: str
    kind: str
    district: str
    name: str
    fields: dict[str, list[Any]] = field(default_factory=dict)  # column -> [old, new]


async def rows_before(conn: psycopg.AsyncConnection, rids: list[str]) -> dict[str, dict[str, Any]]:
    """The stored rows of these stores (tracked columns and status), before a batch changes them."""
    if not rids:
        return {}
    names = ["status", *TRACKED]
    cur = await conn.execute(
        f"SELECT diningcode_place_id, {', '.join(names)} FROM stores WHERE diningcode_place_id = ANY(%s)", (rids,)
    )
    return {row[0]: dict(zip(names, row[1:])) for row in await cur.fetchall()}


def _plain(value: Any) -> Any:
    """Both sides as JSON would write them (tuples and lists alike, no float/int surprises)."""
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))


def _differ(old: Any, new: Any) -> bool:
    return bool(old != new and _plain(old) != _plain(new))  # equal values (most of them) skip the JSON round trip


def detect_changes(
    before: dict[str, dict[str, Any]], written: list[tuple[StoreRecord, dict[str, Any]]]
) -> list[Change]:
    """Pure: the change each written record makes to its stored row (none for an unchanged store)."""
    found = []
    for record, values in written:
        old = before.get(record.rid)
        if old is None:
            found.append(Change(record.rid, "new", record.district, record.name))
            continue
        diff = {
            column: [_plain(old[column]), _plain(values[column])]
            for column, source in TRACKED.items()
            if source not in record.missing and _differ(old[column], values[column])
        }
        kind = _kind(old["status"], values["status"], bool(diff))
        if kind:
            found.append(Change(record.rid, kind, record.district, record.name, diff))
    return found


def _kind(old_status: str, new_status: str, changed: bool) -> str | None:
    if new_status == STATUS_CLOSED and old_status != STATUS_CLOSED:
        return "closed"
    if new_status == STATUS_OPEN and old_status in (STATUS_VANISHED, STATUS_CLOSED):
        return "reappeared"
    return "changed" if changed else None


async def insert_changes(conn: psycopg.AsyncConnection, run_id: int, changes: list[Change]) -> None:
    if not changes:
        return
    async with conn.cursor() as cur:
        columns = "run_id, diningcode_place_id, kind, district, name, fields"
        async with cur.copy(f"COPY store_changes ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["bigint", "text", "text", "text", "text", "jsonb"])
            for c in changes:
                await copy.write_row((run_id, c.rid, c.kind, c.district, c.name, Jsonb(c.fields)))


async def mark_vanished(conn: psycopg.AsyncConnection, run_id: int, districts: list[str], after_runs: int) -> int:
    """`districts`: those whose listings were complete in this run. Their stores it did not list miss one
    more run; those missing from `after_runs` such runs in a row are presumed closed (a change of kind
    'vanished'). Listed means seen by this run (written or kept) or handed to one of its detail units: a
    store whose detail page failed was still listed."""
    await conn.execute(
        "WITH listed AS (SELECT s ->> 'rid' AS rid FROM crawl_units, jsonb_array_elements(payload -> 'stores') s"
        "  WHERE run_id = %(run)s AND kind = 'detail')"
        " UPDATE stores SET missed_runs = missed_runs + 1"
        " WHERE district = ANY(%(districts)s) AND status = %(open)s AND last_run_id IS DISTINCT FROM %(run)s"
        " AND NOT EXISTS (SELECT 1 FROM listed WHERE listed.rid = stores.diningcode_place_id)",
        {"districts": districts, "open": STATUS_OPEN, "run": run_id},
    )
    cur = await conn.execute(
        "UPDATE stores SET status = %s, status_changed_at = now()"
        " WHERE district = ANY(%s) AND status = %s AND missed_runs >= %s"
        " RETURNING diningcode_place_id, district, name, missed_runs",
        (STATUS_VANISHED, districts, STATUS_OPEN, after_runs),
    )
    gone = await cur.fetchall()
    await insert_changes(
        conn, run_id, [Change(rid, "vanished", d, name, {"missed_runs": [None, n]}) for rid, d, name, n in gone]
    )
    await conn.commit()
    return len(gone)


async def change_counts(conn: psycopg.AsyncConnection, run_id: int) -> dict[str, int]:
    cur = await conn.execute("SELECT kind, count(*) FROM store_changes WHERE run_id = %s GROUP BY kind", (run_id,))
    counts = dict.fromkeys(KINDS, 0)
    counts.update(dict(await cur.fetchall()))
    return counts


async def list_changes(
    conn: psycopg.AsyncConnection, run_id: int | None, since: datetime | None, district: str | None
) -> list[dict[str, Any]]:
    """Changes of one run, or since a time (default: the newest run's), optionally in one district."""
    if run_id is None and since is None:
        cur = await conn.execute("SELECT max(run_id) FROM store_changes")
        row = await cur.fetchone()
        run_id = row[0] if row and row[0] else 0
    cur = await conn.execute(
        "SELECT run_id, changed_at, kind, diningcode_place_id, district, name, fields FROM store_changes"
        " WHERE (%(run)s::bigint IS NULL OR run_id = %(run)s) AND (%(since)s::timestamptz IS NULL"
        " OR changed_at >= %(since)s) AND (%(district)s::text IS NULL OR district = %(district)s)"
        " ORDER BY run_id, kind, district, name",
        {"run": run_id, "since": since, "district": district},
    )
    names = [d.name for d in cur.description or []]
    return [dict(zip(names, row)) for row in await cur.fetchall()]
