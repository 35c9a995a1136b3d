"""The store columns, written once: their PostgreSQL types, how a record fills them, and the SQL built
from them (the staging table's DDL, the COPY column list and types, the upsert).

The `stores` table itself was created by numbered migrations (schema.py); tests/test_storage.py checks
that every column here has the same type in the migrated table, so the two cannot drift apart.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from psycopg.types.json import Jsonb

from stage5.models import StoreRecord

# stores.status: open; presumed closed (missing from K complete runs in a row); closed (its page says so).
STATUS_OPEN, STATUS_VANISHED, STATUS_CLOSED = "운영중", "폐업 추정", "폐업"


@dataclass(frozen=True)
class Column:
    name: str
    pg_type: str  # as format_type() prints it, the type the binary COPY declares
    protects: str | None = None  # the record field (validate.PROTECTED) whose absence keeps the stored value


# Data columns, in COPY order; then the three bookkeeping ones a record also carries.
DATA_COLUMNS: tuple[Column, ...] = (
    Column("diningcode_place_id", "text"),
    Column("name", "text", "name"),
    Column("branch", "text", "branch"),
    Column("district", "text", "address"),
    Column("address", "text", "address"),
    Column("road_address", "text", "road_address"),
    Column("position_lat", "double precision", "position"),
    Column("position_lng", "double precision", "position"),
    Column("phone_number", "text", "phone"),
    Column("raw_categories_diningcode", "text[]", "categories"),
    Column("keywords", "text[]", "keywords"),
    Column("diningcode_rating", "real", "rating"),
    Column("review_count", "integer", "review_count"),
    Column("diningcode_score", "integer", "score"),
    Column("open_hours", "text", "open_hours"),
    Column("break_time", "text", "break_time"),
    Column("last_order", "text", "last_order"),
    Column("holiday", "text", "holiday"),
    Column("menu_items", "jsonb", "menu"),
    Column("price", "text", "menu"),
    Column("price_min", "integer", "menu"),
    Column("price_max", "integer", "menu"),
    Column("image_urls", "text[]", "image_urls"),
    Column("main_image", "text", "image_urls"),
    Column("is_confirmed_refill", "boolean", "refill"),
    Column("refill_type", "text", "refill"),
    Column("refill_items", "text[]", "refill"),
    Column("refill_evidence", "text[]", "refill"),
    Column("weekly_hours", "jsonb", "weekly_hours"),
    Column("facilities", "text[]", "facilities"),
    Column("best_menu", "text[]", "best_menu"),
    Column("open_status", "text", "open_status"),
    Column("fields_missing", "text[]"),
    Column("status", "text"),
    Column("listing_hash", "text"),
)
BOOKKEEPING_COLUMNS: tuple[Column, ...] = (
    Column("source_url", "text"),
    Column("detail_etag", "text"),
    Column("content_hash", "text"),
    Column("detail_source", "text"),  # html or api: how the detail was read, not what it says
    Column("field_sources", "jsonb"),  # field -> detail:html | detail:api | search:<query>: provenance
)
COPY_COLUMNS = DATA_COLUMNS + BOOKKEEPING_COLUMNS
STORE_COLUMNS: tuple[str, ...] = tuple(c.name for c in COPY_COLUMNS)
# What one staged row carries: the columns, and field -> this run for the fields its page showed
# (computed here, once per set of missing fields: in SQL it cost more than the rest of the upsert).
STAGED_COLUMNS = (*COPY_COLUMNS, Column("field_seen_at", "jsonb"))
_STAGED_NAMES = ", ".join(c.name for c in STAGED_COLUMNS)
_DATA_NAMES = tuple(c.name for c in DATA_COLUMNS)
_JSONB_AT = [i for i, c in enumerate(DATA_COLUMNS) if c.pg_type == "jsonb"]
_ARRAY_AT = [i for i, c in enumerate(DATA_COLUMNS) if c.pg_type.endswith("[]")]
# Fields whose per-field "last seen" run is kept in stores.field_seen_at.
TRACKED_FIELDS = sorted({*(c.protects for c in DATA_COLUMNS if c.protects), "name", "address", "position"})


def _price_text(low: int | None, high: int | None) -> str | None:
    if low is None or high is None:
        return None
    return f"{low:,}원" if low == high else f"{low:,}원~{high:,}원"


def store_values(record: StoreRecord) -> dict[str, Any]:
    """One store as data column -> value (JSON-able): what is hashed, written and compared for changes."""
    menu = [{"name": m.name, "price": m.price, "price_text": m.price_text} for m in record.menu]
    values = (
        record.rid,
        record.name,
        record.branch,
        record.district,
        record.address,
        record.road_address,
        record.lat,
        record.lng,
        record.phone,
        record.categories,
        record.keywords,
        record.rating,
        record.review_count,
        record.score,
        record.open_hours,
        record.break_time,
        record.last_order,
        record.holiday,
        menu,
        _price_text(record.price_min, record.price_max),
        record.price_min,
        record.price_max,
        record.image_urls,
        record.image_urls[0] if record.image_urls else None,
        record.is_refill,
        record.refill_type,
        record.refill_items,
        record.refill_evidence,
        record.weekly_hours,
        record.facilities,
        record.best_menu,
        record.open_status,
        record.missing,
        STATUS_CLOSED if record.closed else STATUS_OPEN,
        record.listing_hash,
    )
    return dict(zip(_DATA_NAMES, values))


def content_hash(values: dict[str, Any]) -> str:
    """Fingerprint of what the store is: every data column but fields_missing (which fields the last answer
    left out: the fingerprint compares that apart), and not the URL, the ETag nor the detail source. A store
    read again unchanged, from the same source or another, keeps its row and its updated_at."""
    content = {k: v for k, v in values.items() if k != "fields_missing"}
    return hashlib.sha1(json.dumps(content, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True)
class StoreRow:
    """A record ready for COPY: its column values, in COPY order, and its fingerprint."""

    rid: str
    values: dict[str, Any]
    source_url: str
    etag: str | None
    content_hash: str
    detail_source: str = "html"
    field_sources: dict[str, str] = field(default_factory=dict)

    def copy_tuple(self) -> tuple[Any, ...]:
        """The values in COPY order, adapted to their columns (as COPY or a query parameter)."""
        data = list(self.values.values())
        for i in _JSONB_AT:
            if data[i] is not None:
                data[i] = Jsonb(data[i])
        for i in _ARRAY_AT:
            data[i] = list(data[i])
        return (*data, self.source_url, self.etag, self.content_hash, self.detail_source, Jsonb(self.field_sources))

    def staged(self, run_id: int) -> tuple[Any, ...]:
        """The row as the staging table takes it."""
        return (*self.copy_tuple(), field_seen(tuple(self.values["fields_missing"]), run_id))

    def fingerprint(self) -> tuple[Any, ...]:
        """As changes.FINGERPRINT reads it from the stored row: equal means nothing to rewrite."""
        missing = list(self.values["fields_missing"])
        return (
            self.content_hash,
            self.values["status"],
            self.etag,
            self.source_url,
            missing,
            self.detail_source,
            self.field_sources,
        )

    def document(self) -> dict[str, Any]:
        """The row as one JSON object (exports, the jsonb staging kept as a benchmark reference)."""
        tail = {
            "source_url": self.source_url,
            "detail_etag": self.etag,
            "content_hash": self.content_hash,
            "detail_source": self.detail_source,
            "field_sources": self.field_sources,
        }
        return {**self.values, **tail}


@functools.lru_cache(maxsize=1024)
def field_seen(missing: tuple[str, ...], run_id: int) -> Jsonb:
    """stores.field_seen_at's update: field -> the run whose page showed it (staleness per field)."""
    return Jsonb({f: run_id for f in TRACKED_FIELDS if f not in missing})


