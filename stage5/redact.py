"""Secrets never printed: one helper that hides passwords and tokens in every URL stage5 shows.

URLs are taken apart by parsers, never by regexes: psycopg's conninfo parser for PostgreSQL (URLs and
key=value strings, `?password=` included), `urllib.parse` for everything else.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.errors import ProgrammingError

HIDDEN = "***"
_SECRET_KEYS = ("password", "passwd", "pass", "pwd", "token", "key", "secret", "apikey", "api_key", "access_token")


def redact_dsn(dsn: str) -> str:
    """A PostgreSQL URL or key=value string with its password hidden (as key=value)."""
    try:
        params = conninfo_to_dict(dsn)
    except ProgrammingError:
        return "<unparsable database URL>"
    if params.get("password"):
        params["password"] = HIDDEN
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})


def redact_url(url: str | None) -> str:
    """Any URL (or libpq key=value string) with the password of its user part and secret-looking
    query values hidden. The user part ends at the last '@', as URL parsers read it."""
    if not url:
        return ""
    if "://" not in url:
        return redact_dsn(url) if "=" in url else url
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
    except ValueError:
        return redact_dsn(url) if url.startswith(("postgresql://", "postgres://")) else "<unparsable URL>"
    user = parts.username or ""
    if parts.password is not None:
        user = f"{user}:{HIDDEN}"
    netloc = f"{user}@{host}" if user else host
    pairs = [(k, HIDDEN if k.lower() in _SECRET_KEYS else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(pairs, safe="*"), ""))


def redact_command(command: str | None) -> str:
    """A shell command is shown by its program name only: its arguments may hold tokens."""
    if not command:
        return ""
    words = command.split()
    return f"{words[0]} …" if len(words) > 1 else words[0]
