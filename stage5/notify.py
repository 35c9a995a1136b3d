"""Notifications: when a run ends (succeeded, partial, failed, interrupted, skipped), a shell
command gets the summary as JSON on stdin and/or a URL gets it as a JSON POST. A hook that fails is
logged; it never changes the run's outcome."""

from __future__ import annotations

import json
import logging
import subprocess
import urllib.request
from typing import Any

from stage5.logs import log_event
from stage5.redact import redact_command, redact_url
from stage5.settings import Settings

log = logging.getLogger("stage5.notify")
TIMEOUT_S = 30


def notify(settings: Settings, summary: dict[str, Any]) -> None:
    body = json.dumps(summary, ensure_ascii=False, default=str).encode()
    if settings.notify_command:
        try:
            done = subprocess.run(
                settings.notify_command, shell=True, input=body, timeout=TIMEOUT_S, capture_output=True
            )
            log_event(log, "notified", command=redact_command(settings.notify_command), exit_code=done.returncode)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log_event(log, "notify_failed", logging.WARNING, command=redact_command(settings.notify_command), error=exc)
    if settings.notify_url:
        request = urllib.request.Request(
            settings.notify_url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
                log_event(log, "notified", url=redact_url(settings.notify_url), status=answer.status)
        except OSError as exc:
            log_event(log, "notify_failed", logging.WARNING, url=redact_url(settings.notify_url), error=exc)
