"""What the CLI prints: run summaries, runs tables, and a demo's score against the replica's truth."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import psycopg

from stage5.crawl.run import RunSummary
from stage5.replica.truth import Score, score
from stage5.replica.world import build_world
from stage5.services import database_url
from stage5.settings import Settings
from stage5.storage.db import connect


def print_summary(summary: RunSummary, served: dict[str, Any] | None = None) -> None:
    rate = summary.stores / summary.elapsed_s * 3600 if summary.elapsed_s else 0.0
    resumed = f" (resumed {summary.resumed}x)" if summary.resumed else ""
    lines = [
        f"run {summary.run_id}: {summary.status}{resumed} in {summary.elapsed_s:.1f}s",
        f"  districts      {max(summary.districts_done - len(summary.districts_failed), 0)}/{summary.districts} done"
        + (f" (failed: {', '.join(summary.districts_failed)})" if summary.districts_failed else ""),
        f"  stores         {summary.stores} ({summary.refill_stores} all-you-can-eat)"
        f"  new {summary.new}, updated {summary.updated}, unchanged {summary.unchanged}, rejected {summary.rejected}",
        f"  skipped        {summary.out_of_area} search entries outside their district or Seoul",
        f"  requests       {summary.requests} sent, {summary.retries} retries, {summary.pages} search pages,"
        f" {summary.bytes / 1e6:.1f} MB",
        f"  speed          {rate:,.0f} stores/hour, {summary.requests / max(summary.elapsed_s, 1e-9):.1f} requests/s",
        f"  cache          {summary.cache_hits} hits, {summary.cache_misses} misses"
        f" ({summary.cache_hit_rate:.1%} of look-ups served from Redis)" + _cache_trouble(summary),
        f"  memory         peak {summary.peak_memory_mb:.0f} MB of {summary.memory_budget_mb:.0f} MB budget;"
        f" governor {_governor(summary)}",
        f"  workers        up to {summary.workers_max} at once (start {summary.worker_start_s:.2f} s),"
        f" {summary.workers_recycled} recycled,"
        f" {summary.workers_died} died; {summary.units} units ({summary.units_failed} failed)",
    ]
    if summary.engine != "local":
        hosts = ", ".join(f"{host} {n}" for host, n in sorted(summary.workers_by_host.items()))
        outages = summary.broker_outages_s
        away = f", broker away {len(outages)}x ({sum(outages):.1f} s)" if outages else ""
        lines.append(
            f"  engine         {summary.engine}: worker processes by host: {hosts or 'none answered'};"
            f" {summary.units_resent} units sent again after a lost worker{away}"
        )
    if summary.memory_note:
        lines.append(f"  memory note    {summary.memory_note}")
    if served is not None:
        lines.append(
            f"  site served    {served['requests']} requests ({served['detail_unique']} distinct detail pages)"
        )
    if summary.suspect_districts:
        shown = ", ".join(
            f"{s['district']} (found {s['found']}, {s['stored_before']} stored)" for s in summary.suspect_districts
        )
        lines.append(
            f"  SUSPECT        {shown}: far fewer stores than stored (a soft block?); stored rows were"
            " left as they are and these answers were not cached"
        )
    lines += _listing_lines(summary)
    lines += _evidence_lines(summary)
    if summary.details:
        order = ("new", "listing_changed", "retry", "age", "not_modified", "skipped_unchanged")
        lines.append(
            "  details        "
            + ", ".join(f"{r} {summary.details[r]}" for r in order if r in summary.details)
            + " (change-driven refresh)"
        )
    if summary.changes:
        lines.append(
            "  changes        "
            + ", ".join(f"{kind} {n}" for kind, n in summary.changes.items())
            + (" (python -m stage5 changes)" if any(summary.changes.values()) else "")
        )
    lines += _coverage_lines(summary)
    if summary.cache_corrupt:
        lines.append(f"  cache          {summary.cache_corrupt} damaged entries deleted and fetched afresh")
    if summary.failed_units:
        lines.append(f"  failed units   {len(summary.failed_units)}:")
        lines += [f"    {u['kind']:7} {u['district']} {u['url']} — {u['reason']}" for u in summary.failed_units[:20]]
        if len(summary.failed_units) > 20:
            lines.append(f"    … {len(summary.failed_units) - 20} more in crawl_runs.failed_units")
    lines += _ending_lines(summary)
    print("\n".join(lines), flush=True)


def _ending_lines(summary: RunSummary) -> list[str]:
    """Why a run failed (its first failure), or how to resume an interrupted one."""
    if summary.status == "failed" and summary.failed_units:
        first = summary.failed_units[0]
        return [f"  FAILED         no usable answer; first failure: {first['url']} — {first['reason']}"]
    if summary.status == "interrupted":
        return [f"  resume with    {summary.resume_hint}"]
    return []


UNVERIFIED = {"blocked": "block pages", "not_this_store": "another store's page", "redirect": "redirected away"}


def _evidence_lines(summary: RunSummary) -> list[str]:
    """Answers that were no evidence about their store (issue 21), and the BLOCKED alert."""
    if not summary.unverified:
        return []
    counts = ", ".join(f"{UNVERIFIED.get(c, c)} {n}" for c, n in summary.unverified.items())
    return [
        f"  unverified     {counts}: no evidence about their store; stored rows kept, nothing cached",
        *(f"  {alert}" for alert in summary.alerts),
    ]


# The stored columns a demo is scored on against the replica's truth (stage5.replica.truth).
SCORED_COLUMNS = (
    "district",
    "is_confirmed_refill",
    "name",
    "branch",
    "address",
    "road_address",
    "phone_number",
    "position_lat",
    "position_lng",
    "diningcode_rating",
    "review_count",
    "diningcode_score",
    "keywords",
    "open_hours",
    "break_time",
    "last_order",
    "holiday",
    "weekly_hours",
    "menu_items",
    "price_min",
    "price_max",
    "image_urls",
    "facilities",
    "best_menu",
    "open_status",
    "detail_source",
)


async def stored_stores(conn: psycopg.AsyncConnection[Any]) -> dict[str, dict[str, Any]]:
    """rid -> the stored row's scored fields."""
    cur = await conn.execute(f"SELECT diningcode_place_id, {', '.join(SCORED_COLUMNS)} FROM stores")
    return {row[0]: dict(zip(SCORED_COLUMNS, row[1:])) for row in await cur.fetchall()}


