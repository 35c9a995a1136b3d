"""`python -m stage5 <command>` (or `stage5 <command>`): crawl DiningCode's all-you-can-eat restaurants
of Seoul into PostgreSQL, and run, schedule, watch and query those crawls.

Exit codes (stage5.errors.ExitCode): 0 done, 1 failed, 2 bad configuration or input, 3 partial,
4 an unfinished run is in the way, 5 skipped (crawl lock held), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, fields
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from stage5 import logs
from stage5.errors import ConfigError, ExitCode, ParseError, Stage5Error
from stage5.logs import log_event, setup_logging
from stage5.replica.server import Faults
from stage5.settings import Settings, load_settings

# Every setting is a --flag of the crawl-type commands, generated from Settings (env and .env below them).
# The scheduler and the console take their own few.
_CONSOLE_ONLY = ("schedule_file", "timezone", "api_token", "console_hosts")
CRAWL_FLAGS = tuple(name for name in Settings.model_fields if name not in _CONSOLE_ONLY)
_ENV_NAMES = {"database_url": "DATABASE_URL", "redis_url": "REDIS_URL"}


def version() -> str:
    try:
        return metadata.version("stage5")
    except metadata.PackageNotFoundError:
        return "(not installed: pip install -e .)"


def _setting_help(name: str) -> str:
    info = Settings.model_fields[name]
    default = "all 25" if name == "districts" else ("unset" if info.default is None else info.default)
    env = _ENV_NAMES.get(name, f"STAGE5_{name.upper()}")
    return f"{info.description} [default: {default}; env {env}]".replace("%", "%%")


def _add_settings_flags(
    parser: argparse.ArgumentParser, names: tuple[str, ...], helps: dict[str, str] | None = None
) -> None:
    """A flag per setting; `helps` replaces a setting's help where this command treats it its own way."""
    group = parser.add_argument_group("settings (each also an environment variable or a .env line)")
    for name in names:
        annotation = Settings.model_fields[name].annotation
        choices = get_args(annotation) if get_origin(annotation) is Literal else None
        flag = f"--{name.replace('_', '-')}"
        text = (helps or {}).get(name) or _setting_help(name)
        group.add_argument(flag, dest=name, default=None, choices=choices, help=text)


def _add_cache_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-cache", dest="cache", action="store_const", const="off", help="same as --cache off")
    parser.add_argument(
        "--refresh",
        dest="cache",
        action="store_const",
        const="refresh",
        help="fetch everything afresh, still writing answers to the cache",
    )


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    overrides = {name: getattr(args, name, None) for name in CRAWL_FLAGS}
    overrides.update(extra)
    return load_settings(**overrides)


