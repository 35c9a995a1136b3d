"""Run the replica as a child process (demo, tests, benchmarks), so it does not share the crawler's loop."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from dataclasses import asdict, fields
from types import TracebackType
from typing import Any

from stage5.errors import Stage5Error
from stage5.replica.server import Faults


class ReplicaProcess:
    """`with ReplicaProcess(seed=5) as replica: replica.url` — started on a free loopback port."""

    def __init__(self, seed: int = 5, scale: float = 1.0, faults: Faults | None = None, day: int = 0) -> None:
        self.seed, self.scale, self.faults, self.day = seed, scale, faults or Faults(), day
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "stage5", "replica", "--port", "0", "--seed", str(self.seed)]
        cmd += ["--scale", str(self.scale), "--day", str(self.day)]
        defaults = Faults()
        for f in fields(Faults):
            value = getattr(self.faults, f.name)
            if value != getattr(defaults, f.name):
                flag = f"--{f.name.replace('_', '-')}"
                cmd += [flag] if isinstance(value, bool) else [flag, str(value)]
        return cmd

    def start(self) -> ReplicaProcess:
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("replica listening on "):
            self.stop()
            raise Stage5Error(f"replica did not start (said {line!r}); run: {' '.join(self.command())}")
        self.url = line.split()[3]
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def _call(self, path: str, method: str = "GET") -> dict[str, Any]:
        request = urllib.request.Request(self.url + path, method=method)
        with urllib.request.urlopen(request, timeout=10) as answer:  # loopback only
            data: dict[str, Any] = json.load(answer)
            return data

    def stats(self, per_store: bool = False) -> dict[str, Any]:
        return self._call("/__replica/stats" + ("?detail=1" if per_store else ""))

    def reset(self) -> None:
        self._call("/__replica/reset", "POST")

    def describe(self) -> dict[str, Any]:
        return {"url": self.url, "seed": self.seed, "scale": self.scale, "faults": asdict(self.faults)}

    def __enter__(self) -> ReplicaProcess:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