async def rejected_rids(conn: psycopg.AsyncConnection[Any], run_id: int | None = None) -> set[str]:
    """The store ids rejected (by one run, or by any)."""
    query = "SELECT diningcode_place_id FROM rejected_stores"
    cur = await conn.execute(query + (" WHERE run_id = %s" if run_id else ""), (run_id,) if run_id else ())
    return {rid for (rid,) in await cur.fetchall()}


async def store_hashes(conn: psycopg.AsyncConnection[Any]) -> dict[str, str]:
    """rid -> content_hash of every stored store: what changed between two moments, in one look."""
    cur = await conn.execute("SELECT diningcode_place_id, content_hash FROM stores")
    return dict(await cur.fetchall())


async def load_result(settings: Settings, run_id: int | None = None) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """(stored rid -> the row's scored fields, rejected rids [of one run]) from the database."""
    conn = await connect(database_url(settings), settings.db_schema)
    try:
        return await stored_stores(conn), await rejected_rids(conn, run_id)
    finally:
        await conn.close()


def print_score(settings: Settings, seed: int, scale: float) -> Score:
    stored, rejected = asyncio.run(load_result(settings))
    result = score(build_world(seed, scale), stored, rejected, settings.districts)
    verdict = "PERFECT" if result.perfect else "DIFFERENCES"
    print(
        f"score vs replica truth: {verdict}\n"
        f"  expected {result.expected} stores ({result.expected_refill} all-you-can-eat),"
        f" stored {result.stored} ({result.stored_refill})\n"
        f"  missing {len(result.missing)}, extra {len(result.extra)}, wrong district {len(result.wrong_district)},"
        f" wrong refill flag {len(result.wrong_refill_flag)},"
        f" defective rejected {result.rejected_found}/{result.rejected_expected}\n"
        f"  fields checked {result.fields_checked}, wrong "
        + (", ".join(f"{c} {len(r)}" for c, r in sorted(result.wrong_fields.items())) or "0"),
        flush=True,
    )
    return result


def print_runs(runs: list[dict[str, Any]]) -> None:
    print(
        f"{'id':>5}  {'status':11} {'trigger':8} {'started (UTC)':19}  {'elapsed':>8}  {'units':>9}  {'stores':>7}"
        f"  {'resumed':>7}  site"
    )
    for run in runs:
        started = run["started_at"].strftime("%Y-%m-%d %H:%M:%S")
        elapsed = (run["finished_at"] - run["started_at"]).total_seconds() if run["finished_at"] else None
        stores = run["counts"].get("stores", "")
        shown = f"{elapsed:.0f}s" if elapsed is not None else "-"
        units = f"{run['units_done']}/{run['units']}"
        print(
            f"{run['id']:>5}  {run['status']:11} {run['trigger']:8} {started:19}  {shown:>8}  {units:>9}  {stores:>7}"
            f"  {run['resumed']:>7}  {run['site']}"
        )
    # A running run is going, or its master died (no process holds its lock): that one can be resumed.
    if orphans := [r["id"] for r in runs if r["status"] == "running" and "master" in r and r["master"] is None]:
        print(f"\nrun {orphans[0]}'s master is gone (no stage5 process holds it): python -m stage5 crawl --resume")
    elif going := [r["id"] for r in runs if r["status"] == "running"]:
        print(f"\nrun {going[0]} is running: stop it (Ctrl-C, or Stop in the console) before resuming it")
    elif resumable := [r["id"] for r in runs if r["status"] == "interrupted"]:
        print(f"\nrun {resumable[0]} can be resumed: python -m stage5 crawl --resume")


