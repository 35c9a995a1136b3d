"""Log lines: logfmt (escaped values, never a repr) or JSON, the run id bound to every line."""

from __future__ import annotations

import json
import logging

from stage5.logs import EventFormatter, bind, log_event


def _record(**fields: object) -> logging.LogRecord:
    captured: list[logging.LogRecord] = []
    logger = logging.getLogger("stage5.test-logs")
    handler = logging.Handler()
    handler.emit = captured.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        log_event(logger, "retry", logging.WARNING, **fields)
    finally:
        logger.removeHandler(handler)
    return captured[0]


def test_logfmt_escapes_values_and_writes_no_reprs() -> None:
    bind(run_id=42)
    try:
        record = _record(url="http://x/a b", reason=ValueError('bad "quote"\nnext'), counts={"a": 1}, none=None)
        line = EventFormatter("logfmt").format(record)
    finally:
        bind(run_id=None)
    assert " level=warning logger=stage5.test-logs event=retry run_id=42 " in line
    assert 'url="http://x/a b"' in line
    assert 'reason="ValueError: bad \\"quote\\"\\nnext"' in line
    assert 'counts="{\\"a\\":1}"' in line and "none=" not in line and "\n" not in line


def test_json_lines_carry_the_same_fields() -> None:
    bind(run_id=7)
    try:
        line = EventFormatter("json").format(_record(attempt=2, wait_s=1.23456, error=KeyError("k")))
    finally:
        bind(run_id=None)
    data = json.loads(line)
    assert data["event"] == "retry" and data["run_id"] == 7 and data["attempt"] == 2
    assert data["wait_s"] == 1.23456 and data["error"] == "KeyError: 'k'" and data["level"] == "warning"
