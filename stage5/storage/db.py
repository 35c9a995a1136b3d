"""Connecting to PostgreSQL with errors that say which database and what to do."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

import psycopg
from psycopg import sql
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential

from stage5.errors import DatabaseUnavailable
from stage5.redact import redact_url

# libpq's words when the server answered and refused these credentials (it runs: starting it is no fix). Not
# any FATAL: "the database system is starting up" or "too many clients" are no matter of credentials.
_REFUSED_BY_SERVER = ("authentication failed", "does not exist", "no pg_hba.conf entry")


def unavailable(url: str, exc: Exception) -> DatabaseUnavailable:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if any(words in reason for words in _REFUSED_BY_SERVER):
        return DatabaseUnavailable(
            f"PostgreSQL at {redact_url(url)} refused the connection: {reason}\n"
            "  The server runs; check the user, password and database in DATABASE_URL (or --database-url)."
        )
    return DatabaseUnavailable(
        f"cannot connect to PostgreSQL at {redact_url(url)}: {reason}\n"
        "  Start it (here: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start;"
        " with Docker: docker compose up -d postgres),\n"
        "  or set DATABASE_URL to a server that runs, or unset it to let stage5 use 127.0.0.1:5432"
        " or an embedded server."
    )


async def connect(url: str, schema: str = "public", role: str = "") -> psycopg.AsyncConnection:
    """An async connection whose search_path is `schema` (created if missing). `role` shows in
    pg_stat_activity (and so in who-holds-the-lock messages)."""
    name = f"stage5 {role} pid={os.getpid()} host={socket.gethostname()}" if role else "stage5"
    try:
        conn = await psycopg.AsyncConnection.connect(url, connect_timeout=10, application_name=name[:63])
    except psycopg.OperationalError as exc:
        raise unavailable(url, exc) from None
    if schema != "public":
        await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        await conn.commit()
    return conn


def db_retrying(attempts: int = 6, on_retry: Callable[[BaseException | None], None] | None = None) -> AsyncRetrying:
    """The one retry policy for database work: while PostgreSQL restarts or a connection drops,
    back off exponentially (0.5 s doubling, at most 10 s) and try again; other errors go up at once."""

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None:
            on_retry(state.outcome.exception() if state.outcome else None)

    return AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=0.5, max=10),
        retry=retry_if_exception_type((psycopg.OperationalError, DatabaseUnavailable)),
        reraise=True,
        before_sleep=before_sleep,
    )
