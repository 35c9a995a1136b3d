"""COPY + upsert against the real PostgreSQL: idempotent, counted, rejections kept, errors clear."""

from __future__ import annotations

import dataclasses
from typing import Any

import psycopg
import pytest

from stage5.errors import DatabaseUnavailable
from stage5.models import MenuItem, Rejection, StoreRecord
from stage5.storage.columns import STAGED_COLUMNS
from stage5.storage.db import connect
from stage5.storage.runs import start_run
from stage5.storage.schema import LATEST, MIGRATIONS, migrate
from stage5.storage.stores import StoreWriter


def record(i: int, **kw: Any) -> StoreRecord:
    base: dict[str, Any] = dict(
        rid=f"rid{i:09d}",
        name=f"가게 {i}",
        district="마포구",
        address=f"서울특별시 마포구 서교동 {i}",
        lat=37.55,
        lng=126.92,
        source_url=f"http://127.0.0.1/profile.php?rid=rid{i:09d}",
        categories=("삼겹살",),
        menu=(MenuItem("삼겹살 무한리필", 19900),),
        price_min=19900,
        price_max=19900,
        is_refill=True,
        refill_type="무한리필",
        refill_items=("삼겹살",),
        refill_evidence=("menu:삼겹살 무한리필",),
    )
    base.update(kw)
    return StoreRecord(**base)


async def _setup(pg_url: str, schema: str) -> tuple[psycopg.AsyncConnection, int]:
    conn = await connect(pg_url, schema)
    await migrate(conn)
    run_id = await start_run(conn, "http://test", ["마포구"], {})
    return conn, run_id


async def _write(
    pg_url: str,
    schema: str,
    run_id: int,
    records: list[StoreRecord],
    rejections: list[Rejection] = (),
    batch: int = 100,
) -> StoreWriter:  # type: ignore[assignment]
    async with StoreWriter(lambda: connect(pg_url, schema), run_id, batch, 60) as writer:
        for r in records:
            await writer.add(r)
        for j in rejections:
            await writer.reject(j)
    return writer


async def test_upsert_is_idempotent_and_counts(pg_url: str, schema: str) -> None:
    conn, run_id = await _setup(pg_url, schema)
    records = [record(i) for i in range(250)]
    first = await _write(pg_url, schema, run_id, records, batch=100)
    assert (first.counts.new, first.counts.updated, first.counts.unchanged, first.counts.batches) == (250, 0, 0, 3)

    changed = [dataclasses.replace(r, name=r.name + " 본점") if i % 10 == 0 else r for i, r in enumerate(records)]
    second = await _write(pg_url, schema, run_id, changed)
    assert (second.counts.new, second.counts.updated, second.counts.unchanged) == (0, 25, 225)

    cur = await conn.execute("SELECT count(*), count(DISTINCT diningcode_place_id) FROM stores")
    assert await cur.fetchone() == (250, 250)
    cur = await conn.execute(
        "SELECT name, menu_items, price, refill_items, created_at < updated_at FROM stores"
        " WHERE diningcode_place_id = 'rid000000010'"
    )
    name, menu, price, items, touched = await cur.fetchone()  # type: ignore[misc]
    assert name == "가게 10 본점" and touched
    assert menu == [{"name": "삼겹살 무한리필", "price": 19900, "price_text": None}]
    assert price == "19,900원" and items == ["삼겹살"]
    await conn.close()


async def test_same_store_twice_in_a_batch_is_one_row(pg_url: str, schema: str) -> None:
    conn, run_id = await _setup(pg_url, schema)
    writer = await _write(pg_url, schema, run_id, [record(1), record(2), record(1, name="나중 이름")])
    assert writer.counts.new == 2
    cur = await conn.execute("SELECT name FROM stores WHERE diningcode_place_id = 'rid000000001'")
    assert await cur.fetchone() == ("나중 이름",)
    await conn.close()


async def test_rejections_are_stored_with_reason(pg_url: str, schema: str) -> None:
    conn, run_id = await _setup(pg_url, schema)
    rejection = Rejection(
        "bad000000001", "coordinates outside Seoul: 0.0,0.0", "http://x/profile.php?rid=bad", "강남구", {"name": "x"}
    )
    writer = await _write(pg_url, schema, run_id, [record(1)], [rejection, rejection])
    assert writer.counts.rejected == 1
    cur = await conn.execute("SELECT diningcode_place_id, reason, source_url, district, run_id FROM rejected_stores")
    assert await cur.fetchall() == [("bad000000001", rejection.reason, rejection.source_url, "강남구", run_id)]
    await conn.close()


