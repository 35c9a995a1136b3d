"""Run history: `cleanup` prunes old runs and slots (never a resumable run); `runs` shows them."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from helpers import query

from stage5.storage.slots import SlotStore


def test_cleanup_prunes_old_history_and_runs_show(
    slot_store: SlotStore, make_settings: Any, pg_url: str, schema: str
) -> None:
    settings = make_settings()
    query(
        settings,
        "INSERT INTO crawl_runs (id, status, site, districts, started_at) VALUES"
        " (1, 'succeeded', 's', '{}', now() - interval '100 days'),"
        " (2, 'interrupted', 's', '{}', now() - interval '100 days'),"
        " (3, 'succeeded', 's', '{}', now() - interval '1 day')",
    )
    slot_store.claim("crawl-all", datetime.now(UTC) - timedelta(days=120), "s")
    slot_store.claim("crawl-all", datetime.now(UTC) - timedelta(days=2), "s")
    base = [sys.executable, "-m", "stage5"]
    db = ["--database-url", pg_url, "--db-schema", schema]
    out = subprocess.run([*base, "cleanup", "--retention-days", "90", *db], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "pruned 1 runs and 1 schedule slots" in out.stdout
    left = query(settings, "SELECT id FROM crawl_runs ORDER BY id")
    assert left == [(2,), (3,)]  # an interrupted run stays resumable, whatever its age
    shown = subprocess.run([*base, "runs", "show", "3", *db], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and json.loads(shown.stdout)["id"] == 3
    missing = subprocess.run([*base, "runs", "show", "99", *db], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no run 99" in missing.stderr
