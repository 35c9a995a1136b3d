"""A finished unit's outcome (stage5.units: SearchOutcome, DetailOutcome) as stored in crawl_units.result.
data/unit_outcomes.json holds results written by the code before outcomes were typed (a crawl of the
replica, seed 5, scale 0.1, 강남구, 마포구, 구로구; the second run change-driven): a resumed run, or the
end of a run begun by that code, reads them back to the same figures."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from stage5.site.diningcode import queries_for
from stage5.site.seoul import DISTRICT_BY_NAME
from stage5.tallies import DistrictTally, UnitTally
from stage5.units import (
    DetailOutcome,
    FailedUnit,
    SearchOutcome,
    SearchUnit,
    district_tallies,
    failure_outcome,
    outcome_from_json,
)

STORED = json.loads((Path(__file__).parent / "data" / "unit_outcomes.json").read_text())


@pytest.mark.parametrize("row", STORED, ids=[f"{r['kind']}-{i}" for i, r in enumerate(STORED)])
def test_a_stored_outcome_reads_back_to_the_same_json(row: dict[str, Any]) -> None:
    outcome = outcome_from_json(row["kind"], row["result"])
    written = outcome.to_json()
    # Every key stored keeps its name and value (a renamed field would drop one here).
    assert {k: written.get(k) for k in row["result"]} == row["result"]
    assert outcome_from_json(row["kind"], written) == outcome


def test_stored_outcomes_read_back_as_their_fields() -> None:
    search, refreshed, detail = (outcome_from_json(r["kind"], r["result"]) for r in STORED)
    assert isinstance(search, SearchOutcome) and isinstance(refreshed, SearchOutcome)
    assert (search.anchor, search.query, search.count, search.pages) == (True, "강남구 무한리필", 35, 2)
    assert len(search.listed) == 35 and search.tally.bytes == 27223
    assert (refreshed.found, refreshed.kept) == (32, 27)
    assert refreshed.details == STORED[1]["result"]["details"] and sum(refreshed.details.values()) == 32
    assert isinstance(detail, DetailOutcome)
    assert (detail.stored, detail.refill, detail.rejected, detail.not_modified) == (20, 14, 0, 0)


def test_a_districts_figures_are_summed_from_its_outcomes() -> None:
    rows = [("강남구", r["kind"], r["state"], r["result"]) for r in STORED]
    rows.append(("강남구", "detail", "pending", None))
    tally = district_tallies(["강남구", "마포구"], rows)
    assert tally["마포구"] == DistrictTally(started=tally["마포구"].started, done=True)
    gangnam = tally["강남구"]
    assert (gangnam.units, gangnam.pending, gangnam.done) == (4, 1, False)
    assert (gangnam.pages, gangnam.found, gangnam.kept, gangnam.stored, gangnam.refill) == (7, 32, 27, 20, 14)
    cost = UnitTally.total(outcome_from_json(r["kind"], r["result"]).tally for r in STORED)
    assert cost.bytes == sum(r["result"]["bytes"] for r in STORED)


def test_a_unit_that_failed_whole_is_stored_with_its_failure() -> None:
    unit = SearchUnit(7, queries_for(DISTRICT_BY_NAME["강남구"])[0])
    failure = FailedUnit("unit", "강남구", "unit 7", "worker stalled on this unit 2 times")
    outcome = failure_outcome(unit, failure)
    assert isinstance(outcome, SearchOutcome) and not outcome.anchor  # counted as no listing of the district
    stored = json.loads(json.dumps(outcome.to_json()))
    assert outcome_from_json("search", stored).failed == [failure]
    assert stored["failed"] == [asdict(failure)]
