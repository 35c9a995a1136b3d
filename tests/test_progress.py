"""The live progress view, rendered to a fixed 80-column terminal: it fits, it says elapsed time and an
ETA, warnings land above it, and non-terminals get plain periodic lines."""

from __future__ import annotations

import io
import logging
import re

from stage5.crawl.progress import Figures, Progress, eta_s, plain_line
from stage5.logs import StderrHandler

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def figures(**kw: object) -> Figures:
    base: dict[str, object] = dict(
        districts_done=3,
        districts=25,
        stores=12_345,
        pages=900,
        requests=3_000,
        bytes=10**7,
        cache_hits=30,
        cache_misses=70,
        db_rows=12_000,
        memory_mb=812.4,
        budget_mb=2048,
        per_process_mb={},
        workers=4,
        concurrency=8,
        queued=130,
        in_flight=32,
        district_units={"강남구": (40, 40), "마포구": (10, 40), "송파구": (0, 12), "서대문구": (5, 20)},
    )
    base.update(kw)
    return Figures(**base)  # type: ignore[arg-type]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_eta_from_the_units_done() -> None:
    f = figures()
    # 강남구 finished with 40 units; each unfinished district is expected to end with as many (its detail
    # units appear as its searches find stores): 160 expected, 55 done.
    assert eta_s(f, 60.0) == (160 - 55) / (55 / 60.0)
    assert eta_s(figures(district_units={"강남구": (0, 9)}), 5.0) is None


def test_eta_is_not_half_the_remaining_time_early_on() -> None:
    """One district done with 100 units, three whose searches have not found their stores yet (1 unit
    each): 300 units are left, not 3. At 100 units a minute that is three minutes."""
    units = {"강남구": (100, 100), "마포구": (0, 1), "송파구": (0, 1), "중구": (0, 1)}
    assert eta_s(figures(district_units=units), 60.0) == 300 * 60 / 100


def test_live_view_fits_80_columns_with_warnings_above(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    screen = FakeTerminal()
    monkeypatch.setattr("sys.stderr", screen)
    logger = logging.getLogger("stage5.test-progress")
    logger.addHandler(handler := StderrHandler())
    progress = Progress(5.0, screen, width=80)
    try:
        progress.update(figures())
        logger.warning("worker_died worker=2 units_returned=3")
        progress.update(figures(stores=12_400), force=True)
    finally:
        progress.close()
        logger.removeHandler(handler)
    text = ANSI.sub("", screen.getvalue())
    lines = [line for line in text.replace("\r", "\n").splitlines() if line.strip()]
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    assert any("elapsed 00:0" in line and "ETA ~" in line for line in lines)
    assert any("districts 3/25 done: 마포구 10/40" in line for line in lines)
    assert "강남구 40/40" not in text  # finished districts leave the list
    warning = next(i for i, line in enumerate(lines) if "worker_died" in line)
    assert "stores 12,400" in "".join(lines[warning:])  # the live area is drawn again below the warning
    assert not any("worker_died" in line and "stores" in line for line in lines)  # not printed into it


def test_plain_lines_when_not_a_terminal() -> None:
    stream = io.StringIO()
    progress = Progress(5.0, stream)
    progress.update(figures(), force=True)
    progress.close()
    assert stream.getvalue().startswith("progress elapsed 00:00 eta ")
    assert "stores 12345" in plain_line(figures(), 10.0)