_SCHEDULE_FLAGS = (
    "site",
    "database_url",
    "redis_url",
    "db_schema",
    "log_dir",
    "log_format",
    "log_level",
    "schedule_file",
    "timezone",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stage5",
        description=__doc__.split("\n\n")[0].replace("\n", " "),
        epilog=__doc__.split("\n\n")[1].replace("\n", " "),
    )
    parser.add_argument("--version", action="version", version=f"stage5 {version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    crawl = sub.add_parser("crawl", help="crawl districts of the site into PostgreSQL")
    _add_settings_flags(crawl, CRAWL_FLAGS)
    _add_cache_flags(crawl)
    start = crawl.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true", help="continue the newest unfinished run (none: exit 2)")
    start.add_argument(
        "--resume-if-any",
        action="store_true",
        help="continue the newest unfinished run, or start one when there is none (what the scheduler runs)",
    )
    start.add_argument("--fresh", action="store_true", help="mark an unfinished run abandoned and start a new one")
    crawl.add_argument(
        "--trigger",
        default="manual",
        choices=("manual", "schedule", "celery"),
        help="recorded in the run history (the scheduler passes 'schedule')",
    )
    crawl.add_argument("--job", help="the scheduled job this run belongs to (set by the scheduler)")
    crawl.add_argument("--json", action="store_true", help="print the summary as JSON")

    demo = sub.add_parser("demo", help="offline demo: start a replica, crawl all of Seoul from it, score it")
    demo.add_argument("--seed", type=int, default=5)
    demo.add_argument("--scale", type=float, default=1.0)
    schema_help = f"The schema the demo crawls into [default: {DEMO_SCHEMA}; STAGE5_DB_SCHEMA is not read]"
    _add_settings_flags(demo, tuple(n for n in CRAWL_FLAGS if n != "site"), {"db_schema": schema_help})
    _add_cache_flags(demo)

    replica = sub.add_parser("replica", help="serve the DiningCode replica on loopback")
    replica.add_argument("--host", default="127.0.0.1")
    replica.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    replica.add_argument("--seed", type=int, default=5)
    replica.add_argument("--scale", type=float, default=1.0, help="multiplies the number of stores")
    replica.add_argument("--day", type=int, default=0, help="serve day N of the world (stores change, close, open)")
    replica.add_argument("--truth", action="store_true", help="print the ground truth as JSON lines and exit")
    for f in fields(Faults):
        flag = f"--{f.name.replace('_', '-')}"
        if isinstance(f.default, bool):
            replica.add_argument(flag, action="store_true")
        else:
            replica.add_argument(flag, type=type(f.default), default=f.default)

    parse = sub.add_parser("parse", help="parse one saved response (or a URL) and print its records as JSON")
    parse.add_argument("source", help="a file path (…_<rid>.html names the store), an http(s) URL, or a folder")
    parse.add_argument("--coverage", action="store_true", help="parse every file of the folder; per field, how many")
    parse.add_argument(
        "--kind",
        choices=("search", "list", "detail", "profile"),
        help="detail: a saved profile.php page; profile: a saved /API/profile/ JSON answer (default: guessed)",
    )
    parse.add_argument(
        "--rid", default="", help="store id of a detail page or API answer (default: from the URL or file name)"
    )

    worker = sub.add_parser("worker", help="run a Celery worker for 'crawl --engine celery' (any machine)")
    _add_settings_flags(
        worker,
        ("redis_url", "worker_concurrency", "memory_budget_mb", "worker_max_units", "celery_visibility_s", "log_dir"),
    )

    schedule = sub.add_parser("schedule", help="run jobs on their cron (default: crawl at 01:00 Asia/Seoul)")
    schedule.add_argument("--once", action="store_true", help="print the next fire times and exit")
    _add_settings_flags(schedule, _SCHEDULE_FLAGS)

    serve = sub.add_parser("serve", help="web console and JSON API (jobs, runs live, stores); runs the scheduler")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (beyond loopback: STAGE5_API_TOKEN)")
    serve.add_argument("--port", type=int, default=8000)
    _add_settings_flags(serve, _SCHEDULE_FLAGS)

    cleanup = sub.add_parser("cleanup", help="prune run history and schedule slots older than a retention")
    cleanup.add_argument("--retention-days", type=int, default=90)
    _add_settings_flags(cleanup, ("database_url", "db_schema", "log_dir"))

    perf = sub.add_parser("perftest", help="measure DB load, cache, parallel speed-up, end to end; verdicts")
    perf.add_argument("--quick", action="store_true", help="under a minute (smaller world and row counts)")
    perf.add_argument("--plot", type=Path, help="draw throughput and memory over time into this PNG")
    perf.add_argument("--json", type=Path, help="where to write the figures (default benchmarks/results/)")
    _add_settings_flags(perf, ("database_url", "redis_url", "log_dir"))

    db = sub.add_parser("db", help="database maintenance")
    db.add_argument("action", choices=("init",), help="init: create or migrate the schema")
    _add_settings_flags(db, ("database_url", "db_schema"))

    changes = sub.add_parser("changes", help="what changed: new, changed (which fields), closed, vanished, reappeared")
    changes.add_argument("--run", type=int, help="the changes one run found (default: the newest run's)")
    changes.add_argument("--since", help="every change since this date or time (e.g. 2026-11-01)")
    changes.add_argument("--district", help="one district (구) only")
    changes.add_argument("--json", action="store_true", help="one JSON object per change")
    _add_settings_flags(changes, ("database_url", "db_schema"))

    export = sub.add_parser("export", help="stores as CSV, JSON lines or GeoJSON, streamed (stdout or --out)")
    export.add_argument("--format", choices=("csv", "jsonl", "geojson"), default="csv")
    export.add_argument("--refill-only", action="store_true", help="open, confirmed all-you-can-eat stores only")
    export.add_argument("--district", help="one district (구) only")
    export.add_argument("--out", type=Path, help="file to write (default: standard output)")
    export.add_argument("--bom", action="store_true", help="start the CSV with a UTF-8 BOM (Excel reads Korean)")
    _add_settings_flags(export, ("database_url", "db_schema"))

    runs = sub.add_parser("runs", help="recent crawl runs: 'runs', 'runs show ID' (or 'runs ID'), 'runs slots'")
    runs.add_argument("action", nargs="?", default="list", help="list (default), show, slots, or a run id")
    runs.add_argument("run_id", nargs="?", type=int, help="with show: the run")
    runs.add_argument("--limit", type=int, default=20)
    _add_settings_flags(runs, ("database_url", "db_schema"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = int(COMMANDS[args.command](args))
    except Stage5Error as exc:  # every failure stage5 foresees: its message, its exit code, no traceback
        print(f"stage5: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except Exception as exc:  # the machine's failures (database read-only or full, disk full): one line
        line = _machine_failure(exc, args)
        if line is None:
            raise
        print(f"stage5: {line}", file=sys.stderr)
        return ExitCode.FAILED
    except KeyboardInterrupt:
        print("stage5: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:  # `stage5 export | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return ExitCode.OK
    from stage5.logs import WRITE_FAILURES

    if WRITE_FAILURES:  # a log file failed mid-command: the crawl stopped (resumable), said in one line
        print(f"stage5: {_machine_failure(WRITE_FAILURES[0], args)}", file=sys.stderr)
        return code or ExitCode.FAILED
    return code


def _machine_failure(exc: BaseException, args: argparse.Namespace) -> str | None:
    """One line for a failure of the machine (stage5.failures), with the command that goes on."""
    from stage5.failures import explain

    url = getattr(args, "database_url", None) or os.environ.get("DATABASE_URL") or ""
    schema = getattr(args, "db_schema", None) or os.environ.get("STAGE5_DB_SCHEMA") or "public"
    resume = ""
    if args.command in ("crawl", "demo"):
        flag = f" --db-schema {schema}" if schema != "public" else ""
        resume = f"python -m stage5 crawl{flag} --resume (without --resume if no run had started)"
    return explain(exc, argparse.Namespace(database_url=url), resume)


def cmd_replica(args: argparse.Namespace) -> int:
    from stage5.replica.render import LAYOUTS, layout_for
    from stage5.replica.server import Replica, serve
    from stage5.replica.world import build_world

    if args.layout and args.layout not in LAYOUTS:
        raise ConfigError(f"--layout {args.layout!r}: one of {', '.join(LAYOUTS)} (or none: mixed by store)")
    world = build_world(args.seed, args.scale, args.day)
    if args.truth:
        for store in world.stores:
            layout = layout_for(store.rid, args.layout, args.layout_shift)
            print(json.dumps(store.truth(layout), ensure_ascii=False))
        return ExitCode.OK
    faults = Faults(**{f.name: getattr(args, f.name) for f in fields(Faults)})
    asyncio.run(serve(Replica(world, faults), args.host, args.port))
    return ExitCode.OK


def _run(
    settings: Settings,
    resume: bool = False,
    fresh: bool = False,
    trigger: str = "manual",
    job: str | None = None,
    start_if_none: bool = False,
) -> Any:
    from stage5.crawl.run import run_crawl
    from stage5.services import database_url, redis_url

    setup_logging(settings.log_dir, style=settings.log_format, level=settings.log_level)
    logs.ON_WRITE_FAILURE[:] = [_stop_gracefully]  # a log file that fails stops the crawl, resumable
    # Redis holds the cache, Celery's broker, and the per-host gate local workers share when starts must be
    # spaced (a delay): without any of those the crawl needs no Redis.
    needs_redis = settings.cache != "off" or settings.engine != "local" or settings.request_delay_s > 0
    redis = redis_url(settings) if needs_redis else None
    return asyncio.run(
        run_crawl(
            settings,
            database_url(settings),
            redis,
            trigger,
            show_progress=True,
            resume=resume,
            fresh=fresh,
            job=job,
            start_if_none=start_if_none,
        )
    )


def _stop_gracefully() -> None:
    """What Ctrl-C does: the master stops after the units in flight; the run ends interrupted. Before the
    master listens for it (the default action would kill the process), the command just goes on."""
    import signal

    if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        os.kill(os.getpid(), signal.SIGTERM)


def _exit_code(status: str) -> int:
    codes = {"succeeded": ExitCode.OK, "partial": ExitCode.PARTIAL, "interrupted": ExitCode.INTERRUPTED}
    return codes.get(status, ExitCode.FAILED)


def cmd_crawl(args: argparse.Namespace) -> int:
    from stage5.report import print_summary

    resume = args.resume or args.resume_if_any
    summary = _run(_settings(args), resume=resume, fresh=args.fresh, trigger=args.trigger, job=args.job,
                   start_if_none=args.resume_if_any)  # fmt: skip
    if args.json:
        print(json.dumps(summary.as_dict(), ensure_ascii=False, default=str))
    else:
        print_summary(summary)
    return _exit_code(summary.status)


DEMO_SCHEMA = "stage5_demo"


def cmd_demo(args: argparse.Namespace) -> int:
    from stage5.replica.process import ReplicaProcess
    from stage5.report import print_score, print_summary

    fast = {"request_delay_s": 0, "host_concurrency": 16, "retry_backoff_s": 0.2}
    fast.update({k: v for k, v in vars(args).items() if k in fast and v is not None})
    with ReplicaProcess(seed=args.seed, scale=args.scale) as replica:
        namespace = args.cache_namespace or f"replica-seed{args.seed}-scale{args.scale}"
        # Its own schema unless one is named on its command line: a demo never writes into, scores, or
        # abandons runs of the user's real tables (STAGE5_DB_SCHEMA from the environment is not enough).
        schema = args.db_schema or DEMO_SCHEMA
        settings = _settings(args, site=replica.url, **{**fast, "cache_namespace": namespace, "db_schema": schema})
        print(
            f"replica at {replica.url} (seed {args.seed}, scale {args.scale}); crawling "
            f"{len(settings.districts)} districts into schema {schema} ...",
            flush=True,
        )
        summary = _run(settings, fresh=True)  # a demo never resumes an old demo
        served = replica.stats()
    print_summary(summary, served)
    print_score(settings, args.seed, args.scale)
    return _exit_code(summary.status)


def cmd_parse(args: argparse.Namespace) -> int:
    from stage5.site.parsers import guess_kind, rid_from_name

    if args.coverage:
        return _parse_coverage(Path(args.source))
    body = _read_source(args.source)
    kind = args.kind or guess_kind(body, args.source)
    for record in _parse_one(body, kind, args.rid or rid_from_name(args.source), args.source):
        print(json.dumps(asdict(record), ensure_ascii=False, default=_jsonable))
    return ExitCode.OK


def _read_source(source: str) -> bytes:
    if source.startswith(("http://", "https://")):
        return _download(source)
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {source}: {exc.strerror}") from None


def _parse_one(body: bytes, kind: str, rid: str, source: str) -> list[Any]:
    """Records of one saved answer; a parse failure is a one-line message, never a traceback."""
    from stage5.site.parsers import parse_any

    try:
        return parse_any(body, kind, rid)
    except ParseError as exc:
        raise ParseError(f"{source} does not parse as {kind}: {exc}") from None
    except Exception as exc:  # a parser bug: say so plainly, an operator is reading a saved page
        raise Stage5Error(f"{source}: the {kind} parser failed ({exc!r}); please report it") from None


def _parse_coverage(folder: Path) -> int:
    """Parse every saved answer in a folder; per kind and field, how many pages yielded it."""
    from stage5.coverage import count_detail, count_search, shares
    from stage5.site.parsers import guess_kind, rid_from_name

    if not folder.is_dir():
        raise ConfigError(f"--coverage needs a folder of saved pages; {folder} is not one")
    coverage: dict[str, dict[str, Any]] = {}
    failed = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        body = path.read_bytes()
        kind = guess_kind(body, path.name)
        try:
            records = _parse_one(body, kind, rid_from_name(path.name), path.name)
        except Stage5Error as exc:
            failed.append(str(exc))
            continue
        if kind in ("detail", "profile"):
            count_detail(coverage, records[0])
        else:
            count_search(coverage, records)
    for kind in sorted(coverage):
        entry = coverage[kind]
        print(f"{kind}: {entry['pages']} {'stores' if kind == 'search' else 'pages'}")
        for field, share in shares(coverage, kind).items():
            print(f"  {field:14} {entry['fields'].get(field, 0):>5}  {share:6.0%}")
    for line in failed:
        print(f"unreadable: {line}")
    return ExitCode.OK if coverage else ExitCode.USAGE


def _jsonable(value: object) -> object:
    return sorted(value) if isinstance(value, (set, frozenset)) else str(value)


def _download(url: str) -> bytes:
    from stage5.fetch import Fetcher, Request

    async def get() -> bytes:
        async with Fetcher(load_settings(site=url.split("/", 3)[0] + "//" + url.split("/", 3)[2])) as fetcher:
            return await fetcher.fetch(Request("GET", url), lambda body: body)

    return asyncio.run(get())


def cmd_perftest(args: argparse.Namespace) -> int:
    from stage5.perftest import check_plotting, plot, render, run_perftest, save
    from stage5.services import database_url, redis_url

    if args.plot:
        check_plotting()
    settings = load_settings(database_url=args.database_url, redis_url=args.redis_url, log_dir=args.log_dir)
    setup_logging(settings.log_dir, style=settings.log_format, level=settings.log_level)
    print("stage5 perftest: measuring (quick: under a minute; full: a few minutes) ...", flush=True)
    result = run_perftest(settings, database_url(settings), redis_url(settings), args.quick)
    print(render(result))
    print(f"\nfigures: {save(result, args.json)}")
    if args.plot:
        plot(result, args.plot)
        print(f"plot: {args.plot}")
    return ExitCode.OK


def _db_settings(args: argparse.Namespace) -> tuple[Settings, str]:
    from stage5.services import database_url

    settings = load_settings(database_url=args.database_url, db_schema=args.db_schema)
    return settings, database_url(settings)


def cmd_db(args: argparse.Namespace) -> int:
    from stage5.redact import redact_url
    from stage5.storage.schema import migrate, on_database

    settings, url = _db_settings(args)
    version = on_database(url, settings.db_schema, migrate)
    print(f"schema {settings.db_schema} at {redact_url(url)} is at version {version}")
    return ExitCode.OK


def cmd_runs(args: argparse.Namespace) -> int:
    from stage5.report import print_runs, print_slots
    from stage5.storage.runs import list_runs, show_run
    from stage5.storage.schema import migrate, on_database
    from stage5.storage.slots import SlotStore

    action, run_id = args.action, args.run_id
    if action.isdigit():
        action, run_id = "show", int(action)
    if action not in ("list", "show", "slots") or (action == "show") != (run_id is not None):
        raise ConfigError(f"runs {args.action}: use 'runs', 'runs show ID', 'runs ID' or 'runs slots'")
    settings, url = _db_settings(args)
    if action == "show":
        run = on_database(url, settings.db_schema, lambda conn: show_run(conn, run_id))
        if run is None:
            print(f"stage5: no run {run_id} (see python -m stage5 runs)", file=sys.stderr)
            return ExitCode.USAGE
        print(json.dumps(run, ensure_ascii=False, indent=2, default=str))
    elif action == "slots":
        on_database(url, settings.db_schema, migrate)  # so that schedule_slots exists
        store = SlotStore(url, settings.db_schema)
        try:
            print_slots(store.history()[-args.limit :])
        finally:
            store.close()
    else:
        print_runs(on_database(url, settings.db_schema, lambda conn: list_runs(conn, args.limit)))
    return ExitCode.OK


def _district(name: str | None) -> str | None:
    from stage5.site.seoul import DISTRICT_NAMES

    if name and name not in DISTRICT_NAMES:
        raise ConfigError(f"unknown district {name!r}; use Seoul's 구 names: {' '.join(DISTRICT_NAMES)}")
    return name


def cmd_changes(args: argparse.Namespace) -> int:
    from datetime import datetime

    from stage5.report import print_changes
    from stage5.storage.changes import list_changes
    from stage5.storage.schema import on_database

    try:
        since = datetime.fromisoformat(args.since).astimezone() if args.since else None
    except ValueError:
        raise ConfigError(f"--since {args.since!r}: a date or time such as 2026-11-01 or 2026-11-01T09:00") from None
    settings, url = _db_settings(args)
    district = _district(args.district)
    found = on_database(url, settings.db_schema, lambda conn: list_changes(conn, args.run, since, district))
    if args.json:
        for change in found:
            print(json.dumps(change, ensure_ascii=False, default=str))
    else:
        print_changes(found)
    return ExitCode.OK


def cmd_export(args: argparse.Namespace) -> int:
    from stage5.storage.export import export
    from stage5.storage.schema import on_database

    settings, url = _db_settings(args)
    district = _district(args.district)

    async def run(conn: Any) -> int:
        if args.out is None:
            return await export(conn, sys.stdout.buffer, args.format, args.refill_only, district, args.bom)
        try:
            with args.out.open("wb") as out:
                return await export(conn, out, args.format, args.refill_only, district, args.bom)
        except OSError as exc:
            raise ConfigError(f"cannot write {args.out}: {exc.strerror}") from None

    count = on_database(url, settings.db_schema, run)
    print(f"exported {count} stores ({args.format}){f' to {args.out}' if args.out else ''}", file=sys.stderr)
    return ExitCode.OK


def cmd_cleanup(args: argparse.Namespace) -> int:
    from stage5.storage.runs import prune
    from stage5.storage.schema import on_database

    settings, url = _db_settings(args)
    pruned = on_database(url, settings.db_schema, lambda conn: prune(conn, args.retention_days))
    print(f"pruned {pruned['runs']} runs and {pruned['slots']} schedule slots older than {args.retention_days} days")
    return ExitCode.OK


def cmd_worker(args: argparse.Namespace) -> int:

    from stage5.crawl.celery_engine import POOL_SIZE_ENV, configure, worker_argv, worker_pool_size
    from stage5.services import redis_url

    settings = load_settings(
        redis_url=args.redis_url,
        worker_concurrency=args.worker_concurrency,
        memory_budget_mb=args.memory_budget_mb,
        worker_max_units=args.worker_max_units,
        celery_visibility_s=args.celery_visibility_s,
        log_dir=args.log_dir,
    )
    setup_logging(settings.log_dir, logging.INFO, settings.log_format, settings.log_level)
    # Celery gives the root logger a handler of its own in every pool process: stage5's lines, written once
    # by stage5's handlers, would be printed again under Celery's prefix.
    logging.getLogger("stage5").propagate = False
    app = configure(redis_url(settings), settings.celery_visibility_s)
    processes = worker_pool_size(settings, os.cpu_count() or 1)
    os.environ[POOL_SIZE_ENV] = str(processes)  # its pool processes tell the master their pool's size
    argv = worker_argv(settings, processes, f"stage5-{os.getpid()}@%h")
    log_event(logging.getLogger("stage5.worker"), "celery_worker_starting", argv=" ".join(argv))
    app.worker_main(argv)
    # celery-types declares worker_main NoReturn, but Celery 5 returns once the worker has stopped
    return ExitCode.OK  # type: ignore[unreachable]


def cmd_schedule(args: argparse.Namespace) -> int:
    from stage5.schedule.service import serve

    settings = load_settings(**{k: getattr(args, k) for k in _SCHEDULE_FLAGS})
    setup_logging(settings.log_dir, style=settings.log_format, level=settings.log_level)
    return serve(settings, once=args.once)


def cmd_serve(args: argparse.Namespace) -> int:
    from stage5.web.app import serve

    settings = load_settings(**{k: getattr(args, k) for k in _SCHEDULE_FLAGS})
    setup_logging(settings.log_dir, style=settings.log_format, level=settings.log_level)
    return serve(settings, args.host, args.port)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "crawl": cmd_crawl,
    "demo": cmd_demo,
    "replica": cmd_replica,
    "parse": cmd_parse,
    "worker": cmd_worker,
    "schedule": cmd_schedule,
    "serve": cmd_serve,
    "cleanup": cmd_cleanup,
    "perftest": cmd_perftest,
    "db": cmd_db,
    "runs": cmd_runs,
    "changes": cmd_changes,
    "export": cmd_export,
}