def store_row(record: StoreRecord) -> StoreRow:
    values = store_values(record)
    return StoreRow(
        record.rid,
        values,
        record.source_url,
        record.etag,
        content_hash(values),
        record.detail_source,
        record.field_sources,
    )


def staging_ddl(table: str = "stores_staging") -> str:
    columns = ", ".join(f"{c.name} {c.pg_type}" for c in STAGED_COLUMNS)
    return f"CREATE TEMP TABLE IF NOT EXISTS {table} ({columns}) ON COMMIT DELETE ROWS"


COPY_SQL = f"COPY stores_staging ({_STAGED_NAMES}) FROM STDIN (FORMAT BINARY)"
COPY_TYPES = [c.pg_type for c in STAGED_COLUMNS]


def _keeps_stored(field: str) -> str:
    """SQL: the stored value of `field` stays. So it does when the store's own answer did not show the field
    (it is in fields_missing), unless the stored value came from a search entry and a search entry gives
    one now (a listing field the page never shows still follows the listing)."""
    return (
        f"('{field}' = ANY(EXCLUDED.fields_missing) AND NOT (coalesce(EXCLUDED.field_sources->>'{field}', '')"
        f" LIKE 'search%%' AND coalesce(s.field_sources->>'{field}', '') LIKE 'search%%'))"
    )


