"""The live view: one line updated in place on a terminal, plain periodic lines otherwise, and the
structured `stage5_performance.log` line every few seconds."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from typing import TextIO

from stage5.logs import format_event

perf_log = logging.getLogger("stage5.performance")
PLAIN_EVERY_S = 10.0


@dataclass
class Figures:
    districts_done: int
    districts: int
    stores: int
    pages: int
    requests: int
    bytes: int
    cache_hits: int
    cache_misses: int
    db_rows: int
    memory_mb: float
    budget_mb: float
    per_process_mb: dict[str, float]
    workers: int
    concurrency: int
    queued: int
    in_flight: int


class Progress:
    def __init__(self, interval_s: float, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet  # record and log, print nothing (perftest)
        self.tty = self.stream.isatty()
        self.interval_s = interval_s
        self.started = time.monotonic()
        self._last_log = self._last_plain = self.started
        self._last_figures: Figures | None = None
        self._last_at = self.started
        self.history: list[tuple[float, Figures]] = []  # (seconds since start, figures), for plots

    def _rates(self, f: Figures, now: float) -> tuple[float, float, float]:
        prev, span = self._last_figures, max(now - self._last_at, 1e-6)
        if prev is None:
            span = max(now - self.started, 1e-6)
            return f.requests / span, f.db_rows / span, f.stores / span * 3600
        return (
            (f.requests - prev.requests) / span,
            (f.db_rows - prev.db_rows) / span,
            f.stores / max(now - self.started, 1e-6) * 3600,
        )

    def update(self, f: Figures, force: bool = False) -> None:
        now = time.monotonic()
        self.history.append((now - self.started, f))
        looked = f.cache_hits + f.cache_misses
        hit_rate = f.cache_hits / looked if looked else 0.0
        if force or now - self._last_log >= self.interval_s:
            pages_s, rows_s, per_hour = self._rates(f, now)
            perf_log.info(
                format_event(
                    "perf",
                    stores=f.stores,
                    stores_per_hour=round(per_hour),
                    pages_per_s=round(pages_s, 1),
                    requests=f.requests,
                    bytes=f.bytes,
                    cache_hit_rate=round(hit_rate, 3),
                    db_rows=f.db_rows,
                    db_rows_per_s=round(rows_s, 1),
                    memory_mb=round(f.memory_mb),
                    budget_mb=round(f.budget_mb),
                    per_process_mb=",".join(f"{k}:{v:.0f}" for k, v in f.per_process_mb.items()),
                    workers=f.workers,
                    concurrency=f.concurrency,
                    queued=f.queued,
                    in_flight=f.in_flight,
                )
            )
            self._last_log, self._last_figures, self._last_at = now, f, now
        line = (
            f"districts {f.districts_done}/{f.districts} | stores {f.stores} | "
            f"{f.requests / max(now - self.started, 1e-6):.1f} req/s | cache {hit_rate:.0%} | "
            f"mem {f.memory_mb:.0f}/{f.budget_mb:.0f} MB | workers {f.workers} x{f.concurrency} | queue {f.queued}"
        )
        if self.quiet:
            return
        if self.tty:
            self.stream.write("\r\x1b[K" + line)
            self.stream.flush()
        elif force or now - self._last_plain >= PLAIN_EVERY_S:
            self.stream.write(f"progress {line}\n")
            self.stream.flush()
            self._last_plain = now

    def close(self) -> None:
        if self.tty and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()