async def test_migrate_twice_is_a_no_op(pg_url: str, schema: str) -> None:
    conn = await connect(pg_url, schema)
    assert await migrate(conn) == LATEST
    assert await migrate(conn) == LATEST
    cur = await conn.execute("SELECT count(*), max(version) FROM schema_migrations")
    assert await cur.fetchone() == (len(MIGRATIONS), LATEST)  # every one once, whatever order they landed in
    await conn.close()


async def test_a_migration_that_landed_after_a_higher_one_is_still_applied(pg_url: str, schema: str) -> None:
    conn = await connect(pg_url, schema)
    await migrate(conn)
    late = sorted(MIGRATIONS)[-2][0]  # as if it had been appended after the newest one was applied
    await conn.execute("DELETE FROM schema_migrations WHERE version = %s", (late,))
    try:
        # Its DDL already ran in this schema, so applying it again fails: the failure shows it was applied
        # although a higher version is recorded (the old rule, "above the highest applied", skipped it).
        with pytest.raises(psycopg.errors.ProgrammingError):
            await migrate(conn)
    finally:
        await conn.close()


async def test_unreachable_database_names_url_and_fix() -> None:
    with pytest.raises(DatabaseUnavailable) as info:
        await connect("postgresql://postgres:secret@127.0.0.1:9/stage5")
    message = str(info.value)
    assert "127.0.0.1:9/stage5" in message and "secret" not in message and "DATABASE_URL" in message


async def test_writer_survives_a_dropped_connection(pg_url: str, schema: str) -> None:
    """The server ending our session mid-run: the batch is retried on a new connection, nothing lost."""
    conn, run_id = await _setup(pg_url, schema)
    async with StoreWriter(lambda: connect(pg_url, schema), run_id, 1000, 60) as writer:
        await writer.add(record(1))
        await writer.flush()
        assert writer.conn is not None
        pid = writer.conn.info.backend_pid
        await conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        await conn.commit()
        await writer.add(record(2))
        await writer.flush()
        assert writer.counts.batch_retries >= 1
    cur = await conn.execute("SELECT count(*) FROM stores")
    assert await cur.fetchone() == (2,)
    await conn.close()


async def test_column_definitions_match_the_migrated_table(pg_url: str, schema: str) -> None:
    conn, _ = await _setup(pg_url, schema)
    cur = await conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = 'stores'::regclass AND attnum > 0 AND NOT attisdropped"
    )
    table = dict(await cur.fetchall())
    assert {c.name: c.pg_type for c in STAGED_COLUMNS} == {c.name: table[c.name] for c in STAGED_COLUMNS}
    await conn.close()


async def test_an_unchanged_store_is_not_rewritten_but_marked_seen(pg_url: str, schema: str) -> None:
    conn, first_run = await _setup(pg_url, schema)
    records = [record(i, phone="02-123-4567") for i in range(20)]
    await _write(pg_url, schema, first_run, records)
    cur = await conn.execute("SELECT diningcode_place_id, xmin::text, updated_at FROM stores")
    before = {rid: (xmin, updated) for rid, xmin, updated in await cur.fetchall()}
    await conn.commit()

    second_run = await start_run(conn, "http://test", ["마포구"], {})
    changed = dataclasses.replace(records[3], name="새 이름")
    writer = await _write(pg_url, schema, second_run, [*records[:3], changed, *records[4:]])
    assert (writer.counts.new, writer.counts.updated, writer.counts.unchanged) == (0, 1, 19)

    cur = await conn.execute(
        "SELECT diningcode_place_id, xmin::text, updated_at, last_run_id, detail_run_id,"
        " field_seen_at->>'phone' FROM stores"
    )
    rows = {rid: rest for rid, *rest in await cur.fetchall()}
    assert all(rows[r.rid][2:] == [second_run, second_run, str(second_run)] for r in records)
    kept = [r.rid for r in records if r.rid != changed.rid]
    assert all(rows[rid][1] == before[rid][1] for rid in kept)  # updated_at: the content did not change
    assert rows[changed.rid][1] > before[changed.rid][1]
    cur = await conn.execute("SELECT count(*) FROM store_changes WHERE run_id = %s", (second_run,))
    assert await cur.fetchone() == (1,)
    await conn.close()
