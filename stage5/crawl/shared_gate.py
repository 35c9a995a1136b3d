"""Per-host politeness shared by every process on every machine: fetch.HostGate's rules, kept in Redis.

The same promise as the local gate — at most `concurrency` requests in flight per host, starts at least
`delay` apart, a shared pause after a 429's Retry-After, and a growing gap once the host serves block
pages — but held in Redis, so N Celery workers on M machines keep it together instead of each assuming
it is alone. Each decision is one Lua script (atomic in Redis, using Redis's clock, so the machines'
clocks do not matter):

- `take`: drop holders whose lease ran out (a killed worker's requests), then either take a slot
  (in flight below the limit, not paused, the next start reached) and move the next start on by the
  larger of the delay and the block gap, or answer how many milliseconds to wait.
- `back_off` / `recover` / `pause`: the block gap doubles / halves, the pause only grows.

Keys, under `stage5:gate:{namespace}:{host}:`: `holders` (zset: token -> lease end, ms), `next` (ms),
`paused` (ms), `gap` (ms). They expire an hour after the last use.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

import redis.exceptions
from redis.asyncio import Redis

from stage5.fetch import HostGate
from stage5.logs import log_event

log = logging.getLogger("stage5.fetch")
REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)

KEY_TTL_MS = 3_600_000
MAX_POLL_S = 0.25  # a waiter asks again at least this often (a slot freed early is taken soon)

# KEYS: holders, next, paused, gap. ARGV: token, limit, delay_ms, hold_ms. Returns 0 (taken) or ms to wait.
TAKE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local paused = tonumber(redis.call('GET', KEYS[3]) or '0')
if paused > now then return paused - now end
local nxt = tonumber(redis.call('GET', KEYS[2]) or '0')
if nxt > now then return nxt - now end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, math.min(250, tonumber(first[2]) - now))
end
local gap = tonumber(redis.call('GET', KEYS[4]) or '0')
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[1])
redis.call('SET', KEYS[2], now + math.max(tonumber(ARGV[3]), gap), 'PX', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 0
"""

# KEYS: gap. ARGV: first_ms, max_ms, ttl_ms. Returns the new gap (ms).
BACK_OFF = """
local gap = tonumber(redis.call('GET', KEYS[1]) or '0')
gap = math.min(math.max(gap * 2, tonumber(ARGV[1])), tonumber(ARGV[2]))
redis.call('SET', KEYS[1], gap, 'PX', ARGV[3])
return gap
"""

# KEYS: gap. ARGV: first_ms.
RECOVER = """
local gap = tonumber(redis.call('GET', KEYS[1]) or '0')
if gap == 0 then return 0 end
if gap / 2 >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], gap / 2, 'KEEPTTL')
  return gap / 2
end
redis.call('DEL', KEYS[1])
return 0
"""

# KEYS: paused. ARGV: ms from now, ttl_ms.
PAUSE = """
local t = redis.call('TIME')
local until_ms = t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[1])
local paused = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ms > paused then redis.call('SET', KEYS[1], until_ms, 'PX', ARGV[2]) end
return 0
"""


