"""What the console reads: a job's history, a run's units per district, stores by filter, one store with
its changes. Plain values in, typed rows out (the API answers them as JSON objects, fields in this order).

These reads span tables the other modules own (`crawl_runs`, `schedule_slots`, `crawl_units`, `stores`,
`store_changes`); they only read, and only here does the console read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import class_row, dict_row


@dataclass(frozen=True)
class JobRun:
    """A run a job started."""

    kind: Literal["run"]
    id: int
    status: str
    started_at: datetime
    finished_at: datetime | None
    stores_new: int
    stores_updated: int
    error: str | None


@dataclass(frozen=True)
class JobSlot:
    """A slot of a job, and what became of it (started, skipped, missed…)."""

    kind: Literal["slot"]
    slot_at: datetime
    status: str
    reason: str | None


async def job_history(conn: psycopg.AsyncConnection[Any], name: str, limit: int) -> list[JobRun | JobSlot]:
    """The runs the job `name` started (newest first), then its slots (newest first)."""
    async with conn.cursor(row_factory=class_row(JobRun)) as cur:
        await cur.execute(
            "SELECT 'run' AS kind, id, status, started_at, finished_at, stores_new, stores_updated, error"
            " FROM crawl_runs WHERE job = %s ORDER BY id DESC LIMIT %s",
            (name, limit),
        )
        runs = await cur.fetchall()
    async with conn.cursor(row_factory=class_row(JobSlot)) as cur:
        await cur.execute(
            "SELECT 'slot' AS kind, slot_at, status, reason FROM schedule_slots WHERE job = %s"
            " ORDER BY slot_at DESC LIMIT %s",
            (name, limit),
        )
        slots = await cur.fetchall()
    return [*runs, *slots]


@dataclass(frozen=True)
class DistrictUnits:
    """A run's units in one district: done, failed, and in all."""

    district: str
    done: int
    failed: int
    units: int


async def district_units(conn: psycopg.AsyncConnection[Any], run_id: int) -> list[DistrictUnits]:
    async with conn.cursor(row_factory=class_row(DistrictUnits)) as cur:
        await cur.execute(
            "SELECT district, count(*) FILTER (WHERE state = 'done') AS done,"
            " count(*) FILTER (WHERE state = 'failed') AS failed, count(*) AS units"
            " FROM crawl_units WHERE run_id = %s GROUP BY district ORDER BY district",
            (run_id,),
        )
        return await cur.fetchall()


@dataclass(frozen=True)
class StoreListing:
    """A store as the console's list shows it."""

    rid: str
    name: str | None
    branch: str | None
    district: str | None
    address: str | None
    lat: float | None
    lng: float | None
    refill: bool | None
    refill_type: str | None
    price_min: int | None
    price_max: int | None
    rating: float | None
    status: str | None


@dataclass(frozen=True)
class StoresPage:
    """One page of stores, and how many stores the filter matches in all."""

    stores: list[StoreListing]
    total: int


StoreSort = Literal["rid", "name", "district", "price", "rating"]
_LISTING = (
    "diningcode_place_id AS rid, name, branch, district, address, position_lat AS lat, position_lng AS lng,"
    " is_confirmed_refill AS refill, refill_type, price_min, price_max, diningcode_rating AS rating, status"
)
_ORDER: dict[StoreSort, str] = {
    "rid": "diningcode_place_id",
    "name": "name, diningcode_place_id",
    "district": "district, name, diningcode_place_id",
    "price": "price_min NULLS LAST, diningcode_place_id",
    "rating": "diningcode_rating DESC NULLS LAST, diningcode_place_id",
}
_FILTER = (
    "(%(district)s::text IS NULL OR district = %(district)s)"
    " AND (%(refill)s::boolean IS NULL OR is_confirmed_refill = %(refill)s)"
    " AND (%(q)s::text IS NULL OR name ILIKE '%%' || %(q)s || '%%')"
)


async def stores_page(
    conn: psycopg.AsyncConnection[Any],
    *,
    district: str | None,
    refill: bool | None,
    name_part: str | None,
    sort: StoreSort,
    limit: int,
    after: str,
    offset: int,
) -> StoresPage:
    """The stores of `district` (None: all), refill or not (None: both), whose name holds `name_part`
    (None: any): `limit` of them past the id `after` and `offset` rows, in `sort` order."""
    values = {"district": district, "refill": refill, "q": name_part, "after": after, "limit": limit, "offset": offset}
    async with conn.cursor(row_factory=class_row(StoreListing)) as cur:
        await cur.execute(
            f"SELECT {_LISTING} FROM stores WHERE {_FILTER} AND diningcode_place_id > %(after)s"
            f" ORDER BY {_ORDER[sort]} LIMIT %(limit)s OFFSET %(offset)s",
            values,
        )
        stores = await cur.fetchall()
    counted = await conn.execute(f"SELECT count(*) FROM stores WHERE {_FILTER}", values)
    row = await counted.fetchone()
    return StoresPage(stores, int(row[0]) if row else 0)


@dataclass(frozen=True)
class StoreChange:
    """A change of a store (stage5.storage.changes) as the console lists it."""

    run_id: int
    kind: str
    fields: dict[str, list[Any]]  # column -> [old, new]
    changed_at: datetime


async def store_columns(conn: psycopg.AsyncConnection[Any], rid: str) -> dict[str, Any] | None:
    """Every column of the store `rid` (a dict: the columns are the migrations', all shown), or None."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM stores WHERE diningcode_place_id = %s", (rid,))
        return await cur.fetchone()


async def store_history(conn: psycopg.AsyncConnection[Any], rid: str, limit: int = 100) -> list[StoreChange]:
    """The store's changes, newest first."""
    async with conn.cursor(row_factory=class_row(StoreChange)) as cur:
        await cur.execute(
            "SELECT run_id, kind, fields, changed_at FROM store_changes"
            " WHERE diningcode_place_id = %s ORDER BY changed_at DESC, id DESC LIMIT %s",
            (rid, limit),
        )
        return await cur.fetchall()
