"""Scoring a crawl against the replica's ground truth: what is missing, extra, or misfiled."""

from __future__ import annotations

from dataclasses import dataclass, field

from stage5.replica.world import World


@dataclass
class Score:
    expected: int  # Seoul stores a correct crawl stores (refill or not)
    expected_refill: int
    stored: int
    stored_refill: int
    missing: list[str] = field(default_factory=list)  # expected, not stored
    extra: list[str] = field(default_factory=list)  # stored, not expected (outside Seoul, defective)
    wrong_district: list[str] = field(default_factory=list)
    wrong_refill_flag: list[str] = field(default_factory=list)
    rejected_expected: int = 0
    rejected_found: int = 0

    @property
    def perfect(self) -> bool:
        return not (self.missing or self.extra or self.wrong_district or self.wrong_refill_flag) and (
            self.rejected_found == self.rejected_expected
        )


def score(world: World, stored: dict[str, tuple[str, bool]], rejected: set[str], districts: list[str]) -> Score:
    """`stored`: rid -> (district, is_refill) as in the stores table; `rejected`: rids in rejected_stores."""
    wanted = [s for s in world.stores if s.district in districts]
    expected = {s.rid: s for s in wanted if s.expect == "store"}
    to_reject = {s.rid for s in wanted if s.expect == "reject"}
    result = Score(
        expected=len(expected),
        expected_refill=sum(s.is_refill for s in expected.values()),
        stored=len(stored),
        stored_refill=sum(refill for _, refill in stored.values()),
        rejected_expected=len(to_reject),
        rejected_found=len(to_reject & rejected),
    )
    result.missing = sorted(set(expected) - set(stored))
    result.extra = sorted(set(stored) - set(expected))
    for rid, (district, refill) in stored.items():
        truth = expected.get(rid)
        if truth is None:
            continue
        if truth.district != district:
            result.wrong_district.append(rid)
        if truth.is_refill != refill:
            result.wrong_refill_flag.append(rid)
    return result