def _assignment(column: Column) -> str:
    if column.name == "field_sources":
        return f"field_sources = s.field_sources || ({_TAKEN_SOURCES})"
    if column.protects is None:
        return f"{column.name} = EXCLUDED.{column.name}"
    keep = _keeps_stored(column.protects)
    return f"{column.name} = CASE WHEN {keep} THEN s.{column.name} ELSE EXCLUDED.{column.name} END"


# The incoming sources of the fields whose incoming value is taken (see _keeps_stored).
_TAKEN_SOURCES = (
    "SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}') FROM jsonb_each_text(EXCLUDED.field_sources) AS e"
    " WHERE NOT (e.key = ANY(EXCLUDED.fields_missing)) OR (e.value LIKE 'search%%'"
    " AND coalesce(s.field_sources->>e.key, '') LIKE 'search%%')"
)


_INSERT_INTO = f"INSERT INTO stores AS s ({_STAGED_NAMES}, first_run_id, last_run_id, detail_run_id)"
ON_CONFLICT = f"""ON CONFLICT (diningcode_place_id) DO UPDATE SET
    {", ".join(_assignment(c) for c in COPY_COLUMNS if c.name != "diningcode_place_id")},
    field_seen_at = s.field_seen_at || EXCLUDED.field_seen_at,
    missed_runs = 0,
    detail_run_id = EXCLUDED.detail_run_id,
    detail_due = false,
    status_changed_at = CASE WHEN s.status IS DISTINCT FROM EXCLUDED.status THEN now() ELSE s.status_changed_at END,
    last_run_id = EXCLUDED.last_run_id,
    last_seen_at = now(),
    updated_at = CASE WHEN s.content_hash IS DISTINCT FROM EXCLUDED.content_hash THEN now() ELSE s.updated_at END
"""


def upsert_from(source: str) -> str:
    """INSERT … SELECT from `source` (a relation `r` with the STAGED_COLUMNS) … ON CONFLICT."""
    return f"""{_INSERT_INTO}
SELECT DISTINCT ON (r.diningcode_place_id) {", ".join("r." + c.name for c in STAGED_COLUMNS)},
       %(run)s, %(run)s, %(run)s
FROM {source}
ORDER BY r.diningcode_place_id  -- one row per store, and locks taken in key order
{ON_CONFLICT}RETURNING (xmax = 0) AS inserted, (updated_at = now()) AS changed
"""


UPSERT_SQL = upsert_from("stores_staging AS r")
# One row per statement (what executemany and the row-per-commit baseline send), for the benchmarks.
UPSERT_ONE_SQL = f"""{_INSERT_INTO}
VALUES ({", ".join(["%s"] * len(STAGED_COLUMNS))}, %s, %s, %s)
{ON_CONFLICT}"""

# A store fetched again with the same content, URL and ETag: only the bookkeeping of a fresh fetch moves
# (%(seen)s: the fields its page showed, -> this run).
REFETCHED_SQL = """
UPDATE stores SET last_run_id = %(run)s, last_seen_at = now(), missed_runs = 0, detail_run_id = %(run)s,
    detail_due = false, field_seen_at = field_seen_at || %(seen)s
WHERE diningcode_place_id = ANY(%(rids)s)
"""
