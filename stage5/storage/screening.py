"""Row screening: the values PostgreSQL would refuse (a NUL in a text, a number out of its column's range,
NaN), found before COPY so that one poison value rejects one store, not a batch. The master screens each
unit's records before they reach the writer (stage5.storage.stores); the columns are in columns.py.
"""

from __future__ import annotations

import logging
import math
from dataclasses import fields, is_dataclass

from stage5.logs import log_event
from stage5.models import Rejection, StoreRecord
from stage5.units import DetailResult

log = logging.getLogger("stage5.storage")

_RECORD_FIELDS = tuple(f.name for f in fields(StoreRecord))
INT4 = (-(2**31), 2**31 - 1)
REAL_MAX = 3.4e38  # diningcode_rating is a real (float4)


def row_problem(record: StoreRecord) -> str | None:
    """Why PostgreSQL would refuse this record's row (a NUL in a text, a number out of its column's
    range, NaN), or None. Checked before COPY, so one poison value rejects one store, not a batch."""
    for name in _RECORD_FIELDS:  # the values as they are: asdict() would deep-copy every record
        problem = _value_problem(getattr(record, name))
        if problem:
            return f"{name}: {problem}"
    if record.rating is not None and abs(record.rating) > REAL_MAX:
        return f"rating: {record.rating} out of range"
    return None


def screen_rows(result: DetailResult) -> None:
    """Move the records PostgreSQL would refuse into the result's rejections (with the reason)."""
    kept = []
    for record in result.records:
        problem = row_problem(record)
        if problem is None:
            kept.append(record)
            continue
        log_event(log, "store_rejected", rid=record.rid, reason=problem, url=record.source_url)
        payload = {"name": record.name, "address": record.address}
        result.rejections.append(
            Rejection(record.rid, f"unstorable value: {problem}", record.source_url, record.district, payload)
        )
    result.records = kept


def _value_problem(value: object) -> str | None:
    if isinstance(value, str):
        return "text holds a NUL character" if "\x00" in value else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return None if INT4[0] <= value <= INT4[1] else f"{value} out of the integer range"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value} is not a finite number"
    if isinstance(value, dict):
        return next((p for p in map(_value_problem, value.values()) if p), None)
    if is_dataclass(value):  # a menu item
        return next((p for p in (_value_problem(getattr(value, f.name)) for f in fields(value)) if p), None)
    if isinstance(value, (list, tuple)):
        return next((p for p in map(_value_problem, value) if p), None)
    return f"unexpected {type(value).__name__}"
