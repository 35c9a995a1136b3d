"""Fidelity per page layout: a full crawl of a replica world whose detail pages are all in one layout
(then in the default mix), scored field by field against the truth; and the field coverage of the
detail pages, per layout, from the mixed crawl (what each layout's page itself yields, before the
search answer fills the rest).

    .venv/bin/python benchmarks/fidelity.py --scale 0.3
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stage5.coverage import DETAIL_FIELDS, shares
from stage5.crawl.run import run_crawl
from stage5.logs import setup_logging
from stage5.replica.process import ReplicaProcess
from stage5.replica.render import LAYOUTS, layout_for
from stage5.replica.server import Faults
from stage5.replica.truth import API, FIELDS, score
from stage5.replica.world import build_world
from stage5.report import load_result
from stage5.services import database_url
from stage5.settings import load_settings


def crawl(layout: str, scale: float, source: str = "html") -> tuple[Any, Any]:
    """One crawl of the world's pages in `layout` ('' for the mix), details read from `source` (the pages, or
    the profile API: STAGE5_DETAIL_SOURCE's default is the API first, so the page rows ask for the pages)."""
    settings = load_settings(
        site="http://127.0.0.1:9",  # replaced by the replica's URL: loopback only
        db_schema=f"bench_{uuid.uuid4().hex[:8]}",
        cache="off",
        request_delay_s=0,
        host_concurrency=16,
        log_dir=Path("benchmarks/results/logs"),
        detail_source=source,
    )
    url = database_url(settings)
    try:
        with ReplicaProcess(5, scale, Faults(layout=layout)) as replica:
            settings = settings.model_copy(update={"site": replica.url})
            summary = asyncio.run(run_crawl(settings, url))
        stored, rejected = asyncio.run(load_result(settings))
        result = score(
            build_world(5, scale),
            stored,
            rejected,
            settings.districts,
            lambda rid: API if source == "api" else (layout or layout_for(rid)),
        )
        return summary, result
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(settings.db_schema)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.3)
    args = parser.parse_args()
    setup_logging(Path("benchmarks/results/logs"))
    print(f"{'layout':10} {'status':9} {'stores':>6} {'fields checked':>14} {'right':>7} {'wrong':>5}  verdict")
    mixed = None
    for layout, source in (*((x, "html") for x in LAYOUTS), ("", "html"), ("", "api")):
        summary, result = crawl(layout, args.scale, source)
        wrong = sum(len(r) for r in result.wrong_fields.values())
        verdict = (
            "PERFECT" if result.perfect else f"DIFFERENCES {dict((k, len(v)) for k, v in result.wrong_fields.items())}"
        )
        name = "api" if source == "api" else layout or "mixed"
        print(
            f"{name:10} {summary.status:9} {summary.stores:>6} {result.fields_checked:>14}"
            f" {result.fields_checked - wrong:>7} {wrong:>5}  {verdict}",
            flush=True,
        )
        mixed = summary if not layout and source == "html" else mixed
    assert mixed is not None
    kinds = ["detail", *(f"detail:{x}" for x in LAYOUTS)]
    print(
        "\nfield coverage of the mixed crawl's detail pages (pages: "
        + ", ".join(f"{k} {mixed.coverage.get(k, {}).get('pages', 0)}" for k in kinds)
        + ")"
    )
    print(f"{'field':14}" + "".join(f"{k.removeprefix('detail:'):>11}" for k in kinds))
    table = {k: shares(mixed.coverage, k) for k in kinds}
    for field in DETAIL_FIELDS:
        print(f"{field:14}" + "".join(f"{table[k].get(field, 0):>11.0%}" for k in kinds))
    print(f"\n{len(FIELDS)} fields scored per store: {', '.join(FIELDS)}")


if __name__ == "__main__":
    main()