class SharedHostGate:
    """fetch.HostGate's interface (slot, adjust, pause, back_off, recover) over Redis.

    `delay` and `concurrency` are the whole host's budget (not a per-process share): every process
    asks the same keys. `hold_s` bounds how long a slot counts when its holder dies without giving it back.
    While Redis is away, requests go through a gate of this process's own with its share of the budget
    (`sharers` processes: the delay times that, the in-flight limit divided by it), so an outage slows
    the crawl instead of failing its requests; the shared gate is used again as soon as Redis answers.
    """

    def __init__(
        self, redis: Redis, prefix: str, delay: float, concurrency: int, hold_s: float, sharers: int = 1
    ) -> None:
        self.redis, self.prefix = redis, prefix
        self.delay, self.concurrency, self.hold_s, self.sharers = delay, concurrency, hold_s, max(1, sharers)
        self.block_gap = 0.0  # this process's last view of the shared gap (logged by the fetcher)
        self.alone = HostGate(*self._share(delay, concurrency))
        self.away_since: float | None = None  # Redis unreachable since (monotonic), while it is
        self._take: Any = redis.register_script(TAKE)
        self._back_off: Any = redis.register_script(BACK_OFF)
        self._recover: Any = redis.register_script(RECOVER)
        self._pause: Any = redis.register_script(PAUSE)
        self._pending: set[asyncio.Task[Any]] = set()

    def _keys(self, *names: str) -> list[str]:
        return [f"{self.prefix}{name}" for name in names]

    def _share(self, delay: float, concurrency: int) -> tuple[float, int]:
        return delay * self.sharers, max(1, concurrency // self.sharers)

    async def adjust(self, delay: float, concurrency: int) -> None:
        self.delay, self.concurrency = delay, concurrency
        await self.alone.adjust(*self._share(delay, concurrency))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        token = uuid.uuid4().hex
        if not await self._take_shared(token):
            async with self.alone.slot():
                yield
            return
        try:
            yield
        finally:
            try:
                await self.redis.zrem(self._keys("holders")[0], token)
            except REDIS_ERRORS:
                pass  # the slot lapses by itself after hold_s

    async def _take_shared(self, token: str) -> bool:
        """Wait for a slot in Redis; False when Redis cannot be asked (this process's own gate then)."""
        keys = self._keys("holders", "next", "paused", "gap")
        args = [token, self.concurrency, round(self.delay * 1000), round(self.hold_s * 1000), KEY_TTL_MS]
        try:
            while (wait_ms := int(await self._take(keys=keys, args=args))) > 0:
                await asyncio.sleep(min(wait_ms / 1000, MAX_POLL_S))
        except REDIS_ERRORS as exc:
            if self.away_since is None:
                self.away_since = time.monotonic()
                log_event(log, "gate_unshared", logging.WARNING, gate=self.prefix, sharers=self.sharers, error=exc)
            return False
        if self.away_since is not None:
            log_event(log, "gate_shared_again", gate=self.prefix, away_s=round(time.monotonic() - self.away_since, 1))
            self.away_since = None
        return True

    # The fetcher calls these without awaiting (they are the local gate's plain methods): each runs as a task.
    def pause(self, seconds: float) -> None:
        self.alone.pause(seconds)
        self._spawn(self._pause(keys=self._keys("paused"), args=[round(seconds * 1000), KEY_TTL_MS]))

    def back_off(self, first_gap: float, max_gap: float) -> float:
        self.block_gap = self.alone.back_off(first_gap, max_gap)  # this process's estimate, for the log
        args = [round(first_gap * 1000), round(max_gap * 1000), KEY_TTL_MS]
        self._spawn(self._back_off(keys=self._keys("gap"), args=args))
        return self.block_gap

    def recover(self, first_gap: float) -> None:
        self.alone.recover(first_gap)
        self.block_gap = self.alone.block_gap
        self._spawn(self._recover(keys=self._keys("gap"), args=[round(first_gap * 1000)]))

    def _spawn(self, call: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(_quietly(call))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def settle(self) -> None:
        """Wait for the pause / back-off writes still on their way (before the session closes)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)


async def _quietly(call: Awaitable[Any]) -> None:
    """A shared pause / back-off write: lost while Redis is away (this process's own gate has it)."""
    try:
        await call
    except REDIS_ERRORS:
        pass


class SharedGates:
    """The fetcher's gate factory (`Fetcher(gates=...)`) over Redis: one SharedHostGate per host, under the
    site's namespace, so every process crawling the same site (a Celery worker on any machine, or a local
    worker process) asks the same keys. `sharers`: the processes sharing the budget that this machine
    knows of (its share while Redis is away)."""

    def __init__(self, redis: Redis, namespace: str, hold_s: float, sharers: int = 1) -> None:
        self.redis, self.namespace, self.hold_s, self.sharers = redis, namespace, hold_s, sharers
        self.made: list[SharedHostGate] = []

    def __call__(self, host: str, delay: float, concurrency: int) -> SharedHostGate:
        prefix = f"stage5:gate:{self.namespace}:{host}:"
        gate = SharedHostGate(self.redis, prefix, delay, concurrency, self.hold_s, self.sharers)
        self.made.append(gate)
        return gate

    async def settle(self) -> None:
        for gate in self.made:
            await gate.settle()
