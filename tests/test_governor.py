"""The governor's rules on numbers, and its measurements of real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from helpers import wait_until

from stage5.crawl import governor as gov
from stage5.crawl.governor import Governor


def make(budget: float = 1000) -> Governor:
    return Governor(budget_mb=budget, soft_ratio=0.8, hard_ratio=0.95, max_concurrency=16)


def test_under_soft_line_nothing_is_throttled() -> None:
    g = make()
    d = g.decide({"master": 100, 1: 200, 2: 200}, set())
    assert not d.throttle and d.concurrency == 16 and d.recycle is None
    assert g.actions == {"throttle": 0, "lower": 0, "raise": 0, "recycle": 0}


def test_soft_line_throttles_and_halves_concurrency_then_recovers() -> None:
    g = make()
    d = g.decide({"master": 100, 1: 400, 2: 350}, set())  # 850 >= 800
    assert d.throttle and d.concurrency == 8 and d.recycle is None
    d = g.decide({"master": 100, 1: 400, 2: 350}, set())
    assert d.concurrency == 4 and g.actions["throttle"] == 1 and g.actions["lower"] == 2
    d = g.decide({"master": 100, 1: 300, 2: 300}, set())  # 700: under soft, not yet under 0.85 x soft
    assert not d.throttle and d.concurrency == 4
    d = g.decide({"master": 100, 1: 200, 2: 200}, set())  # 500: raise again
    assert d.concurrency == 8 and g.actions["raise"] == 1
    assert g.peak_mb == 850


def test_hard_line_recycles_the_largest_worker_once() -> None:
    g = make()
    d = g.decide({"master": 300, 1: 300, 2: 400}, set())  # 1000 >= 950
    assert d.recycle == 2  # the master is never a candidate, even when it is the largest
    d = g.decide({"master": 300, 1: 300, 2: 400}, {2})  # worker 2 still draining: no second recycle
    assert d.recycle is None and g.actions["recycle"] == 1


def test_cgroup_limit_lowers_the_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    limit = tmp_path / "memory.max"
    limit.write_text(str(1024 * 2**20))
    monkeypatch.setattr(gov, "_CGROUP_FILES", (limit,))
    assert gov.effective_budget_mb(2048) == (pytest.approx(921.6), "cgroup limit 1024 MB")
    limit.write_text("max")
    assert gov.effective_budget_mb(2048) == (2048.0, "budget")


@pytest.mark.integration  # starts a process
def test_measure_counts_workers_with_children_and_the_master_alone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(60 * 2**20); time.sleep(30)"])
    try:
        grown = psutil.Process(child.pid)
        wait_until(lambda: grown.memory_info().rss >= 60 * 2**20, 30, "the child to hold its 60 MB")
        alone = gov.measure(os.getpid(), {7: 2**22 + 12345})
        as_worker = gov.measure(os.getpid(), {7: os.getpid()})
    finally:
        child.kill()
        child.wait()
    assert 10 < alone["master"] < 2000 and alone[7] == 0.0  # a vanished worker weighs nothing
    assert as_worker[7] >= alone["master"] + 55  # the same process counted with its 60 MB child


def test_explains_a_peak_over_budget() -> None:
    g = make(budget=250)
    assert g.explain() is None
    g.decide({"master": 150, 1: 60}, set())  # floor 210 MB, above the soft line of 200
    g.decide({"master": 150, 1: 110}, set())
    assert g.peak_mb == 260 and "alone need 210 MB" in (g.explain() or "")
    roomy = make(budget=1000)
    roomy.decide({"master": 100, 1: 100}, set())
    roomy.decide({"master": 100, 1: 950}, set())
    assert "between two samples" in (roomy.explain() or "")
