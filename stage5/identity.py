"""Who a process is: its pid with its start time and command line. A pid alone is not an identity: a
master that died leaves its pid to whatever process the system starts next, and a stop sent by pid
would hit that process."""

from __future__ import annotations

import functools
import hashlib
import os
import socket
from typing import Any

import psutil


@functools.cache
def process_identity() -> dict[str, Any]:
    """This process: pid, host, start time (epoch seconds) and command line, as recorded with a run."""
    me = psutil.Process()
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": me.create_time(),
        "command": command_fingerprint(me),
    }


def command_fingerprint(process: psutil.Process) -> str:
    """A fingerprint of the command line, not the line: it may hold secrets (a --notify-url with a token,
    a --database-url with a password), and it is recorded in crawl_runs.live where the console shows it."""
    return hashlib.sha256("\0".join(process.cmdline()).encode()).hexdigest()[:32]


def not_the_same(recorded: dict[str, Any]) -> str | None:
    """Why the process now holding the recorded pid is not the recorded one (None when it is)."""
    pid = int(recorded["pid"])
    try:
        process = psutil.Process(pid)
        started, command = process.create_time(), command_fingerprint(process)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return f"pid {pid} is gone"
    except psutil.Error as exc:
        return f"pid {pid} cannot be inspected ({type(exc).__name__})"
    if "started" not in recorded or "command" not in recorded:
        return f"pid {pid}'s start time and command line were not recorded (a master older than this console)"
    if abs(started - float(recorded["started"])) > 1 or command != recorded["command"]:
        return f"pid {pid} now belongs to another process (started {started:.0f}, another command line)"
    return None
