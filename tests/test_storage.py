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


def test_content_hash_is_the_fingerprint_stored_rows_hold() -> None:
    """The writer's encoder is built once; its fingerprint must stay the one already stored (json.dumps of the
    content, non-ASCII kept), or every stored store would look changed to the next run."""
    import hashlib
    import json

    from stage5.storage.columns import content_hash, store_values

    odd = record(
        7,
        name='따옴표 "인용" \\ 역슬래시 \t탭 😀',
        rating=4.25,
        review_count=0,
        weekly_hours={"월": {"open": "11:00", "close": "22:00"}, "화": {"closed": True}},
        missing=("phone",),
        keywords=(),
        menu=(MenuItem("삼겹살", 19900, "19,900원"), MenuItem("냉면", None)),
    )
    for values in (store_values(record(1)), store_values(odd)):
        content = {k: v for k, v in values.items() if k != "fields_missing"}
        assert content_hash(values) == hashlib.sha1(json.dumps(content, ensure_ascii=False).encode()).hexdigest()
    assert content_hash(store_values(odd)) != content_hash(store_values(dataclasses.replace(odd, rating=4.5)))


async def _table(pg_url: str, schema: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], tuple[Any, ...]]:
    """Every stored column (timestamps as their relation to the row's first write), the change records and the
    run's counters: what two ways of writing the same batches must leave alike."""
    conn = await connect(pg_url, schema)
    cur = await conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'stores'::regclass AND attnum > 0 AND NOT attisdropped"
        " AND format_type(atttypid, atttypmod) <> 'timestamp with time zone' ORDER BY attname"
    )
    columns = [name for (name,) in await cur.fetchall()]
    cur = await conn.execute(
        f"SELECT {', '.join(columns)}, updated_at = created_at, last_seen_at = created_at, status_changed_at IS NULL"
        " FROM stores ORDER BY diningcode_place_id"
    )
    stores = await cur.fetchall()
    cur = await conn.execute(
        "SELECT run_id, diningcode_place_id, kind, district, name, fields FROM store_changes ORDER BY 1, 2, 3"
    )
    changes = await cur.fetchall()
    cur = await conn.execute("SELECT counts FROM crawl_runs ORDER BY id")
    counts = tuple(row[0] for row in await cur.fetchall())
    await conn.close()
    return stores, changes, counts


def _second_run(records: list[StoreRecord]) -> list[StoreRecord]:
    """A run's batch over stored stores: unchanged, changed, closed, shown with fields missing (the stored values
    stand), a search entry's value over a search's, and stores not stored yet."""
    batch = list(records[:20])  # unchanged
    batch += [dataclasses.replace(r, name=r.name + " 2호점", menu=()) for r in records[20:30]]
    batch += [dataclasses.replace(r, closed=True) for r in records[30:35]]
    batch += [dataclasses.replace(r, phone=None, missing=("phone",), field_sources={}) for r in records[35:40]]
    batch += [
        dataclasses.replace(r, phone="02-999-0000", missing=("phone",), field_sources={"phone": "search:무한리필"})
        for r in records[40:45]
    ]
    batch += [dataclasses.replace(r, etag='"v2"') for r in records[45:50]]
    return batch + [record(i, phone="02-555-0000") for i in range(100, 130)]


