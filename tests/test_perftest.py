"""perftest runs end to end, cleans up after itself, and reports what it measured (figures are not
asserted against targets here: benchmarks print those)."""

from __future__ import annotations

import psycopg
import redis

from stage5.perftest import DB_METHODS, render, run_perftest, save
from stage5.settings import load_settings


def test_quick_perftest_measures_everything_and_cleans_up(pg_url: str, redis_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(database_url=pg_url, redis_url=redis_url, log_dir=tmp_path / "logs")
    result = run_perftest(settings, pg_url, redis_url, quick=True)
    db, crawl = result["db"], result["crawl"]
    assert all(db[f"{key}_rows_per_s"] > 0 for key, _ in DB_METHODS)
    assert crawl["cache"]["first_requests"] > 500
    assert crawl["cache"]["second_requests"] <= 0.05 * crawl["cache"]["first_requests"]
    assert crawl["end_to_end"]["stores"] > 500 and crawl["series"]
    targets = [v["target"] for v in result["verdicts"]]
    assert targets[:4] == ["COPY vs row/commit", "cache hit rate", "polite speed", "memory"]
    text = render(result)
    assert "typed COPY (binary) + upsert" in text and "verdict" in text
    path = save(result, tmp_path / "perf.json")
    assert path.read_text().startswith("{")
    with psycopg.connect(pg_url) as conn:  # its scratch schema is gone
        left = conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'perftest_%'").fetchone()
    assert left == (0,)
    assert not list(redis.Redis.from_url(redis_url).scan_iter("stage5:v1:perftest-*", count=1000))
