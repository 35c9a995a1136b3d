"""What a store's detail costs at the least on this machine: the CPU of each step of the API detail path
taken alone, in one process, against the same pre-rendered replica compare.py crawls.

    .venv/bin/python benchmarks/floor.py --requests 3331

Steps (each row adds one to the row above, CPU per answer of this process only; the replica runs in its own):
  aiohttp POST            the profile API request and its whole body read, 16 in flight, nothing else
  + JSON decode           the answer's JSON read (stage5.site.markup.json_answer)
  + parse_profile         stage5's reader of the answer (the StoreDetail), JSON decode included
  + evidence + record     verify_detail (this store's answer) and build_record (the row the writer takes)
  + pickle round trip     the record's trip from a worker to the master (dumps and loads)
The writer's cost per row is perftest's ("stage5 writer, first load"); a search page costs about one
request, and a crawl has one for every 6 stores. compare.py's CPU per page counts the whole process tree.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stage5.models import StoreSummary
from stage5.replica.process import ReplicaProcess
from stage5.replica.server import Faults
from stage5.replica.world import build_world
from stage5.site.diningcode import Endpoints, profile_form
from stage5.site.evidence import verify_detail
from stage5.site.markup import json_answer
from stage5.site.profile import parse_profile
from stage5.validate import build_record


def summary_of(store: Any) -> StoreSummary:
    """The search entry a crawl would hold for the store (what verify_detail and build_record compare)."""
    return StoreSummary(
        rid=store.rid,
        name=store.name,
        branch=store.branch,
        address=store.address,
        phone=store.phone,
        lat=store.lat,
        lng=store.lng,
    )


async def fetch_all(url: str, rids: list[str], in_flight: int) -> list[bytes]:
    gate = asyncio.Semaphore(in_flight)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight)) as session:

        async def one(rid: str) -> bytes:
            async with gate, session.post(url, data=profile_form(rid)) as response:
                return await response.read()

        return await asyncio.gather(*(one(rid) for rid in rids))


def one_round(url: str, stores: list[Any], in_flight: int) -> dict[str, float]:
    """CPU seconds of each step over all answers (a collection between steps: no step pays for another's
    garbage)."""
    summaries = [summary_of(s) for s in stores]
    rids = [s.rid for s in stores]
    spent: dict[str, float] = {}

    def lap(name: str, started: float) -> None:
        spent[name] = time.process_time() - started
        gc.collect()

    started = time.process_time()
    bodies = asyncio.run(fetch_all(url, rids, in_flight))
    lap("fetch", started)
    started = time.process_time()
    for body in bodies:
        json_answer(body, "profile answer")
    lap("decode", started)
    started = time.process_time()
    details = [parse_profile(body, rid) for body, rid in zip(bodies, rids)]
    lap("parse", started)
    started = time.process_time()
    records = [build_record(s, verify_detail(d, s), "", url) for d, s in zip(details, summaries)]
    lap("check", started)
    started = time.process_time()
    for record in records:
        pickle.loads(pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL))
    lap("trip", started)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3331)
    parser.add_argument("--in-flight", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="the median of this many rounds is printed")
    args = parser.parse_args()
    world = build_world(5, 1.0)
    stores = [s for s in world.stores if s.listed and s.defect is None][: args.requests]
    rows: dict[str, list[float]] = {}
    with ReplicaProcess(5, 1.0, Faults(prerender=True)) as replica:
        url = Endpoints.for_site(replica.url).profile_url
        for _ in range(args.rounds):
            spent = one_round(url, stores, args.in_flight)
            steps = {
                "aiohttp POST": spent["fetch"],
                "+ JSON decode": spent["fetch"] + spent["decode"],
                "+ parse_profile": spent["fetch"] + spent["parse"],
                "+ evidence + record": spent["fetch"] + spent["parse"] + spent["check"],
                "+ pickle round trip": spent["fetch"] + spent["parse"] + spent["check"] + spent["trip"],
            }
            for name, seconds in steps.items():
                rows.setdefault(name, []).append(seconds / len(stores) * 1000)
    print(f"the API detail path's floor, {len(stores)} answers a round, median of {args.rounds} rounds")
    print(f"{'step':24}{'CPU ms/answer':>14}")
    for name, values in rows.items():
        print(f"{name:24}{sorted(values)[len(values) // 2]:>14.3f}")


if __name__ == "__main__":
    main()
