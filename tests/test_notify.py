"""Notifications: the hook gets every run's summary, including a skipped run's."""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import hold_lock

from stage5.crawl.run import run_crawl
from stage5.errors import RunSkipped
from stage5.replica.process import ReplicaProcess


async def test_notify_command_gets_the_summary(
    make_settings: Any, pg_url: str, replica: ReplicaProcess, tmp_path: Any
) -> None:
    out = tmp_path / "summary.json"
    settings = make_settings(site=replica.url, districts="도봉구", notify_command=f"cat > {out}")
    summary = await run_crawl(settings, pg_url)
    sent = json.loads(out.read_text())
    assert sent["run_id"] == summary.run_id and sent["status"] == "succeeded" and sent["stores"] == summary.stores
    holder = hold_lock(pg_url, settings.db_schema, 30)
    try:
        with pytest.raises(RunSkipped):
            await run_crawl(settings, pg_url)
    finally:
        holder.kill()
        holder.wait()
    assert json.loads(out.read_text())["status"] == "skipped"