async def test_new_stores_copied_straight_in_leave_the_table_the_upsert_leaves(
    pg_url: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New stores go into the table by COPY, stored ones through the staging table and the upsert, in one batch:
    rows, change records and counters come out as when every row takes the upsert (the writer's fallback when
    another writer stored a new store first)."""
    import uuid

    from stage5.storage import stores

    records = [record(i, phone="02-123-4567", field_sources={"phone": "search:고기"}) for i in range(60)]
    records[:30] = [dataclasses.replace(r, field_sources={"phone": "detail:api"}) for r in records[:30]]
    reference = f"t_{uuid.uuid4().hex[:12]}"
    counts = []
    try:
        for target in (schema, reference):
            if target == reference:

                async def refused(*args: Any, **kwargs: Any) -> bool:
                    return False  # as if another writer had stored them: every row takes the upsert

                monkeypatch.setattr(stores, "copy_new", refused)
            conn, first_run = await _setup(pg_url, target)
            first = await _write(pg_url, target, first_run, records, batch=1000)
            second_run = await start_run(conn, "http://test", ["마포구"], {})
            await conn.close()
            second = await _write(pg_url, target, second_run, _second_run(records), batch=1000)
            counts.append([(w.counts.new, w.counts.updated, w.counts.unchanged) for w in (first, second)])
        assert counts[0] == counts[1]
        # second run: 30 new; 10 renamed, 5 closed, 5 with the phone missing, 5 with a search's phone: updated;
        # 20 the same and 5 with only a new ETag: unchanged (the ETag's row is rewritten, its content is not)
        assert counts[0] == [(60, 0, 0), (30, 25, 25)]
        copied, upserted = await _table(pg_url, schema), await _table(pg_url, reference)
        assert copied == upserted
        _, changes, _ = copied
        assert sorted({kind for _, _, kind, *_ in changes}) == ["changed", "closed", "new"]
        conn = await connect(pg_url, schema)
        cur = await conn.execute("SELECT diningcode_place_id, phone_number FROM stores WHERE phone_number IS NOT NULL")
        phones = dict(await cur.fetchall())
        await conn.close()
        assert all(phones[f"rid{i:09d}"] == "02-123-4567" for i in range(35, 40))  # not shown: the stored one stands
        assert all(phones[f"rid{i:09d}"] == "02-999-0000" for i in range(40, 45))  # a search's over a search's
        assert all(phones[f"rid{i:09d}"] == "02-555-0000" for i in range(100, 130))  # new, copied straight in
    finally:
        with psycopg.connect(pg_url, autocommit=True) as done:
            done.execute(f'DROP SCHEMA IF EXISTS "{reference}" CASCADE')


async def test_a_store_fetched_again_is_only_marked_seen_when_its_row_already_says_all_of_it(
    pg_url: str, schema: str
) -> None:
    """The bookkeeping-only update compares the whole fingerprint in SQL: a store whose ETag, URL, detail source,
    field sources, missing fields or status differ is written; one whose fields seen before are not shown now
    keeps their runs in field_seen_at."""
    conn, first_run = await _setup(pg_url, schema)
    records = [record(i, phone="02-123-4567", etag='"v1"', detail_source="api") for i in range(8)]
    await _write(pg_url, schema, first_run, records)
    second_run = await start_run(conn, "http://test", ["마포구"], {})
    again = [
        records[0],
        dataclasses.replace(records[1], etag='"v2"'),
        dataclasses.replace(records[2], source_url=records[2].source_url + "&x=1"),
        dataclasses.replace(records[3], detail_source="html"),
        dataclasses.replace(records[4], field_sources={"name": "detail:html"}),
        dataclasses.replace(records[5], missing=("phone",), phone=None),
        dataclasses.replace(records[6], closed=True),
    ]
    writer = await _write(pg_url, schema, second_run, again)
    assert (writer.counts.new, writer.counts.updated, writer.counts.unchanged) == (0, 2, 5)
    cur = await conn.execute(
        "SELECT diningcode_place_id, detail_etag, source_url, detail_source, field_sources, fields_missing, status,"
        " phone_number, last_run_id, detail_run_id FROM stores ORDER BY diningcode_place_id"
    )
    rows = await cur.fetchall()
    assert [row[1:8] for row in rows[:7]] == [
        ('"v1"', records[0].source_url, "api", {}, [], "운영중", "02-123-4567"),
        ('"v2"', records[1].source_url, "api", {}, [], "운영중", "02-123-4567"),
        ('"v1"', records[2].source_url + "&x=1", "api", {}, [], "운영중", "02-123-4567"),
        ('"v1"', records[3].source_url, "html", {}, [], "운영중", "02-123-4567"),
        ('"v1"', records[4].source_url, "api", {"name": "detail:html"}, [], "운영중", "02-123-4567"),
        ('"v1"', records[5].source_url, "api", {}, ["phone"], "운영중", "02-123-4567"),
        ('"v1"', records[6].source_url, "api", {}, [], "폐업", "02-123-4567"),
    ]
    assert all(row[8:] == (second_run, second_run) for row in rows[:7])
    assert rows[7][8:] == (first_run, first_run)  # not fetched again: untouched

    # The phone not shown twice: the second time the row is only marked seen, and field_seen_at keeps the run
    # that last showed the phone while the fields shown move to this run.
    third_run = await start_run(conn, "http://test", ["마포구"], {})
    writer = await _write(pg_url, schema, third_run, [again[5], records[0]])
    assert (writer.counts.updated, writer.counts.unchanged) == (0, 2)
    cur = await conn.execute(
        "SELECT diningcode_place_id, field_seen_at->>'phone', field_seen_at->>'name', last_run_id FROM stores"
        " WHERE diningcode_place_id IN (%s, %s) ORDER BY 1",
        (records[0].rid, records[5].rid),
    )
    assert await cur.fetchall() == [
        (records[0].rid, str(third_run), str(third_run), third_run),
        (records[5].rid, str(first_run), str(third_run), third_run),
    ]
    await conn.close()


async def test_copy_of_new_stores_meeting_a_stored_one_writes_nothing_and_leaves_the_batch_usable(
    pg_url: str, schema: str
) -> None:
    """copy_new's savepoint: a store stored meanwhile (by another writer) makes it give way, with none of its
    rows written and the batch's transaction still usable for the upsert that follows."""
    from stage5.storage.columns import store_row
    from stage5.storage.stores import copy_new, copy_upsert

    conn, run_id = await _setup(pg_url, schema)
    await _write(pg_url, schema, run_id, [record(1)])
    rows = [store_row(record(2)), store_row(record(1, name="다른 이름"))]
    async with conn.transaction():
        assert await copy_new(conn, rows, run_id) is False
        cur = await conn.execute("SELECT count(*) FROM stores")
        assert await cur.fetchone() == (1,)
        assert sorted(await copy_upsert(conn, rows, run_id)) == [(False, True), (True, True)]
    cur = await conn.execute("SELECT diningcode_place_id, name FROM stores ORDER BY 1")
    assert await cur.fetchall() == [("rid000000001", "다른 이름"), ("rid000000002", "가게 2")]
    await conn.close()
