"""Exports for people who use the data without SQL: CSV (PostgreSQL's own `COPY … TO STDOUT`), JSON
lines and GeoJSON, streamed row by row so a large table never sits in memory.

In CSV, booleans are written `true`/`false` and arrays as JSON lists (COPY's own forms are `t`/`f` and
PostgreSQL array literals, which no spreadsheet or CSV reader understands); JSON columns are JSON."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, BinaryIO

import psycopg
from psycopg import sql

FORMATS = ("csv", "jsonl", "geojson")
BOM = "\ufeff".encode()  # Excel opens UTF-8 CSV as Korean text only with it
COLUMNS = (
    "diningcode_place_id",
    "name",
    "branch",
    "district",
    "address",
    "road_address",
    "position_lat",
    "position_lng",
    "phone_number",
    "status",
    "is_confirmed_refill",
    "refill_type",
    "refill_items",
    "price_min",
    "price_max",
    "price",
    "open_hours",
    "break_time",
    "last_order",
    "holiday",
    "diningcode_rating",
    "review_count",
    "diningcode_score",
    "keywords",
    "raw_categories_diningcode",
    "menu_items",
    "weekly_hours",
    "facilities",
    "best_menu",
    "open_status",
    "main_image",
    "source_url",
    "detail_source",
    "first_seen",
    "last_seen_at",
    "updated_at",
)


def _column(name: str, types: dict[str, str]) -> sql.Composable:
    """A column as CSV writes it: booleans as true/false, arrays as JSON (types: column -> data_type)."""
    if name == "first_seen":
        return sql.SQL("created_at AS first_seen")
    column = sql.Identifier(name)
    if types.get(name) == "boolean":
        return sql.SQL("CASE WHEN {c} THEN 'true' WHEN NOT {c} THEN 'false' END AS {c}").format(c=column)
    if types.get(name) == "ARRAY":
        return sql.SQL("array_to_json({c})::text AS {c}").format(c=column)
    return column


def _query(refill_only: bool, district: str | None, types: dict[str, str] | None = None) -> sql.Composed:
    columns = [_column(c, types or {}) for c in COLUMNS]
    where: list[sql.Composable] = [sql.SQL("true")]
    if refill_only:
        where.append(sql.SQL("is_confirmed_refill AND status = '운영중'"))
    if district:
        where.append(sql.SQL("district = {}").format(sql.Literal(district)))
    return sql.SQL("SELECT {} FROM stores WHERE {} ORDER BY district, name, diningcode_place_id").format(
        sql.SQL(", ").join(columns), sql.SQL(" AND ").join(where)
    )


async def export(
    conn: psycopg.AsyncConnection, out: BinaryIO, fmt: str, refill_only: bool, district: str | None, bom: bool
) -> int:
    """Write the stores to `out` in `fmt`; returns the number of stores written."""
    if fmt == "csv":
        return await _csv(conn, out, _query(refill_only, district, await _types(conn)), bom)
    query = _query(refill_only, district)
    rows = _rows(conn, query)
    if fmt == "jsonl":
        count = 0
        async for row in rows:
            out.write(json.dumps(row, ensure_ascii=False, default=str).encode() + b"\n")
            count += 1
        return count
    return await _geojson(out, rows)


async def _types(conn: psycopg.AsyncConnection) -> dict[str, str]:
    cur = await conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = 'stores'"
    )
    types = {name: kind for name, kind in await cur.fetchall()}
    await conn.commit()  # the export's own snapshot (repeatable read) starts after this
    return types


async def _csv(conn: psycopg.AsyncConnection, out: BinaryIO, query: sql.Composed, bom: bool) -> int:
    if bom:
        out.write(BOM)
    async with conn.transaction(), conn.cursor() as cur:  # one snapshot for the copy and the count
        await cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        copy_sql = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER true)").format(query)
        async with cur.copy(copy_sql) as copy:
            async for chunk in copy:
                out.write(bytes(chunk))
        await cur.execute(sql.SQL("SELECT count(*) FROM ({}) AS exported").format(query))
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _rows(conn: psycopg.AsyncConnection, query: sql.Composed) -> AsyncIterator[dict[str, Any]]:
    async with conn.cursor(name="stage5_export") as cur:  # server-side: rows arrive in batches
        await cur.execute(query)
        names = [d.name for d in cur.description or []]
        async for row in cur:
            yield dict(zip(names, row))


async def _geojson(out: BinaryIO, rows: AsyncIterator[dict[str, Any]]) -> int:
    """A FeatureCollection of Points, coordinates in GeoJSON's order: [longitude, latitude]."""
    out.write(b'{"type": "FeatureCollection", "features": [\n')
    count = 0
    async for row in rows:
        lng, lat = row.pop("position_lng"), row.pop("position_lat")
        feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lng, lat]}, "properties": row}
        out.write((b",\n" if count else b"") + json.dumps(feature, ensure_ascii=False, default=str).encode())
        count += 1
    out.write(b"\n]}\n")
    return count
