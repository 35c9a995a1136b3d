"""Which detail pages a run fetches: all of them, or — change-driven — only those that may have changed.

A nightly run asks the site for less when it trusts what the search answers already say: a store's
detail page is fetched when the store is new, when its listing (name, branch, address, phone, score,
rating, review count) changed since its detail was last read, when its last detail fetch failed, or when
its detail is older than `detail_max_age_runs` runs — spread so that about one in that many stores comes
due each run instead of all on one night. Pure: decided on numbers, tested without a network.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from stage5.models import StoreSummary
from stage5.validate import listing_fingerprint

REASONS = ("new", "listing_changed", "retry", "age", "skipped_unchanged")


@dataclass(frozen=True)
class Stored:
    listing_hash: str | None
    detail_run_id: int | None
    detail_due: bool
    etag: str | None = None


def fetch_reason(summary: StoreSummary, stored: Stored | None, run_id: int, max_age_runs: int) -> str | None:
    """Why this store's detail page is fetched this run, or None when the stored detail stands."""
    if stored is None or stored.detail_run_id is None:
        return "new"
    if stored.detail_due:
        return "retry"
    if stored.listing_hash != listing_fingerprint(summary):
        return "listing_changed"
    age = run_id - stored.detail_run_id
    if age >= max_age_runs or (age > 0 and (_spread(summary.rid) + run_id) % max_age_runs == 0):
        return "age"
    return None


def _spread(rid: str) -> int:
    """A store's night within the cycle; salted so it shares nothing with other uses of the id's hash."""
    return zlib.crc32(f"refresh:{rid}".encode())
