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


# json.dumps with an argument builds an encoder per call, which cost a third of the fingerprint; this one is
# built once. Its output is json.dumps(…, ensure_ascii=False)'s, byte for byte (check_circular only guards
# against a value holding itself), so stored fingerprints stay valid.
_FINGERPRINT_JSON = json.JSONEncoder(ensure_ascii=False, check_circular=False)


def content_hash(values: dict[str, Any]) -> str:
    """Fingerprint of what the store is: every data column but fields_missing (which fields the last answer
    left out: the fingerprint compares that apart), and not the URL, the ETag nor the detail source. A store
    read again unchanged, from the same source or another, keeps its row and its updated_at."""
    content = dict(values)
    del content["fields_missing"]
    return hashlib.sha1(_FINGERPRINT_JSON.encode(content).encode()).hexdigest()


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
        sources = Jsonb(self.field_sources, dumps=_sources_json)
        return (*data, self.source_url, self.etag, self.content_hash, self.detail_source, sources)

    def staged(self, run_id: int) -> tuple[Any, ...]:
        """The row as the staging table takes it."""
        return (*self.copy_tuple(), field_seen(tuple(self.values["fields_missing"]), run_id))

    def new_row(self, run_id: int) -> tuple[Any, ...]:
        """The row as NEW_COPY_SQL takes it: staged, then first, last and detail run (what the upsert's
        INSERT sets)."""
        return (*self.staged(run_id), run_id, run_id, run_id)

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
    """stores.field_seen_at's update: field -> the run whose page showed it (staleness per field). Its JSON is
    made here, once: psycopg would otherwise dump it again for every row."""
    seen = {f: run_id for f in TRACKED_FIELDS if f not in missing}
    text = json.dumps(seen)
    return Jsonb(seen, dumps=lambda _: text)


@functools.lru_cache(maxsize=4096)
def _sources_text(items: tuple[tuple[str, str], ...]) -> str:
    return json.dumps(dict(items), ensure_ascii=False)


def _sources_json(sources: dict[str, str]) -> str:
    """A record's field_sources as JSON: most stores of a run share theirs, so each is dumped once."""
    return _sources_text(tuple(sources.items()))


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
# Stores not stored yet go straight into the table: the same columns the upsert's INSERT writes (the others
# take their defaults, as they do there), without the staging table and the conflict check.
NEW_COPY_SQL = f"COPY stores ({_STAGED_NAMES}, first_run_id, last_run_id, detail_run_id) FROM STDIN (FORMAT BINARY)"
NEW_COPY_TYPES = [*COPY_TYPES, "bigint", "bigint", "bigint"]


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

# Stores fetched again: those whose stored row already holds this answer (the same content fingerprint, status,
# URL, ETag, missing fields, detail source and field sources) are not rewritten: only the bookkeeping of a fresh
# fetch moves (%(seen)s: the fields its page showed, -> this run). The comparison is made by this UPDATE, one
# per set of missing fields; it returns the stores it kept, and leaves the others untouched for the upsert.
# The arrays go in binary (%b): psycopg's text format escapes every element in Python (16 us a JSON text).
# field_seen_at || seen, without building a new jsonb per row where the result is `seen` itself: when every field
# the row has a run for is among those seen now (most rows; jsonb's || cost more than the rest of the update).
_SEEN_MERGED = (
    "CASE WHEN s.field_seen_at - %(seen_fields)b::text[] = '{}'::jsonb THEN %(seen)s"
    " ELSE s.field_seen_at || %(seen)s END"
)
REFETCHED_SQL = f"""
UPDATE stores AS s SET last_run_id = %(run)s, last_seen_at = now(), missed_runs = 0, detail_run_id = %(run)s,
    detail_due = false, field_seen_at = {_SEEN_MERGED}
FROM unnest(%(rids)b::text[], %(hashes)b::text[], %(statuses)b::text[], %(etags)b::text[], %(urls)b::text[],
    %(sources)b::text[], %(field_sources)b::text[]) AS u(rid, content_hash, status, etag, url, source, field_sources)
WHERE s.diningcode_place_id = u.rid AND s.content_hash = u.content_hash AND s.status = u.status
    AND s.detail_etag IS NOT DISTINCT FROM u.etag AND s.source_url = u.url AND s.fields_missing = %(missing)b::text[]
    AND s.detail_source IS NOT DISTINCT FROM u.source AND s.field_sources = u.field_sources::jsonb
RETURNING s.diningcode_place_id
"""


def refetched_params(rows: list[StoreRow], missing: tuple[str, ...], run_id: int) -> dict[str, Any]:
    """REFETCHED_SQL's parameters for rows that share one set of missing fields."""
    return {
        "run": run_id,
        "seen": (seen := field_seen(missing, run_id)),
        "seen_fields": list(seen.obj),
        "missing": list(missing),
        "rids": [r.rid for r in rows],
        "hashes": [r.content_hash for r in rows],
        "statuses": [r.values["status"] for r in rows],
        "etags": [r.etag for r in rows],
        "urls": [r.source_url for r in rows],
        "sources": [r.detail_source for r in rows],
        "field_sources": [_sources_json(r.field_sources) for r in rows],
    }
