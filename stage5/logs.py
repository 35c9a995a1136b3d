"""Structured log lines to the console and to size-rotated files made to be tailed.

Every line is one event: logfmt by default (`ts=… level=info event=retry run_id=7 url=… attempt=2`),
JSON lines with STAGE5_LOG_FORMAT=json. The run a process works on is bound once (`bind(run_id=…)`) and
appears on every line, the workers' lines included (they are formatted by the master's handlers).
Several processes may write one file (a crawl and the scheduler that launched it): the files rotate
under an inter-process lock (concurrent-log-handler), so no two processes rotate one file at once.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from concurrent_log_handler import ConcurrentRotatingFileHandler

from stage5.errors import ConfigError

CRAWL_LOG = "parallel_crawler.log"
PERFORMANCE_LOG = "stage5_performance.log"
_MAX_BYTES = 10 * 1024 * 1024
_BACKUPS = 5
_BOUND: dict[str, Any] = {}  # fields on every line of this process (the run id)
# A log file that cannot be written (disk full, folder gone read-only): the first failure is kept here
# and the callbacks run once (a crawl stops gracefully, resumable); the file is not tried again, so the
# failure is one line at the end rather than a traceback per log line.
WRITE_FAILURES: list[OSError] = []
ON_WRITE_FAILURE: list[Callable[[], None]] = []


def bind(**fields: Any) -> None:
    """Put these fields on every following line of this process (None removes one)."""
    for key, value in fields.items():
        if value is None:
            _BOUND.pop(key, None)
        else:
            _BOUND[key] = value


def plain(value: Any) -> Any:
    """A value as a reader wants it: an exception as 'Type: message', containers as JSON, never a repr."""
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}" if str(value) else type(value).__name__
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return json.dumps(items, ensure_ascii=False, default=str, separators=(",", ":"))
    if isinstance(value, float):
        return round(value, 3)
    return value


def _logfmt_value(value: Any) -> str:
    text = str(plain(value))
    if text == "" or any(c in text for c in ' ="\n\\') or any(ord(c) < 32 for c in text):
        escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
        return '"' + "".join(c if ord(c) >= 32 else f"\\x{ord(c):02x}" for c in escaped) + '"'
    return text


def format_event(event: str, **fields: Any) -> str:
    """`event k=v …` (logfmt values), as the console shows an event."""
    return " ".join([event, *(f"{k}={_logfmt_value(v)}" for k, v in fields.items() if v is not None)])


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """One line per event, grep-able: `event=retry url=… attempt=2 reason="HTTP 503" wait_s=1.2`."""
    if logger.isEnabledFor(level):
        clean = {k: v for k, v in fields.items() if v is not None}
        logger.log(level, format_event(event, **clean), extra={"event": event, "fields": clean})


class EventFormatter(logging.Formatter):
    """logfmt or JSON lines: time, level, logger, event, the bound fields, then the event's fields."""

    def __init__(self, style: str = "logfmt") -> None:
        super().__init__()
        self.json = style == "json"

    def format(self, record: logging.LogRecord) -> str:
        event = getattr(record, "event", None)
        fields = getattr(record, "fields", None) if event else {"message": record.getMessage()}
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": event or "log",
            **_BOUND,
            **(fields or {}),
        }
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        if self.json:
            return json.dumps(
                {k: plain(v) if not isinstance(v, (int, float, bool)) else v for k, v in line.items()},
                ensure_ascii=False,
                default=str,
            )
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in line.items())


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever sys.stderr is at the time: while the live progress view runs, rich's stand-in,
    which prints the line above the live area instead of through it."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


class ConsoleFormatter(logging.Formatter):
    """stderr: `WARNING retry url=… attempt=2` (the level, then the event as logfmt)."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname} {record.getMessage()}"


class LogFile(ConcurrentRotatingFileHandler):
    """The rotating file handler, failing once: see WRITE_FAILURES."""

    failed = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.failed:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        if self.failed:
            return
        self.failed = True
        exc = sys.exc_info()[1]
        failure = exc if isinstance(exc, OSError) else OSError(str(exc))
        failure.filename = failure.filename or self.baseFilename
        WRITE_FAILURES.append(failure)
        for callback in ON_WRITE_FAILURE:
            callback()


def _rotating(path: Path, style: str) -> logging.Handler:
    try:
        handler = LogFile(str(path), maxBytes=_MAX_BYTES, backupCount=_BACKUPS, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot write the log file {path}: {exc.strerror or exc}; make the folder writable (or free space)"
            " or set STAGE5_LOG_DIR to another; nothing was started"
        ) from None
    handler.setFormatter(EventFormatter(style))
    return handler


def setup_logging(
    log_dir: Path, console_level: int = logging.WARNING, style: str = "logfmt", level: str = "INFO"
) -> None:
    """Crawl events to parallel_crawler.log, periodic figures to stage5_performance.log; WARNING+ to stderr."""
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create log folder {log_dir}: {exc}; set STAGE5_LOG_DIR to a writable folder"
        ) from None
    root = logging.getLogger("stage5")
    root.setLevel(level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    console = StderrHandler()
    console.setLevel(max(console_level, logging.getLevelName(level)))
    console.setFormatter(ConsoleFormatter())
    root.addHandler(console)
    root.addHandler(_rotating(log_dir / CRAWL_LOG, style))
    perf = logging.getLogger("stage5.performance")
    perf.propagate = False
    for handler in list(perf.handlers):
        perf.removeHandler(handler)
        handler.close()
    perf.addHandler(_rotating(log_dir / PERFORMANCE_LOG, style))
