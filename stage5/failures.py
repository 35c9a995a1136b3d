"""Failures of the machine rather than of stage5: a database that is read-only or full, a log folder
that cannot be written or is full. Each becomes one line saying what failed, where, what to do and how
to go on (the resume command); no traceback (nothing stored is lost: a run's rows are written in
transactions, and an unfinished run resumes)."""

from __future__ import annotations

import errno
from typing import Any

import psycopg

from stage5.redact import redact_url

FULL = (errno.ENOSPC, errno.EDQUOT)
UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS, errno.EISDIR, errno.ENOTDIR)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _database(exc: psycopg.Error, where: str) -> str | None:
    state = getattr(exc, "sqlstate", None) or ""
    if state == "25006":
        what = f"the database {where} is read-only ({_first_line(exc)})"
        fix = "make it writable (a primary, not a standby; default_transaction_read_only off)"
    elif state == "53100":
        what, fix = f"the database {where} is full ({_first_line(exc)})", "free disk space on its server"
    elif state.startswith("53"):
        what, fix = f"the database {where} ran out of resources ({_first_line(exc)})", "free them on its server"
    elif state == "42501":
        what = f"the database {where} refuses this user ({_first_line(exc)})"
        fix = "grant it the rights to create and write the schema"
    else:
        return None
    return f"{what}; {fix}"


def _disk(exc: OSError) -> str | None:
    where = exc.filename or "a file"
    if exc.errno in FULL:
        return f"cannot write {where}: the disk is full ({exc.strerror}); free space there or set STAGE5_LOG_DIR"
    if exc.errno in UNWRITABLE:
        return f"cannot write {where} ({exc.strerror}); make it writable or set STAGE5_LOG_DIR to a writable folder"
    return None


def explain(exc: BaseException, settings: Any = None, resume: str = "") -> str | None:
    """The one line for a failure of the machine, None for anything else (a bug keeps its traceback)."""
    where = f"at {redact_url(settings.database_url)}" if settings is not None and settings.database_url else ""
    if isinstance(exc, psycopg.Error):
        line = _database(exc, where)
    elif isinstance(exc, OSError):
        line = _disk(exc)
    else:
        line = None
    if line is None:
        return None
    then = f"; then: {resume} (nothing stored was lost)" if resume else "; nothing stored was lost"
    return line + then
