"""Scale-out on Celery: the same units, run by Celery workers on any number of machines.

The master stays where it is (one writer, durable progress, the crawl lock); only the place where
units run changes. A task is one unit: idempotent (fetch, parse, validate; no writes), acknowledged
late and rejected when its worker dies, so the broker hands it to another worker. The broker and the
result backend are Redis, under their own key prefix (`stage5:celery:`).

    python -m stage5 worker                  # on each machine
    python -m stage5 crawl --engine celery   # anywhere: dispatches, follows, summarises
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil
import redis
import redis.asyncio
from celery import Celery
from kombu.exceptions import OperationalError
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from stage5.cache import make_cache
from stage5.crawl.executor import (
    EventHandler,
    ExecutorEvent,
    ExecutorFigures,
    ExecutorReport,
    UnitDone,
    UnitFailed,
    UnitsReturned,
    WorkerFigure,
)
from stage5.crawl.pipeline import run_unit
from stage5.crawl.pool import EST_WORKER_MB
from stage5.crawl.shared_gate import SharedGates
from stage5.errors import ServiceMissing
from stage5.fetch import Fetcher
from stage5.logs import bind, log_event
from stage5.redact import redact_url
from stage5.settings import Settings
from stage5.tallies import WorkerStats
from stage5.units import (
    FailedUnit,
    Result,
    Unit,
    result_from_json,
    result_to_json,
    unit_from_payload,
    unit_kind,
    unit_payload,
)

log = logging.getLogger("stage5.crawl")
KEY_PREFIX = "stage5:celery:"
QUEUE = "celery"  # Celery's default queue: a Redis list at KEY_PREFIX + QUEUE
UNACKED = KEY_PREFIX + "unacked"  # kombu's hash of delivered, unacknowledged messages
HEARTBEAT_DIVISOR = 4  # a running task renews its lease this many times per lease
ANSWER_RETRY_S = 20  # a task's answer waits this long for a broker that went away (then the unit is re-sent)
POOL_SIZE_ENV = "STAGE5_WORKER_PROCESSES"  # set by `stage5 worker` for its pool processes (forked: inherited)
REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError, OperationalError)
app = Celery("stage5")


def configure(redis_url: str, visibility_s: int, time_limit_s: int = 900) -> Celery:
    if app.conf.broker_url and app.conf.broker_url != redis_url:
        _forget_connections()  # another broker than before (tests; a process that crawls twice)
    app.conf.update(
        broker_url=redis_url,
        broker_transport_options={
            "global_keyprefix": KEY_PREFIX,
            "visibility_timeout": visibility_s,
            # Sweep for tasks of dead workers about as often as the timeout allows (kombu's default
            # cadence is ~100 s whatever the timeout).
            "unacked_restore_interval": max(1, min(10, visibility_s // 2)),
            "unacked_restore_throttle": 1,
            # A broker that vanished mid-reply (a restart) fails a publish or a read within these, instead
            # of leaving a socket waiting forever (the master's loop blocked in a send).
            "socket_timeout": 10,
            "socket_connect_timeout": 5,
            "health_check_interval": 10,
        },
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,  # answers go to the run's own list (RunKeys.answers), read by the master
        # A unit is a few pages; one that runs this long is stuck: the soft limit ends it as a failure
        # (the master fails the unit), the hard one kills its process.
        task_soft_time_limit=time_limit_s,
        task_time_limit=time_limit_s + 30,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        # stage5's own handler writes each line once; Celery's redirection of stderr printed it again,
        # relabelled 'WARNING/ForkPoolWorker-N] INFO …'
        worker_redirect_stdouts=False,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a broker restart: workers wait for it, however long
    )
    return app


def worker_pool_size(settings: Settings, cores: int) -> int:
    """`stage5 worker`'s pool on this machine: --worker-concurrency, else as many processes as the cores and
    the memory budget allow (about EST_WORKER_MB each)."""
    by_memory = max(1, int(settings.memory_budget_mb // EST_WORKER_MB))
    return settings.worker_concurrency or max(1, min(cores, by_memory))


def worker_argv(settings: Settings, processes: int, node: str) -> list[str]:
    """`stage5 worker`'s Celery command line, governed by the machine's memory budget: Celery replaces a pool
    process after worker_max_units tasks or once its resident memory passes its share of the budget."""
    return [
        "worker",
        f"--concurrency={processes}",
        f"--max-tasks-per-child={settings.worker_max_units}",
        f"--max-memory-per-child={settings.memory_budget_mb * 1024 // processes}",  # KiB
        "--loglevel=INFO",
        "-n",
        node,
    ]


def _forget_connections() -> None:
    """Drop the connections and producers Celery pools for the old broker (it keeps them per app)."""
    pool = app.__dict__.get("_pool")  # Celery's private pool of broker connections: no public way to drop it
    if pool is not None:
        pool.force_close_all()
    app.__dict__["_pool"] = None
    if "amqp" in app.__dict__:
        app.__dict__["amqp"]._producer_pool = None


def configure_from_environment() -> None:
    """`celery -A stage5.crawl.celery_engine inspect ping` (and any `celery -A` command) finds the broker
    the way `stage5 worker` does: REDIS_URL, else the local default."""
    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    configure(url, int(os.environ.get("STAGE5_CELERY_VISIBILITY_S", "600")))


# --- messages ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunKeys:
    """A run's keys in the broker's Redis (the schema keeps two deployments on one Redis apart)."""

    schema: str
    run_id: int

    @property
    def run(self) -> str:
        return f"{self.schema}:{self.run_id}"

    @property
    def state(self) -> str:
        return f"{KEY_PREFIX}run:{self.run}:state"  # "running" | "stopped" | "finished"

    @property
    def answers(self) -> str:
        return f"{KEY_PREFIX}run:{self.run}:answers"

    def wanted(self, uid: int) -> str:
        return f"{KEY_PREFIX}run:{self.run}:wanted:{uid}"  # the task id the master waits for

    def lease(self, uid: int) -> str:
        return f"{KEY_PREFIX}run:{self.run}:lease:{uid}"  # alive while its task runs (heartbeat)

    @property
    def workers(self) -> str:
        return f"{KEY_PREFIX}run:{self.run}:workers"  # hash: worker -> its WorkerReport


@dataclass(frozen=True)
class TaskMessage:
    """What a task message carries: the unit, the shareable settings (no secret), the lease to keep."""

    schema: str
    run_id: int
    kind: str
    uid: int
    district: str
    payload: dict[str, Any]
    settings: dict[str, Any]
    lease_s: int

    @property
    def keys(self) -> RunKeys:
        return RunKeys(self.schema, self.run_id)

    @classmethod
    def of(cls, keys: RunKeys, unit: Unit, settings: Settings) -> TaskMessage:
        payload = unit_payload(unit)
        return cls(
            keys.schema,
            keys.run_id,
            unit_kind(unit),
            unit.uid,
            unit.district,
            payload,
            settings.shareable(),
            settings.celery_lease_s,
        )


@dataclass(frozen=True)
class WorkerReport:
    """Who ran a unit, and how that worker process stands: the master's view of remote workers."""

    node: str  # the Celery node, e.g. stage5-812@host
    host: str
    pid: int
    memory_mb: float
    units_done: int  # by this process
    processes: int = 0  # the node's pool size (0: not told; a worker started by `celery` itself)