def print_slots(slots: list[tuple[str, Any, str, str | None]]) -> None:
    for job, slot, status, reason in slots:
        print(f"{slot:%Y-%m-%d %H:%M} UTC  {job:16} {status:8} {reason or ''}")


def _listing_lines(summary: RunSummary) -> list[str]:
    """Listings: how many districts were complete (the site's count reached), and a COMPLETENESS line for
    each that was not."""
    if not summary.listings:
        return []
    listings = summary.listings.values()
    counted = sum(v["site_count"] or 0 for v in listings)
    split = sum(v["split"] for v in listings)
    skipped = f"; {summary.skipped_entries} entries that were not a store skipped" if summary.skipped_entries else ""
    lines = [
        f"  listings       {len(summary.listings) - len(summary.incomplete_districts)}/{len(summary.listings)}"
        f" districts complete: the site counts {counted}, found {sum(v['found'] for v in listings)},"
        f" {split} queries split{skipped}"
    ]
    for district in summary.incomplete_districts:
        v = summary.listings[district]
        lines.append(
            f"  COMPLETENESS   {district} incomplete: site counts {v['site_count']}, found {v['found']},"
            f" {v['split']} queries split, {v['bottomed']} still truncated ({v['reason']});"
            " no store of it was counted missing this run"
        )
    return lines


def _coverage_lines(summary: RunSummary) -> list[str]:
    """Field coverage: what moved against the last good runs, and the drops that made the run partial."""
    lines = []
    for kind in ("search", "detail"):
        entry = summary.coverage.get(kind)
        if not entry:
            continue
        moved = summary.coverage_moved.get(kind) or {}
        if moved:
            shown = ", ".join(f"{f} {before:.0%}→{now:.0%}" for f, (before, now) in sorted(moved.items()))
        else:
            shown = "as in the last good runs" if summary.coverage_moved else "recorded"
        fallbacks = (
            f", {entry['ld_fallbacks']} JSON-LD values read from the markup" if entry.get("ld_fallbacks") else ""
        ) + (f", {entry['unread_values']} hours texts unreadable (kept raw)" if entry.get("unread_values") else "")
        lines.append(f"  coverage       {kind} ({entry['pages']} pages): {shown}{fallbacks}")
    for drop in summary.coverage_drops:
        where = f", mostly on {drop['layout']} pages" if drop.get("layout") else ""
        lines.append(
            f"  COVERAGE DROP  {drop['kind']}.{drop['field']} found on {drop['share']:.0%} of pages, median of the"
            f" last good runs {drop['median']:.0%}{where}: a changed page layout? (python -m stage5 parse --coverage)"
        )
    return lines


def print_changes(changes: list[dict[str, Any]]) -> None:
    """One line per change; a changed store lists its fields as old → new."""
    if not changes:
        print("no changes")
        return
    for c in changes:
        store = f"{c['name'] or ''} ({c['diningcode_place_id']})"
        line = f"run {c['run_id']:>4}  {c['kind']:10} {c['district'] or '':5} {store}"
        if c["kind"] == "changed":
            line += ": " + "; ".join(f"{f} {' → '.join(differing(old, new))}" for f, (old, new) in c["fields"].items())
        print(line)
    counts: dict[str, int] = {}
    for c in changes:
        counts[c["kind"]] = counts.get(c["kind"], 0) + 1
    print("\n" + ", ".join(f"{kind} {n}" for kind, n in counts.items()))


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict)) else str(value)


def differing(old: Any, new: Any, width: int = 60) -> tuple[str, str]:
    """Old and new cut to where they differ: the common start and end left out ('…'), a few characters
    of context kept, so two long values that differ late do not read the same."""
    a, b = _text(old), _text(new)
    if len(a) <= width and len(b) <= width:
        return a, b
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    end = 0
    while end < min(len(a), len(b)) - start and a[-1 - end] == b[-1 - end]:
        end += 1
    begin, end = max(0, start - 10), max(0, end - 10)  # 10 characters of context either side

    def cut(text: str) -> str:
        middle = text[begin : len(text) - end]
        shown = middle if len(middle) <= width else middle[: width - 1] + "…"
        return ("…" if begin else "") + shown + ("…" if end and len(middle) <= width else "")

    return cut(a), cut(b)


def _cache_trouble(summary: RunSummary) -> str:
    """A cache that could not be reached must not read as a cold one."""
    if not summary.cache_errors:
        return ""
    return f"; Redis failed {summary.cache_errors} times (cache_unavailable in the log): answers were fetched instead"


def _governor(summary: RunSummary) -> str:
    """What the memory governor did: its actions here; on Celery each worker machine governs its own."""
    if summary.engine != "local":
        return "on each worker machine (its --memory-budget-mb; processes replaced above)"
    return ", ".join(f"{k} {v}" for k, v in summary.governor_actions.items()) or "no action"
