"""Settings: env vars, .env, flags on top, and clear errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from stage5.cli import main
from stage5.settings import ConfigError, load_settings


def test_defaults_are_safe_for_the_real_site(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("DATABASE_URL", "REDIS_URL", "STAGE5_REQUEST_DELAY_S", "STAGE5_HOST_CONCURRENCY"):
        monkeypatch.delenv(var, raising=False)
    s = load_settings()
    assert s.site == "https://www.diningcode.com"
    assert len(s.districts) == 25
    assert 1 / s.request_delay_s * s.host_concurrency <= 3  # about 1-2 requests/s per host


def test_env_dotenv_and_flags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("DATABASE_URL=postgresql://u@db:5432/x\nSTAGE5_PAGE_SIZE=30\n")
    monkeypatch.setenv("STAGE5_DISTRICTS", "마포구, 강남구,마포구")
    s = load_settings(page_size=40)
    assert s.database_url == "postgresql://u@db:5432/x"  # from .env, under the seed's name
    assert s.districts == ["마포구", "강남구"]  # env, split and deduped
    assert s.page_size == 40  # the flag wins over .env


def test_unknown_district_is_named() -> None:
    with pytest.raises(ConfigError, match="unknown district.*부산구"):
        load_settings(districts="강남구,부산구")


def test_bad_env_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGE5_REQUEST_DELAY_S", "fast")
    with pytest.raises(ConfigError, match="STAGE5_REQUEST_DELAY_S.*'fast'"):
        load_settings()


def test_cli_reports_bad_config_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crawl", "--districts", "강남", "--site", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "unknown district(s) 강남" in err and "강남구" in err


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("STAGE5_REQUEST_DELAY_S", "inf", "finite number"),
        ("STAGE5_REQUEST_TIMEOUT_S", "nan", "finite number"),
        ("REDIS_URL", "notaurl", "not a Redis URL"),
        ("REDIS_URL", "http://user:hunter22@host/0", "not a Redis URL"),
        ("REDIS_URL", "redis://host:port/0", "Port could not be cast"),
        ("DATABASE_URL", "mysql://root:hunter22@db/x", "not a PostgreSQL URL"),
        ("STAGE5_DB_SCHEMA", "s" * 64, "1-63 bytes"),
        ("STAGE5_DB_SCHEMA", "a-b", "letters, digits and _"),
        ("STAGE5_NOTIFY_URL", "ftp://x", "http(s) URL"),
    ],
)
def test_unusable_values_exit_2_with_the_setting_named_and_no_secret(
    env: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(env, value)
    assert main(["runs"]) == 2
    err = capsys.readouterr().err
    assert env in err and message in err and "Traceback" not in err
    assert "hunter22" not in err


def test_env_example_works_copied_unchanged(tmp_path: Path, pg_url: str) -> None:
    """`.env.example` copied to `.env`: its URLs point at this machine's services, and a database the
    server lacks is created (said in the log) — here under a scratch name, dropped afterwards."""
    import subprocess
    import sys
    import uuid

    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    root = Path(__file__).resolve().parent.parent
    example = (root / ".env.example").read_text(encoding="utf-8")
    (tmp_path / ".env").write_text(example, encoding="utf-8")
    settings = load_settings(_env_file=tmp_path / ".env")  # type: ignore[call-arg]
    assert conninfo_to_dict(settings.database_url or "")["host"] == "127.0.0.1"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"

    name = f"stage5_envtest_{uuid.uuid4().hex[:8]}"
    scratch = example.replace("/stage5\n", f"/{name}\n")
    assert scratch != example
    (tmp_path / ".env").write_text(scratch, encoding="utf-8")
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    done = subprocess.run(
        [sys.executable, "-m", "stage5", "runs"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    admin = make_conninfo(pg_url, dbname="postgres")
    try:
        assert done.returncode == 0, done.stderr[-1500:]
        assert f"database_created name={name}" in done.stderr
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
