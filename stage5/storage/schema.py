"""The schema, created and migrated by the program: numbered migrations, applied once, in order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg

from stage5.errors import SchemaTooNew
from stage5.logs import log_event
from stage5.storage.db import connect

log = logging.getLogger("stage5.storage")

MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "stores, rejected_stores, crawl_runs",
        """
        CREATE TABLE stores (
            diningcode_place_id text PRIMARY KEY,
            name text NOT NULL,
            branch text,
            district text NOT NULL,
            address text NOT NULL,
            road_address text,
            position_lat double precision NOT NULL,
            position_lng double precision NOT NULL,
            phone_number text,
            raw_categories_diningcode text[] NOT NULL DEFAULT '{}',
            keywords text[] NOT NULL DEFAULT '{}',
            diningcode_rating real,
            review_count integer,
            diningcode_score integer,
            open_hours text,
            break_time text,
            last_order text,
            holiday text,
            menu_items jsonb NOT NULL DEFAULT '[]',
            price text,
            price_min integer,
            price_max integer,
            image_urls text[] NOT NULL DEFAULT '{}',
            main_image text,
            is_confirmed_refill boolean NOT NULL,
            refill_type text,
            refill_items text[] NOT NULL DEFAULT '{}',
            refill_evidence text[] NOT NULL DEFAULT '{}',
            status text NOT NULL DEFAULT '운영중',
            source_url text NOT NULL,
            content_hash text NOT NULL,
            first_run_id bigint,
            last_run_id bigint,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            last_seen_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX stores_district_idx ON stores (district);
        CREATE INDEX stores_refill_idx ON stores (is_confirmed_refill);

        CREATE TABLE crawl_runs (
            id bigserial PRIMARY KEY,
            started_at timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz,
            status text NOT NULL,
            trigger text NOT NULL DEFAULT 'manual',
            site text NOT NULL,
            districts text[] NOT NULL,
            params jsonb NOT NULL DEFAULT '{}',
            counts jsonb NOT NULL DEFAULT '{}',
            failed_units jsonb NOT NULL DEFAULT '[]',
            error text
        );

        CREATE TABLE rejected_stores (
            id bigserial PRIMARY KEY,
            run_id bigint REFERENCES crawl_runs (id) ON DELETE CASCADE,
            diningcode_place_id text,
            district text,
            reason text NOT NULL,
            source_url text NOT NULL,
            payload jsonb NOT NULL DEFAULT '{}',
            rejected_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (run_id, diningcode_place_id)
        );
        """,
    ),
)

MIGRATIONS += (
    (
        2,
        "crawl_units: durable unit queue; run counters written with the rows they count",
        """
        CREATE TABLE crawl_units (
            run_id bigint NOT NULL REFERENCES crawl_runs (id) ON DELETE CASCADE,
            uid integer NOT NULL,
            kind text NOT NULL CHECK (kind IN ('search', 'detail')),
            district text NOT NULL,
            payload jsonb NOT NULL,
            state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'leased', 'done', 'failed')),
            lease_owner text,
            lease_expires_at timestamptz,
            attempts integer NOT NULL DEFAULT 0,
            result jsonb,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (run_id, uid)
        );
        CREATE INDEX crawl_units_open_idx ON crawl_units (run_id) WHERE state IN ('pending', 'leased');
        ALTER TABLE crawl_runs
            ADD COLUMN stores_new integer NOT NULL DEFAULT 0,
            ADD COLUMN stores_updated integer NOT NULL DEFAULT 0,
            ADD COLUMN stores_unchanged integer NOT NULL DEFAULT 0,
            ADD COLUMN stores_rejected integer NOT NULL DEFAULT 0,
            ADD COLUMN resumed integer NOT NULL DEFAULT 0;
        """,
    ),
)

MIGRATIONS += (
    (
        3,
        "schedule_slots: every scheduled slot and what became of it",
        """
        CREATE TABLE schedule_slots (
            job text NOT NULL,
            slot_at timestamptz NOT NULL,
            status text NOT NULL CHECK (status IN ('claimed', 'started', 'skipped', 'missed', 'failed')),
            scheduler text NOT NULL,
            reason text,
            run_pid integer,
            decided_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (job, slot_at)
        );
        ALTER TABLE crawl_runs ADD COLUMN job text;
        """,
    ),
)

MIGRATIONS += (
    (
        4,
        "fidelity: weekly hours, fields a page did not show (kept, not blanked), when each field was last seen;"
        " field coverage per run",
        """
        ALTER TABLE stores
            ADD COLUMN weekly_hours jsonb,
            ADD COLUMN fields_missing text[] NOT NULL DEFAULT '{}',
            ADD COLUMN field_seen_at jsonb NOT NULL DEFAULT '{}';
        ALTER TABLE crawl_runs ADD COLUMN coverage jsonb NOT NULL DEFAULT '{}';
        """,
    ),
)

MIGRATIONS += (
    (
        5,
        "change tracking: store_changes, missed runs and status changes; the refill_stores view",
        """
        ALTER TABLE stores
            ADD COLUMN missed_runs integer NOT NULL DEFAULT 0,
            ADD COLUMN status_changed_at timestamptz;
        CREATE TABLE store_changes (
            id bigserial PRIMARY KEY,
            run_id bigint NOT NULL REFERENCES crawl_runs (id) ON DELETE CASCADE,
            diningcode_place_id text NOT NULL,
            kind text NOT NULL CHECK (kind IN ('new', 'changed', 'closed', 'vanished', 'reappeared')),
            district text,
            name text,
            fields jsonb NOT NULL DEFAULT '{}',
            changed_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX store_changes_run_idx ON store_changes (run_id);
        CREATE INDEX store_changes_store_idx ON store_changes (diningcode_place_id);
        CREATE INDEX store_changes_time_idx ON store_changes (changed_at);
        CREATE VIEW refill_stores AS
            SELECT diningcode_place_id AS id, name, branch, district, address, road_address,
                   position_lat AS lat, position_lng AS lng, phone_number AS phone, refill_type, refill_items,
                   price_min, price_max, price, open_hours, break_time, last_order, holiday,
                   diningcode_rating AS rating, review_count, diningcode_score AS score, main_image,
                   'https://www.diningcode.com/profile.php?rid=' || diningcode_place_id AS diningcode_url,
                   last_seen_at, updated_at
            FROM stores
            WHERE is_confirmed_refill AND status = '운영중';
        """,
    ),
)

MIGRATIONS += (
    (
        6,
        "change-driven refresh: the search listing's fingerprint, the run that last fetched the detail, due flag",
        """
        ALTER TABLE stores
            ADD COLUMN listing_hash text,
            ADD COLUMN detail_run_id bigint,
            ADD COLUMN detail_due boolean NOT NULL DEFAULT false,
            ADD COLUMN detail_etag text;
        """,
    ),
)

MIGRATIONS += (
    (
        7,
        "room in each page of stores: a run that only moves a store's bookkeeping updates it in place (HOT)",
        """
        ALTER TABLE stores SET (fillfactor = 80);
        """,
    ),
)

MIGRATIONS += (
    (
        8,
        "web console: scheduled_jobs (jobs managed from the console), the scheduler's pause switch, live run figures",
        """
        CREATE TABLE scheduled_jobs (
            id serial PRIMARY KEY,
            name text NOT NULL UNIQUE,
            kind text NOT NULL CHECK (kind IN ('crawl', 'cleanup')),
            cron text NOT NULL,
            timezone text NOT NULL DEFAULT 'Asia/Seoul',
            enabled boolean NOT NULL DEFAULT true,
            params jsonb NOT NULL DEFAULT '{}',
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE scheduler_state (
            id integer PRIMARY KEY CHECK (id = 1),
            paused boolean NOT NULL DEFAULT false,
            changed_at timestamptz NOT NULL DEFAULT now()
        );
        INSERT INTO scheduler_state (id) VALUES (1);
        ALTER TABLE crawl_runs ADD COLUMN live jsonb;
        """,
    ),
)

MIGRATIONS += (
    (
        11,
        "details from the profile API: facilities, best menu items, open status; which source read each detail",
        """
        ALTER TABLE stores
            ADD COLUMN facilities text[] NOT NULL DEFAULT '{}',
            ADD COLUMN best_menu text[] NOT NULL DEFAULT '{}',
            ADD COLUMN open_status text,
            ADD COLUMN detail_source text;
        """,
    ),
)

MIGRATIONS += (
    (
        9,
        "evidence before write: each stored field's source (detail answer or search entry, and which query)",
        """
        ALTER TABLE stores ADD COLUMN field_sources jsonb NOT NULL DEFAULT '{}';
        """,
    ),
)

MIGRATIONS += (
    (
        10,
        "complete listings: per district, the site's count against the stores found and the queries split",
        """
        ALTER TABLE crawl_runs ADD COLUMN completeness jsonb NOT NULL DEFAULT '{}';
        """,
    ),
)

MIGRATIONS += (
    (
        12,
        "room for a store's next version on its page: a run that only moves its bookkeeping updates it in place (HOT)",
        # Stored rows are ~2 KB (the API's fields and their sources): at fillfactor 80 a page holds three and room
        # for one more version, so two of three bookkeeping updates left the page (an index entry each, a table
        # that grows by half a run); at 50 it holds two and room for both next versions. Takes effect on pages
        # written from now on.
        """
        ALTER TABLE stores SET (fillfactor = 50);
        """,
    ),
)

# Migrations are numbered when assigned and may land out of order (11 appended before 9 and 10): the
# newest is the highest number, and each one missing from schema_migrations is applied, lowest first.
LATEST = max(version for version, _, _ in MIGRATIONS)


async def migrate(conn: psycopg.AsyncConnection) -> int:
    """Apply what is missing; safe to call from several processes at once. Returns the version."""
    async with conn.transaction():
        # One migrator at a time per database; the lock ends with the transaction.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('stage5.migrate'))")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, description text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cur = await conn.execute("SELECT version FROM schema_migrations")
        applied = {row[0] for row in await cur.fetchall()}
        current = max(applied, default=0)
        for version, description, ddl in sorted(MIGRATIONS):
            if version not in applied:
                await conn.execute(ddl)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, description) VALUES (%s, %s)", (version, description)
                )
                log_event(log, "schema_migrated", version=version, description=description)
        if current > LATEST:
            raise SchemaTooNew(
                f"database schema is version {current}, newer than this stage5 knows ({LATEST}); upgrade stage5"
            )
    return max(current, LATEST)


T = TypeVar("T")


def on_database(url: str, schema: str, action: Callable[[psycopg.AsyncConnection], Awaitable[T]]) -> T:
    """For the small commands: connect, bring the schema up to date, run `action`, close."""

    async def run() -> T:
        conn = await connect(url, schema)
        try:
            await migrate(conn)
            return await action(conn)
        finally:
            await conn.close()

    return asyncio.run(run())