@dataclass(frozen=True)
class TaskAnswer:
    """A task's answer, pushed to the run's answer list."""

    uid: int
    task_id: str
    result: dict[str, Any] | None  # result_to_json, or None when the unit crashed
    error: str
    worker: WorkerReport
    cpu_s: float
    wall_s: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str | bytes) -> TaskAnswer:
        data = json.loads(raw)
        return cls(**{**data, "worker": WorkerReport(**data["worker"])})


# --- the worker side ---------------------------------------------------------------------------
_served = {"units": 0}  # units run by this worker process


@app.task(name="stage5.unit", bind=True, acks_late=True, reject_on_worker_lost=True)
def unit_task(self: Any, message: dict[str, Any]) -> None:
    """Run one unit in this worker process; its answer goes to the run's answer list. JSON in, JSON out.

    Before it starts, the unit must still be wanted: its run running, and this task the one the master
    waits for (a task re-sent after a lost worker, or of a stopped run, is dropped here)."""
    task = TaskMessage(**message)
    client = redis.Redis.from_url(app.conf.broker_url)
    keys = task.keys
    bind(run_id=task.run_id, unit=task.uid)
    try:
        state, wanted = client.get(keys.state), client.get(keys.wanted(task.uid))
        if state != b"running" or wanted != self.request.id.encode():
            log_event(log, "task_dropped", unit=task.uid, run_state=state, current=wanted == self.request.id.encode())
            return
        started, cpu = time.monotonic(), time.process_time()
        result, error = None, ""
        try:
            result = result_to_json(asyncio.run(_run(task, self.request.hostname or "", app.conf.broker_url)))
        except Exception as exc:  # a bug or an unforeseen answer (or the soft time limit): the unit fails alone
            log_event(log, "unit_crashed", logging.ERROR, unit=task.uid, error=exc)
            error = repr(exc)[:1000]
        _served["units"] += 1
        answer = TaskAnswer(
            task.uid,
            self.request.id,
            result,
            error,
            _report(self.request.hostname or ""),
            round(time.process_time() - cpu, 4),
            round(time.monotonic() - started, 4),
        )
        _deliver(client, keys, task.uid, answer)
    finally:
        bind(run_id=None, unit=None)
        client.close()


