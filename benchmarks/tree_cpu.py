"""CPU seconds of each process of a command's process tree (the master, the forkserver, each worker).

    .venv/bin/python benchmarks/tree_cpu.py -- python -m stage5 crawl --no-cache --site http://127.0.0.1:8899 ...

Every process's CPU time is read with psutil every 50 ms while the command runs; a process's last reading is
its figure, so each may miss up to 50 ms at its end. The command's output is discarded.
"""

from __future__ import annotations

import subprocess
import sys
import time

import psutil


def sample(root: psutil.Process, seen: dict[int, tuple[float, str]]) -> None:
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            seen[proc.pid] = (times.user + times.system, " ".join(proc.cmdline())[:70])
        except psutil.Error:
            pass  # it ended between the listing and the reading


def main() -> None:
    command = sys.argv[2:] if sys.argv[1:2] == ["--"] else sys.argv[1:]
    if not command:
        raise SystemExit("usage: benchmarks/tree_cpu.py -- COMMAND ...")
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root, seen = psutil.Process(child.pid), {}
    while child.poll() is None:
        try:
            sample(root, seen)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    print(f"total {sum(cpu for cpu, _ in seen.values()):.2f} CPU s over {len(seen)} processes (exit {child.wait()})")
    for pid, (cpu, name) in sorted(seen.items(), key=lambda item: -item[1][0]):
        print(f"{pid:8d} {cpu:7.2f} s  {name}")


if __name__ == "__main__":
    main()
