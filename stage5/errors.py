"""Every error stage5 raises on purpose, under one base that carries its exit code.

`cli.main` catches `Stage5Error` once and prints its message: a user sees what failed, where, and
what to do, never a traceback, for every failure listed here.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, Literal


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the run failed, or a service (PostgreSQL, Redis) could not be used
    USAGE = 2  # bad configuration or input
    PARTIAL = 3  # finished, but some units failed or the data looked suspect
    UNFINISHED = 4  # an unfinished run is in the way, or another process is its master
    SKIPPED = 5  # another run held the crawl lock
    INTERRUPTED = 130  # Ctrl-C / SIGTERM (128 + SIGINT, as shells report it)


class Stage5Error(Exception):
    """Base of stage5's errors: the message is for the user; `exit_code` is what the CLI returns."""

    exit_code: ExitCode = ExitCode.FAILED


class ConfigError(Stage5Error):
    """A setting or an input has a value stage5 cannot use; the message names it and the fix."""

    exit_code = ExitCode.USAGE


class JobError(ConfigError):
    """A scheduled job definition stage5 cannot use; the message names the job and the field."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class ParseError(Stage5Error, ValueError):
    """A response that does not have the shape stage5 expects (what was missing is in the message)."""

    exit_code = ExitCode.USAGE


# Why an answer was no evidence about its store (counted per run; "" for every other failure).
Cause = Literal["", "blocked", "not_this_store", "redirect"]


class Unverified(ParseError):
    """An answer that parsed but is not evidence about the store asked for: it changes nothing stored and
    never enters the cache. `kind` says which check it failed (counted per run)."""

    kind: Cause = ""


class NotThisStore(Unverified):
    """A detail answer (page or API) that names another store's id, or none of this store's listing facts."""

    kind: Cause = "not_this_store"


class BlockedAnswer(Unverified):
    """A captcha, access-denied, login, rate-limit or error page, the home page, or a page without the store
    sections, served in place of the answer (often with status 200)."""

    kind: Cause = "blocked"

    def __init__(self, message: str, final: bool = True) -> None:
        super().__init__(message)
        self.final = final  # a captcha or a denial stays: asking again at once would only press on


class DatabaseUnavailable(Stage5Error):
    """PostgreSQL could not be reached; the message names the URL (password hidden) and the fix."""


class SchemaTooNew(Stage5Error):
    """The database was migrated by a newer stage5 than this one."""


class ServiceMissing(Stage5Error):
    """A service the chosen mode needs is not configured (e.g. Redis for the Celery engine)."""


class RunBusy(Stage5Error):
    """Another process is the master of that run right now."""

    exit_code = ExitCode.UNFINISHED


class UnfinishedRun(Stage5Error):
    """A run was left unfinished; the user chooses: resume it or start afresh."""

    exit_code = ExitCode.UNFINISHED

    def __init__(self, run: dict[str, Any], command: str = "python -m stage5 crawl") -> None:
        self.run = run
        super().__init__(
            f"run {run['id']} is unfinished ({run['status']}, started {run['started_at']:%Y-%m-%d %H:%M} UTC,"
            f" {run['units_done']}/{run['units']} units done; site {run['site']}).\n"
            f"  Resume it:         {command} --resume   (its site, districts and page settings are the run's)\n"
            f"  Or start afresh:   {command} --fresh   (run {run['id']} is then marked abandoned)"
        )


class RunConflict(ConfigError):
    """`--resume` with a setting that contradicts the run being resumed (its site, its districts)."""


class RobotsDisallowed(ConfigError):
    """The site's robots.txt disallows a path the crawl needs (and robots_txt is 'obey')."""


class CrawlDelayTooLong(ConfigError):
    """The site's robots.txt asks for a Crawl-delay above crawl_delay_max_s (and robots_txt is 'obey')."""


class RunSkipped(Stage5Error):
    """Another run holds the crawl lock; this one was skipped and recorded as such."""

    exit_code = ExitCode.SKIPPED

    def __init__(self, run_id: int, holder: dict[str, Any] | None) -> None:
        self.run_id, self.holder = run_id, holder
        who = f"{holder['application']} (backend {holder['pid']}, since {holder['since']})" if holder else "another run"
        super().__init__(f"skipped (run {run_id} recorded as skipped): the crawl lock is held by {who}")


class WorkerCrashLoop(Stage5Error):
    """Worker processes die as they start (a bad setting, a broken install): the run stops with the cause."""


class LockLost(Stage5Error):
    """This master lost its run lock (its database session ended): it stops without writing more, since
    another process may now own the run."""