@retry(
    retry=retry_if_exception_type(REDIS_ERRORS),
    stop=stop_after_delay(ANSWER_RETRY_S),
    wait=wait_exponential(multiplier=0.2, max=5),
    reraise=True,
)
def _deliver(client: redis.Redis, keys: RunKeys, uid: int, answer: TaskAnswer) -> None:
    """The answer pushed to the run's list, with the lease gone in the same transaction. A broker restarting
    at that moment is waited for (a unit's work is not thrown away for a blip); longer, the task fails and
    the master, seeing the lease lapse, sends the unit again."""
    pipe = client.pipeline()  # MULTI/EXEC: all or nothing
    pipe.rpush(keys.answers, answer.to_json())
    pipe.expire(keys.answers, 2 * 86400)
    pipe.hset(keys.workers, answer.worker.node, json.dumps(asdict(answer.worker)))
    pipe.expire(keys.workers, 2 * 86400)
    pipe.delete(keys.lease(uid))  # after the answer: no moment where neither says it is alive
    pipe.execute()


def _report(node: str) -> WorkerReport:
    memory = psutil.Process().memory_info().rss / 2**20
    processes = int(os.environ.get(POOL_SIZE_ENV, "0"))
    return WorkerReport(node, socket.gethostname(), os.getpid(), round(memory, 1), _served["units"], processes)


async def _run(task: TaskMessage, node: str, broker_url: str) -> Result:
    settings = Settings(**task.settings)
    unit = unit_from_payload(task.uid, task.kind, task.district, task.payload)
    shared = redis.asyncio.Redis.from_url(broker_url)
    pool = int(os.environ.get(POOL_SIZE_ENV, "0")) or 1  # the machine's share while Redis is away
    gates = SharedGates(shared, settings.cache_namespace_or_site, settings.request_timeout_s + 5, pool)
    heartbeat = asyncio.create_task(_heartbeat(shared, task.keys.lease(task.uid), node, task.lease_s))
    cache = make_cache(settings, broker_url)
    try:
        async with Fetcher(settings, cache, gates=gates) as fetcher:
            result = await run_unit(unit, fetcher)
            await gates.settle()
            return result
    finally:
        heartbeat.cancel()
        await asyncio.gather(heartbeat, return_exceptions=True)
        await cache.close()
        await shared.aclose()


async def _heartbeat(client: redis.asyncio.Redis, key: str, node: str, lease_s: int) -> None:
    """The unit's lease, renewed from the event loop while the unit runs: a worker that died, or a loop
    stuck in a parse, stops renewing it and the master hands the unit on after `lease_s`."""
    while True:
        try:
            await client.set(key, node, ex=lease_s)
        except REDIS_ERRORS:
            pass  # the broker is away: the lease is set again when it is back
        await asyncio.sleep(max(0.5, lease_s / HEARTBEAT_DIVISOR))


