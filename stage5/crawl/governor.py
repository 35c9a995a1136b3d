"""The memory governor: measure the process tree, decide throttle / lower / raise / recycle.

`measure` does the I/O (psutil); `Governor.decide` is pure, so its rules are tested on numbers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from stage5.logs import log_event

log = logging.getLogger("stage5.governor")

_CGROUP_FILES = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


def cgroup_limit_mb() -> float | None:
    """The container's memory limit (cgroup v2, then v1), or None when there is none."""
    for path in _CGROUP_FILES:
        try:
            raw = path.read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < 1 << 60:  # v1 reports "no limit" as a huge number
            return int(raw) / 2**20
    return None


def effective_budget_mb(budget_mb: float) -> tuple[float, str]:
    """The budget, or 90% of a lower cgroup limit (the kernel kills at the limit, not near it)."""
    limit = cgroup_limit_mb()
    if limit is not None and limit * 0.9 < budget_mb:
        return limit * 0.9, f"cgroup limit {limit:.0f} MB"
    return float(budget_mb), "budget"


def process_mb(proc: psutil.Process) -> float:
    """PSS where the OS gives it (shared pages counted once across the tree), else RSS."""
    try:
        try:
            return float(proc.memory_full_info().pss) / 2**20
        except (AttributeError, psutil.AccessDenied):
            return float(proc.memory_info().rss) / 2**20
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return 0.0


def measure(master_pid: int, workers: dict[int, int]) -> dict[int | str, float]:
    """MB of the crawler's tree: the master itself, and each worker with its own children.

    The master's other children (a replica started by the demo or a benchmark) are not the crawler's;
    the forkserver the workers were forked from is (its pages are shared with them: PSS splits them).
    """
    sizes: dict[int | str, float] = {"master": _tree_mb(master_pid, children=False)}
    sizes.update({wid: _tree_mb(pid, children=True) for wid, pid in workers.items()})
    starters = {_parent(pid) for pid in workers.values()} - {master_pid, None}
    sizes.update({f"forkserver-{pid}": _tree_mb(pid, children=False) for pid in starters if pid})
    return sizes


def _parent(pid: int) -> int | None:
    try:
        return psutil.Process(pid).ppid()
    except psutil.Error:
        return None


def _tree_mb(pid: int, children: bool) -> float:
    try:
        proc = psutil.Process(pid)
        return process_mb(proc) + (sum(process_mb(c) for c in proc.children(recursive=True)) if children else 0.0)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return 0.0


@dataclass(frozen=True)
class MemoryDecision:
    throttle: bool  # start no new unit
    concurrency: int  # requests in flight per worker from now on
    recycle: int | None = None  # worker to drain and replace
    reason: str = ""


@dataclass
class Governor:
    budget_mb: float
    soft_ratio: float
    hard_ratio: float
    max_concurrency: int
    concurrency: int = 0
    throttled: bool = False
    peak_mb: float = 0.0
    floor_mb: float = 0.0  # the least the crawl ran in: master plus its smallest worker, lowest sample
    actions: dict[str, int] = field(default_factory=lambda: {"throttle": 0, "lower": 0, "raise": 0, "recycle": 0})

    def __post_init__(self) -> None:
        self.concurrency = self.concurrency or self.max_concurrency

    def decide(self, sizes: dict[int | str, float], recycling: set[int]) -> MemoryDecision:
        """One step: memory of each process in, what to do out. Every change is logged with its figures."""
        total = sum(sizes.values())
        self.peak_mb = max(self.peak_mb, total)
        workers_mb = [v for k, v in sizes.items() if isinstance(k, int) and v > 0]
        if workers_mb:
            floor = sizes.get("master", 0.0) + min(workers_mb)
            self.floor_mb = min(self.floor_mb, floor) if self.floor_mb else floor
        soft, hard = self.budget_mb * self.soft_ratio, self.budget_mb * self.hard_ratio
        figures = f"tree {total:.0f} MB, soft {soft:.0f} MB, hard {hard:.0f} MB"
        recycle = None
        if total >= soft:
            if not self.throttled:
                self._act("throttle", figures)
            self.throttled = True
            if self.concurrency > 1:
                self.concurrency = max(1, self.concurrency // 2)
                self._act("lower", f"{figures}, concurrency now {self.concurrency}")
            workers = {k: v for k, v in sizes.items() if isinstance(k, int) and k not in recycling}
            if total >= hard and workers and not recycling:
                recycle = max(workers, key=lambda k: workers[k])
                self._act("recycle", f"{figures}, worker {recycle} uses {workers[recycle]:.0f} MB")
        else:
            if self.throttled:
                log_event(log, "governor_resume", figures=figures)
            self.throttled = False
            if total < soft * 0.85 and self.concurrency < self.max_concurrency:
                self.concurrency = min(self.max_concurrency, self.concurrency * 2)
                self._act("raise", f"{figures}, concurrency now {self.concurrency}")
        return MemoryDecision(self.throttled, self.concurrency, recycle, figures)

    def explain(self) -> str | None:
        """Why the peak went over the budget, when it did."""
        if self.peak_mb <= self.budget_mb:
            return None
        if self.floor_mb >= self.budget_mb * self.soft_ratio:
            return (
                f"peak {self.peak_mb:.0f} MB over the {self.budget_mb:.0f} MB budget: the master and one worker"
                f" alone need {self.floor_mb:.0f} MB, above the soft line; the crawl ran throttled, one unit at a time"
            )
        return (
            f"peak {self.peak_mb:.0f} MB over the {self.budget_mb:.0f} MB budget between two samples"
            " (memory is sampled once a second); the governor acted on the next sample"
        )

    def _act(self, action: str, figures: str) -> None:
        self.actions[action] += 1
        log_event(log, f"governor_{action}", logging.WARNING if action == "recycle" else logging.INFO, figures=figures)
