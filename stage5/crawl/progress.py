"""The live view: on a terminal a `rich` live area fitted to its width (figures, elapsed, ETA, the
districts still going) with warnings printed above it; plain periodic lines otherwise; and the
structured `stage5_performance.log` line every few seconds."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from stage5.logs import log_event

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
    district_units: dict[str, tuple[int, int]] = field(default_factory=dict)  # district -> (done, total) units


class Progress:
    def __init__(
        self, interval_s: float, stream: TextIO | None = None, quiet: bool = False, width: int | None = None
    ) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet  # record and log, print nothing (perftest)
        self.tty = self.stream.isatty()
        self.interval_s = interval_s
        self.started = time.monotonic()
        self._last_log = self._last_plain = self.started
        self._last_figures: Figures | None = None
        self._last_at = self.started
        self.history: list[tuple[float, Figures]] = []  # (seconds since start, figures), for plots
        self.width = width  # None: the terminal's
        self.live: Live | None = None

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
        hits = hit_rate(f)
        if force or now - self._last_log >= self.interval_s:
            pages_s, rows_s, per_hour = self._rates(f, now)
            log_event(  # fields of the line (logfmt keys, JSON members), not one message string
                perf_log,
                "perf",
                stores=f.stores,
                stores_per_hour=round(per_hour),
                pages_per_s=round(pages_s, 1),
                requests=f.requests,
                bytes=f.bytes,
                cache_hit_rate=round(hits, 3),
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
            self._last_log, self._last_figures, self._last_at = now, f, now
        if self.quiet:
            return
        if self.tty:
            self._show(f, now)
        elif force or now - self._last_plain >= PLAIN_EVERY_S:
            self.stream.write(f"progress {plain_line(f, now - self.started)}\n")
            self.stream.flush()
            self._last_plain = now

    def _show(self, f: Figures, now: float) -> None:
        if self.live is None:
            console = Console(file=self.stream, width=self.width, highlight=False)
            # redirect_stderr: warnings and errors logged meanwhile are printed above the live area
            self.live = Live(console=console, auto_refresh=False, redirect_stderr=True, redirect_stdout=False)
            self.live.start()
        self.live.update(view(f, now - self.started), refresh=True)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


def eta_s(f: Figures, elapsed_s: float) -> float | None:
    """Seconds left: the units remaining over the rate units finished so far. Detail units appear only as
    a district's searches find stores, so a district not finished yet is expected to end with as many
    units as the finished ones had on average (counting only the units planned so far made the ETA about
    half the real one). None before the first unit finished."""
    done = sum(d for d, _ in f.district_units.values())
    if not done or elapsed_s <= 0:
        return None
    finished = [t for d, t in f.district_units.values() if d == t and t]
    typical = sum(finished) / len(finished) if finished else 0.0
    expected = sum(t if d == t else max(t, typical) for d, t in f.district_units.values())
    return max(expected - done, 0.0) / (done / elapsed_s)


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def hit_rate(f: Figures) -> float:
    looked = f.cache_hits + f.cache_misses
    return f.cache_hits / looked if looked else 0.0


def plain_line(f: Figures, elapsed_s: float) -> str:
    """The periodic line when stderr is not a terminal (logs, CI)."""
    return (
        f"elapsed {_clock(elapsed_s)} eta {_clock(eta_s(f, elapsed_s))} | districts {f.districts_done}/{f.districts}"
        f" | stores {f.stores} | {f.requests / max(elapsed_s, 1e-6):.1f} pages/s | cache {hit_rate(f):.0%}"
        f" | mem {f.memory_mb:.0f}/{f.budget_mb:.0f} MB | workers {f.workers} x{f.concurrency} | queue {f.queued}"
    )


def view(f: Figures, elapsed_s: float) -> Group:
    """The live area: figures as short cells that wrap to the terminal's width, then the districts still
    going with their done/total units (one line, cut with an ellipsis)."""
    cells = [
        f"elapsed {_clock(elapsed_s)}",
        f"ETA ~{_clock(eta_s(f, elapsed_s))}",
        f"stores {f.stores:,}",
        f"{f.requests / max(elapsed_s, 1e-6):.1f} pages/s",
        f"cache {hit_rate(f):.0%}",
        f"mem {f.memory_mb:.0f}/{f.budget_mb:.0f} MB",
        f"workers {f.workers}x{f.concurrency}",
        f"queue {f.queued}",
    ]
    figures = Text(" · ".join(cells), style="bold")
    going = [f"{d} {done}/{total}" for d, (done, total) in f.district_units.items() if done < total]
    districts = Text(
        f"districts {f.districts_done}/{f.districts} done" + (": " + "  ".join(going) if going else ""),
        no_wrap=True,
        overflow="ellipsis",
    )
    return Group(figures, districts)
