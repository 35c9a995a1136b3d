"""CPU per detail answer parsed, per source: the page (all three layouts, as the replica serves them) and the
profile API's JSON, in one process.

.venv/bin/python benchmarks/parse_cpu.py --pages 600 --repeat 3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stage5.replica import profile_api, render
from stage5.replica.world import build_world
from stage5.site.detail import parse_detail
from stage5.site.profile import parse_profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    world = build_world(5, 0.3)
    pages = [
        (render.detail_page(s, render.layout_for(s.rid, "", 0)), s.rid) for s in world.stores[: args.pages] if s.listed
    ]
    answers = [(profile_api.profile_json(s), s.rid) for s in world.stores[: args.pages] if s.listed]
    for source, bodies, parse in (("html", pages, parse_detail), ("api", answers, parse_profile)):
        started = time.process_time()
        for _ in range(args.repeat):
            for body, rid in bodies:
                parse(body, rid)
        spent = time.process_time() - started
        size = sum(len(b) for b, _ in bodies) / len(bodies) / 1024
        print(
            f"{source:4} {len(bodies) * args.repeat} parses: {spent / len(bodies) / args.repeat * 1000:.3f} ms CPU"
            f" per answer ({size:.1f} KiB each)"
        )


if __name__ == "__main__":
    main()