# --- the master side ---------------------------------------------------------------------------
async def check_broker(redis_url: str | None) -> None:
    """Before a Celery run opens: its broker answers. Else one line saying which broker and what to do,
    and no run left behind to resume."""
    if not redis_url:
        raise ServiceMissing("--engine celery needs Redis for its broker: set REDIS_URL (or STAGE5_ENGINE=local)")
    client = redis.asyncio.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=3)
    try:
        await client.ping()
    except (redis.exceptions.RedisError, OSError) as exc:
        raise ServiceMissing(
            f"--engine celery: the broker at {redact_url(redis_url)} does not answer ({type(exc).__name__}: {exc})."
            " Start Redis there, or set REDIS_URL to the broker your `stage5 worker`s use; nothing was crawled."
        ) from None
    finally:
        await client.aclose()


def _text(value: bytes | str) -> str:
    """A value read from Redis (bytes: the clients here do not decode) as text."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


@dataclass
class Sent:
    unit: Unit
    task_id: str
    sent_at: float = field(default_factory=time.monotonic)
    started: bool = False  # its lease was seen: a worker runs it
    node: str = ""  # the worker node that holds the lease (its value)
    reserved_at: float | None = None  # when it was first seen delivered to a worker, not started
    missing: int = 0  # checks in a row that found it nowhere


class CeleryExecutor:
    """Units as Celery tasks on any number of machines (`stage5 worker` on each).

    Tasks are sent up to `celery_tasks_in_flight` at a time; their answers come back through a Redis
    list that the master reads with its own connection, which reconnects after a broker restart. Each
    running task keeps a lease alive in Redis; a unit whose lease lapsed (its worker died or hung), or
    whose message the broker no longer has (a restart lost it), is handed back to the master, which
    sends it again. Stopping the run marks it stopped in Redis (tasks check before starting) and takes
    its messages still queued out of the broker."""

    CHECK_EVERY_S = 2.0

    def __init__(self, settings: Settings, redis_url: str | None, run_id: int) -> None:
        if not redis_url:
            raise ServiceMissing("--engine celery needs Redis for its broker: set REDIS_URL (or STAGE5_ENGINE=local)")
        self.settings, self.redis_url = settings, redis_url
        configure(redis_url, settings.celery_visibility_s, settings.celery_time_limit_s)
        self.keys = RunKeys(settings.db_schema, run_id)
        self.sync = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=2)
        self.client = redis.asyncio.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=2)
        self.sent: dict[int, Sent] = {}
        self.workers: dict[str, WorkerReport] = {}
        self.totals = WorkerStats()
        self.down_since: float | None = None
        self.judge_after = 0.0  # after a broker restart: heartbeats get time to come back first
        self.last_check = 0.0
        self.lost = self.duplicates = self.dropped = 0
        self.died: set[str] = set()  # nodes that stopped renewing a lease they held (killed or hung)
        self.pids: dict[str, set[int]] = {}  # node -> pool processes seen (more than its pool: recycled)
        self.units_done = 0
        self.overhead: list[tuple[float, float, float]] = []  # (master wall, worker wall, worker CPU) per unit
        self.outages: list[float] = []  # seconds the broker was away
        self.last_progress = self.warned_at = time.monotonic()  # a unit started or answered; the last warning

    # --- the Executor protocol ----------------------------------------------------------------
    async def start(self) -> None:
        await self.client.set(self.keys.state, "running", ex=7 * 86400)
        log_event(log, "celery_started", run=self.keys.run, tasks_in_flight=self.settings.celery_tasks_in_flight)

    def slots(self) -> int:
        if self.down_since is not None:
            return 0
        return max(0, self.settings.celery_tasks_in_flight - len(self.sent))

    def submit(self, units: list[Unit]) -> list[Unit]:
        for i, unit in enumerate(units):
            try:
                self._send(unit)
            except REDIS_ERRORS as exc:
                self._down(exc)
                return units[i:]
        return []

    async def events(self, timeout: float) -> list[ExecutorEvent]:
        try:
            first = await self.client.blpop([self.keys.answers], timeout=timeout)
            raws = [first[1]] if first else []
            more = await self.client.lpop(self.keys.answers, 500) if first else None
            raws += more if isinstance(more, list) else []
        except REDIS_ERRORS as exc:
            self._down(exc)
            await asyncio.sleep(timeout)
            return []
        self._up()
        return [event for raw in raws if (event := self._on_answer(TaskAnswer.from_json(raw))) is not None]

    async def check(self, queued: int) -> list[ExecutorEvent]:
        now = time.monotonic()
        if now - self.last_check < self.CHECK_EVERY_S or not self.sent:
            return []
        self.last_check = now
        try:
            if await self.client.get(self.keys.state) is None:
                await self._restore_keys()  # the broker came back without its data
            leases = await self.client.mget([self.keys.lease(uid) for uid in self.sent])
            queued_ids = self._ids(await self.client.lrange(KEY_PREFIX + QUEUE, 0, -1))
            reserved_ids = self._ids(json.loads(v)[0] for v in (await self.client.hvals(UNACKED)))
            reports = await self.client.hgetall(self.keys.workers)
        except REDIS_ERRORS as exc:
            self._down(exc)
            return []
        self._up()
        self.workers.update({_text(k): WorkerReport(**json.loads(v)) for k, v in reports.items()})
        self._warn_if_no_worker(now)
        if now < self.judge_after:
            return []
        sents = list(self.sent.values())
        lost = [s for s, lease in zip(sents, leases, strict=True) if self._lost(s, lease, queued_ids, reserved_ids)]
        return self._give_back(lost)

    def _lost(self, sent: Sent, lease: bytes | str | None, queued_ids: set[str], reserved_ids: set[str]) -> bool:
        """Whether a unit's task is gone: its lease lapsed (the worker died or hangs), it was delivered to a
        worker that never started it (that worker died), or the broker does not have it (a restart lost it)."""
        if lease is not None:
            sent.started, sent.missing, sent.node = True, 0, _text(lease)
            self.last_progress = time.monotonic()
            return False
        if sent.started:
            # Twice in a row: a unit that just finished deleted its lease with its answer, which events()
            # reads next (seen: a unit judged lost 3 ms after its worker answered, then run twice).
            sent.missing += 1
            return sent.missing >= 2
        if sent.task_id in queued_ids:
            sent.missing = 0  # waiting for a free worker
            return False
        if sent.task_id in reserved_ids:
            sent.missing = 0
            sent.reserved_at = sent.reserved_at or time.monotonic()
            return time.monotonic() - sent.reserved_at > self.settings.celery_lease_s
        sent.missing += 1  # twice in a row: not a task caught between the queue and its start
        return sent.missing >= 2

    def request_stop(self) -> None:
        try:
            self.sync.set(self.keys.state, "stopped", ex=7 * 86400)
            self._discard_queued()
        except REDIS_ERRORS as exc:
            log_event(log, "celery_stop_incomplete", logging.WARNING, error=exc)

    async def stop(self, grace_s: float, on_event: EventHandler) -> None:
        deadline = time.monotonic() + grace_s
        if self.sent:
            self.request_stop()  # interrupted: what has not started is dropped
        while self.sent and time.monotonic() < deadline:
            for event in await self.events(0.5):
                await on_event(event)
        try:
            pipe = self.sync.pipeline()
            pipe.set(self.keys.state, "finished" if not self.sent else "stopped", ex=7 * 86400)
            for uid in self.sent:
                pipe.delete(self.keys.wanted(uid))
            pipe.execute()
            if self.sent:
                self._discard_queued()
                app.control.revoke([s.task_id for s in self.sent.values()])
        except REDIS_ERRORS as exc:
            log_event(log, "celery_stop_incomplete", logging.WARNING, error=exc)
        finally:
            self.sync.close()
            await self.client.aclose()
        if self.overhead:
            n = len(self.overhead)
            log_event(
                log,
                "celery_overhead",
                units=n,
                master_wall_s=round(sum(o[0] for o in self.overhead) / n, 4),
                worker_wall_s=round(sum(o[1] for o in self.overhead) / n, 4),
                worker_cpu_s=round(sum(o[2] for o in self.overhead) / n, 4),
                lost=self.lost,
                duplicates=self.duplicates,
                broker_outages_s=[round(o, 1) for o in self.outages],
            )

    async def adopt(self, units: list[Unit]) -> list[Unit]:
        """Units the run's previous master sent: a task still waits for each (its `wanted` key) and may be
        running, or may have answered into the run's list while no master read it. They are followed like
        units sent now (a lapsed lease or a task the broker lost hands them back); those the broker has no
        task for are sent again."""
        try:
            wanted = await self.client.mget([self.keys.wanted(u.uid) for u in units]) if units else []
        except REDIS_ERRORS as exc:
            self._down(exc)
            return units
        again = [u for u, task_id in zip(units, wanted, strict=True) if task_id is None]
        for unit, task_id in zip(units, wanted, strict=True):
            if task_id is not None:
                self.sent[unit.uid] = Sent(unit, _text(task_id))
        self.judge_after = time.monotonic() + self._heartbeats_back_s()  # running tasks show their leases
        log_event(log, "units_adopted", adopted=len(units) - len(again), sent_again=len(again))
        return again

    def holders(self) -> dict[int, str]:
        return {uid: s.node for uid, s in self.sent.items() if s.started}

    @property
    def in_flight(self) -> int:
        return len(self.sent)

    def figures(self) -> ExecutorFigures:
        workers = sorted(self.workers.values(), key=lambda w: w.node)
        by_worker = tuple(WorkerFigure(w.node, w.host, w.memory_mb, w.units_done, 0) for w in workers)
        memory = {w.node: w.memory_mb for w in self.workers.values()}
        return ExecutorFigures(
            workers=len(self.workers),
            concurrency=self.settings.host_concurrency,
            in_flight=len(self.sent),
            memory_mb=sum(memory.values()),
            budget_mb=float(self.settings.memory_budget_mb),
            per_process_mb=memory,
            stats=self.totals,
            by_worker=by_worker,
        )

    def report(self) -> ExecutorReport:
        hosts: dict[str, int] = {}  # host -> worker processes (a node's pool size; else those seen)
        for node, w in self.workers.items():
            hosts[w.host] = hosts.get(w.host, 0) + (w.processes or len(self.pids.get(node, ())) or 1)
        recycled = sum(max(0, len(self.pids.get(n, ())) - w.processes) for n, w in self.workers.items() if w.processes)
        return ExecutorReport(
            engine="celery",
            worker_stats=self.totals,
            peak_memory_mb=round(max((w.memory_mb for w in self.workers.values()), default=0.0), 1),
            budget_mb=float(self.settings.memory_budget_mb),
            memory_note=None,
            governor_actions={},
            workers_max=sum(hosts.values()),
            worker_start_s=0.0,
            workers_recycled=recycled,  # pool processes replaced (max tasks / memory per child)
            workers_died=len(self.died),  # nodes that held a lease and stopped renewing it
            workers_by_host=hosts,
            units_resent=self.lost,
            broker_outages_s=tuple(round(o, 1) for o in self.outages),
        )

    # --- inside -------------------------------------------------------------------------------
    def _send(self, unit: Unit) -> None:
        task_id = uuid.uuid4().hex
        message = TaskMessage.of(self.keys, unit, self.settings)
        self.sync.set(self.keys.wanted(unit.uid), task_id, ex=7 * 86400)
        unit_task.apply_async(args=(asdict(message),), task_id=task_id, retry=False)
        self.sent[unit.uid] = Sent(unit, task_id)

    def _on_answer(self, answer: TaskAnswer) -> ExecutorEvent | None:
        self.workers[answer.worker.node] = answer.worker
        self.last_progress = time.monotonic()
        self.pids.setdefault(answer.worker.node, set()).add(answer.worker.pid)
        sent = self.sent.get(answer.uid)
        if sent is None:
            self.duplicates += 1
            return None  # a unit answered already (sent twice after a presumed loss): the first counts
        del self.sent[answer.uid]
        self._forget(answer.uid)
        self.overhead.append((time.monotonic() - sent.sent_at, answer.wall_s, answer.cpu_s))
        if answer.result is None:
            failure = FailedUnit("unit", sent.unit.district, f"celery task for unit {answer.uid}", answer.error)
            return UnitFailed(sent.unit, failure)
        result = result_from_json(answer.result)
        self.totals.add(result.tally)
        return UnitDone(sent.unit, result)

    def _forget(self, uid: int) -> None:
        """The unit answered: its `wanted` key goes (it would wait 7 days to expire; a resumed master sends a
        unit with no key again, which is what an answered one left unrecorded needs)."""
        try:
            self.sync.delete(self.keys.wanted(uid))
        except REDIS_ERRORS as exc:  # the key expires by itself
            log_event(log, "celery_key_left", logging.INFO, unit=uid, error=exc)

    def _give_back(self, lost: list[Sent]) -> list[ExecutorEvent]:
        events: list[ExecutorEvent] = []
        for sent in lost:
            del self.sent[sent.unit.uid]
            self.lost += 1
            if sent.node:
                self.died.add(sent.node)
            log_event(
                log,
                "unit_lost",
                logging.WARNING,
                unit=sent.unit.uid,
                district=sent.unit.district,
                started=sent.started,
                waited_s=round(time.monotonic() - sent.sent_at, 1),
            )
            try:
                self.sync.delete(self.keys.wanted(sent.unit.uid))  # the old task, if it turns up, is dropped
            except REDIS_ERRORS:
                pass
            events.append(UnitsReturned((sent.unit,), stalled=sent.started))
        return events

    def _discard_queued(self) -> None:
        """Take this run's messages still waiting in the broker out of it (they would only be dropped)."""
        ours = {s.task_id for s in self.sent.values()}
        for raw in self.sync.lrange(KEY_PREFIX + QUEUE, 0, -1):
            if self._ids([raw]) & ours:
                self.sync.lrem(KEY_PREFIX + QUEUE, 1, _text(raw))

    @staticmethod
    def _ids(raws: Any) -> set[str]:
        ids = set()
        for raw in raws:
            try:
                message = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
                ids.add(message["headers"]["id"])
            except (ValueError, KeyError, TypeError):
                continue
        return ids

    async def _restore_keys(self) -> None:
        """The run's state and the task each unit waits for, written again (a broker restarted empty)."""
        pipe = self.client.pipeline()
        pipe.set(self.keys.state, "running", ex=7 * 86400)
        for uid, sent in self.sent.items():
            pipe.set(self.keys.wanted(uid), sent.task_id, ex=7 * 86400)
        await pipe.execute()
        self.judge_after = time.monotonic() + self._heartbeats_back_s()
        log_event(log, "broker_keys_restored", in_flight=len(self.sent))

    def _warn_if_no_worker(self, now: float) -> None:
        """Units sent and none started nor answered for two leases: no worker takes this broker's tasks.
        Said once per that while it lasts, instead of waiting in silence."""
        quiet = 2 * self.settings.celery_lease_s
        if now - self.last_progress < quiet or now - self.warned_at < quiet:
            return
        self.warned_at = now
        log_event(
            log,
            "celery_no_worker",
            logging.WARNING,
            waited_s=round(now - self.last_progress),
            waiting_units=len(self.sent),
            broker=redact_url(self.redis_url),
            fix="start `stage5 worker` with this REDIS_URL on a machine that reaches the broker",
        )

    def _heartbeats_back_s(self) -> float:
        """After a broker restart, how long running tasks get to set their leases again before any unit is
        judged lost: two heartbeats (a worker's client reconnects first; one heartbeat was seen too short,
        a live worker's unit judged lost)."""
        return 2 * self.settings.celery_lease_s / HEARTBEAT_DIVISOR + 1

    def _down(self, exc: BaseException) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            log_event(log, "broker_unreachable", logging.WARNING, error=exc, in_flight=len(self.sent))

    def _up(self) -> None:
        if self.down_since is not None:
            away = time.monotonic() - self.down_since
            self.outages.append(away)
            self.down_since = None
            # Running tasks set their leases again within a heartbeat or two: judge none before that.
            self.judge_after = time.monotonic() + self._heartbeats_back_s()
            for sent in self.sent.values():
                sent.reserved_at = None
            log_event(log, "broker_back", away_s=round(away, 1), in_flight=len(self.sent))


configure_from_environment()  # a worker or `celery -A` command run as the README says; a master configures again
