"""Structured log lines ('event key=value …') to the console and to size-rotated files made to be tailed."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path
from typing import Any

from stage5.errors import ConfigError

CRAWL_LOG = "parallel_crawler.log"
PERFORMANCE_LOG = "stage5_performance.log"
_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_MAX_BYTES = 10 * 1024 * 1024
_BACKUPS = 5


def _value(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' ="\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def format_event(event: str, **fields: Any) -> str:
    return " ".join([event, *(f"{k}={_value(v)}" for k, v in fields.items() if v is not None)])


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """One line per event, grep-able: `retry url=… attempt=2 reason="HTTP 503" wait_s=1.2`."""
    if logger.isEnabledFor(level):
        logger.log(level, format_event(event, **fields))


def _rotating(path: Path) -> logging.Handler:
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=_MAX_BYTES, backupCount=_BACKUPS, encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT))
    return handler


def setup_logging(log_dir: Path, console_level: int = logging.WARNING) -> None:
    """Crawl events to parallel_crawler.log, periodic figures to stage5_performance.log; WARNING+ to stderr."""
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create log folder {log_dir}: {exc}; set STAGE5_LOG_DIR to a writable folder"
        ) from None
    root = logging.getLogger("stage5")
    root.setLevel(logging.INFO)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(console_level)
    console.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root.addHandler(console)
    root.addHandler(_rotating(log_dir / CRAWL_LOG))
    perf = logging.getLogger("stage5.performance")
    perf.propagate = False
    for handler in list(perf.handlers):
        perf.removeHandler(handler)
        handler.close()
    perf.addHandler(_rotating(log_dir / PERFORMANCE_LOG))
