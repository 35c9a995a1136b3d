"""Imported by the forkserver before it forks any worker (`pool._context`): the worker's modules, and what
every worker would otherwise compute for itself after the fork. Importing it has that side effect on purpose;
nothing else imports it."""

from __future__ import annotations

from stage5.crawl import worker  # noqa: F401 - aiohttp, lxml, redis, pydantic: imported once, shared by forks
from stage5.fetch import user_agent_pool

try:
    user_agent_pool()  # fake-useragent's database read and filtered once, not once per worker (~0.2 s of CPU)
except Exception:  # a forkserver that cannot preload must still fork: each worker draws its own
    pass
